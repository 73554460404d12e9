//! Fast rebuilds that stay exact: the output cache, incremental build trees, and `verify`.

use std::fs;

use crate::support::*;
use xtask::source::digest::digest_dir;

fn build(project: &Project) -> std::process::Output {
    project.xtask(&["build-rom", "--nic", "all", "--runtime", "native"])
}

#[test]
fn unchanged_inputs_are_served_from_the_output_cache() {
    let project = Project::new(&[]);
    project.import();
    let first = build(&project);
    ok(&first);
    assert!(!stdout(&first).contains("from the output cache"));
    let sums = read_sums(&project.path("roms/vmware"));

    // With the build trees gone, only the output cache can answer: no make runs.
    fs::remove_dir_all(project.cache().join("build")).unwrap();
    let second = build(&project);
    ok(&second);
    assert!(
        stdout(&second).contains("from the output cache"),
        "{}",
        stdout(&second)
    );
    assert!(
        !project.cache().join("build").exists()
            || fs::read_dir(project.cache().join("build")).unwrap().count() == 0
    );
    assert_eq!(read_sums(&project.path("roms/vmware")), sums);

    // Anything that decides the bytes misses the cache: here an embedded script.
    fs::write(project.path("configs/boot.ipxe"), "#!ipxe\necho hi\n").unwrap();
    let profile = project.path("configs/vmware.toml");
    let text = fs::read_to_string(&profile).unwrap();
    fs::write(&profile, format!("embed = \"boot.ipxe\"\n{text}")).unwrap();
    let third = build(&project);
    ok(&third);
    assert!(!stdout(&third).contains("from the output cache"));
    assert_ne!(read_sums(&project.path("roms/vmware")), sums);
}

#[test]
fn a_config_change_rebuilds_in_place_to_the_bytes_of_a_clean_build() {
    let project = Project::new(&[]);
    project.import();
    ok(&build(&project));
    let before = read_sums(&project.path("roms/vmware"));
    let profile = project.path("configs/vmware.toml");
    let text = fs::read_to_string(&profile)
        .unwrap()
        .replace("\"PXE_MENU\",", "");
    fs::write(&profile, text).unwrap();
    ok(&build(&project));
    assert_ne!(
        read_sums(&project.path("roms/vmware")),
        before,
        "the change reached the ROMs"
    );

    let source = project.cache().join("source").join(project.digest.hex());
    let verify = project.xtask(&["verify", "--runtime", "native"]);
    ok(&verify);
    let text = stdout(&verify);
    assert!(
        text.contains("15ad07b0.rom: match")
            && text.contains("all 3 ROM(s) rebuilt to the published bytes"),
        "{text}"
    );
    assert_eq!(
        digest_dir(&source).unwrap(),
        project.digest,
        "verify must not write into the cached source"
    );
}

#[test]
fn verify_names_the_first_differing_offset() {
    let project = Project::new(&[]);
    project.import();
    ok(&build(&project));
    // Stand in for a published release whose e1000 ROM differs at one byte.
    let published = project.path("published");
    fs::create_dir(&published).unwrap();
    let mut names = Vec::new();
    for entry in fs::read_dir(project.path("roms/vmware")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".rom") {
            let mut bytes = fs::read(&path).unwrap();
            if name == "8086100f.rom" {
                bytes[0x123] ^= 0x40;
            }
            fs::write(published.join(&name), &bytes).unwrap();
            names.push(name);
        }
    }
    let sums = std::process::Command::new("sha256sum")
        .args(&names)
        .current_dir(&published)
        .output()
        .unwrap();
    fs::write(published.join("SHA256SUMS"), &sums.stdout).unwrap();

    let against = published.join("SHA256SUMS");
    let out = project.xtask(&[
        "verify",
        "--runtime",
        "native",
        "--against",
        against.to_str().unwrap(),
    ]);
    let err = fails_with(&out, "1 of 3 ROM(s) did not rebuild to the published bytes");
    let text = stdout(&out);
    assert!(text.contains("15ad07b0.rom: match"), "{text}");
    assert!(
        text.contains("8086100f.rom: MISMATCH")
            && text.contains("first difference at offset 0x123 (291)"),
        "{text}\n{err}"
    );

    fs::write(published.join("SHA256SUMS"), "not a sums file\n").unwrap();
    fails_with(
        &project.xtask(&["verify", "--against", against.to_str().unwrap()]),
        "is not a SHA256SUMS file",
    );
    fails_with(
        &project.xtask(&["verify", "--against", "/nonexistent/SHA256SUMS"]),
        "or pass --against FILE",
    );
}

#[test]
fn a_changed_trusted_root_is_rebuilt_in_place_like_a_clean_build() {
    let project = Project::new(&[]);
    project.import();
    let profile = project.path("configs/vmware.toml");
    let text = fs::read_to_string(&profile).unwrap();
    fs::write(&profile, format!("trust = [\"root.pem\"]\n{text}")).unwrap();
    fs::write(
        project.path("configs/root.pem"),
        "-----BEGIN CERTIFICATE-----\nfirst root\n",
    )
    .unwrap();
    ok(&build(&project));
    let first = read_sums(&project.path("roms/vmware"));
    // Same file name, other content: upstream's Makefile would not notice; the tool must.
    fs::write(
        project.path("configs/root.pem"),
        "-----BEGIN CERTIFICATE-----\nsecond root\n",
    )
    .unwrap();
    ok(&build(&project));
    assert_ne!(
        read_sums(&project.path("roms/vmware")),
        first,
        "the new root did not reach the ROM"
    );
    let rom = fs::read(project.path("roms/vmware/15ad07b0.rom")).unwrap();
    assert!(String::from_utf8_lossy(&rom).contains("second root"));
    ok(&project.xtask(&["verify", "--runtime", "native"]));
}
