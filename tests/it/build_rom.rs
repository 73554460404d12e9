//! build-rom end to end on the tiny iPXE-shaped tree: real make, real profile rendering, real
//! patches, real ROM checks and outputs, and a real Docker build.

use std::{fs, process::Command};

use crate::support::*;
use xtask::{check::romcheck, record::Manifest};

fn build(project: &Project, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["build-rom", "--runtime", "native"];
    args.extend_from_slice(extra);
    project.xtask(&args)
}

/// `build-rom --runtime docker` for `nic` on `base`, into `project/out`.
fn build_in_docker(project: &Project, nic: &str, base: &str, out: &str) -> std::process::Output {
    project.xtask(&docker_build_args(nic, base, &project.path(out)))
}

#[test]
fn builds_checks_and_emits_every_nic() {
    let project = Project::new(&[]);
    project.import();
    let out = project.path("roms/vmware");
    let run = build(&project, &["--nic", "all"]);
    ok(&run);
    assert!(
        stderr(&run).contains("match only builds made with the same compiler"),
        "{}",
        stderr(&run)
    );

    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "15ad07b0.rom",
            "8086100f.rom",
            "808610d3.rom",
            "SHA256SUMS",
            "manifest.json"
        ]
    );
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&out)
        .output()
        .unwrap();
    ok(&check);

    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    assert_eq!(manifest.source.commit, FAKE_COMMIT);
    assert_eq!(manifest.source.tree_digest, project.digest.to_string());
    assert_eq!(manifest.source.source_date_epoch, 1700000000);
    assert_eq!(manifest.profile.name, "vmware");
    assert_eq!(manifest.runtime.kind, "native");
    assert!(
        manifest.toolchain["gcc"].contains("gcc"),
        "{:?}",
        manifest.toolchain
    );
    let vmx = &manifest.roms["15ad07b0.rom"];
    assert_eq!(
        (vmx.nic.as_str(), vmx.size, vmx.limit, vmx.headroom),
        ("vmxnet3", 16384, 65536, 49152)
    );

    let bytes = fs::read(out.join("8086100f.rom")).unwrap();
    let nic = xtask::nic::Nic::by_name("e1000").unwrap();
    assert!(romcheck::check(&bytes, nic, 65536).ok());
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("#define VMWARE_SETTINGS"),
        "the rendered profile is compiled in"
    );
    assert!(text.contains(FAKE_COMMIT), "GITVERSION reaches the build");
    assert!(
        !text.contains(project.dir.path().to_str().unwrap()),
        "the build path leaks into the ROM"
    );
}

#[test]
fn same_inputs_same_bytes_across_caches_and_paths() {
    let a = Project::new(&[]);
    let b = Project::new(&[]);
    a.import();
    b.import();
    ok(&build(&a, &["--nic", "vmxnet3,e1000e"]));
    ok(&build(&b, &["--nic", "vmxnet3,e1000e"]));
    assert_eq!(
        read_sums(&a.path("roms/vmware")),
        read_sums(&b.path("roms/vmware"))
    );
    // The manifests agree too, byte for byte.
    assert_eq!(
        fs::read(a.path("roms/vmware/manifest.json")).unwrap(),
        fs::read(b.path("roms/vmware/manifest.json")).unwrap()
    );
}

#[test]
fn fetches_on_demand_from_the_pinned_url() {
    let project = Project::new(&[]);
    let server = HttpServer::serve(fs::read(&project.archive).unwrap());
    project.write_pin(std::slice::from_ref(&server.url));
    ok(&build(&project, &["--nic", "vmxnet3"]));
    assert_eq!(server.hits(), 1);
}

