//! Checks of the repository itself: profiles parse, the README documents every command and stays
//! short, and the README and docs/ agree with the committed budget, manifest and pin.

use std::{fs, process::Command};

use crate::support::*;
use xtask::{
    builder::profile, check::budget::Budget, nic::Nic, record::Manifest, source::pin::Pin,
};

/// The README and every page of `docs/`: what a user reads, in which the figures must agree.
fn readme() -> String {
    let mut text = fs::read_to_string(repo().join("README.md")).unwrap();
    let mut pages: Vec<_> = fs::read_dir(repo().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    for page in pages {
        text.push_str(&fs::read_to_string(page).unwrap());
    }
    text
}

/// The README stays short and points into `docs/`; every page it links to exists.
#[test]
fn the_readme_is_short_and_its_links_hold() {
    let text = fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines; move detail into docs/"
    );
    for page in text.split("](docs/").skip(1) {
        let file = page.split([')', '#']).next().unwrap();
        assert!(
            repo().join("docs").join(file).is_file(),
            "README links to docs/{file}, which is missing"
        );
    }
}

#[test]
fn every_profile_and_the_pin_load() {
    let pin = Pin::load(&repo().join("configs/ipxe.toml")).unwrap();
    assert!(
        readme().contains(&pin.commit),
        "the README names the pinned commit"
    );
    assert!(
        readme().contains(pin.tree_digest.hex()),
        "the README gives the tree digest"
    );
    let names = profile::list(&repo().join("configs"));
    assert!(names.contains(&"vmware".to_string()));
    for name in names {
        profile::Profile::load(&xtask::project::Project::locate(Some(&repo())), &name).unwrap();
    }
}

#[test]
fn the_readme_documents_every_command() {
    let help = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--help")
        .output()
        .unwrap();
    let help = stdout(&help);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .take_while(|w| *w != "Options:")
        .filter(|w| *w != "help")
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    let readme = readme();
    let missing: Vec<_> = commands
        .iter()
        .filter(|c| !readme.contains(&format!("cargo xtask {c}")))
        .collect();
    assert!(missing.is_empty(), "README does not show: {missing:?}");
    let first = readme.lines().find(|l| l.starts_with("cargo ")).unwrap();
    assert_eq!(
        first, "cargo xtask build-rom --nic vmxnet3",
        "the README's first command"
    );
}

#[test]
fn the_readmes_sizes_match_the_budget_and_the_manifest() {
    let budget = Budget::load(&repo().join("roms/budget.toml")).unwrap();
    let manifest = Manifest::load(&repo().join("roms/vmware/manifest.json")).unwrap();
    let readme = readme();
    let commas = |n: u64| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    for (nic, entry) in &budget.0["vmware"] {
        let pci = Nic::by_name(nic).unwrap().pci_id();
        let row = format!("| `{pci}.rom` ({nic}) | {} |", commas(entry.size));
        assert!(readme.contains(&row), "README lacks {row}");
        assert_eq!(
            manifest.roms[&format!("{pci}.rom")].size,
            entry.size,
            "manifest and budget disagree for {nic}"
        );
    }
    // The HTTPS table, in the README and in docs/profiles.md, with its headroom.
    let https = Manifest::load(&repo().join("roms/vmware-https/manifest.json")).unwrap();
    let profiles = fs::read_to_string(repo().join("docs/profiles.md")).unwrap();
    for (nic, entry) in &budget.0["vmware-https"] {
        let pci = Nic::by_name(nic).unwrap().pci_id();
        let row = format!(
            "| `{pci}.rom` ({nic}) | {} | 65,536 | {} |",
            commas(entry.size),
            commas(65_536 - entry.size)
        );
        assert!(readme.contains(&row), "README lacks {row}");
        assert!(profiles.contains(&row), "docs/profiles.md lacks {row}");
        assert_eq!(https.roms[&format!("{pci}.rom")].size, entry.size, "{nic}");
    }
    let sums = fs::read_to_string(repo().join("roms/vmware/SHA256SUMS")).unwrap();
    for (file, info) in &manifest.roms {
        assert!(
            sums.contains(&format!("{} *{file}\n", info.sha256)),
            "SHA256SUMS and manifest disagree on {file}"
        );
    }
}

