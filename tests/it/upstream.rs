//! `upstream`: a real git repository shaped like upstream iPXE after the pin, and the real binary
//! listing its commits against what the fake tree's ROMs link (its link map and `bin/deps`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::support::*;

/// Runs git in `dir` with a fixed identity and no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// Writes `files` (path, content; None deletes) and commits them; the new commit's id.
fn commit(dir: &Path, subject: &str, files: &[(&str, Option<&str>)]) -> String {
    for (path, content) in files {
        let p = dir.join(path);
        match content {
            Some(text) => {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, text).unwrap();
            }
            None => fs::remove_file(&p).unwrap(),
        }
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", subject]);
    git(dir, &["rev-parse", "HEAD"])
}

/// The fake project, pinned to a commit of a git repository that has the fake tree, with
/// commits after the pin: one the series takes, one the record declines, one that touches no
/// linked file, and two untriaged (one renames a linked source).
struct Upstream {
    project: Project,
    clone: PathBuf,
    /// A commit the pin contains, touching a linked file.
    before: String,
    taken: String,
    declined: String,
    unlinked: String,
    untriaged: String,
    renamed: String,
}

impl Upstream {
    fn new() -> Upstream {
        let project = Project::new(&[]);
        project.import();
        let clone = project.path("ipxe");
        fs::create_dir_all(&clone).unwrap();
        git(&clone, &["init", "-q", "-b", "master"]);
        let main = "src/core/main.c";
        let before = commit(&clone, "[core] Before the pin", &[(main, Some("int x;\n"))]);
        write_fake_tree(&clone);
        let pin = commit(&clone, "[release] The pin", &[]);
        let pin_file = project.path("configs/ipxe.toml");
        let text = fs::read_to_string(&pin_file).unwrap();
        fs::write(&pin_file, text.replace(FAKE_COMMIT, &pin)).unwrap();
        let fixed = "int main ( void ) {\n\treturn 1;\n}\n";
        let taken = commit(&clone, "[core] Fix main", &[(main, Some(fixed))]);
        let general = fs::read_to_string(clone.join("src/config/general.h")).unwrap();
        let tweak = format!("{general}/* tweaked */\n");
        let declined = commit(
            &clone,
            "[config] Tweak general.h",
            &[("src/config/general.h", Some(&tweak))],
        );
        let unlinked = commit(
            &clone,
            "[efi] Add an EFI driver",
            &[("src/interface/efi/efi_x.c", Some("int y;\n"))],
        );
        let untriaged = commit(
            &clone,
            "[settings] Touch settings.h and the docs",
            &[
                ("src/config/settings.h", Some("/* settings */\n")),
                ("doc/notes.txt", Some("notes\n")),
            ],
        );
        git(&clone, &["mv", "src/core/objs.c", "src/core/objects.c"]);
        let renamed = commit(&clone, "[core] Rename objs.c", &[]);
        let up = Upstream {
            project,
            clone,
            before,
            taken,
            declined,
            unlinked,
            untriaged,
            renamed,
        };
        up.take_into_series();
        up.record(&[(
            &up.declined,
            "the fixture's general.h: declined to test the record",
        )]);
        up
    }

    /// Puts the taken commit in the series, its patch made with git and imported.
    fn take_into_series(&self) {
        let patch = git(
            &self.clone,
            &["format-patch", "-1", "--stdout", &self.taken],
        ) + "\n";
        let file = self.project.path("taken.patch");
        fs::write(&file, &patch).unwrap();
        let digest = xtask::builder::patch::digest(&patch).unwrap();
        let series = format!(
            "[[patch]]\ncommit = \"{}\"\nurl = \"https://example.invalid/{}.patch\"\n\
             digest = \"{digest}\"\nreason = \"main returns 1 (core; the test's series)\"\n",
            self.taken, self.taken
        );
        fs::write(self.project.path("ipxe-patches/series.toml"), series).unwrap();
        ok(&self
            .project
            .xtask(&["fetch", "--patch", file.to_str().unwrap()]));
    }

    /// Writes the record: each commit declined with its reason.
    fn record(&self, declined: &[(&str, &str)]) {
        let text: String = declined
            .iter()
            .map(|(c, why)| {
                format!(
                    "[[triage]]\ncommit = \"{c}\"\ndecision = \"declined\"\nreason = \"{why}\"\n\n"
                )
            })
            .collect();
        fs::write(self.project.path("ipxe-patches/upstream.toml"), text).unwrap();
    }

    fn run(&self, more: &[&str]) -> Output {
        let mut args = vec!["upstream", "--ipxe-repo", self.clone.to_str().unwrap()];
        args.extend_from_slice(&["--runtime", "native"]);
        args.extend_from_slice(more);
        self.project.xtask(&args)
    }
}

/// The line of `text` that lists `commit`.
fn line_of<'a>(text: &'a str, commit: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(&commit[..12]))
}

