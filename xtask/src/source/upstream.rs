//! Upstream after the pin: the commits a clone of upstream iPXE has after the pinned one, read
//! with git, and `ipxe-patches/upstream.toml`, the record of the ones we declined and why.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Output,
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::project::Project;

/// The record of declined upstream commits, beside the series in `ipxe-patches/`.
pub const RECORD: &str = "upstream.toml";

/// Tried in order when no `--rev` is given: upstream's branch as the clone last fetched it.
pub const DEFAULT_REVS: &[&str] = &["origin/master", "master", "HEAD"];

/// One upstream commit and every file it touches; a rename counts as both names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub id: String,
    pub subject: String,
    pub files: Vec<String>,
}

/// A clone of upstream iPXE: a work tree, a bare repository or a mirror.
pub struct Repo<'a> {
    sh: &'a Shell,
    dir: PathBuf,
}

impl<'a> Repo<'a> {
    pub fn open(sh: &'a Shell, dir: &Path) -> Result<Repo<'a>> {
        let repo = Repo {
            sh,
            dir: dir.to_path_buf(),
        };
        let out = repo.git(&["rev-parse", "--git-dir"])?;
        if !out.status.success() {
            bail!(
                "{} is not a git repository ({}): pass --ipxe-repo a clone of \
                 https://github.com/ipxe/ipxe",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(repo)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// git in the clone; the caller reads the status.
    fn git(&self, args: &[&str]) -> Result<Output> {
        let dir = &self.dir;
        cmd!(self.sh, "git -C {dir} {args...}")
            .quiet()
            .ignore_status()
            .output()
            .context("cannot run git: install it to read the upstream clone")
    }

    /// The full id of `rev`, if it names a commit of the clone.
    pub fn resolve(&self, rev: &str) -> Result<Option<String>> {
        let spec = format!("{rev}^{{commit}}");
        let out = self.git(&["rev-parse", "--verify", "--quiet", &spec])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// `rev`, or the first of [`DEFAULT_REVS`] the clone has; its name and full id.
    pub fn rev(&self, rev: Option<&str>) -> Result<(String, String)> {
        let names: Vec<&str> = rev.map_or(DEFAULT_REVS.to_vec(), |r| vec![r]);
        for name in &names {
            if let Some(id) = self.resolve(name)? {
                return Ok((name.to_string(), id));
            }
        }
        bail!(
            "{} has no commit named {}: pass --rev an upstream commit or branch the clone has",
            self.dir.display(),
            names.join(" or ")
        )
    }

    /// Whether `ancestor` is `rev` or one of its ancestors.
    pub fn contains(&self, rev: &str, ancestor: &str) -> Result<bool> {
        let out = self.git(&["merge-base", "--is-ancestor", ancestor, rev])?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => bail!(
                "git merge-base --is-ancestor {ancestor} {rev} failed in {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }

    /// The commits after `from` up to `to`, oldest first, each with the files it touches.
    /// Merges are left out: what they bring is in the commits they merge.
    pub fn log(&self, from: &str, to: &str) -> Result<Vec<Commit>> {
        let range = format!("{from}..{to}");
        let out = self.git(&[
            "log",
            "--reverse",
            "--no-merges",
            "--no-renames",
            "--name-only",
            "-z",
            "--format=%x1e%H %s",
            &range,
            "--",
        ])?;
        if !out.status.success() {
            bail!(
                "git log {range} failed in {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(parse_log(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// `git log -z --name-only --format=%x1e%H %s`: each commit starts with the record separator,
/// its id and subject; the file names follow, each ending in NUL (the first after a newline).
pub fn parse_log(text: &str) -> Vec<Commit> {
    let mut commits: Vec<Commit> = Vec::new();
    for token in text.split('\0') {
        if let Some(head) = token.strip_prefix('\x1e') {
            let (id, subject) = head.split_once(' ').unwrap_or((head, ""));
            commits.push(Commit {
                id: id.to_string(),
                subject: subject.trim_end().to_string(),
                files: Vec::new(),
            });
            continue;
        }
        let file = token.trim_start_matches('\n');
        if let (Some(commit), false) = (commits.last_mut(), file.is_empty()) {
            commit.files.push(file.to_string());
        }
    }
    commits
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordFile {
    #[serde(default)]
    triage: Vec<RecordEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordEntry {
    commit: String,
    decision: String,
    reason: String,
}

/// Every declined commit, by full id, with its reason. None recorded where the file is absent.
pub fn load_record(
    project: &Project,
    taken: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>> {
    let path = project.patches().join(RECORD);
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    let file: RecordFile = crate::util::read_toml(&path)?;
    check_record(file, taken).with_context(|| format!("{}", path.display()))
}

/// What makes the record checkable: full ids, each once, each with a reason, none taken too.
fn check_record(file: RecordFile, taken: &BTreeSet<String>) -> Result<BTreeMap<String, String>> {
    let mut declined: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (i, e) in file.triage.into_iter().enumerate() {
        let n = i + 1;
        let id = e.commit.to_ascii_lowercase();
        if !crate::source::pin::is_full_commit_id(&id) {
            bail!(
                "entry {n}: commit must be a full 40-digit id, not '{}'",
                e.commit
            );
        }
        match e.decision.as_str() {
            "declined" => {}
            "taken" => bail!(
                "entry {n} ({id}): a commit is taken by the pin or by ipxe-patches/series.toml, \
                 not here: add it to the series, or decline it"
            ),
            other => bail!("entry {n} ({id}): decision must be \"declined\", not \"{other}\""),
        }
        if e.reason.trim().is_empty() {
            bail!("entry {n} ({id}): say why it is declined, in a reason a reviewer can check");
        }
        if taken.contains(&id) {
            bail!(
                "entry {n} ({id}) declines a commit ipxe-patches/series.toml takes: keep one of them"
            );
        }
        if let Some((first, _)) = declined.get(&id) {
            bail!("entries {first} and {n} both record {id}: keep one");
        }
        declined.insert(id, (n, e.reason.trim().to_string()));
    }
    Ok(declined.into_iter().map(|(id, (_, r))| (id, r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn reads_commits_subjects_and_files_from_git_log_z() {
        // As git writes it: the format, NUL, a newline before the first name, NUL after each.
        let text = format!(
            "\x1e{A} [tcp] Fix a thing\0\nsrc/net/tcp.c\0src/include/ipxe/tcp.h\0\
             \x1e{B} \0\x1e{A} [efi] Space  in subject \0\nsrc/a b.c\0"
        );
        let commits = parse_log(&text);
        assert_eq!(commits.len(), 3);
        assert_eq!(commits[0].id, A);
        assert_eq!(commits[0].subject, "[tcp] Fix a thing");
        assert_eq!(
            commits[0].files,
            ["src/net/tcp.c", "src/include/ipxe/tcp.h"]
        );
        assert_eq!(
            (commits[1].subject.as_str(), commits[1].files.len()),
            ("", 0)
        );
        assert_eq!(commits[2].subject, "[efi] Space  in subject");
        assert_eq!(commits[2].files, ["src/a b.c"]);
        assert!(parse_log("").is_empty());
    }

    fn record(text: &str, taken: &[&str]) -> Result<BTreeMap<String, String>> {
        let file: RecordFile = crate::util::parse_toml(text).map_err(anyhow::Error::msg)?;
        let taken = taken.iter().map(|s| s.to_string()).collect();
        check_record(file, &taken).map_err(|e| anyhow::anyhow!("{e:#}"))
    }

    fn entry(commit: &str, decision: &str, reason: &str) -> String {
        format!(
            "[[triage]]\ncommit = \"{commit}\"\ndecision = \"{decision}\"\nreason = \"{reason}\"\n"
        )
    }

    #[test]
    fn a_record_of_declined_commits_reads_back() {
        let text = entry(&A.to_uppercase(), "declined", " EFI only ") + &entry(B, "declined", "x");
        let got = record(&text, &[]).unwrap();
        assert_eq!(
            got[A], "EFI only",
            "ids compare in lowercase; reasons trimmed"
        );
        assert_eq!(got.len(), 2);
        assert!(record("", &[]).unwrap().is_empty());
    }

    #[test]
    fn a_record_that_cannot_be_checked_is_refused() {
        let refused = |text: String, taken: &[&str], want: &str| {
            let err = record(&text, taken).unwrap_err().to_string();
            assert!(err.contains(want), "wanted '{want}' in: {err}");
        };
        refused(entry("12798ec29", "declined", "x"), &[], "full 40-digit id");
        refused(entry(A, "declined", "  "), &[], "say why");
        refused(
            entry(A, "taken", "x"),
            &[],
            "not here: add it to the series",
        );
        refused(entry(A, "maybe", "x"), &[], "decision must be \"declined\"");
        refused(entry(A, "declined", "x"), &[A], "series.toml takes");
        refused(
            entry(A, "declined", "x") + &entry(B, "declined", "y") + &entry(A, "declined", "z"),
            &[],
            "entries 1 and 3 both record",
        );
        refused(
            format!(
                "[[triage]]\ncommit = \"{A}\"\ndecision = \"declined\"\nreason = \"x\"\nwhy = 1\n"
            ),
            &[],
            "unknown field",
        );
        refused(
            format!("[[triage]]\ncommit = \"{A}\"\n"),
            &[],
            "missing field",
        );
    }
}