/// The folder tree is the architecture: commands only in `cmd/`, the library in its stage
/// folders, no library file that reaches into `cmd/`, and no file named like a test outside
/// `tests/` (tools skip those, as they skip folders named `build`).
#[test]
fn the_layout_shows_the_pipeline() {
    let src = repo().join("xtask/src");
    let mut folders: Vec<String> = fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        ["boot", "builder", "check", "cmd", "ops", "output", "source", "vm"],
        "xtask/src/ holds the stage folders and cmd/; README's layout section says what each is"
    );
    let readme = readme();
    for f in &folders {
        assert!(
            readme.contains(&format!("`xtask/src/{f}/`")),
            "README's layout section lacks xtask/src/{f}/"
        );
    }
    let files = rust_files();
    let main = fs::read_to_string(src.join("main.rs")).unwrap();
    for path in &files {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = fs::read_to_string(path).unwrap();
        assert!(
            !rel.ends_with("_test.rs"),
            "{rel}: a test-like name outside tests/"
        );
        let in_cmd = rel.starts_with("cmd/");
        if in_cmd && rel != "cmd/mod.rs" {
            let name = rel.trim_start_matches("cmd/").trim_end_matches(".rs");
            assert!(
                text.contains("pub fn run("),
                "{rel}: a command has a run function"
            );
            assert!(
                main.contains(&format!("cmd::{name}::run(")),
                "{rel}: main.rs dispatches every command file"
            );
        }
        if !in_cmd && rel != "main.rs" {
            assert!(
                !text.contains("crate::cmd") && !text.contains("clap::Args)]\npub struct Args"),
                "{rel}: the library never reaches into the commands"
            );
        }
    }
    assert!(
        !main.contains("fn run") && main.lines().count() < 120,
        "main.rs only parses and dispatches"
    );
}

/// Every function of the library and the commands outside tests, with its length in lines:
/// `fn` at the start of a line (after indentation) to the `}` at the same indentation.
fn functions() -> Vec<(String, String, usize)> {
    let src = repo().join("xtask/src");
    let mut out = Vec::new();
    for p in rust_files() {
        let rel = p.strip_prefix(&src).unwrap().display().to_string();
        let text = fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let code = line.trim_start();
            let indent = &line[..line.len() - code.len()];
            let code = code
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            if let Some(rest) = code.strip_prefix("fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let close = format!("{indent}}}");
                let end = (i..lines.len()).find(|&j| lines[j] == close).unwrap_or(i);
                out.push((rel.clone(), name, end - i + 1));
                i = end;
            }
            i += 1;
        }
    }
    out
}

/// Every `.rs` file below `xtask/src/`.
fn rust_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![repo().join("xtask/src")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files
}

/// Short functions: none over 60 lines outside tests, and a command's `run` under about 40
/// (it parses, calls the operations and prints).
#[test]
fn functions_are_short_and_commands_thin() {
    let all = functions();
    assert!(
        all.len() > 300,
        "the scan found only {} functions",
        all.len()
    );
    let long: Vec<String> = all
        .iter()
        .filter(|(file, name, n)| *n > 60 || (file.starts_with("cmd/") && name == "run" && *n > 40))
        .map(|(file, name, n)| format!("{file}: {name} ({n} lines)"))
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

/// Commands call operations, not each other; operations take plain options, not clap's.
#[test]
fn commands_call_operations_not_commands() {
    let src = repo().join("xtask/src");
    for e in fs::read_dir(src.join("cmd")).unwrap().flatten() {
        let text = fs::read_to_string(e.path()).unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        for (i, _) in text.match_indices("cmd::") {
            let rest = &text[i + 5..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let is_module = rest[word.len()..].starts_with("::");
            assert!(
                !is_module,
                "cmd/{name} reaches into the command cmd::{word}"
            );
        }
    }
    for e in fs::read_dir(src.join("ops")).unwrap().flatten() {
        let text = fs::read_to_string(e.path()).unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        for clap_type in ["clap::Args", "RuntimeArgs", "crate::Ctx", "ArgMatches"] {
            assert!(
                !text.contains(clap_type),
                "ops/{name} takes {clap_type}; pass plain options"
            );
        }
    }
}
