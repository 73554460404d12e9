//! The patch series on the tests' own iPXE-shaped tree: upstream patches fetched from a
//! loopback server by digest or imported offline, applied at a recorded whole-hunk offset, and
//! every way that must be refused.

use std::fs;

use crate::support::*;
use xtask::record::Manifest;

/// core/main.c of the fake tree is `int main ( void ) {\n\treturn 0;\n}\n`; this upstream fix
/// was written against a tree with five more lines above it, as a mail from git format-patch.
fn upstream_patch(new_return: &str) -> String {
    format!(
        "From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001\n\
         From: Upstream <dev@example.org>\nDate: Mon, 6 Jul 2026 13:43:05 +0100\n\
         Subject: [PATCH] [core] Return something else\n\n---\n src/core/main.c | 2 +-\n\n\
         diff --git a/src/core/main.c b/src/core/main.c\nindex 1111111..2222222 100644\n\
         --- a/src/core/main.c\n+++ b/src/core/main.c\n@@ -6,3 +6,3 @@ FILE_LICENCE\n \
         int main ( void ) {{\n-\treturn 0;\n+\treturn {new_return};\n }}\n-- \n2.47.3\n\n"
    )
}

fn series(project: &Project, url: &str, digest: &str, own: Option<&str>) {
    let mut text = format!(
        "[[patch]]\ncommit = \"0123456789abcdef0123456789abcdef01234567\"\nurl = \"{url}\"\n\
         digest = \"{digest}\"\nreason = \"test fix\"\n"
    );
    if let Some(file) = own {
        text = format!("[[patch]]\nfile = \"{file}\"\nreason = \"ours, first\"\n\n{text}");
    }
    fs::write(project.path("ipxe-patches/series.toml"), text).unwrap();
}

fn digest(text: &str) -> String {
    xtask::builder::patch::digest(text).unwrap()
}

fn cached_patches(project: &Project) -> usize {
    fs::read_dir(project.cache().join("patches"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".patch"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn an_upstream_patch_is_fetched_by_digest_and_its_offset_is_in_the_manifest() {
    let project = Project::new(&[]);
    project.import();
    ok(&project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]));
    let plain = read_sums(&project.path("roms/vmware"));

    let patch = upstream_patch("1");
    let server = HttpServer::serve(patch.clone().into_bytes());
    series(&project, &server.url, &digest(&patch), None);
    let out = project.xtask(&["fetch"]);
    ok(&out);
    assert!(
        stdout(&out).contains("upstream-0123456789ab downloaded"),
        "{}",
        stdout(&out)
    );
    ok(&project.xtask(&["fetch"]));
    assert_eq!(server.hits(), 1, "a cached patch is not downloaded again");

    ok(&project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]));
    let manifest = Manifest::load(&project.path("roms/vmware/manifest.json")).unwrap();
    let record = &manifest.patches[0];
    assert_eq!(record.origin, server.url);
    assert_eq!(record.digest, digest(&patch));
    assert_eq!(
        (
            record.offsets[0].file.as_str(),
            record.offsets[0].hunk,
            record.offsets[0].lines
        ),
        ("src/core/main.c", 1, -5),
        "{record:?}"
    );
    assert_ne!(
        read_sums(&project.path("roms/vmware")),
        plain,
        "the fix reached the ROM"
    );
}

#[test]
fn a_patch_with_another_digest_is_refused_and_the_cache_is_unchanged() {
    let project = Project::new(&[]);
    project.import();
    let pinned = upstream_patch("1");
    let served = upstream_patch("2");
    let server = HttpServer::serve(served.clone().into_bytes());
    series(&project, &server.url, &digest(&pinned), None);
    let err = fails_with(
        &project.xtask(&["fetch"]),
        "does not match upstream-0123456789ab",
    );
    assert!(
        err.contains(&digest(&served)) && err.contains(&digest(&pinned)),
        "both digests are named: {err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fix.patch");
    fs::write(&file, &served).unwrap();
    fails_with(
        &project.xtask(&["fetch", "--patch", file.to_str().unwrap()]),
        "is commit 0123456789abcdef0123456789abcdef01234567, but its content differs",
    );
    assert_eq!(cached_patches(&project), 0);
    fails_with(
        &project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]),
        "is not in the cache: run cargo xtask fetch, or import it with cargo xtask fetch --patch FILE",
    );
    assert!(
        !project.path("roms/vmware").exists(),
        "no output from a refused build"
    );
}

#[test]
fn a_patch_imported_offline_builds_without_any_server() {
    let project = Project::new(&[]);
    project.import();
    let patch = upstream_patch("1");
    series(&project, &dead_url(), &digest(&patch), None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fix.patch");
    // A different mail header and index line do not change the digest.
    fs::write(
        &file,
        patch
            .replace("Upstream <dev@example.org>", "Someone <else@example.org>")
            .replace("index 1111111", "index 3333333"),
    )
    .unwrap();
    ok(&project.xtask(&["fetch", "--patch", file.to_str().unwrap()]));
    assert_eq!(cached_patches(&project), 1);
    ok(&project.xtask(&["fetch", "--offline"]));
    ok(&project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]));
}

