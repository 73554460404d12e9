//! Checks of the repository itself: profiles parse, the README documents every command, and the
//! README's figures agree with the committed budget, manifest and pin.

mod support;

use std::{fs, process::Command};

use support::*;
use xtask::{budget::Budget, emit::Manifest, nic::Nic, pin::Pin, profile};

fn readme() -> String {
    fs::read_to_string(repo().join("README.md")).unwrap()
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
        profile::Profile::load(&repo().join("configs"), &name).unwrap();
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
    let sums = fs::read_to_string(repo().join("roms/vmware/SHA256SUMS")).unwrap();
    for (file, info) in &manifest.roms {
        assert!(
            sums.contains(&format!("{} *{file}\n", info.sha256)),
            "SHA256SUMS and manifest disagree on {file}"
        );
    }
}
