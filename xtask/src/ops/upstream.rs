//! Upstream commits after the pin that touch a file linked into any ROM, each marked taken (the
//! series lists it), declined (`ipxe-patches/upstream.toml` says why) or untriaged. Which files
//! are linked comes from building every profile for every NIC: the link map and iPXE's
//! dependency files of each ROM name the sources and the headers they include. The builds are
//! the ordinary ones, answered from the output cache when nothing changed. `.mrom` images are
//! not released (and the HTTPS profile's do not fit), so not built: `mromprefix.S` is not
//! watched.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use anyhow::{bail, Result};
use serde::Serialize;
use xshell::Shell;

use crate::{
    builder::{profile, series},
    cache::Cache,
    nic::NICS,
    ops::{build, How},
    project::Project,
    source::{
        pin::Pin,
        upstream::{self, Commit, Repo},
    },
};

pub struct UpstreamOptions {
    /// A clone of upstream iPXE.
    pub repo: PathBuf,
    /// Upstream as far as this commit; [`upstream::DEFAULT_REVS`] when None.
    pub rev: Option<String>,
}

/// A commit and the name it was asked by.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub name: String,
    pub commit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "lowercase")]
pub enum Decision {
    /// In the series; its reason there.
    Taken(String),
    /// In the record; its reason there.
    Declined(String),
    Untriaged,
}

/// A linked file a commit touches, and the ROMs (`profile/nic`) that link it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Touched {
    pub path: String,
    pub roms: Vec<String>,
}

impl Touched {
    /// Where the file is linked, in short: the profiles or NICs that narrow it from all the ROMs
    /// built; None where every ROM links it.
    pub fn scope(&self, all: &[String]) -> Option<String> {
        if self.roms.len() >= all.len() {
            return None;
        }
        let (mine, every) = (Dimensions::of(&self.roms), Dimensions::of(all));
        // Only where the ROMs are every NIC named in every profile named, so the words are exact.
        if self.roms.len() != mine.profiles.len() * mine.nics.len() {
            return Some(self.roms.join(" "));
        }
        let mut words: Vec<&str> = Vec::new();
        if mine.profiles != every.profiles {
            words.extend(&mine.profiles);
        }
        if mine.nics != every.nics {
            words.extend(&mine.nics);
        }
        Some(words.join(" "))
    }
}

/// ROM labels (`profile/nic`) taken apart.
struct Dimensions<'a> {
    profiles: BTreeSet<&'a str>,
    nics: BTreeSet<&'a str>,
}