#[test]
fn an_ambiguous_offset_and_a_patch_already_in_the_tree_stop_the_build() {
    let project = Project::new(&[]);
    project.import();
    // Ours, first: a second copy of main's body, so the upstream context matches twice.
    fs::write(
        project.path("ipxe-patches/0001-twice.patch"),
        "--- a/src/core/main.c\n+++ b/src/core/main.c\n@@ -1,3 +1,6 @@\n int main ( void ) {\n \treturn 0;\n }\n+int main ( void ) {\n+\treturn 0;\n+}\n",
    )
    .unwrap();
    let patch = upstream_patch("1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fix.patch");
    fs::write(&file, &patch).unwrap();
    series(
        &project,
        &dead_url(),
        &digest(&patch),
        Some("0001-twice.patch"),
    );
    ok(&project.xtask(&["fetch", "--patch", file.to_str().unwrap()]));
    let build = || project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]);
    fails_with(
        &build(),
        "its context matches at 2 places (lines 1, 4), so the offset is ambiguous",
    );

    // Ours now makes the upstream change itself: the upstream patch is already in the tree.
    fs::write(
        project.path("ipxe-patches/0001-twice.patch"),
        "--- a/src/core/main.c\n+++ b/src/core/main.c\n@@ -1,3 +1,3 @@\n int main ( void ) {\n-\treturn 0;\n+\treturn 1;\n }\n",
    )
    .unwrap();
    fails_with(
        &build(),
        "patch upstream-0123456789ab is already in this iPXE tree: remove it from ipxe-patches/series.toml",
    );
    assert!(!project.path("roms/vmware").exists());
}

#[test]
fn a_series_entry_must_be_upstream_or_ours() {
    let project = Project::new(&[]);
    project.import();
    fs::write(
        project.path("ipxe-patches/series.toml"),
        "[[patch]]\ncommit = \"0123456789abcdef0123456789abcdef01234567\"\nreason = \"no url\"\n",
    )
    .unwrap();
    fails_with(
        &project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]),
        "patch 1 must be either upstream (commit, url, digest) or ours (file)",
    );
}

/// A fake upstream release: the tests' tree with core/main.c as given.
fn release(dir: &std::path::Path, name: &str, main_c: &str) -> std::path::PathBuf {
    let tree = dir.join(name);
    write_fake_tree(&tree);
    fs::write(tree.join("src/core/main.c"), main_c).unwrap();
    let archive = dir.join(format!("{name}.tar.gz"));
    write_tar_gz(&tree, name, &archive);
    archive
}

#[test]
fn pin_moves_to_another_release_only_when_the_series_fits() {
    let project = Project::new(&[]);
    project.import();
    let patch = upstream_patch("1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fix.patch");
    fs::write(&file, &patch).unwrap();
    series(&project, &dead_url(), &digest(&patch), None);
    ok(&project.xtask(&["fetch", "--patch", file.to_str().unwrap()]));
    ok(&project.xtask(&["check-size", "--update", "--runtime", "native"]));
    let pin_file = project.path("configs/ipxe.toml");
    let commit = "fedcba9876543210fedcba9876543210fedcba98";
    let pin = |archive: &std::path::Path, version: &str| {
        project.xtask(&[
            "pin",
            "--archive",
            archive.to_str().unwrap(),
            "--commit",
            commit,
            "--version",
            version,
            "--runtime",
            "native",
        ])
    };

    // The fix's context moved by one line: it applies at the new offset, and every profile is
    // rebuilt against its budget.
    let moved = release(
        dir.path(),
        "two",
        "/* two */\nint main ( void ) {\n\treturn 0;\n}\n",
    );
    let out = pin(&moved, "fake-2");
    ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("upstream-0123456789ab: applies at an offset (src/core/main.c hunk 1 -4)"),
        "{text}"
    );
    assert!(
        text.contains("vmware/vmxnet3: "),
        "sizes against the budget: {text}"
    );
    let written = xtask::source::pin::Pin::load(&pin_file).unwrap();
    assert_eq!(
        (written.version.as_str(), written.commit.as_str()),
        ("fake-2", commit)
    );
    let tree = dir.path().join("two");
    assert_eq!(
        written.tree_digest,
        xtask::source::digest::digest_dir(&tree).unwrap()
    );
    assert!(
        written.commit_time > 1_700_000_000,
        "the archive's entry time"
    );

    // A release that has the fix: reported, and the user is told to drop it.
    let has_it = release(dir.path(), "three", "int main ( void ) {\n\treturn 1;\n}\n");
    let out = pin(&has_it, "fake-3");
    ok(&out);
    assert!(stdout(&out).contains("upstream-0123456789ab: already in the tree"));
    assert!(stdout(&out).contains("remove upstream-0123456789ab from ipxe-patches/series.toml"));

    // A release where the fix no longer fits: nothing is written.
    let before = fs::read(&pin_file).unwrap();
    let changed = release(
        dir.path(),
        "four",
        "int main ( int argc ) {\n\treturn 0;\n}\n",
    );
    let out = pin(&changed, "fake-4");
    fails_with(&out, "the series does not apply to fake-4");
    assert!(
        stdout(&out).contains("upstream-0123456789ab: fails:"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(&pin_file).unwrap(), before, "the pin is unchanged");
}
