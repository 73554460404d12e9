//! `vmx` output against expected files in tests/vmx/, per NIC and format, and against the
//! parsers of the tools that read it: every format must give the keys `--format json` gives.
//! `UPDATE_EXPECT=1 cargo test --test it vmx::` rewrites the files; review the diff.

use std::{collections::BTreeMap, fs, process::Command};

use crate::support::*;

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
    let update = match std::env::var("UPDATE_EXPECT").as_deref() {
        Ok("1") => true,
        Ok(other) => panic!("UPDATE_EXPECT={other}: set it to 1 to rewrite the expected files"),
        Err(_) => false,
    };
    let mut stale = Vec::new();
    let mut updated = 0;
    for (nic, file) in [
        ("vmxnet3", "15ad07b0.rom"),
        ("e1000", "8086100f.rom"),
        ("e1000e", "808610d3.rom"),
        ("vlance", "10222000.rom"),
    ] {
        for format in FORMATS {
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
            let path = repo().join(format!("tests/it/vmx_expected/{nic}.{format}"));
            if update {
                if fs::read(&path).ok().as_deref() != Some(out.stdout.as_slice()) {
                    fs::write(&path, &out.stdout).unwrap();
                    updated += 1;
                }
            } else if fs::read(&path).ok().as_deref() != Some(out.stdout.as_slice()) {
                stale.push(format!("{}:\n{}", path.display(), stdout(&out)));
            }
        }
    }
    assert!(
        updated == 0,
        "updated {updated} files; review the diff and rerun without UPDATE_EXPECT"
    );
    assert!(
        stale.is_empty(),
        "output differs from (run UPDATE_EXPECT=1 cargo test --test it vmx::):\n{}",
        stale.join("\n")
    );
}

const FORMATS: [&str; 7] = [
    "terraform",
    "packer",
    "ansible",
    "powercli",
    "govc",
    "vmx",
    "json",
];

fn render(nic: &str, format: &str, extra: &[&str]) -> String {
    let file = xtask::nic::Nic::by_name(nic)
        .unwrap()
        .file_name(xtask::nic::RomFormat::Rom);
    let rom_path = format!("/vmfs/volumes/data store 1/ipxe/{file}");
    let mut args = vec!["--nic", nic, "--rom-path", &rom_path, "--format", format];
    args.extend_from_slice(NETWORK);
    // A scriptlet that Terraform, Packer, shells and Jinja2 would all get wrong unescaped.
    args.extend_from_slice(&[
        "--scriptlet",
        "echo ${net0/ip} %{x} $HOME `id` 'q' \"dq\" {{ jinja }} && chain ${filename}",
    ]);
    args.extend_from_slice(extra);
    let out = vmx(&args);
    ok(&out);
    stdout(&out)
}

fn json_keys(nic: &str) -> BTreeMap<String, String> {
    serde_json::from_str(&render(nic, "json", &[])).unwrap()
}

const NICS: [&str; 4] = ["vmxnet3", "e1000", "e1000e", "vlance"];

/// Terraform and Packer: hcl-rs parses and evaluates the strings as HCL2 does.
#[test]
fn terraform_and_packer_evaluate_to_the_json_keys() {
    for nic in NICS {
        let want = json_keys(nic);
        for (format, map, adapter) in [
            ("terraform", "extra_config", "adapter_type"),
            ("packer", "configuration_parameters", "network_card"),
        ] {
            let text = render(nic, format, &[]);
            let value: serde_json::Value =
                hcl::eval::from_str(&text, &hcl::eval::Context::new()).unwrap();
            assert_eq!(value["firmware"], "bios", "{format}:\n{text}");
            let mut got: BTreeMap<String, String> =
                serde_json::from_value(value[map].clone()).unwrap();
            // The NIC type is the tool's own setting, named in a comment instead of the raw key.
            if !got.contains_key("ethernet0.virtualDev") {
                let tool = xtask::nic::Nic::by_name(nic).unwrap().tool_type;
                let name = if format == "terraform" { nic } else { tool };
                assert!(
                    text.contains(&format!("{adapter} = \"{name}\"")),
                    "{format} names the adapter type:\n{text}"
                );
                got.insert("ethernet0.virtualDev".into(), nic.into());
            }
            assert_eq!(got, want, "{format} for {nic}");
        }
    }
}

/// Ansible: a YAML 1.2 parser reads the advanced settings and the firmware.
#[test]
fn ansible_parses_to_the_json_keys() {
    use yaml_rust2::YamlLoader;
    for nic in NICS {
        let text = render(nic, "ansible", &[]);
        let docs = YamlLoader::load_from_str(&text).unwrap();
        let doc = &docs[0];
        assert_eq!(doc["hardware"]["boot_firmware"].as_str(), Some("bios"));
        let mut got = BTreeMap::new();
        for item in doc["advanced_settings"].as_vec().unwrap() {
            got.insert(
                item["key"].as_str().unwrap().to_string(),
                item["value"].as_str().unwrap().to_string(),
            );
        }
        assert!(
            text.contains("value: !unsafe \""),
            "a value with Jinja2 in it is marked !unsafe:\n{text}"
        );
        got.insert("ethernet0.virtualDev".into(), nic.into());
        assert_eq!(got, json_keys(nic), "ansible for {nic}");
    }
}

/// govc: bash runs the printed commands against a stub govc that records its arguments.
#[test]
fn govc_commands_give_govc_the_json_keys() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let stub = bin.join("govc");
    fs::write(
        &stub,
        "#!/bin/sh\nn=$(ls \"$GOVC_LOG\" | wc -l)\nprintf '%s\\0' \"$@\" > \"$GOVC_LOG/$n\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    for (nic, vm) in [("vmxnet3", Some("web 01's")), ("vlance", None)] {
        let log = dir.path().join(format!("log-{nic}"));
        fs::create_dir(&log).unwrap();
        let extra: Vec<&str> = vm.map(|v| vec!["--vm", v]).unwrap_or_default();
        let script = dir.path().join(format!("{nic}.sh"));
        fs::write(&script, render(nic, "govc", &extra)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let run = Command::new("bash")
            .arg(&script)
            .env("PATH", path)
            .env("GOVC_LOG", &log)
            .env("HOME", "/home-must-not-expand")
            .output()
            .unwrap();
        ok(&run);
        let call = |n: usize| -> Vec<String> {
            fs::read_to_string(log.join(n.to_string()))
                .unwrap()
                .split('\0')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect()
        };
        let file = xtask::nic::Nic::by_name(nic)
            .unwrap()
            .file_name(xtask::nic::RomFormat::Rom);
        assert_eq!(
            call(0),
            [
                "datastore.upload",
                "-ds",
                "data store 1",
                "--",
                &file,
                &format!("ipxe/{file}")
            ]
        );
        let change = call(1);
        assert_eq!(change[0], "vm.change");
        let mut rest = &change[1..];
        match vm {
            Some(v) => {
                assert_eq!(rest[..2], ["-vm".to_string(), v.to_string()]);
                rest = &rest[2..];
            }
            // Left out, so govc reads GOVC_VM.
            None => assert!(!change.contains(&"-vm".to_string()), "{change:?}"),
        }
        let mut got = BTreeMap::new();
        for pair in rest.chunks(2) {
            assert_eq!(pair[0], "-e");
            let (k, v) = pair[1].split_once('=').unwrap();
            got.insert(k.to_string(), v.to_string());
        }
        assert_eq!(got, json_keys(nic), "govc for {nic}");
    }
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
