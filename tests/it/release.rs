//! `release` end to end on the tiny iPXE-shaped tree: every profile, checks, verify, budget,
//! provenance and a tarball that is itself reproducible.

use std::{fs, process::Command};

use crate::support::*;

fn release(project: &Project, dist: &str, runtime: &[&str]) -> std::process::Output {
    let dist = project.path(dist);
    let mut args = vec![
        "release",
        "--version",
        "1.2.3",
        "--dist",
        dist.to_str().unwrap(),
    ];
    args.extend_from_slice(runtime);
    project.xtask(&args)
}

#[test]
fn a_release_is_complete_checked_and_reproducible() {
    let project = Project::new(&[]);
    project.import();
    // A second profile, so "every profile" means something.
    let base = fs::read_to_string(project.path("configs/vmware.toml")).unwrap();
    fs::write(
        project.path("configs/vmware-big.toml"),
        base.replace(
            "VMWARE_SETTINGS\"]",
            "VMWARE_SETTINGS\"]\nset = { FAKE_ROM_BLOCKS = \"40\" }",
        ),
    )
    .unwrap();

    let first = release(&project, "dist-a", &["--runtime", "native"]);
    ok(&first);
    // Each profile was rebuilt from scratch and compared before anything was packed.
    let said = format!("{}{}", stdout(&first), stderr(&first));
    assert_eq!(
        said.matches("rebuilt to the published bytes").count(),
        2,
        "verify ran for both profiles:\n{said}"
    );
    assert_eq!(
        said.matches("rebuilding from scratch in").count(),
        2,
        "{said}"
    );
    let dir = project.path("dist-a/vsphere-ipxe-rom-1.2.3");
    let files = xtask::output::release::files_below(&dir).unwrap();
    for want in [
        "SHA256SUMS",
        "provenance.json",
        "vmware/15ad07b0.rom",
        "vmware/manifest.json",
        "vmware-big/808610d3.rom",
    ] {
        assert!(
            files.contains(&want.to_string()),
            "{want} missing from {files:?}"
        );
    }
    ok(&Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap());
    ok(&Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(project.path("dist-a"))
        .output()
        .unwrap());

    let prov: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(prov["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(prov["predicateType"], "https://slsa.dev/provenance/v1");
    let subjects = prov["subject"].as_array().unwrap();
    assert_eq!(subjects.len(), 6);
    let rom = fs::read(dir.join("vmware/15ad07b0.rom")).unwrap();
    let entry = subjects
        .iter()
        .find(|s| s["name"] == "vmware/15ad07b0.rom")
        .unwrap();
    assert_eq!(entry["digest"]["sha256"], xtask::util::sha256_hex(&rom));
    let deps = prov["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert!(deps.iter().any(|d| d["uri"] == "Dockerfile"), "{deps:?}");
    assert!(
        deps.iter().any(|d| d["uri"] == "configs/vmware-big.toml"),
        "{deps:?}"
    );
    assert_eq!(deps[0]["digest"]["gitCommit"], FAKE_COMMIT);

    // Another directory, another time: the same tarball, byte for byte.
    ok(&release(&project, "dist-b", &["--runtime", "native"]));
    let a = fs::read(project.path("dist-a/vsphere-ipxe-rom-1.2.3.tar.gz")).unwrap();
    let b = fs::read(project.path("dist-b/vsphere-ipxe-rom-1.2.3.tar.gz")).unwrap();
    assert_eq!(a, b, "the release tarball is not reproducible");
    let listing = Command::new("tar")
        .args(["-tvzf"])
        .arg(project.path("dist-a/vsphere-ipxe-rom-1.2.3.tar.gz"))
        .output()
        .unwrap();
    let listing = stdout(&listing);
    assert!(
        listing
            .lines()
            .all(|l| l.contains(" 0/0 ") && l.contains("2023-11-14")),
        "owners and mtimes are fixed:\n{listing}"
    );

    // Over budget: nothing is published.
    fs::create_dir_all(project.path("roms")).unwrap();
    fs::write(
        project.path("roms/budget.toml"),
        "[vmware-big.vmxnet3]\nsize = 16384\nallowed_growth = 0\n",
    )
    .unwrap();
    let err = fails_with(
        &release(&project, "dist-c", &["--runtime", "native"]),
        "over its size budget; nothing was published",
    );
    assert!(
        err.contains("vmware-big/vmxnet3: 20480 bytes grew 4096 past the budgeted 16384"),
        "{err}"
    );
    assert!(!project.path("dist-c/vsphere-ipxe-rom-1.2.3").exists());
    fails_with(
        &project.xtask(&["release", "--version", "../evil"]),
        "must be letters, digits",
    );
}

#[test]
fn a_release_in_docker_matches_native() {
    let Some(base) = base_image() else { return };
    let project = Project::new(&[]);
    project.import();
    ok(&release(&project, "native", &["--runtime", "native"]));
    ok(&release(
        &project,
        "docker",
        &["--runtime", "docker", "--base-image", &base],
    ));
    let sums = |d: &str| {
        fs::read_to_string(project.path(&format!("{d}/vsphere-ipxe-rom-1.2.3/vmware/SHA256SUMS")))
            .unwrap()
    };
    assert_eq!(sums("native"), sums("docker"));
}