#[test]
fn an_oversized_rom_is_refused_and_previous_outputs_survive() {
    let project = Project::new(&[]);
    project.import();
    ok(&build(&project, &["--nic", "vmxnet3"]));
    let out = project.path("roms/vmware");
    let before = read_sums(&out);

    let profile = project.path("configs/vmware.toml");
    let text = fs::read_to_string(&profile).unwrap().replace(
        "define = [\"VMWARE_SETTINGS\"]",
        "define = [\"VMWARE_SETTINGS\"]\nset = { FAKE_ROM_BLOCKS = \"140\" }",
    );
    fs::write(&profile, text).unwrap();
    let err = fails_with(
        &build(&project, &["--nic", "vmxnet3"]),
        "failed their checks; nothing was written",
    );
    assert!(
        err.contains("71680 bytes is over the 65536-byte limit for vmxnet3 by 6144 bytes"),
        "{err}"
    );
    assert_eq!(read_sums(&out), before);
    assert!(
        fs::read_dir(project.path("roms")).unwrap().count() == 1,
        "no staging leftovers"
    );

    // A profile may raise a NIC's limit where VMware allows it: not for vmxnet3.
    let text = fs::read_to_string(&profile).unwrap();
    fs::write(&profile, format!("{text}\n[limits]\nvmxnet3 = 262144\n")).unwrap();
    fails_with(
        &build(&project, &["--nic", "vmxnet3"]),
        "VMware refuses a vmxnet3 ROM over 65536 bytes whatever opromsize says",
    );
    assert_eq!(read_sums(&out), before);
    fs::write(&profile, format!("{text}\n[limits]\ne1000 = 262144\n")).unwrap();
    ok(&build(&project, &["--nic", "e1000"]));
    assert_ne!(read_sums(&out), before);
}

#[test]
fn patches_apply_in_order_or_stop_the_build_naming_file_and_hunk() {
    let project = Project::new(&[]);
    project.import();
    let patch = "--- a/src/core/main.c\n+++ b/src/core/main.c\n@@ -1,3 +1,4 @@\n int main ( void ) {\n+\t/* patched by vsphere-ipxe-rom */\n \treturn 0;\n }\n";
    fs::write(project.path("ipxe-patches/0001-mark.patch"), patch).unwrap();
    let profile = project.path("configs/vmware.toml");
    let original = fs::read_to_string(&profile).unwrap();
    fs::write(
        &profile,
        format!("patches = [\"0001-mark.patch\"]\n{original}"),
    )
    .unwrap();
    ok(&build(&project, &["--nic", "vmxnet3"]));
    let rom = fs::read(project.path("roms/vmware/15ad07b0.rom")).unwrap();
    assert!(String::from_utf8_lossy(&rom).contains("patched by vsphere-ipxe-rom"));
    let manifest = Manifest::load(&project.path("roms/vmware/manifest.json")).unwrap();
    assert_eq!(manifest.patches[0].name, "0001-mark.patch");

    // The second patch edits the line the first adds: in order it applies, out of order not.
    let after = "--- a/src/core/main.c\n+++ b/src/core/main.c\n@@ -1,4 +1,4 @@\n int main ( void ) {\n-\t/* patched by vsphere-ipxe-rom */\n+\t/* patched twice, in order */\n \treturn 0;\n }\n";
    fs::write(project.path("ipxe-patches/0002-after-mark.patch"), after).unwrap();
    let listed =
        |list: &str| fs::write(&profile, format!("patches = [{list}]\n{original}")).unwrap();
    listed("\"0001-mark.patch\", \"0002-after-mark.patch\"");
    ok(&build(&project, &["--nic", "vmxnet3"]));
    let rom = fs::read(project.path("roms/vmware/15ad07b0.rom")).unwrap();
    assert!(String::from_utf8_lossy(&rom).contains("patched twice, in order"));
    let in_order = read_sums(&project.path("roms/vmware"));
    listed("\"0002-after-mark.patch\", \"0001-mark.patch\"");
    let err = fails_with(
        &build(&project, &["--nic", "vmxnet3"]),
        "patch 0002-after-mark.patch does not apply",
    );
    assert!(
        err.contains(
            "src/core/main.c hunk 1 (@@ -1,4 +1,4 @@): its lines 1..4 are not in the file"
        ),
        "{err}"
    );
    assert_eq!(
        read_sums(&project.path("roms/vmware")),
        in_order,
        "outputs unchanged"
    );

    let bad = "--- a/src/core/main.c\n+++ b/src/core/main.c\n@@ -1,3 +1,3 @@\n int main ( int argc ) {\n-\treturn 0;\n+\treturn 1;\n }\n";
    fs::write(project.path("ipxe-patches/0002-bad.patch"), bad).unwrap();
    fs::write(
        &profile,
        format!("patches = [\"0001-mark.patch\", \"0002-bad.patch\"]\n{original}"),
    )
    .unwrap();
    let before = read_sums(&project.path("roms/vmware"));
    let err = fails_with(
        &build(&project, &["--nic", "vmxnet3"]),
        "patch 0002-bad.patch does not apply",
    );
    assert!(
        err.contains("src/core/main.c hunk 1 (@@ -1,3 +1,3 @@): line 1 should be"),
        "{err}"
    );
    assert_eq!(read_sums(&project.path("roms/vmware")), before);

    fs::write(
        &profile,
        format!("patches = [\"0003-missing.patch\"]\n{original}"),
    )
    .unwrap();
    let before = read_sums(&project.path("roms/vmware"));
    fails_with(
        &build(&project, &["--nic", "vmxnet3"]),
        "it lists patch ipxe-patches/0003-missing.patch, which does not exist",
    );
    assert_eq!(
        read_sums(&project.path("roms/vmware")),
        before,
        "outputs unchanged"
    );
}

