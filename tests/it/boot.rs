//! The boot harness on real third-party ROMs (Debian's ipxe-qemu), so it runs on a fresh machine
//! before any iPXE source is imported. Our own ROMs boot in tests/real_ipxe.rs.

use std::{path::Path, process::Command};

use crate::support::*;

fn have_qemu() -> bool {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            "qemu-system-x86_64 is missing; apt-get install qemu-system-x86 to run the boot tests",
        );
    }
    ok
}

#[test]
fn debians_roms_boot_over_dhcp_and_report_back() {
    let roms = [
        "/usr/lib/ipxe/qemu/pxe-vmxnet3.rom",
        "/usr/lib/ipxe/qemu/pxe-e1000.rom",
    ];
    if !have_qemu() {
        return;
    }
    if let Some(missing) = roms.iter().find(|r| !Path::new(r).is_file()) {
        skip(&format!(
            "{missing} is missing; apt-get install ipxe-qemu to boot third-party ROMs"
        ));
        return;
    }
    // pxe-e1000.rom is for QEMU's 82540EM (8086:100e), not vSphere's e1000: name the device.
    for (rom, device) in [(roms[0], None), (roms[1], Some("e1000"))] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args([
            "boot-test",
            "--rom",
            rom,
            "--port",
            "18091",
            "--timeout",
            "90",
        ]);
        if let Some(d) = device {
            cmd.args(["--device", d]);
        }
        let out = cmd.output().unwrap();
        ok(&out);
        let row = stdout(&out).lines().nth(1).unwrap_or_default().to_string();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1..3], ["dhcp", "yes"], "{}", stdout(&out));
        assert!(
            cols[5].parse::<u32>().unwrap() > 0,
            "DHCP packets were expected: {row}"
        );
        assert!(
            cols[6].parse::<u32>().unwrap() >= 2,
            "two HTTP requests were expected: {row}"
        );
    }
}

#[test]
fn a_rom_that_cannot_boot_fails_and_shows_the_screen() {
    if !have_qemu() {
        return;
    }
    // A valid-looking ROM whose code does nothing: SeaBIOS runs past it and finds no boot device.
    let project = Project::new(&[]);
    project.import();
    ok(&project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]));
    let rom = project.path("roms/vmware/15ad07b0.rom");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "boot-test",
            "--rom",
            rom.to_str().unwrap(),
            "--port",
            "18093",
            "--timeout",
            "20",
        ])
        .output()
        .unwrap();
    fails_with(&out, "1 of 1 boot(s) failed");
    let text = stdout(&out);
    assert!(
        text.contains("it never reported back (timed out); last screen:"),
        "{text}"
    );
    assert!(
        text.contains("| SeaBIOS"),
        "the screen text is shown: {text}"
    );

    // The guestinfo path needs iPXE's code in memory; this ROM has none, and says so.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "boot-test",
            "--rom",
            rom.to_str().unwrap(),
            "--path",
            "guestinfo",
            "--port",
            "18093",
            "--timeout",
            "20",
        ])
        .output()
        .unwrap();
    fails_with(
        &out,
        "never started iPXE within 20 s, so its backdoor calls could not be located",
    );
}

#[test]
fn a_rom_without_vmware_settings_is_refused_for_the_guestinfo_path() {
    let rom = "/usr/lib/ipxe/qemu/pxe-vmxnet3.rom";
    if !have_qemu() {
        return;
    }
    if !Path::new(rom).is_file() {
        skip(&format!(
            "{rom} is missing; apt-get install ipxe-qemu to boot third-party ROMs"
        ));
        return;
    }
    // Debian builds iPXE without VMWARE_SETTINGS: there is no backdoor call to answer. (Its
    // 74 KiB ROM is over vmxnet3's limit, so the keys come from a file, not from `vmx`.)
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, r#"{"guestinfo.ipxe.net0.ip": "10.0.2.15"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["boot-test", "--rom", rom, "--path", "guestinfo", "--keys"])
        .arg(&keys)
        .args(["--port", "18094", "--timeout", "60"])
        .output()
        .unwrap();
    fails_with(
        &out,
        "has no VMware backdoor call in memory: it was not built with VMWARE_SETTINGS",
    );
}

#[test]
fn a_lan_peer_off_this_machine_is_refused() {
    // Refused before any ROM is read or QEMU started: the guest's frames stay on this machine.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["boot-test", "--rom", "/nonexistent.rom"])
        .args(["--lan-peer", "192.0.2.1:4000"])
        .output()
        .unwrap();
    fails_with(
        &out,
        "--lan-peer 192.0.2.1:4000 is not an IPv4 loopback address",
    );
}