impl<'a> Dimensions<'a> {
    fn of(labels: &'a [String]) -> Dimensions<'a> {
        let mut d = Dimensions {
            profiles: BTreeSet::new(),
            nics: BTreeSet::new(),
        };
        for label in labels {
            let (profile, nic) = label.split_once('/').unwrap_or((label, ""));
            d.profiles.insert(profile);
            d.nics.insert(nic);
        }
        d
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub commit: String,
    pub subject: String,
    #[serde(flatten)]
    pub decision: Decision,
    pub files: Vec<Touched>,
}

#[derive(Debug, Serialize)]
pub struct Triage {
    /// The pinned commit, by its version.
    pub pin: Point,
    pub rev: Point,
    /// Commits after the pin up to `rev`, merges left out.
    pub after_pin: usize,
    /// The ROMs built, `profile/nic`.
    pub roms: Vec<String>,
    pub linked_files: usize,
    /// The commits that touch a linked file, oldest first.
    pub commits: Vec<Listed>,
    /// Linked objects no dependency file names: commits touching their sources go unseen.
    pub unsourced: BTreeSet<String>,
    /// Declined commits that are not listed, and why: the record may drop them.
    pub unlisted: Vec<String>,
    /// Record entries the clone contradicts: the pin has the commit, or the clone lacks it.
    pub stale: Vec<String>,
}

impl Triage {
    pub fn count(&self, want: fn(&Decision) -> bool) -> usize {
        self.commits.iter().filter(|c| want(&c.decision)).count()
    }

    /// Fails while a listed commit has no decision or the record says something the clone
    /// contradicts, saying what to do.
    pub fn verdict(&self) -> Result<()> {
        let mut problems = self.stale.clone();
        let untriaged = self.count(|d| *d == Decision::Untriaged);
        if untriaged > 0 {
            problems.push(format!(
                "{untriaged} upstream commit(s) after {} touch files linked into the ROMs and \
                 have no decision: take each into ipxe-patches/series.toml, or decline it with \
                 a reason a reviewer can check in ipxe-patches/{}; then run this again",
                self.pin.name,
                upstream::RECORD
            ));
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        Ok(())
    }
}

/// Reads the clone and the record first, so a wrong clone or record fails before any build.
pub fn triage(
    project: &Project,
    cache: &Cache,
    how: &How,
    options: &UpstreamOptions,
) -> Result<Triage> {
    let sh = Shell::new()?;
    let pin = Pin::load(&project.pin_file())?;
    let taken: BTreeMap<String, String> = series::load(project)?
        .into_iter()
        .filter_map(|e| Some((e.commit?.to_ascii_lowercase(), e.reason)))
        .collect();
    let declined = upstream::load_record(project, &taken.keys().cloned().collect())?;
    let repo = Repo::open(&sh, &options.repo)?;
    let rev = checked_rev(&repo, &pin, options.rev.as_deref())?;
    let commits = repo.log(&pin.commit, &rev.commit)?;
    let linked = linked_files(&sh, project, cache, how)?;
    let after_pin = commits.len();
    let listed = classify(commits, &linked.files, &taken, &declined);
    let (unlisted, stale) = check_declined(&repo, &pin, &rev, &listed, &declined)?;
    Ok(Triage {
        pin: Point {
            name: pin.version.clone(),
            commit: pin.commit.clone(),
        },
        rev,
        after_pin,
        roms: linked.roms,
        linked_files: linked.files.len(),
        commits: listed,
        unsourced: linked.unsourced,
        unlisted,
        stale,
    })
}

/// The revision to compare with, refused unless the clone has the pin and `rev` contains it.
fn checked_rev(repo: &Repo, pin: &Pin, rev: Option<&str>) -> Result<Point> {
    if repo.resolve(&pin.commit)?.is_none() {
        bail!(
            "{} does not have the pinned commit {} ({}): fetch upstream into it \
             (git -C {} fetch https://github.com/ipxe/ipxe master), or pass --ipxe-repo a full clone",
            repo.dir().display(),
            pin.commit,
            pin.version,
            repo.dir().display()
        );
    }
    let (name, commit) = repo.rev(rev)?;
    if !repo.contains(&commit, &pin.commit)? {
        bail!(
            "{name} ({}) does not contain the pinned commit {} ({}): pass --rev a later \
             upstream commit, such as origin/master after git fetch",
            &commit[..12],
            pin.short_commit(),
            pin.version
        );
    }
    Ok(Point { name, commit })
}

/// What every ROM of every profile links.
struct LinkedFiles {
    /// Each file, below the tree root, with the ROMs that link it.
    files: BTreeMap<String, BTreeSet<String>>,
    unsourced: BTreeSet<String>,
    roms: Vec<String>,
}

/// Builds every profile for every NIC.
fn linked_files(sh: &Shell, project: &Project, cache: &Cache, how: &How) -> Result<LinkedFiles> {
    let mut linked = LinkedFiles {
        files: BTreeMap::new(),
        unsourced: BTreeSet::new(),
        roms: Vec::new(),
    };
    let profiles = profile::list(&project.configs());
    if profiles.is_empty() {
        bail!("no profiles in {}", project.configs().display());
    }
    for name in &profiles {
        eprintln!("upstream: building profile {name} for every NIC, to see what it links");
        let nics = NICS.iter().collect();
        let outcome = build::build(sh, &how.request(project, cache, name, nics, false))?;
        for rom in &outcome.roms {
            let label = format!("{name}/{}", rom.nic.name);
            for file in &rom.linked.sources {
                let roms = linked.files.entry(file.clone()).or_default();
                roms.insert(label.clone());
            }
            linked
                .unsourced
                .extend(rom.linked.unsourced.iter().cloned());
            linked.roms.push(label);
        }
    }
    Ok(linked)
}

/// The commits that touch a linked file, each with its decision.
fn classify(
    commits: Vec<Commit>,
    linked: &BTreeMap<String, BTreeSet<String>>,
    taken: &BTreeMap<String, String>,
    declined: &BTreeMap<String, String>,
) -> Vec<Listed> {
    commits
        .into_iter()
        .filter_map(|c| {
            let files: Vec<Touched> = c
                .files
                .iter()
                .filter_map(|f| {
                    let roms = linked.get(f)?;
                    Some(Touched {
                        path: f.clone(),
                        roms: roms.iter().cloned().collect(),
                    })
                })
                .collect();
            if files.is_empty() {
                return None;
            }
            let decision = match (taken.get(&c.id), declined.get(&c.id)) {
                (Some(why), _) => Decision::Taken(why.clone()),
                (None, Some(why)) => Decision::Declined(why.clone()),
                (None, None) => Decision::Untriaged,
            };
            Some(Listed {
                commit: c.id,
                subject: c.subject,
                decision,
                files,
            })
        })
        .collect()
}

/// Declined commits the listing does not show: notes where harmless, problems where the pin
/// already has the commit or the clone has no such commit.
fn check_declined(
    repo: &Repo,
    pin: &Pin,
    rev: &Point,
    listed: &[Listed],
    declined: &BTreeMap<String, String>,
) -> Result<(Vec<String>, Vec<String>)> {
    let shown: BTreeSet<&str> = listed.iter().map(|l| l.commit.as_str()).collect();
    let (mut unlisted, mut stale) = (Vec::new(), Vec::new());
    for id in declined.keys().filter(|id| !shown.contains(id.as_str())) {
        let record = format!("ipxe-patches/{}", upstream::RECORD);
        if repo.resolve(id)?.is_none() {
            stale.push(format!(
                "{record} declines {id}, which {} does not have: correct the id, or fetch upstream",
                repo.dir().display()
            ));
        } else if repo.contains(&pin.commit, id)? {
            stale.push(format!(
                "{record} declines {id}, which the pin ({}) contains: remove it",
                pin.version
            ));
        } else {
            unlisted.push(format!(
                "{record} declines {}, which is not listed: it touches no linked file, or is \
                 not in {}..{}",
                &id[..12],
                pin.version,
                rev.name
            ));
        }
    }
    Ok((unlisted, stale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: char, files: &[&str]) -> Commit {
        Commit {
            id: id.to_string().repeat(40),
            subject: format!("[{id}] subject"),
            files: files.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn only_commits_touching_linked_files_are_listed_each_with_its_decision() {
        let linked = BTreeMap::from([
            (
                "src/net/tcp.c".to_string(),
                BTreeSet::from(["vmware/vmxnet3".to_string()]),
            ),
            (
                "src/include/ipxe/tcp.h".to_string(),
                BTreeSet::from(["vmware/e1000".to_string()]),
            ),
        ]);
        let taken = BTreeMap::from([("a".repeat(40), "in the series".to_string())]);
        let declined = BTreeMap::from([("b".repeat(40), "EFI only".to_string())]);
        let commits = vec![
            commit('a', &["src/net/tcp.c"]),
            commit('b', &["src/include/ipxe/tcp.h", "src/interface/efi/x.c"]),
            commit('c', &["src/interface/efi/x.c"]),
            commit('d', &["src/net/tcp.c", "src/include/ipxe/tcp.h"]),
        ];
        let listed = classify(commits, &linked, &taken, &declined);
        let got: Vec<(char, Decision, Vec<&str>)> = listed
            .iter()
            .map(|l| {
                let files = l.files.iter().map(|f| f.path.as_str()).collect();
                (l.commit.chars().next().unwrap(), l.decision.clone(), files)
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    'a',
                    Decision::Taken("in the series".into()),
                    vec!["src/net/tcp.c"]
                ),
                (
                    'b',
                    Decision::Declined("EFI only".into()),
                    vec!["src/include/ipxe/tcp.h"]
                ),
                (
                    'd',
                    Decision::Untriaged,
                    vec!["src/net/tcp.c", "src/include/ipxe/tcp.h"]
                ),
            ]
        );
        assert_eq!(listed[1].files[0].roms, ["vmware/e1000"]);
    }

    #[test]
    fn a_files_scope_names_what_narrows_it_from_every_rom() {
        let all: Vec<String> = ["vmware", "vmware-https"]
            .iter()
            .flat_map(|p| ["vmxnet3", "e1000", "e1000e"].map(|n| format!("{p}/{n}")))
            .collect();
        let scope = |roms: &[&str]| {
            let touched = Touched {
                path: "f".into(),
                roms: roms.iter().map(|r| r.to_string()).collect(),
            };
            touched.scope(&all)
        };
        let everywhere: Vec<&str> = all.iter().map(String::as_str).collect();
        assert_eq!(scope(&everywhere), None);
        let https = [
            "vmware-https/vmxnet3",
            "vmware-https/e1000",
            "vmware-https/e1000e",
        ];
        assert_eq!(scope(&https).as_deref(), Some("vmware-https"));
        let intel = [
            "vmware/e1000",
            "vmware/e1000e",
            "vmware-https/e1000",
            "vmware-https/e1000e",
        ];
        assert_eq!(scope(&intel).as_deref(), Some("e1000 e1000e"));
        assert_eq!(
            scope(&["vmware-https/e1000"]).as_deref(),
            Some("vmware-https e1000")
        );
        assert_eq!(
            scope(&["vmware/vmxnet3", "vmware-https/e1000"]).as_deref(),
            Some("vmware/vmxnet3 vmware-https/e1000"),
            "a set that is not some NICs in some profiles is listed whole"
        )
    }

    #[test]
    fn the_verdict_fails_while_any_is_untriaged() {
        let mut triage = Triage {
            pin: Point {
                name: "v2.0.0".into(),
                commit: "a".repeat(40),
            },
            rev: Point {
                name: "master".into(),
                commit: "b".repeat(40),
            },
            after_pin: 1,
            roms: vec![],
            linked_files: 1,
            commits: vec![Listed {
                commit: "c".repeat(40),
                subject: "s".into(),
                decision: Decision::Untriaged,
                files: vec![],
            }],
            unsourced: BTreeSet::new(),
            unlisted: vec![],
            stale: vec![],
        };
        let err = triage.verdict().unwrap_err().to_string();
        assert!(
            err.starts_with("1 upstream commit(s) after v2.0.0"),
            "{err}"
        );
        triage.commits[0].decision = Decision::Declined("x".into());
        triage.verdict().unwrap();
        triage.stale.push("remove it".into());
        assert_eq!(triage.verdict().unwrap_err().to_string(), "remove it");
        let json = serde_json::to_value(&triage.commits[0]).unwrap();
        assert_eq!(
            (json["decision"].as_str(), json["reason"].as_str()),
            (Some("declined"), Some("x"))
        );
    }
}
