//! `deploy` against a real vSphere API server (govmomi's simulator over TLS), with ROMs built
//! from the tests' own iPXE-shaped tree. What deploy wrote is read back through the API and the
//! datastore's HTTP interface, and compared with what `vmx --format json` prints.

use std::{collections::BTreeMap, process::Output};

use crate::support::{vcsim::Vcsim, *};
use sha2::{Digest, Sha256};
use xtask::vm::vsphere::Session;

/// Given unless a case gives its own.
const DEFAULTS: &[(&str, &str)] = &[
    ("--datastore", "LocalDS_0"),
    ("--chain", "http://boot.example/boot.ipxe"),
];

struct World {
    project: Project,
    vcsim: Vcsim,
    /// A `curl` first in PATH that logs its arguments; its folder is also HOME, with a
    /// `.curlrc` that would break any curl that reads it.
    shim: Shim,
}

impl World {
    fn new() -> Option<World> {
        let vcsim = Vcsim::start()?;
        let project = Project::new(&[]);
        project.import();
        ok(&project.xtask(&["build-rom", "--nic", "e1000,vmxnet3", "--runtime", "native"]));
        let shim = Shim::new("curl");
        std::fs::write(
            shim.dir.path().join(".curlrc"),
            "output = /dev/null\nfail\n",
        )
        .unwrap();
        Some(World {
            project,
            vcsim,
            shim,
        })
    }

    /// `deploy` with govc's environment: the password only in GOVC_PASSWORD.
    fn deploy(&self, extra: &[&str]) -> Output {
        self.deploy_with_password(crate::support::vcsim::PASSWORD, extra)
    }

    fn deploy_with_password(&self, password: &str, extra: &[&str]) -> Output {
        self.deploy_with(password, extra, |_| {})
    }

    /// `deploy` with `adjust` applied last to its command (standard input, environment).
    fn deploy_with(
        &self,
        password: &str,
        extra: &[&str],
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("--project")
            .arg(self.project.dir.path())
            .arg("--cache-dir")
            .arg(self.project.cache())
            .arg("deploy")
            .args(ADDRESSES)
            .args(extra)
            .env("GOVC_URL", &self.vcsim.url)
            .env("GOVC_USERNAME", crate::support::vcsim::USER)
            .env("GOVC_PASSWORD", password)
            .env("GOVC_TLS_CA_CERTS", &self.vcsim.ca)
            .env_remove("GOVC_INSECURE")
            .env("HOME", self.shim.dir.path())
            .env("PATH", self.shim.path_env());
        for (flag, value) in DEFAULTS {
            if !extra.contains(flag) {
                cmd.args([flag, value]);
            }
        }
        adjust(&mut cmd);
        let out = cmd.output().unwrap();
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains(password),
            "the password appeared in deploy's output:\n{all}"
        );
        // Other users of the host can read a process's arguments: neither the password nor the
        // session cookie may be in curl's.
        let argv = self.shim.calls();
        assert!(
            !argv.contains(password) && !argv.contains("vmware_soap_session"),
            "a secret reached curl's arguments:\n{argv}"
        );
        out
    }

    /// How many times deploy ran curl so far.
    fn curl_runs(&self) -> usize {
        self.shim.calls().lines().count()
    }

    fn session(&self) -> Session {
        self.vcsim.session()
    }

    fn rom(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.project.path(&format!("roms/vmware/{file}"))).unwrap()
    }

    /// The datastore file, fetched again over the `/folder` interface by curl on its own.
    fn datastore_file(&self, path: &str) -> Option<Vec<u8>> {
        let base = self.vcsim.url.trim_end_matches("/sdk");
        let url = format!("{base}/folder/{path}?dcPath=DC0&dsName=LocalDS_0");
        let body = tempfile::NamedTempFile::new().unwrap();
        let out = std::process::Command::new("curl")
            .args([
                "--disable",
                "--silent",
                "--show-error",
                "--globoff",
                "--cacert",
            ])
            .arg(&self.vcsim.ca)
            .arg("--output")
            .arg(body.path())
            .args(["--write-out", "%{http_code}", &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "curl: {}", stderr(&out));
        (stdout(&out) == "200").then(|| std::fs::read(body.path()).unwrap())
    }

    /// What `vmx --format json` prints for this ROM at the path deploy uses.
    fn vmx_json(&self, nic: &str, file: &str) -> BTreeMap<String, String> {
        let sha = format!("{:x}", Sha256::digest(self.rom(file)));
        let rom = self.project.path(&format!("roms/vmware/{file}"));
        let rom_path = format!(
            "/vmfs/volumes/LocalDS_0/vsphere-ipxe-rom/{}/{file}",
            &sha[..16]
        );
        let mut args = vec!["vmx", "--nic", nic, "--rom", rom.to_str().unwrap()];
        args.extend_from_slice(&["--rom-path", &rom_path, "--format", "json"]);
        args.extend_from_slice(ADDRESSES);
        args.extend_from_slice(&["--chain", DEFAULTS[1].1]);
        let out = self.project.xtask(&args);
        ok(&out);
        serde_json::from_str(&stdout(&out)).unwrap()
    }
}

