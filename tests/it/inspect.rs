//! `inspect` on real third-party ROMs (Debian's ipxe-qemu) and on ROMs the tests build.

use std::{path::Path, process::Command};

use crate::support::*;

const DEBIAN_ROMS: &str = "/usr/lib/ipxe/qemu";

fn inspect(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap()
}

fn debian(rom: &str) -> Option<String> {
    let path = Path::new(DEBIAN_ROMS).join(rom);
    if path.is_file() {
        return Some(path.to_str().unwrap().to_string());
    }
    skip(&format!(
        "{} is missing; apt-get install ipxe-qemu to inspect real third-party ROMs",
        path.display()
    ));
    None
}

#[test]
fn debians_vmxnet3_rom_is_over_vmwares_limit() {
    let Some(rom) = debian("pxe-vmxnet3.rom") else {
        return;
    };
    let out = inspect(&[&rom]);
    fails_with(&out, "1 of 1 ROM(s) failed their checks");
    let table = stdout(&out);
    assert!(
        table.contains("74240 bytes, limit 65536 for vmxnet3, headroom -8704: FAIL"),
        "{table}"
    );
    assert!(
        table.contains("74240 bytes is over the 65536-byte limit for vmxnet3 by 8704 bytes"),
        "{table}"
    );
    assert!(
        table.contains("15ad:07b0 x86 legacy, checksum ok"),
        "{table}"
    );
}

#[test]
fn efi_roms_show_both_images_of_the_chain() {
    let Some(rom) = debian("efi-e1000.rom") else {
        return;
    };
    let out = inspect(&["--json", &rom]);
    ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = json[0]["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["code_type"], "x86-legacy");
    assert_eq!(images[0]["last"], false);
    assert_eq!(images[1]["code_type"], "efi");
    assert_eq!(images[1]["efi"]["machine_type"], 0x8664);
    assert_eq!(images[1]["efi"]["subsystem"], 11);
    assert_eq!(images[1]["last"], true);
    assert_eq!(images[1]["pci_id"], "8086:100e");
    assert!(json[0]["limit"].is_null(), "8086:100e is not a vSphere NIC");
    let total: u64 = images.iter().map(|i| i["length"].as_u64().unwrap()).sum();
    assert_eq!(total, json[0]["size"].as_u64().unwrap());
}

#[test]
fn built_roms_pass_and_damage_is_named() {
    let project = Project::new(&[]);
    project.import();
    ok(&project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]));
    let rom = project.path("roms/vmware/15ad07b0.rom");
    let out = inspect(&[rom.to_str().unwrap()]);
    ok(&out);
    assert!(
        stdout(&out).contains("16384 bytes, limit 65536 for vmxnet3, headroom 49152: ok"),
        "{}",
        stdout(&out)
    );

    let mut bytes = std::fs::read(&rom).unwrap();
    bytes[300] ^= 0xff;
    let bad = project.path("bad.rom");
    std::fs::write(&bad, &bytes).unwrap();
    let out = inspect(&[bad.to_str().unwrap()]);
    fails_with(&out, "failed their checks");
    assert!(
        stdout(&out).contains("checksum byte is wrong"),
        "{}",
        stdout(&out)
    );
    let text = project.path("text.rom");
    std::fs::write(&text, "hello").unwrap();
    let out = inspect(&[text.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a file that is no ROM fails inspect"
    );
    assert!(
        stdout(&out).contains("does not start with the 0x55 0xAA ROM signature"),
        "{}",
        stdout(&out)
    );
}
