//! Fleets: the playbook `cargo xtask fleet` writes, run by a real `ansible-playbook` (ansible
//! 10.7.0, community.vmware 4.8.1, pyvmomi 7.0.3, which `.ci/run` installs into
//! target/ansible) against govmomi's simulator with 20 VMs, every VM read back with the
//! project's own SOAP reader and compared with `vmx --format json` and with `deploy`; and its
//! Terraform, parsed by hcl-rs and evaluated by `terraform console` for a map of VMs.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::support::{vcsim::Vcsim, *};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// The fleet: the simulator's cluster VMs 2 to 21, all vmxnet3, every other one EFI.
const FLEET: std::ops::Range<u32> = 2..22;

fn ip(i: u32) -> String {
    format!("10.0.0.{}", 10 + i)
}

/// An inventory of these VMs in group `ipxe`, with the group's shared values.
fn inventory(dir: &Path, vms: &[String]) -> PathBuf {
    let mut hosts = String::new();
    for vm in vms {
        let i: u32 = vm.rsplit("VM").next().unwrap().parse().unwrap();
        hosts.push_str(&format!("        {vm}: {{ipxe_ip: {}/24}}\n", ip(i)));
    }
    let path = dir.join(format!("inventory-{}.yml", vms.len()));
    std::fs::write(
        &path,
        format!(
            "all:\n  children:\n    ipxe:\n      vars:\n        vsphere_datacenter: DC0\n\
             \x20       ipxe_datastore: LocalDS_0\n        ipxe_gateway: 10.0.0.1\n\
             \x20       ipxe_dns: 10.0.0.200\n        ipxe_chain: http://boot.example/boot.ipxe\n\
             \x20     hosts:\n{hosts}"
        ),
    )
    .unwrap();
    path
}

/// Runs the playbook with the vCenter in the environment only, never in a file or argument.
fn run(bin: &Path, vcsim: &Vcsim, playbook: &Path, inventory: &Path) -> Output {
    let port = vcsim
        .url
        .trim_end_matches("/sdk")
        .rsplit(':')
        .next()
        .unwrap();
    let out = Command::new(bin)
        .arg("-i")
        .arg(inventory)
        .args(["--forks", "10"])
        .arg(playbook)
        .env("VMWARE_HOST", "127.0.0.1")
        .env("VMWARE_PORT", port)
        .env("VMWARE_USER", crate::support::vcsim::USER)
        .env("VMWARE_PASSWORD", crate::support::vcsim::PASSWORD)
        .env("SSL_CERT_FILE", &vcsim.ca)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .output()
        .unwrap();
    assert!(
        !stdout(&out).contains(crate::support::vcsim::PASSWORD),
        "the password appeared in Ansible's output"
    );
    out
}

/// `PLAY RECAP` as host -> (changed, failed).
fn recap(text: &str) -> BTreeMap<String, (u32, u32)> {
    let count = |line: &str, key: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.parse().ok())
            .unwrap()
    };
    text.lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .skip(1)
        .filter(|l| l.contains(" : ok="))
        .map(|l| {
            let host = l.split_whitespace().next().unwrap().to_string();
            (host, (count(l, "changed="), count(l, "failed=")))
        })
        .collect()
}