#[test]
fn deploy_uploads_once_and_sets_exactly_the_keys_vmx_prints() {
    let Some(w) = World::new() else { return };
    let dry = w.deploy(&["--vm", "DC0_H0_VM0", "--nic", "e1000", "--dry-run"]);
    ok(&dry);
    assert!(stdout(&dry).contains("dry run: nothing was changed"));
    let session = w.session();
    let before = session.find_vm("DC0_H0_VM0").unwrap();
    assert!(
        !before.extra_config.contains_key("guestinfo.ipxe.net0.ip"),
        "a dry run changes nothing"
    );

    let first = w.deploy(&["--vm", "DC0_H0_VM0", "--nic", "e1000"]);
    ok(&first);
    let text = stdout(&first);
    eprintln!("{text}");
    assert!(text.contains("note      the VM is powered on"), "{text}");
    // Login, reads, upload, reconfigure, task, logout: every call went through the logging curl.
    assert!(
        w.curl_runs() >= 6,
        "deploy ran curl {} times",
        w.curl_runs()
    );

    // Read back through the API: every key vmx prints, with its value, but the adapter type,
    // which extraConfig cannot set: deploy checks it instead.
    let mut want = w.vmx_json("e1000", "8086100f.rom");
    assert_eq!(
        want.remove("ethernet0.virtualDev").as_deref(),
        Some("e1000")
    );
    assert_eq!(want.len(), 8);
    let vm = session.find_vm("DC0_H0_VM0").unwrap();
    for (k, v) in &want {
        assert_eq!(vm.extra_config.get(k), Some(v), "extraConfig {k}");
    }
    assert!(!vm.extra_config.contains_key("ethernet0.virtualDev"));
    assert_eq!(vm.nics[&0], "VirtualE1000");
    assert!(!text.contains("virtualDev"), "{text}");
    // The datastore file is the ROM, at its content-addressed path.
    let rom = w.rom("8086100f.rom");
    let sha = format!("{:x}", Sha256::digest(&rom));
    let path = format!("vsphere-ipxe-rom/{}/8086100f.rom", &sha[..16]);
    let stored = w
        .datastore_file(&path)
        .expect("the ROM is on the datastore");
    assert_eq!(format!("{:x}", Sha256::digest(&stored)), sha);

    let second = w.deploy(&["--vm", "DC0_H0_VM0", "--nic", "e1000"]);
    ok(&second);
    let text = stdout(&second);
    assert!(text.contains("is there already: skipped"), "{text}");
    assert!(text.contains("unchanged 8 key(s) already set"), "{text}");
    assert!(!text.contains("\nset "), "nothing to set again:\n{text}");
    assert!(!text.contains("virtualDev"), "{text}");
    session.logout().unwrap();
}

