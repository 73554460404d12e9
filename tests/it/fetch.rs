//! The source stage end to end: download from a loopback server, digest, cache, offline import,
//! and every refusal leaving the cache as it was.

use std::{fs, path::Path};

use crate::support::*;

fn source_entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache.join("source"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn download_verifies_caches_and_then_stays_offline() {
    let project = Project::new(&[]);
    let server = HttpServer::serve(fs::read(&project.archive).unwrap());
    project.write_pin(&[dead_url(), server.url.clone()]);

    let first = project.xtask(&["fetch"]);
    ok(&first);
    assert!(
        stdout(&first).contains(&format!("downloaded from {}", server.url)),
        "{}",
        stdout(&first)
    );
    assert_eq!(server.hits(), 1);
    assert_eq!(source_entries(&project.cache()), [project.digest.hex()]);
    let tree = project.cache().join("source").join(project.digest.hex());
    assert!(tree.join("src/Makefile").is_file());

    let second = project.xtask(&["fetch"]);
    ok(&second);
    assert!(
        stdout(&second).contains("already cached"),
        "{}",
        stdout(&second)
    );
    assert_eq!(
        server.hits(),
        1,
        "a cached fetch must not touch the network"
    );
    ok(&project.xtask(&["fetch", "--offline"]));
}

#[test]
fn no_network_fails_fast_naming_the_url_and_the_offline_import() {
    let project = Project::new(&[]);
    let url = dead_url();
    project.write_pin(std::slice::from_ref(&url));
    let out = project.xtask(&["fetch"]);
    let err = fails_with(&out, "cannot download iPXE fake");
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("cargo xtask fetch --archive ipxe-0123456789ab.tar.gz"),
        "{err}"
    );
    assert!(err.contains("git -C ipxe archive --format=tar.gz"), "{err}");
    assert!(source_entries(&project.cache()).is_empty());
    fails_with(
        &project.xtask(&["fetch", "--offline"]),
        "is not in the cache",
    );
}