#[test]
fn an_ansible_playbook_configures_twenty_vms_as_deploy_would() {
    let Some(bin) = crate::support::ansible::playbook() else {
        return;
    };
    let Some(vcsim) = Vcsim::start_with(&["-machines", "22"]) else {
        return;
    };
    let project = Project::new(&[]);
    project.import();
    ok(&project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]));
    let rom = project.path("roms/vmware/15ad07b0.rom");
    let bytes = std::fs::read(&rom).unwrap();
    let sha = format!("{:x}", Sha256::digest(&bytes));
    let made = project.xtask(&["fleet", "--nic", "vmxnet3", "--rom", rom.to_str().unwrap()]);
    ok(&made);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dir.path().join("ipxe.yml");
    std::fs::write(&playbook, stdout(&made)).unwrap();
    let vms: Vec<String> = FLEET.map(|i| format!("DC0_C0_RP0_VM{i}")).collect();
    let inv = inventory(dir.path(), &vms);

    let started = std::time::Instant::now();
    let first = run(&bin, &vcsim, &playbook, &inv);
    eprintln!(
        "first run of {} VMs, forks 10: {:.1} s",
        vms.len(),
        started.elapsed().as_secs_f64()
    );
    ok(&first);
    let hosts = recap(&stdout(&first));
    assert_eq!(hosts.len(), 20, "{}", stdout(&first));
    assert!(hosts
        .values()
        .all(|&(changed, failed)| changed > 0 && failed == 0));

    // Every VM read back: the keys vmx prints for its values (but the adapter type, which is
    // the VM's device, checked apart), BIOS firmware, and deploy finding nothing to change.
    let s = vcsim.session();
    let rom_path = format!(
        "/vmfs/volumes/LocalDS_0/vsphere-ipxe-rom/{}/15ad07b0.rom",
        &sha[..16]
    );
    let (mut compared, mut mismatches) = (0, Vec::new());
    for (i, vm_name) in FLEET.zip(&vms) {
        let mut args = vec!["vmx", "--nic", "vmxnet3", "--rom", rom.to_str().unwrap()];
        let addr = format!("{}/24", ip(i));
        args.extend([
            "--rom-path",
            &rom_path,
            "--ip",
            &addr,
            "--gateway",
            "10.0.0.1",
        ]);
        args.extend([
            "--dns",
            "10.0.0.200",
            "--chain",
            "http://boot.example/boot.ipxe",
        ]);
        args.extend(["--format", "json"]);
        let out = project.xtask(&args);
        ok(&out);
        let mut want: BTreeMap<String, String> = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(
            want.remove("ethernet0.virtualDev").as_deref(),
            Some("vmxnet3")
        );
        let vm = s.find_vm(vm_name).unwrap();
        for (k, v) in &want {
            compared += 1;
            if vm.extra_config.get(k) != Some(v) {
                mismatches.push(format!(
                    "{vm_name} {k}: {:?} != {v}",
                    vm.extra_config.get(k)
                ));
            }
        }
        assert_eq!(vm.firmware, "bios", "{vm_name}");
        assert_eq!(vm.nics[&0], "VirtualVmxnet3", "{vm_name}");
        assert!(!vm.extra_config.contains_key("ethernet0.virtualDev"));
        let dry = deploy_dry_run(&project, &vcsim, vm_name, &addr);
        assert!(
            dry.contains("is there already: skipped")
                && dry.contains("unchanged 8 key(s) already set")
                && !dry.contains("\nset "),
            "deploy would change what Ansible set on {vm_name}:\n{dry}"
        );
    }
    let line = format!(
        "fleet: read back {} VMs after ansible-playbook: {compared} keys compared, {} mismatches\n",
        vms.len(),
        mismatches.len()
    );
    eprint!("{line}");
    ci_report(&line);
    assert_eq!(compared, 20 * 8);
    assert!(mismatches.is_empty(), "{mismatches:#?}");

    let started = std::time::Instant::now();
    let second = run(&bin, &vcsim, &playbook, &inv);
    let line = format!(
        "fleet: second run {:.1} s, changed=0 on {} of 20 hosts\n",
        started.elapsed().as_secs_f64(),
        recap(&stdout(&second))
            .values()
            .filter(|&&c| c == (0, 0))
            .count()
    );
    eprint!("{line}");
    ci_report(&line);
    ok(&second);
    let hosts = recap(&stdout(&second));
    assert_eq!(hosts.len(), 20);
    assert!(
        hosts.values().all(|&c| c == (0, 0)),
        "a second run changes nothing:\n{}",
        stdout(&second)
    );

    // A VM whose ethernet0 is an e1000 is refused by name, and left as it was.
    let before = s.find_vm("DC0_H0_VM0").unwrap();
    let wrong = inventory(dir.path(), &["DC0_H0_VM0".to_string()]);
    let out = run(&bin, &vcsim, &playbook, &wrong);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("DC0_H0_VM0: ethernet0 (PCI unit 7) is not a vmxnet3 adapter"),
        "{}",
        stdout(&out)
    );
    let after = s.find_vm("DC0_H0_VM0").unwrap();
    assert_eq!(after.extra_config, before.extra_config);
    assert_eq!(after.firmware, before.firmware);
    s.logout().unwrap();
}