#[test]
fn lists_linked_commits_with_their_decisions_and_fails_until_all_are_decided() {
    let up = Upstream::new();
    let out = up.run(&[]);
    let err = fails_with(
        &out,
        "2 upstream commit(s) after fake touch files linked into the ROMs and have no decision",
    );
    assert!(err.contains("ipxe-patches/upstream.toml"), "{err}");
    assert!(
        err.contains("linked objects") && err.contains("general"),
        "the fake map's general.o has no dependency file, and the note says so: {err}"
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("5 commits after fake (") && text.contains("4 touch the"),
        "{text}"
    );
    let expect = [
        (&up.taken, "taken      [core] Fix main  (src/core/main.c): in the series: main returns 1 (core; the test's series)"),
        (&up.declined, "declined   [config] Tweak general.h  (src/config/general.h): the fixture's general.h: declined to test the record"),
        (&up.untriaged, "untriaged  [settings] Touch settings.h and the docs  (src/config/settings.h)"),
        (&up.renamed, "untriaged  [core] Rename objs.c  (src/core/objs.c)"),
    ];
    let mut at = 0;
    for (commit, want) in expect {
        let line = line_of(&text, commit).unwrap_or_else(|| panic!("{commit} unlisted:\n{text}"));
        assert_eq!(line, format!("{}  {want}", &commit[..12]));
        let here = text.find(line).unwrap();
        assert!(here > at, "oldest first:\n{text}");
        at = here;
    }
    assert_eq!(line_of(&text, &up.unlinked), None, "{text}");
    assert!(
        text.ends_with("4 listed: 1 taken, 1 declined, 2 untriaged\n"),
        "{text}"
    );

    // As far as the declined commit, everything listed has a decision.
    let out = up.run(&["--rev", &up.declined]);
    ok(&out);
    assert!(stdout(&out).contains("2 listed: 1 taken, 1 declined, 0 untriaged"));

    up.record(&[
        (&up.declined, "the fixture's general.h"),
        (&up.untriaged, "settings.h is the fixture's"),
        (&up.renamed, "the rename is the fixture's"),
    ]);
    let out = up.run(&["--json"]);
    ok(&out);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let decisions: Vec<(&str, &str)> = json["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = c["commit"].as_str().unwrap();
            (&id[..12], c["decision"].as_str().unwrap())
        })
        .collect();
    let short = |c: &String| c[..12].to_string();
    assert_eq!(
        decisions,
        [
            (short(&up.taken).as_str(), "taken"),
            (short(&up.declined).as_str(), "declined"),
            (short(&up.untriaged).as_str(), "declined"),
            (short(&up.renamed).as_str(), "declined"),
        ]
    );
    assert_eq!(json["after_pin"], 5);
    assert_eq!(json["roms"].as_array().unwrap().len(), 4, "every NIC");
    assert_eq!(
        json["commits"][0]["files"][0]["roms"],
        serde_json::json!([
            "vmware/e1000",
            "vmware/e1000e",
            "vmware/vlance",
            "vmware/vmxnet3"
        ])
    );
}

#[test]
fn refuses_a_record_or_a_clone_it_cannot_check() {
    let up = Upstream::new();
    let none_built = |out: &Output| {
        assert!(
            !up.project.cache().join("outputs").exists(),
            "refused before building:\n{}",
            stdout(out)
        );
    };
    for (record, want) in [
        (
            vec![(&up.taken[..], "x")],
            "declines a commit ipxe-patches/series.toml takes",
        ),
        (
            vec![(&up.declined[..9], "x")],
            "commit must be a full 40-digit id",
        ),
        (vec![(&up.declined[..], " ")], "say why it is declined"),
        (
            vec![(&up.declined[..], "x"), (&up.declined[..], "y")],
            "entries 1 and 2 both record",
        ),
    ] {
        up.record(&record);
        let out = up.run(&[]);
        fails_with(&out, want);
        fails_with(&out, "ipxe-patches/upstream.toml");
        none_built(&out);
    }
    up.record(&[]);

    let elsewhere = up.project.path("other");
    fs::create_dir_all(&elsewhere).unwrap();
    let out = up
        .project
        .xtask(&["upstream", "--ipxe-repo", elsewhere.to_str().unwrap()]);
    fails_with(&out, "is not a git repository");
    git(&elsewhere, &["init", "-q"]);
    commit(&elsewhere, "unrelated", &[("a", Some("a\n"))]);
    let out = up
        .project
        .xtask(&["upstream", "--ipxe-repo", elsewhere.to_str().unwrap()]);
    fails_with(&out, "does not have the pinned commit");
    let out = up.run(&["--rev", &up.before]);
    fails_with(&out, "does not contain the pinned commit");
    let out = up.run(&["--rev", "no-such-branch"]);
    fails_with(&out, "has no commit named no-such-branch");
    none_built(&out);

    // Declines the clone contradicts: one the pin contains, one it does not have.
    up.record(&[(&up.before, "made before the pin")]);
    fails_with(&up.run(&[]), "which the pin (fake) contains: remove it");
    let unknown = "f".repeat(40);
    up.record(&[(&unknown, "no such commit")]);
    fails_with(&up.run(&[]), "does not have: correct the id");
    // One it has after the pin that touches nothing linked is only noted.
    up.record(&[
        (&up.declined, "w"),
        (&up.unlinked, "EFI only"),
        (&up.untriaged, "x"),
        (&up.renamed, "y"),
    ]);
    let out = up.run(&[]);
    ok(&out);
    assert!(
        stderr(&out).contains("is not listed: it touches no linked file"),
        "{}",
        stderr(&out)
    );
}