#[test]
fn embedded_scripts_change_the_bytes_and_the_manifest() {
    let project = Project::new(&[]);
    project.import();
    ok(&build(&project, &["--nic", "vmxnet3"]));
    let plain = read_sums(&project.path("roms/vmware"));
    fs::write(
        project.path("configs/boot.ipxe"),
        "#!ipxe\nset net0/ip 10.0.2.15\nchain http://10.0.2.2/boot.ipxe\n",
    )
    .unwrap();
    let profile = project.path("configs/vmware.toml");
    let text = fs::read_to_string(&profile).unwrap();
    fs::write(&profile, format!("embed = \"boot.ipxe\"\n{text}")).unwrap();
    ok(&build(&project, &["--nic", "vmxnet3"]));
    assert_ne!(read_sums(&project.path("roms/vmware")), plain);
    let rom = fs::read(project.path("roms/vmware/15ad07b0.rom")).unwrap();
    assert!(String::from_utf8_lossy(&rom).contains("chain http://10.0.2.2/boot.ipxe"));
    let manifest = Manifest::load(&project.path("roms/vmware/manifest.json")).unwrap();
    assert_eq!(manifest.profile.inputs[0].name, "boot.ipxe");
}

#[test]
fn bad_input_is_named_and_writes_nothing() {
    let project = Project::new(&[]);
    project.import();
    fails_with(
        &build(&project, &["--nic", "vmxnet4"]),
        "unknown NIC 'vmxnet4': expected one of vmxnet3, e1000, e1000e, vlance, or all",
    );
    fails_with(
        &build(&project, &["--nic", "vmxnet3", "--profile", "nope"]),
        "no profile 'nope'",
    );
    fails_with(
        &build(&project, &["--nic", "vmxnet3", "--profile", "ipxe"]),
        "is the source pin, not a profile",
    );
    fs::write(
        project.path("configs/typo.toml"),
        "description = \"x\"\n[headers.general]\ndefnes = [\"X\"]\n",
    )
    .unwrap();
    fails_with(
        &build(&project, &["--nic", "vmxnet3", "--profile", "typo"]),
        "typo.toml:3:1: unknown field `defnes`",
    );
    fs::write(
        project.path("configs/typo.toml"),
        "description = \"x\"\n[headers.genral]\nundef = [\"X\"]\n",
    )
    .unwrap();
    fails_with(
        &build(&project, &["--nic", "vmxnet3", "--profile", "typo"]),
        "iPXE has no config/genral.h",
    );
    fs::create_dir_all(project.path("mine")).unwrap();
    fs::write(project.path("mine/notes.txt"), "keep").unwrap();
    fails_with(
        &build(
            &project,
            &[
                "--nic",
                "vmxnet3",
                "--out",
                project.path("mine").to_str().unwrap(),
            ],
        ),
        "holds files this tool did not write: notes.txt (not a ROM this tool builds)",
    );
    assert!(!project.path("roms").exists(), "nothing was written");
}