/// `deploy --dry-run` of the same ROM and values to one VM: what deploy would still change.
fn deploy_dry_run(project: &Project, vcsim: &Vcsim, vm: &str, ip: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--project")
        .arg(project.dir.path())
        .arg("--cache-dir")
        .arg(project.cache())
        .args([
            "deploy",
            "--vm",
            vm,
            "--nic",
            "vmxnet3",
            "--datastore",
            "LocalDS_0",
        ])
        .args(["--ip", ip, "--gateway", "10.0.0.1", "--dns", "10.0.0.200"])
        .args(["--chain", "http://boot.example/boot.ipxe", "--dry-run"])
        .env("GOVC_URL", &vcsim.url)
        .env("GOVC_USERNAME", crate::support::vcsim::USER)
        .env("GOVC_PASSWORD", crate::support::vcsim::PASSWORD)
        .env("GOVC_TLS_CA_CERTS", &vcsim.ca)
        .output()
        .unwrap();
    ok(&out);
    stdout(&out)
}

/// `vmx --format json` for one VM's values, without the adapter type (the VM's device).
fn vmx_keys(
    project: &Project,
    rom: &Path,
    rom_path: &str,
    vm: [&str; 4],
) -> BTreeMap<String, String> {
    let [ip, gateway, dns, chain] = vm;
    let mut args = vec!["vmx", "--nic", "vmxnet3", "--rom", rom.to_str().unwrap()];
    args.extend(["--rom-path", rom_path, "--ip", ip, "--gateway", gateway]);
    args.extend(["--dns", dns, "--chain", chain, "--format", "json"]);
    let out = project.xtask(&args);
    ok(&out);
    let mut keys: BTreeMap<String, String> = serde_json::from_str(&stdout(&out)).unwrap();
    keys.remove("ethernet0.virtualDev");
    keys
}