#[test]
fn every_refusal_names_the_fix_and_changes_nothing() {
    let Some(w) = World::new() else { return };
    let cases: &[(&[&str], &str, Option<&str>)] = &[
        (
            &["--vm", "DC0_H0_VM0", "--nic", "e1000"],
            "refused the login of user 'deployer': check GOVC_USERNAME and GOVC_PASSWORD",
            Some("wrong-password"),
        ),
        (
            &["--vm", "DC0_H0_VM9", "--nic", "e1000"],
            "no VM named 'DC0_H0_VM9'; did you mean 'DC0_H0_VM0', 'DC0_H0_VM1'? Pass it with --vm",
            None,
        ),
        (
            &["--vm", "DC0_H0_VM0", "--nic", "e1000", "--datastore", "LocalDS_9"],
            "no datastore named 'LocalDS_9'; did you mean 'LocalDS_0'? Pass it with --datastore",
            None,
        ),
        (
            &["--vm", "DC0_H0_VM0", "--nic", "vmxnet3"],
            "VM 'DC0_H0_VM0' ethernet0 is e1000 (VirtualE1000), not vmxnet3 (its adapters: ethernet0 e1000): deploy the e1000 ROM with --nic e1000",
            None,
        ),
        (
            &["--vm", "DC0_H0_VM1", "--nic", "vmxnet3"],
            "VM 'DC0_H0_VM1' has no ethernet0 (its adapters: ethernet1 vmxnet3); pass --ethernet N",
            None,
        ),
        (
            &["--vm", "DC0_C0_RP0_VM1", "--nic", "e1000"],
            "boots with EFI firmware, where a BIOS option ROM never runs; pass --set-bios-firmware",
            None,
        ),
        (
            &["--vm", "DC0_H0_VM0", "--nic", "e1000", "--chain", "https://boot.example/x"],
            "HTTPS is cut from this ROM",
            None,
        ),
        (
            &["--vm", "DC0_H0_VM0", "--nic", "e1000", "--chain", "http://boot.example/a b"],
            "whitespace",
            None,
        ),
        (
            &["--vm", "DC0_H0_VM0", "--nic", "e1000", "--scriptlet", "chain x\rreboot"],
            "--scriptlet has a control character, U+000D, at character 8",
            None,
        ),
        (
            &["--vm", "DC0_H0_VM0", "--nic", "e1000", "--ethernet", "12"],
            "--ethernet 12: a VM has ethernet0 to ethernet9",
            None,
        ),
    ];
    let session = w.session();
    let watched = ["DC0_H0_VM0", "DC0_C0_RP0_VM1", "DC0_H0_VM1"];
    let before: Vec<_> = watched
        .iter()
        .map(|n| session.find_vm(n).unwrap())
        .collect();
    for (args, want, password) in cases {
        let out = match password {
            Some(p) => w.deploy_with_password(p, args),
            None => w.deploy(args),
        };
        let err = fails_with(&out, want);
        eprintln!("{err}");
    }
    for (vm, old) in watched.iter().zip(&before) {
        let now = session.find_vm(vm).unwrap();
        assert_eq!(now.extra_config, old.extra_config, "{vm} was changed");
        assert_eq!(now.firmware, old.firmware, "{vm} was changed");
    }
    assert!(
        w.datastore_file("vsphere-ipxe-rom").is_none(),
        "no ROM was uploaded by a refused deploy"
    );
    session.logout().unwrap();
}

#[test]
fn an_efi_vm_is_switched_to_bios_only_when_asked() {
    let Some(w) = World::new() else { return };
    let out = w.deploy(&[
        "--vm",
        "DC0_C0_RP0_VM1",
        "--nic",
        "e1000",
        "--set-bios-firmware",
    ]);
    ok(&out);
    assert!(
        stdout(&out).contains("set       firmware = bios  (was efi)"),
        "{}",
        stdout(&out)
    );
    let vm = w.session().find_vm("DC0_C0_RP0_VM1").unwrap();
    assert_eq!(vm.firmware, "bios");
    assert_eq!(vm.extra_config["guestinfo.ipxe.net0.ip"], "10.0.0.11");
}

#[test]
fn ethernet_n_is_the_adapter_on_pci_unit_7_plus_n() {
    let Some(w) = World::new() else { return };
    // DC0_H0_VM1's ethernet0 was removed: its one adapter is ethernet1 (unit 8, key 4001).
    let session = w.session();
    let vm = session.find_vm("DC0_H0_VM1").unwrap();
    assert_eq!(
        vm.nics.clone().into_iter().collect::<Vec<_>>(),
        [(1, "VirtualVmxnet3".to_string())]
    );
    let out = w.deploy(&["--vm", "DC0_H0_VM1", "--nic", "vmxnet3", "--ethernet", "1"]);
    ok(&out);
    let vm = session.find_vm("DC0_H0_VM1").unwrap();
    assert_eq!(vm.extra_config["ethernet1.opromsize"], "65536");
    assert!(vm.extra_config["nx3bios.filename"].ends_with("/15ad07b0.rom"));
    assert!(!vm.extra_config.contains_key("ethernet0.opromsize"));
    session.logout().unwrap();
}