#[test]
fn docker_build_matches_native_bytes() {
    let Some(base) = base_image() else { return };
    let project = Project::new(&[]);
    project.import();
    ok(&build(
        &project,
        &[
            "--nic",
            "all",
            "--out",
            project.path("native").to_str().unwrap(),
        ],
    ));
    // A docker shim records every call, then hands it to the real client.
    let shim = Shim::new("docker");
    let out = project.path("docker");
    let run = project
        .command()
        .args(docker_build_args("all", &base, &out))
        .env("PATH", shim.path_env())
        .output()
        .unwrap();
    ok(&run);
    assert_eq!(
        read_sums(&project.path("docker")),
        read_sums(&project.path("native"))
    );
    // The make container runs as the invoking user, with no network and no capabilities:
    // read from the call itself, since a root invoker's files are uid 0 either way.
    let id = |flag: &str| {
        stdout(&Command::new("id").arg(flag).output().unwrap())
            .trim()
            .to_string()
    };
    let calls = shim.calls();
    let make = calls
        .lines()
        .find(|l| l.starts_with("run ") && l.contains(" make "))
        .unwrap_or_else(|| panic!("no make container among:\n{calls}"));
    for want in [
        format!("--user={}:{}", id("-u"), id("-g")),
        "--network=none".into(),
        "--cap-drop=ALL".into(),
        "--read-only".into(),
    ] {
        assert!(
            make.contains(&format!(" {want} ")),
            "{want} missing from: {make}"
        );
    }
    let manifest = Manifest::load(&project.path("docker/manifest.json")).unwrap();
    assert_eq!(manifest.runtime.kind, "docker");
    assert!(manifest
        .runtime
        .image
        .as_deref()
        .unwrap_or("")
        .starts_with("sha256:"));
    assert!(
        manifest.toolchain["gcc"].contains("12.2.0"),
        "{:?}",
        manifest.toolchain
    );
    // The image's toolchain versions are asked once and kept under its (content) id.
    let id = manifest
        .runtime
        .image
        .as_deref()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let facts = project
        .cache()
        .join("images")
        .join(format!("{id}.toolchain.json"));
    assert!(
        fs::read_to_string(&facts).unwrap().contains("12.2.0"),
        "{}",
        facts.display()
    );
    // The container ran as the invoking user: what it wrote is the user's.
    use std::os::unix::fs::MetadataExt;
    let me: u32 = stdout(&Command::new("id").arg("-u").output().unwrap())
        .trim()
        .parse()
        .unwrap();
    let mut checked = 0;
    for tree in fs::read_dir(project.cache().join("build")).unwrap() {
        let rom = tree.unwrap().path().join("src/bin/15ad07b0.rom");
        if rom.exists() {
            assert_eq!(fs::metadata(&rom).unwrap().uid(), me, "{}", rom.display());
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "a native and a Docker build tree");
}

#[test]
fn the_linked_image_must_keep_the_profiles_promises() {
    let project = Project::new(&[]);
    project.import();
    let profile = project.path("configs/vmware.toml");
    let original = fs::read_to_string(&profile).unwrap();

    // An explicit [audit] promise: HTTPS stays out, even if someone drops the undef.
    fs::write(&profile, original.replace("\"DOWNLOAD_PROTO_HTTPS\",", "")).unwrap();
    let err = fails_with(
        &build(&project, &["--nic", "vmxnet3"]),
        "does not keep profile",
    );
    assert!(
        err.contains("obj_https is linked although [audit] absent"),
        "{err}"
    );

    // A promise derived from the tree: an undef must keep its object out, whatever a patch does.
    let patch = "--- a/src/core/objs.c\n+++ b/src/core/objs.c\n@@ -3,6 +3,7 @@\n #include <config/general.h>\n #include <config/settings.h>\n \n+void obj_tftp ( void ) {}\n #define OBJ( name ) void obj_ ## name ( void ) {}\n \n OBJ ( ipv4 ) OBJ ( dns ) OBJ ( http ) OBJ ( script ) OBJ ( autoboot_cmd ) OBJ ( ifmgmt_cmd )\n";
    fs::write(project.path("ipxe-patches/0001-tftp.patch"), patch).unwrap();
    fs::write(
        &profile,
        format!("patches = [\"0001-tftp.patch\"]\n{original}"),
    )
    .unwrap();
    let err = fails_with(
        &build(&project, &["--nic", "vmxnet3"]),
        "does not keep profile",
    );
    assert!(
        err.contains("obj_tftp is linked although [headers.general] undefines DOWNLOAD_PROTO_TFTP"),
        "{err}"
    );
    assert!(!project.path("roms").exists(), "nothing was written");
}

#[test]
fn sizes_and_the_size_budget() {
    let project = Project::new(&[]);
    project.import();
    fails_with(
        &project.xtask(&["check-size", "--runtime", "native"]),
        "has no budgets: run cargo xtask check-size --update",
    );
    let update = project.xtask(&["check-size", "--update", "--runtime", "native"]);
    ok(&update);
    assert!(
        stdout(&update).contains("vmware/vmxnet3: recorded 16384 bytes"),
        "{}",
        stdout(&update)
    );
    let budget = fs::read_to_string(project.path("roms/budget.toml")).unwrap();
    assert!(
        budget.contains("[vmware.vmxnet3]\nsize = 16384\nallowed_growth = 512\n"),
        "{budget}"
    );
    assert!(budget.contains("[vmware.vmxnet3.objects]\n"), "{budget}");
    ok(&project.xtask(&["check-size", "--runtime", "native"]));

    // Grow the ROM by 1 KiB: the check fails, names the growth, and --update accepts it.
    let profile = project.path("configs/vmware.toml");
    let text = fs::read_to_string(&profile).unwrap()
        + "\n[headers.general.set]\nFAKE_ROM_BLOCKS = \"34\"\n";
    fs::write(&profile, text).unwrap();
    let out = project.xtask(&["check-size", "--runtime", "native"]);
    let err = fails_with(&out, "size budget(s) exceeded");
    assert!(err.contains("vmware/vmxnet3: 17408 bytes grew 1024 past the budgeted 16384 (allowed growth 512); grew most: general +"), "{err}");
    ok(&project.xtask(&["check-size", "--update", "--runtime", "native"]));
    ok(&project.xtask(&["check-size", "--runtime", "native"]));

    let sizes = project.xtask(&["sizes", "--nic", "vmxnet3", "--runtime", "native"]);
    ok(&sizes);
    let text = stdout(&sizes);
    assert!(
        text.contains("15ad07b0.rom (vmxnet3): 17408 bytes in the ROM"),
        "{text}"
    );
    let objs = text.find("  objs ").unwrap();
    let main = text.find("  main ").unwrap();
    assert!(objs < main, "largest first:\n{text}");
    assert!(
        text.contains("  core "),
        "grouped by source directory:\n{text}"
    );
}

#[test]
fn auto_falls_back_to_native_when_the_image_cannot_be_built_and_docker_does_not() {
    let docker = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    if !docker.is_ok_and(|o| o.status.success()) {
        skip("Docker does not answer; the runtime fallback test needs an engine that answers");
        return;
    }
    let project = Project::new(&[]);
    project.import();
    let missing = "vsphere-ipxe-rom-test-missing:none";
    let auto = project.xtask(&[
        "build-rom",
        "--nic",
        "vmxnet3",
        "--runtime",
        "auto",
        "--base-image",
        missing,
    ]);
    ok(&auto);
    let err = stderr(&auto);
    assert!(
        err.contains("cannot build the builder image") && err.contains("building natively instead"),
        "{err}"
    );
    assert!(
        stdout(&auto).contains("(native runtime"),
        "{}",
        stdout(&auto)
    );
    let strict = build_in_docker(&project, "vmxnet3", missing, "strict");
    fails_with(&strict, "cannot build the builder image");
    assert!(!project.path("strict").exists());
}

/// On fuse-overlayfs storage the build reads its toolchain from a volume copied from the image;
/// a copy that was cut short (no mark, not recorded) is thrown away and made again.
#[test]
fn a_cut_short_toolchain_volume_is_filled_again() {
    let Some(base) = base_image() else { return };
    let project = Project::new(&[]);
    project.import();
    // An image of its own, so no other test's build shares the volume this one breaks.
    let mut dockerfile = fs::read_to_string(project.path("Dockerfile")).unwrap();
    dockerfile.push_str("LABEL vsphere-ipxe-rom.test=\"toolchain volume\"\n");
    fs::write(project.path("Dockerfile"), dockerfile).unwrap();
    // The volume path runs on every storage driver when forced, as here.
    let docker_build = |out: &str| {
        let out = project.path(out);
        project
            .command()
            .args([
                "build-rom",
                "--nic",
                "vmxnet3",
                "--runtime",
                "docker",
                "--base-image",
                &base,
            ])
            .arg("--out")
            .arg(out)
            .env("VSPHERE_IPXE_ROM_USR_VOLUME", "1")
            .output()
            .unwrap()
    };
    let first = docker_build("first");
    ok(&first);
    let id = Manifest::load(&project.path("first/manifest.json"))
        .unwrap()
        .runtime
        .image
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let volume = format!("vsphere-ipxe-rom-usr-{}", &id[..16]);
    let _cleanup = RemoveOnDrop(vec![
        vec!["volume".into(), "rm".into(), volume.clone()],
        vec!["rmi".into(), id.clone()],
    ]);
    assert!(
        stderr(&first).contains(&format!("into volume {volume}")),
        "{}",
        stderr(&first)
    );
    let label = "{{index .Labels \"vsphere-ipxe-rom.usr-of\"}}";
    assert_eq!(
        docker(&["volume", "inspect", "--format", label, &volume]),
        id
    );

    // Cut short: a volume holding something, but not the toolchain and no mark.
    fs::remove_file(project.cache().join(format!("images/{id}.usr-volume"))).unwrap();
    fs::remove_dir_all(project.cache().join("outputs")).unwrap();
    docker(&["volume", "rm", &volume]);
    docker(&["volume", "create", &volume]);
    let partial = format!("type=volume,src={volume},dst=/v");
    docker(&[
        "run",
        "--rm",
        "--mount",
        &partial,
        &base,
        "touch",
        "/v/partial",
    ]);

    let again = docker_build("again");
    ok(&again);
    assert!(
        stderr(&again).contains(&format!("into volume {volume}")),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        read_sums(&project.path("again")),
        read_sums(&project.path("first"))
    );
}

/// Docker commands that undo a test's volume and image, passed or failed.
struct RemoveOnDrop(Vec<Vec<String>>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for args in &self.0 {
            let _ = Command::new("docker").args(args).output();
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}:\n{}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn building_one_nic_keeps_the_others_built_from_the_same_inputs() {
    let project = Project::new(&[]);
    project.import();
    let build = |nic: &str| project.xtask(&["build-rom", "--nic", nic, "--runtime", "native"]);
    ok(&build("all"));
    let out = project.path("roms/vmware");
    let all = read_sums(&out);
    assert_eq!(all.lines().count(), 3);

    let one = build("vmxnet3");
    ok(&one);
    assert!(
        stdout(&one).contains("kept 8086100f.rom, 808610d3.rom from the same inputs"),
        "{}",
        stdout(&one)
    );
    assert_eq!(read_sums(&out), all, "SHA256SUMS stays whole");
    assert!(out.join("8086100f.rom").is_file());

    // A fresh clone has the tracked records but not the ROM files: the records stay.
    fs::remove_file(out.join("8086100f.rom")).unwrap();
    let one = build("vmxnet3");
    ok(&one);
    assert!(
        stdout(&one).contains("(8086100f.rom listed, not here: build them with --nic all)"),
        "{}",
        stdout(&one)
    );
    assert_eq!(read_sums(&out), all);
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    assert_eq!(manifest.roms.len(), 3);

    // Other inputs: the others go, and the output says so.
    let profile = project.path("configs/vmware.toml");
    let text = fs::read_to_string(&profile).unwrap();
    let serial = "[headers.console]\ndefine = [\"CONSOLE_SERIAL\"]\n";
    let changed = match text.contains("[headers.console]\n") {
        true => text.replacen("[headers.console]\n", serial, 1),
        false => format!("{text}\n{serial}"),
    };
    fs::write(&profile, changed).unwrap();
    let one = build("vmxnet3");
    ok(&one);
    assert!(
        stdout(&one).contains("8086100f.rom, 808610d3.rom (2) are no longer listed, since they were built from other inputs"),
        "{}",
        stdout(&one)
    );
    assert_eq!(read_sums(&out).lines().count(), 1);
}

/// A fresh clone's first build: the ROMs are the bytes the tracked record lists, but the record
/// came from another runtime. The record stays byte for byte (git shows only the new ROM), until
/// `--record` asks for it to be rewritten.
#[test]
fn a_build_of_the_recorded_bytes_keeps_the_tracked_record() {
    let project = Project::new(&[]);
    project.import();
    let build = |args: &[&str]| {
        let mut all = vec!["build-rom", "--runtime", "native"];
        all.extend_from_slice(args);
        project.xtask(&all)
    };
    ok(&build(&["--nic", "all"]));
    let out = project.path("roms/vmware");
    // As a container build recorded it, and as a clone has it: records, no ROM files.
    let manifest = out.join("manifest.json");
    let text = fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"native\"", "\"docker\"");
    fs::write(&manifest, &text).unwrap();
    for rom in ["15ad07b0.rom", "8086100f.rom", "808610d3.rom"] {
        fs::remove_file(out.join(rom)).unwrap();
    }
    let sums = read_sums(&out);

    let first = build(&["--nic", "vmxnet3"]);
    ok(&first);
    assert!(
        stdout(&first).contains("its record is kept as it stands"),
        "{}",
        stdout(&first)
    );
    assert_eq!(
        fs::read_to_string(&manifest).unwrap(),
        text,
        "manifest.json unchanged"
    );
    assert_eq!(
        read_sums(&out),
        sums,
        "SHA256SUMS unchanged, every NIC still listed"
    );
    assert!(out.join("15ad07b0.rom").is_file());

    ok(&build(&["--nic", "vmxnet3", "--record"]));
    assert_ne!(
        fs::read_to_string(&manifest).unwrap(),
        text,
        "--record rewrites it"
    );
    assert_eq!(read_sums(&out).lines().count(), 1, "from this build alone");
}