#[test]
fn import_accepts_git_archive_style_tar_and_tar_gz() {
    let project = Project::new(&[]);
    let tree = project.path("plain-tree");
    write_fake_tree(&tree);
    let plain_tar = project.path("plain.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .args(["--transform", "s,^\\.,ipxe,", "-cf"])
        .arg(&plain_tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", stderr(&st));
    ok(&project.xtask(&["fetch", "--archive", plain_tar.to_str().unwrap()]));
    assert_eq!(source_entries(&project.cache()), [project.digest.hex()]);
    ok(&project.xtask(&["fetch", "--archive", project.archive.to_str().unwrap()]));
}

#[test]
fn a_flipped_byte_is_refused_with_both_digests_and_nothing_cached() {
    let project = Project::new(&[]);
    let tree = project.path("tampered");
    write_fake_tree(&tree);
    let main_c = tree.join("src/core/main.c");
    let mut bytes = fs::read(&main_c).unwrap();
    bytes[0] ^= 0x01;
    fs::write(&main_c, bytes).unwrap();
    let bad = project.path("tampered.tar.gz");
    write_tar_gz(&tree, "ipxe", &bad);

    let err = fails_with(
        &project.xtask(&["fetch", "--archive", bad.to_str().unwrap()]),
        "its tree digest is",
    );
    assert!(
        err.contains(&project.digest.to_string()),
        "expected digest missing: {err}"
    );
    let got = xtask::source::digest::digest_dir(&tree).unwrap();
    assert!(
        err.contains(&got.to_string()),
        "actual digest missing: {err}"
    );
    assert!(
        source_entries(&project.cache()).is_empty(),
        "no entry, no leftovers"
    );
}

#[test]
fn truncated_and_foreign_files_are_refused() {
    let project = Project::new(&[]);
    let bytes = fs::read(&project.archive).unwrap();
    let cut = project.path("cut.tar.gz");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(
        &project.xtask(&["fetch", "--archive", cut.to_str().unwrap()]),
        "truncated or corrupt",
    );
    let text = project.path("README.txt");
    fs::write(&text, "not an archive at all").unwrap();
    fails_with(
        &project.xtask(&["fetch", "--archive", text.to_str().unwrap()]),
        "is not a tar or tar.gz archive",
    );
    fails_with(
        &project.xtask(&["fetch", "--archive", "/nonexistent.tar.gz"]),
        "no such file",
    );
    assert!(source_entries(&project.cache()).is_empty());
}

#[test]
fn concurrent_imports_wait_for_each_other_and_leave_one_entry() {
    let project = Project::new(&[]);
    let archive = project.archive.to_str().unwrap().to_string();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
            cmd.arg("--project")
                .arg(project.dir.path())
                .arg("--cache-dir")
                .arg(project.cache());
            cmd.args(["fetch", "--archive", &archive]).spawn().unwrap()
        })
        .collect();
    for mut child in runs {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(source_entries(&project.cache()), [project.digest.hex()]);
}

#[test]
fn a_malformed_pin_names_file_line_and_column() {
    let project = Project::new(&[]);
    let pin = project.path("configs/ipxe.toml");
    let text = fs::read_to_string(&pin).unwrap().replace("urls", "url");
    fs::write(&pin, text).unwrap();
    fails_with(
        &project.xtask(&["fetch"]),
        "ipxe.toml:5:1: unknown field `url`",
    );
}

/// A boot-fixtures lock of two made-up .debs, as configs/boot-fixtures.lock names them.
fn write_fixture_lock(project: &Project, kernel: &[u8], busybox: &[u8]) {
    let entry = |name: &str, pool: &str, bytes: &[u8]| {
        format!(
            "[[package]]\nname = \"{name}\"\nversion = \"1\"\narchitecture = \"amd64\"\n\
             sha256 = \"{}\"\nsize = {}\npool = \"{pool}\"\nurl = \"{}/{pool}\"\n\n",
            xtask::util::sha256_hex(bytes),
            bytes.len(),
            dead_url()
        )
    };
    let lock =
        format!(
        "snapshot = \"20260711T101637Z\"\nresolved_from = \"http://deb.debian.org/debian\"\n\n{}{}",
        entry("linux-image-6.1.0-0-cloud-amd64", "pool/main/l/k.deb", kernel),
        entry("busybox-static", "pool/main/b/b.deb", busybox)
    );
    fs::write(project.path("configs/boot-fixtures.lock"), lock).unwrap();
}

#[test]
fn boot_fixtures_come_by_sha256_from_the_mirror_or_a_directory() {
    let project = Project::new(&[]);
    let (kernel, busybox) = (b"a kernel".to_vec(), b"a busybox".to_vec());
    write_fixture_lock(&project, &kernel, &busybox);
    // A cache of its own for .debs: these made-up ones must not reach the machine's.
    let debs = project.cache().join("debs");
    fs::remove_file(&debs).unwrap();
    fs::create_dir(&debs).unwrap();

    // A mirror that serves the wrong bytes for one: nothing of it enters the cache.
    let mirror = HttpServer::serve_map(
        [
            ("/pool/main/l/k.deb".to_string(), b"tampered".to_vec()),
            ("/pool/main/b/b.deb".to_string(), busybox.clone()),
        ]
        .into(),
    );
    let out = project.xtask(&["fetch", "--boot-fixtures", "--deb-mirror", &mirror.url]);
    let err = fails_with(&out, "cannot fetch the boot fixtures");
    assert!(err.contains("is not the locked"), "{err}");
    assert!(err.contains("fetch --boot-fixtures --debs DIR"), "{err}");
    let kernel_sha = xtask::util::sha256_hex(&kernel);
    assert!(!debs.join(format!("{kernel_sha}.deb")).exists());

    // Offline: only the busybox .deb in the directory; the kernel is still named as missing.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("busybox.deb"), &busybox).unwrap();
    fs::write(dir.path().join("other.deb"), b"not locked").unwrap();
    let args = [
        "fetch",
        "--boot-fixtures",
        "--debs",
        dir.path().to_str().unwrap(),
    ];
    let err = fails_with(
        &project.xtask(&args),
        "linux-image-6.1.0-0-cloud-amd64 1 is not in the cache",
    );
    assert!(err.contains("cargo xtask fetch --boot-fixtures"), "{err}");
    fs::write(dir.path().join("kernel.deb"), &kernel).unwrap();
    let out = project.xtask(&args);
    ok(&out);
    assert!(
        stdout(&out).contains("imported 2 boot fixture(s)"),
        "{}",
        stdout(&out)
    );
    assert!(debs.join(format!("{kernel_sha}.deb")).is_file());
    assert!(!debs
        .join(format!("{}.deb", xtask::util::sha256_hex(b"not locked")))
        .exists());
}
