//! `vmx` output against expected files in tests/vmx/, per NIC and format.
//! `UPDATE_EXPECT=1 cargo test --test vmx` rewrites them; review the diff.

mod support;

use std::{fs, process::Command};

use support::*;

fn vmx(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("vmx")
        .args(args)
        .output()
        .unwrap()
}

const NETWORK: &[&str] = &[
    "--ip",
    "10.0.0.11/24",
    "--gateway",
    "10.0.0.1",
    "--dns",
    "10.0.0.200",
    "--chain",
    "http://boot.example/boot.ipxe",
];

#[test]
fn every_nic_and_format_matches_its_expected_file() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut stale = Vec::new();
    for (nic, file) in [
        ("vmxnet3", "15ad07b0.rom"),
        ("e1000", "8086100f.rom"),
        ("e1000e", "808610d3.rom"),
        ("vlance", "10222000.rom"),
    ] {
        for format in ["terraform", "vmx", "govc", "json"] {
            let rom_path = format!("/vmfs/volumes/datastore1/ipxe/{file}");
            let mut args = vec![
                "--nic",
                nic,
                "--rom-path",
                &rom_path,
                "--format",
                format,
                "--vm",
                "pxe-test-01",
            ];
            args.extend_from_slice(NETWORK);
            let out = vmx(&args);
            ok(&out);
            let path = repo().join(format!("tests/vmx/{nic}.{format}"));
            if update {
                fs::write(&path, &out.stdout).unwrap();
            } else if fs::read(&path).ok().as_deref() != Some(out.stdout.as_slice()) {
                stale.push(format!("{}:\n{}", path.display(), stdout(&out)));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "output differs from (run UPDATE_EXPECT=1 cargo test --test vmx):\n{}",
        stale.join("\n")
    );
}

#[test]
fn terraform_keeps_ipxes_own_variables_literal() {
    let mut args = vec![
        "--nic",
        "vmxnet3",
        "--rom-path",
        "/vmfs/volumes/ds/15ad07b0.rom",
        "--scriptlet",
        "echo ${net0/ip} && chain ${filename}",
    ];
    args.extend_from_slice(NETWORK);
    let out = vmx(&args);
    ok(&out);
    assert!(
        stdout(&out).contains("\"echo $${net0/ip} && chain $${filename}\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_rom_file_is_checked_against_the_nic() {
    let project = Project::new(&[]);
    project.import();
    ok(&project.xtask(&["build-rom", "--nic", "e1000", "--runtime", "native"]));
    let rom = project.path("roms/vmware/8086100f.rom");
    let rom = rom.to_str().unwrap();
    let mut args = vec![
        "--nic",
        "vmxnet3",
        "--rom-path",
        "/vmfs/volumes/ds/x.rom",
        "--rom",
        rom,
    ];
    args.extend_from_slice(NETWORK);
    fails_with(
        &vmx(&args),
        "is a ROM for PCI id 8086:100f, but vmxnet3 is 15ad:07b0: build it with --nic vmxnet3",
    );
    args[1] = "e1000";
    let out = vmx(&args);
    ok(&out);
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("\"ethernet0.opromsize\""))
        .unwrap_or_default()
        .to_string();
    assert!(line.ends_with("= \"65536\""), "{}", stdout(&out));
    let mut https = args.clone();
    let i = https.iter().position(|a| *a == "--chain").unwrap();
    https[i + 1] = "https://boot.example/boot.ipxe";
    fails_with(&vmx(&https), "HTTPS is cut from this ROM");
}