#[test]
fn a_vm_changed_between_plan_and_apply_is_left_alone() {
    use xtask::vm::{
        deployment::{self, Rom, Target},
        network::Network,
    };
    let Some(w) = World::new() else { return };
    let nic = xtask::nic::Nic::by_name("e1000").unwrap();
    let rom = Rom::load(&w.project.path("roms/vmware/8086100f.rom"), nic).unwrap();
    let target = Target {
        vm: "DC0_H0_VM0".into(),
        datastore: "LocalDS_0".into(),
        nic,
        ethernet: 0,
        network: Network::parse(
            "10.0.0.11/24",
            "10.0.0.1",
            "10.0.0.200",
            "http://boot.example/boot.ipxe",
            None,
        )
        .unwrap(),
        set_bios: false,
    };
    let session = w.session();
    let plan = deployment::plan(&session, &target, &rom).unwrap();
    assert!(
        plan.vm.change_version.is_some(),
        "the plan holds the VM's changeVersion"
    );

    // Someone else reconfigures the VM before deploy applies its plan.
    let other = w.session();
    let vm = other.find_vm("DC0_H0_VM0").unwrap();
    let note = BTreeMap::from([("guestinfo.someone.else".to_string(), "1".to_string())]);
    let task = other.reconfigure(&vm, &note, None).unwrap();
    other
        .wait(&task, std::time::Duration::from_secs(30))
        .unwrap();

    let err = format!(
        "{:#}",
        deployment::apply(&session, &plan, &rom, false).unwrap_err()
    );
    assert!(
        err.contains("VM 'DC0_H0_VM0' was changed by someone else after deploy read it")
            && err.contains("run deploy again"),
        "{err}"
    );
    let now = session.find_vm("DC0_H0_VM0").unwrap();
    assert_eq!(
        now.extra_config
            .get("guestinfo.someone.else")
            .map(String::as_str),
        Some("1")
    );
    assert!(
        !now.extra_config.contains_key("guestinfo.ipxe.net0.ip"),
        "the stale plan set nothing"
    );

    // Planned again, against the VM as it is now, it goes through and keeps the other change.
    let plan = deployment::plan(&session, &target, &rom).unwrap();
    deployment::apply(&session, &plan, &rom, false).unwrap();
    let now = session.find_vm("DC0_H0_VM0").unwrap();
    assert_eq!(now.extra_config["guestinfo.ipxe.net0.ip"], "10.0.0.11");
    assert_eq!(now.extra_config["guestinfo.someone.else"], "1");
    session.logout().unwrap();
    other.logout().unwrap();
}

/// Issue 33: connection settings refused before any connection (user info in --url, a host
/// that parsers read differently, a password on standard input over 4 KiB, a FIFO as the CA
/// file) leave the VM and the datastore as they were.
#[test]
fn refused_connection_settings_leave_the_vm_as_it_was() {
    let Some(w) = World::new() else { return };
    let session = w.session();
    let before = session.find_vm("DC0_H0_VM0").unwrap();
    let port = w
        .vcsim
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/sdk");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let long = dir.path().join("password");
    std::fs::write(&long, "x".repeat(5 << 10)).unwrap();
    let user_url = format!(
        "https://{}@127.0.0.1:{port}/sdk",
        crate::support::vcsim::USER
    );
    let short_host = format!("https://127.1:{port}/sdk");
    let fifo = fifo.to_str().unwrap();
    let cases: [(&[&str], &str, &str); 4] = [
        (&["--url", &user_url], "", "--url carries a user name"),
        (&[], &short_host, "GOVC_URL names the host '127.1'"),
        (
            &["--password-stdin"],
            "",
            "the password on standard input is over 4 KiB",
        ),
        (&["--ca-file", fifo], "", "is not a regular file"),
    ];
    for (extra, govc_url, want) in cases {
        let mut args = vec!["--vm", "DC0_H0_VM0", "--nic", "e1000"];
        args.extend_from_slice(extra);
        let out = w.deploy_with(crate::support::vcsim::PASSWORD, &args, |cmd| {
            if !govc_url.is_empty() {
                cmd.env("GOVC_URL", govc_url);
            }
            cmd.stdin(std::fs::File::open(&long).unwrap());
        });
        fails_with(&out, want);
    }
    let now = session.find_vm("DC0_H0_VM0").unwrap();
    assert_eq!(now.extra_config, before.extra_config, "the VM was changed");
    assert_eq!(now.firmware, before.firmware, "the VM was changed");
    assert!(
        w.datastore_file("vsphere-ipxe-rom").is_none(),
        "no ROM was uploaded by a refused deploy"
    );
    session.logout().unwrap();
}