#[test]
fn terraform_for_each_gives_each_vm_the_keys_vmx_prints() {
    let project = Project::new(&[]);
    project.import();
    ok(&project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]));
    let rom = project.path("roms/vmware/15ad07b0.rom");
    let sha = format!("{:x}", Sha256::digest(std::fs::read(&rom).unwrap()));
    let out = project.xtask(&["fleet", "--format", "terraform", "--nic", "vmxnet3"]);
    fails_with(&out, "--rom");
    let out = project.xtask(&[
        "fleet",
        "--format",
        "terraform",
        "--nic",
        "vmxnet3",
        "--rom",
        rom.to_str().unwrap(),
    ]);
    ok(&out);
    let text = stdout(&out);

    // hcl-rs: the variables, the upload and the locals block are there, as HCL2 reads them.
    let body: hcl::Body = hcl::from_str(&text).unwrap();
    let blocks: Vec<String> = body
        .blocks()
        .map(|b| {
            let labels: Vec<&str> = b.labels().iter().map(|l| l.as_str()).collect();
            format!("{} {}", b.identifier(), labels.join(" "))
        })
        .collect();
    assert_eq!(
        blocks,
        [
            "variable ipxe_vms",
            "variable ipxe_datacenter",
            "variable ipxe_datastore",
            "resource vsphere_file ipxe_rom",
            "locals "
        ]
    );
    let upload = body
        .blocks()
        .find(|b| b.identifier() == "resource")
        .unwrap();
    let dest = upload
        .body()
        .attributes()
        .find(|a| a.key() == "destination_file")
        .unwrap();
    assert_eq!(
        dest.expr().to_string(),
        format!("\"vsphere-ipxe-rom/{}/15ad07b0.rom\"", &sha[..16])
    );
    assert!(text.contains("adapter_type = \"vmxnet3\""), "{text}");

    // terraform console: each VM of the map gets exactly what vmx prints for it. The upload
    // needs the vSphere provider, which cannot be fetched here; the rest evaluates offline.
    let without_upload: hcl::Body = body
        .into_iter()
        .filter(|s| s.as_block().is_none_or(|b| b.identifier() != "resource"))
        .collect();
    let main_tf = hcl::to_string(&without_upload).unwrap();
    let vms = [
        (
            "web-01",
            [
                "10.0.0.11/24",
                "10.0.0.1",
                "10.0.0.200",
                "http://boot.example/a.ipxe",
            ],
        ),
        (
            "db-01",
            [
                "172.16.5.9/20",
                "172.16.0.1",
                "172.16.0.53",
                "http://boot.example/b.ipxe?x=${y}",
            ],
        ),
        (
            "edge",
            [
                "192.168.7.2/30",
                "192.168.7.1",
                "1.1.1.1",
                "http://10.9.9.9:8080/c",
            ],
        ),
    ];
    let map: serde_json::Map<String, serde_json::Value> = vms
        .iter()
        .map(|(name, [ip, gw, dns, chain])| {
            (
                name.to_string(),
                serde_json::json!({"ip": ip, "gateway": gw, "dns": dns, "chain": chain}),
            )
        })
        .collect();
    let vars = |map: &serde_json::Map<String, serde_json::Value>| {
        serde_json::json!({"ipxe_datacenter": "DC0", "ipxe_datastore": "LocalDS_0", "ipxe_vms": map})
            .to_string()
    };
    let files = |vars: String| {
        [
            ("main.tf".to_string(), main_tf.clone()),
            ("terraform.tfvars.json".into(), vars),
        ]
    };
    let f = files(vars(&map));
    let refs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let Some(got) = crate::support::terraform::console(&refs, "local.ipxe_extra_config") else {
        return;
    };
    let got: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_value(got.unwrap()).unwrap();
    let rom_path = format!(
        "/vmfs/volumes/LocalDS_0/vsphere-ipxe-rom/{}/15ad07b0.rom",
        &sha[..16]
    );
    assert_eq!(got.len(), vms.len());
    for (name, vm) in vms {
        assert_eq!(got[name], vmx_keys(&project, &rom, &rom_path, vm), "{name}");
    }

    // The variable's validation refuses a value vmx would refuse, before any plan.
    let mut bad = map.clone();
    bad["edge"]["chain"] = "https://boot.example/c".into();
    let f = files(vars(&bad));
    let refs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let err = crate::support::terraform::console(&refs, "local.ipxe_extra_config")
        .unwrap()
        .unwrap_err();
    assert!(
        err.contains("edge: chain https://boot.example/c: HTTPS is cut from this ROM"),
        "{err}"
    );
}

/// A fleet of this ROM file, in `format`, with more arguments.
fn fleet(rom: &Path, format: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fleet", "--nic", "vmxnet3", "--format", format, "--rom"])
        .arg(rom)
        .args(extra)
        .output()
        .unwrap()
}

/// A small vmxnet3 ROM in its own directory.
fn small_rom(dir: &Path) -> PathBuf {
    let rom = dir.join("15ad07b0.rom");
    let nic = xtask::nic::Nic::by_name("vmxnet3").unwrap();
    std::fs::write(&rom, crate::hostile::rom_image(nic, 4096)).unwrap();
    rom
}

