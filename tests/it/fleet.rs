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
use sha2::{Digest, Sha256};

/// The fleet: the simulator's cluster VMs 2 to 21, all vmxnet3, every other one EFI.
const FLEET: std::ops::Range<u32> = 2..22;

/// `ansible-playbook`: $VSPHERE_IPXE_ANSIBLE_PLAYBOOK, else `.ci/run`'s venv, else PATH.
fn ansible_playbook() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("VSPHERE_IPXE_ANSIBLE_PLAYBOOK").map(PathBuf::from),
        Some(repo().join("target/ansible/bin/ansible-playbook")),
        Some(PathBuf::from("ansible-playbook")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

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
    let Some(bin) = ansible_playbook() else {
        skip(
            "ansible-playbook is missing; .ci/run installs ansible==10.7.0 and pyvmomi==7.0.3 \
             into target/ansible (or set VSPHERE_IPXE_ANSIBLE_PLAYBOOK)",
        );
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
        err.contains("chain as an http:// URL without spaces"),
        "{err}"
    );
}