/// Issue 33 item 1: a `--scriptlet` that Ansible would read as Jinja2 (a `{{`, or a
/// `#jinja2:` header that changes the delimiters) reaches the VM verbatim, read back from the
/// simulator, and runs nothing on the control node.
#[test]
fn a_hostile_scriptlet_reaches_the_vm_verbatim_and_runs_nothing() {
    let Some(bin) = crate::support::ansible::playbook() else {
        return;
    };
    let Some(vcsim) = Vcsim::start_with(&["-machines", "3"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rom = small_rom(dir.path());
    let marker = crate::hostile::marker(dir.path());
    let vm = "DC0_C0_RP0_VM2";
    let inv = inventory(dir.path(), &[vm.to_string()]);
    let s = vcsim.session();
    for payload in crate::hostile::template_payloads(&marker) {
        let made = fleet(&rom, "ansible", &["--scriptlet", &payload]);
        ok(&made);
        let playbook = dir.path().join("ipxe.yml");
        std::fs::write(&playbook, stdout(&made)).unwrap();
        let out = run(&bin, &vcsim, &playbook, &inv);
        assert!(
            !marker.exists(),
            "{payload} ran a command:\n{}",
            stdout(&out)
        );
        ok(&out);
        let got = s.find_vm(vm).unwrap();
        assert_eq!(
            got.extra_config.get("guestinfo.ipxe.scriptlet"),
            Some(&payload)
        );
    }
    // A value the check refuses stops the VM's run before any change, with vmx's message.
    let before = s.find_vm(vm).unwrap();
    let text = std::fs::read_to_string(&inv).unwrap().replace(
        "http://boot.example/boot.ipxe",
        "http://u:secret@boot.example/x",
    );
    std::fs::write(&inv, text).unwrap();
    let out = run(&bin, &vcsim, &dir.path().join("ipxe.yml"), &inv);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("ipxe_chain has user info before its host")
            && !stdout(&out).contains("secret"),
        "{}",
        stdout(&out)
    );
    let after = s.find_vm(vm).unwrap();
    assert_eq!(after.extra_config, before.extra_config);
    assert_eq!(after.firmware, before.firmware);
    s.logout().unwrap();
}

/// One VM's values, as the inventory and the Terraform map hold them.
#[derive(Clone, Debug)]
struct Values {
    ip: String,
    gateway: String,
    dns: String,
    chain: String,
}

impl Values {
    fn good() -> Values {
        Values {
            ip: "10.0.0.11/24".into(),
            gateway: "10.0.0.1".into(),
            dns: "10.0.0.200".into(),
            chain: "http://boot.example/boot.ipxe".into(),
        }
    }

    fn with(field: &str, value: &str) -> Values {
        let mut v = Values::good();
        *match field {
            "ip" => &mut v.ip,
            "gateway" => &mut v.gateway,
            "dns" => &mut v.dns,
            _ => &mut v.chain,
        } = value.to_string();
        v
    }

    /// What `vmx` says of these values for a ROM without HTTPS: None where it takes them.
    fn vmx_error(&self) -> Option<String> {
        let network = xtask::vm::network::Network::parse(
            &self.ip,
            &self.gateway,
            &self.dns,
            &self.chain,
            None,
        );
        let network = match network {
            Ok(n) => n,
            Err(e) => return Some(format!("{e:#}")),
        };
        let req = xtask::vm::vmconfig::Request {
            nic: xtask::nic::Nic::by_name("vmxnet3").unwrap(),
            ethernet: 0,
            rom_path: "/vmfs/volumes/ds/15ad07b0.rom".into(),
            network,
            rom: None,
            rom_has_https: false,
        };
        xtask::vm::vmconfig::keys(&req)
            .err()
            .map(|e| format!("{e:#}"))
    }
}

/// The bad values issue 33 names, and the rules around them: each is refused by vmx.
fn bad_values() -> Vec<Values> {
    let cases = [
        ("ip", "10.0.0.0/24"),
        ("ip", "10.0.0.255/24"),
        ("ip", "999.0.0.11/24"),
        ("ip", "10.0.0.11/0"),
        ("ip", "10.0.0.11/33"),
        ("ip", "10.0.0.11"),
        ("ip", "010.0.0.11/24"),
        ("ip", "10.0.0.11/+24"),
        ("gateway", "10.0.1.1"),
        ("gateway", "10.0.0.11"),
        ("gateway", "10.0.0.0"),
        ("gateway", "10.0.0.255"),
        ("gateway", "gw.example"),
        ("dns", "dns.example"),
        ("dns", "1.2.3.256"),
        ("chain", "http://boot.example/\u{202e}x"),
        ("chain", "http://boot.example/\u{7f}x"),
        ("chain", "http://boot.example/\u{200b}x"),
        ("chain", "http://boot.example/a b"),
        ("chain", "http://"),
        ("chain", "http:///x"),
        ("chain", "boot.ipxe"),
        ("chain", "tftp://boot.example/x"),
        ("chain", "ftp://user:secret@boot.example/x"),
        ("chain", "http://user:secret@boot.example/x"),
        ("chain", "http://@/x"),
        ("chain", "http://:80/x"),
        ("chain", "http://[::1/x"),
        ("chain", "http://boot.example:99999/x"),
        ("chain", "https://boot.example/x"),
    ];
    cases.iter().map(|(f, v)| Values::with(f, v)).collect()
}

/// Issue 33 item 8: the playbook's check and Terraform's validation refuse each value vmx
/// refuses, with vmx's message (its flag named as the consumer names the value), and take
/// what vmx takes; no message shows the password of a URL.
#[test]
fn fleet_refuses_what_vmx_refuses_with_its_message() {
    let mut cases = bad_values();
    cases.push(Values::good());
    cases.push(Values::with("ip", "10.0.0.0/31"));
    for v in &cases[..cases.len() - 2] {
        assert!(v.vmx_error().is_some(), "vmx takes {v:?}");
    }
    let wrong = disagreements(&cases);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Where the playbook's check or Terraform's validation says other than vmx of a VM's values:
/// vmx's message with its flag named as the consumer names the value, or nothing where vmx
/// takes them. No message may show the password of a URL.
fn disagreements(cases: &[Values]) -> Vec<String> {
    let (ansible, terraform) = consumers_on(cases);
    let mut wrong = Vec::new();
    for (i, v) in cases.iter().enumerate() {
        let want = v.vmx_error();
        let named = |prefix: &str| {
            want.as_ref().map(|w| {
                ["ip", "gateway", "dns", "chain"]
                    .iter()
                    .fold(w.clone(), |w, f| {
                        w.replacen(&format!("--{f}"), &format!("{prefix}{f}"), 1)
                    })
            })
        };
        for (name, got, want) in [
            ("ansible", &ansible, named("ipxe_")),
            ("terraform", &terraform, named("")),
        ] {
            let Some(got) = got else { continue };
            if got[i] != want {
                wrong.push(format!(
                    "{name} on {v:?}:\n  got  {:?}\n  want {want:?}",
                    got[i]
                ));
            }
            assert!(
                !got[i].as_deref().unwrap_or("").contains("secret"),
                "{name}: {:?}",
                got[i]
            );
        }
    }
    wrong
}

/// Values near the rules' edges: octets with leading zeros or over 255, prefixes from 0 to 33,
/// gateways in and out of the subnet, and URLs put together from good and bad parts.
fn near_values() -> impl Strategy<Value = Values> {
    let octet = prop::sample::select(vec![
        "0", "1", "10", "11", "255", "256", "010", "999", "00", "x",
    ]);
    let prefix = prop::sample::select(vec![
        "24", "0", "1", "8", "30", "31", "32", "33", "+24", "024", "", "2 4",
    ]);
    let ip = (
        octet.clone(),
        octet.clone(),
        prefix,
        prop::bool::weighted(0.9),
    )
        .prop_map(|(c, d, p, slash)| format!("10.0.{c}.{d}{}{p}", if slash { "/" } else { "" }));
    let gateway = (octet.clone(), octet).prop_map(|(c, d)| format!("10.0.{c}.{d}"));
    let pick = |v: Vec<&'static str>| prop::sample::select(v);
    let chain = (
        pick(vec!["http", "https", "ftp", "HTTP", ""]),
        pick(vec!["://", "://", ":/", ""]),
        pick(vec!["", "", "u@", "u:secret@", "@"]),
        pick(vec![
            "boot.example",
            "10.0.0.1",
            "",
            "[::1]",
            "[::1",
            "h_x",
            "h\u{202e}x",
            "b\u{ad}c",
        ]),
        pick(vec![
            "", "", ":80", ":0", ":65535", ":65536", ":99999", ":", ":8a",
        ]),
        pick(vec![
            "/x",
            "",
            "/a b",
            "/\u{7f}",
            "/\u{200b}",
            "?q=1",
            "#f",
            "/é",
            "/\u{e0041}",
        ]),
    )
        .prop_map(|(s, sep, u, h, p, path)| format!("{s}{sep}{u}{h}{p}{path}"));
    let dns = "[0-9.]{1,16}";
    let good = Values::good();
    let or_good = |good: String| {
        move |near: BoxedStrategy<String>| prop_oneof![2 => Just(good.clone()), 1 => near].boxed()
    };
    (
        or_good(good.ip)(ip.boxed()),
        or_good(good.gateway)(gateway.boxed()),
        or_good(good.dns)(dns.boxed()),
        or_good(good.chain)(chain.boxed()),
    )
        .prop_map(|(ip, gateway, dns, chain)| Values {
            ip,
            gateway,
            dns,
            chain,
        })
}

/// Issue 33 item 8, as a property: on values near every rule's edge, the playbook's check and
/// Terraform's validation take and refuse what vmx does, with its messages.
#[test]
fn fleet_and_vmx_agree_on_values_near_every_rule() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = near_values();
    let cases: Vec<Values> = (0..160)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let taken = cases.iter().filter(|v| v.vmx_error().is_none()).count();
    assert!(taken > 5 && taken < 155, "{taken} of 160 taken");
    let wrong = disagreements(&cases);
    assert!(
        wrong.is_empty(),
        "{} of 160:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// What the playbook's check and Terraform's validation say of each VM's values (None where
/// the consumer is missing; per VM, None where it takes them).
type Verdicts = Option<Vec<Option<String>>>;

fn consumers_on(cases: &[Values]) -> (Verdicts, Verdicts) {
    let dir = tempfile::tempdir().unwrap();
    let rom = small_rom(dir.path());
    let name = |i: usize| format!("vm-{i:03}");
    let ansible = crate::support::ansible::playbook().map(|bin| {
        let made = fleet(&rom, "ansible", &[]);
        ok(&made);
        let playbook = dir.path().join("ipxe.yml");
        std::fs::write(&playbook, stdout(&made)).unwrap();
        let q = xtask::vm::quote::yaml;
        let hosts: String = cases
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "        {}: {{ipxe_ip: {}, ipxe_gateway: {}, ipxe_dns: {}, ipxe_chain: {}}}\n",
                    name(i),
                    q(&v.ip),
                    q(&v.gateway),
                    q(&v.dns),
                    q(&v.chain)
                )
            })
            .collect();
        let inv = dir.path().join("inventory.yml");
        std::fs::write(
            &inv,
            format!(
                "all:\n  children:\n    ipxe:\n      vars:\n        vsphere_datacenter: DC0\n\
                 \x20       ipxe_datastore: LocalDS_0\n      hosts:\n{hosts}"
            ),
        )
        .unwrap();
        let results = crate::support::ansible::run_json(&bin, &playbook, &inv);
        let (task, hosts) = &results[0];
        assert_eq!(task, "Check this VM's values in the inventory");
        (0..cases.len())
            .map(|i| {
                let r = &hosts[&name(i)];
                r["failed"].as_bool().unwrap_or(false).then(|| {
                    let msg = r["msg"].as_str().unwrap();
                    let prefix = format!("{}: ", name(i));
                    msg.strip_prefix(&prefix).unwrap_or(msg).to_string()
                })
            })
            .collect()
    });
    let made = fleet(&rom, "terraform", &[]);
    ok(&made);
    let text = stdout(&made);
    let start = text.find("resource \"vsphere_file\"").unwrap();
    let end = start + text[start..].find("\n}\n").unwrap() + 3;
    let main_tf = format!("{}{}", &text[..start], &text[end..]);
    let map: serde_json::Map<String, serde_json::Value> = cases
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let vm = serde_json::json!({"ip": v.ip, "gateway": v.gateway, "dns": v.dns, "chain": v.chain});
            (name(i), vm)
        })
        .collect();
    let vars = serde_json::json!({"ipxe_datacenter": "DC0", "ipxe_datastore": "LocalDS_0", "ipxe_vms": map});
    let files = [
        ("main.tf", main_tf.as_str()),
        ("terraform.tfvars.json", &vars.to_string()),
    ];
    let terraform = crate::support::terraform::console(&files, "length(var.ipxe_vms)").map(|r| {
        // Terraform wraps its messages: compare them with single spaces.
        let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let err = flat(&r.err().unwrap_or_default());
        (0..cases.len())
            .map(|i| {
                let tag = format!("{}: ", name(i));
                let at = err.find(&tag)? + tag.len();
                let rest = &err[at..];
                let next = (0..cases.len())
                    .filter_map(|j| rest.find(&format!(" {}: ", name(j))))
                    .chain(rest.find(" This was checked by the validation rule"))
                    .min()
                    .unwrap_or(rest.len());
                Some(rest[..next].trim().to_string())
            })
            .collect()
    });
    (ansible, terraform)
}
