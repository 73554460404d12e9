//! The boots `boot-test` runs, and what each must do to pass: the keys a case gives the VM (the
//! ones `vmx` prints), the fault cases, and the judging of a boot's outcome.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{
    boot::os::{self, Script},
    boot::qemu::{self, Ending, Outcome},
    cache::Cache,
    check::romcheck,
    nic::Nic,
    vm::network::Network,
    vm::vmconfig::{self, Request},
};

/// Addresses of QEMU's user network, as a vSphere admin would put them in guestinfo.
pub const GUEST_IP: &str = "10.0.2.15";
pub const GUEST_PREFIX: u8 = 24;
pub const GUEST_DNS: &str = "10.0.2.3";

/// The keys every guestinfo boot must read; the check that the ROM reads what `vmx` writes.
const GUESTINFO_READ: &[&str] = &[
    "guestinfo.ipxe.scriptlet",
    "guestinfo.ipxe.filename",
    "guestinfo.ipxe.net0.ip",
    "guestinfo.ipxe.net0.netmask",
    "guestinfo.ipxe.net0.gateway",
    "guestinfo.ipxe.dns",
];

/// What a boot must do to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Fetch the script and report back (this address, if given), with or without DHCP.
    Report { ip: Option<String>, dhcp: bool },
    /// End before the time limit with iPXE's error on screen, and without reporting.
    Fail { requested: Option<String> },
    /// Boot Linux, whose `/init` reports on the serial console what it was handed; or, where
    /// `fails_because` is set, end before the time limit with that reason named.
    Linux {
        want: LinuxWant,
        dhcp: bool,
        fails_because: Option<&'static str>,
    },
}

/// What Linux's `/init` must report: the settings iPXE had, this run's nonce, and the sha256
/// of the command line the script was meant to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxWant {
    pub ip: String,
    pub gateway: String,
    pub dns: String,
    pub nonce: String,
    pub cmdline_sha256: String,
}

impl LinuxWant {
    pub fn new(ip: &str, gateway: &str, dns: &str, nonce: &str) -> LinuxWant {
        LinuxWant {
            ip: ip.into(),
            gateway: gateway.into(),
            dns: dns.into(),
            nonce: nonce.into(),
            cmdline_sha256: os::cmdline_sha256(&os::cmdline(nonce, ip, gateway, dns)),
        }
    }

    /// What guestinfo keys set, as iPXE hands them on.
    pub fn from_keys(keys: &BTreeMap<String, String>, nonce: &str) -> LinuxWant {
        let key = |k: &str| {
            keys.get(&format!("guestinfo.ipxe.{k}"))
                .map_or("", String::as_str)
        };
        LinuxWant::new(key("net0.ip"), key("net0.gateway"), key("dns"), nonce)
    }

    /// What QEMU's DHCP server hands out.
    pub fn qemu_dhcp(nonce: &str) -> LinuxWant {
        LinuxWant::new(GUEST_IP, qemu::HOST_FROM_GUEST, GUEST_DNS, nonce)
    }
}

pub struct Case {
    pub label: String,
    pub path: &'static str,
    pub rom: PathBuf,
    pub device: String,
    /// QEMU's DHCP boot file; None turns the boot file off (DHCP itself stays on).
    pub bootfile: Option<String>,
    pub keys: Option<BTreeMap<String, String>>,
    pub expect: Expect,
    /// HTTP requests the pcap must show on this server's port.
    pub http: usize,
}

impl Case {
    /// The ROM configured by QEMU's DHCP server, fetching `bootfile`.
    pub fn dhcp(label: &str, rom: &Path, device: &str, bootfile: &str, http: usize) -> Case {
        Case {
            label: label.into(),
            path: "dhcp",
            rom: rom.into(),
            device: device.into(),
            bootfile: Some(bootfile.into()),
            keys: None,
            expect: Expect::Report {
                ip: None,
                dhcp: true,
            },
            http,
        }
    }

    /// The ROM configured by these guestinfo keys alone: no DHCP, the keys' address reported.
    /// Two requests (script and report) where the chain target is this server, else the report.
    pub fn guestinfo(
        label: &str,
        rom: &Path,
        device: &str,
        keys: BTreeMap<String, String>,
        ours: &str,
    ) -> Case {
        let ip = keys.get("guestinfo.ipxe.net0.ip").cloned();
        let ours_chained = keys
            .get("guestinfo.ipxe.filename")
            .is_some_and(|f| f.starts_with(ours));
        Case {
            label: label.into(),
            path: "guestinfo",
            rom: rom.into(),
            device: device.into(),
            bootfile: None,
            keys: Some(keys),
            expect: Expect::Report { ip, dhcp: false },
            http: if ours_chained { 2 } else { 1 },
        }
    }

    /// A test build with the embedded static-IP script: no DHCP, GUEST_IP reported.
    pub fn static_ip(label: &str, rom: &Path, device: &str) -> Case {
        Case {
            label: label.into(),
            path: "static",
            rom: rom.into(),
            device: device.into(),
            bootfile: None,
            keys: None,
            expect: Expect::Report {
                ip: Some(GUEST_IP.into()),
                dhcp: false,
            },
            http: 2,
        }
    }

    /// Linux from `script` under `base`: configured by these guestinfo keys (their filename
    /// replaced by the script's URL), or by DHCP where `keys` is None. `http` counts the
    /// requests this server must see (script, kernel and initrd, where it serves them).
    #[allow(clippy::too_many_arguments)]
    pub fn linux(
        label: &str,
        path: &'static str,
        rom: &Path,
        device: &str,
        keys: Option<&BTreeMap<String, String>>,
        script: String,
        nonce: &str,
        http: usize,
    ) -> Case {
        let want = match keys {
            Some(k) => LinuxWant::from_keys(k, nonce),
            None => LinuxWant::qemu_dhcp(nonce),
        };
        let keys = keys.map(|k| {
            let mut k = k.clone();
            k.insert("guestinfo.ipxe.filename".into(), script.clone());
            k
        });
        Case {
            label: label.into(),
            path,
            rom: rom.into(),
            device: device.into(),
            bootfile: if keys.is_none() { Some(script) } else { None },
            expect: Expect::Linux {
                want,
                dhcp: keys.is_none(),
                fails_because: None,
            },
            keys,
            http,
        }
    }

    /// The same boot, which must end for this reason.
    pub fn failing_because(mut self, reason: &'static str) -> Case {
        if let Expect::Linux { fails_because, .. } = &mut self.expect {
            *fails_because = Some(reason);
        }
        self.http = 0;
        self
    }

    /// Whether the boot must reach this server: a boot that never did gets a second try.
    pub fn expects_requests(&self) -> bool {
        match self.expect {
            Expect::Report { .. } => self.http > 1,
            Expect::Linux { fails_because, .. } => fails_because.is_none() && self.http > 0,
            Expect::Fail { .. } => false,
        }
    }

    /// The address the boot reported: to this server, or from Linux's `/init`.
    pub fn address(&self, outcome: &Outcome) -> Option<String> {
        match self.expect {
            Expect::Linux { .. } => os::Report::find(&outcome.serial).map(|r| r.ip),
            _ => outcome.reported.clone(),
        }
    }
}

/// The OS boots' scripts, each at `<base><name>`, and the reason each failing one must give.
pub const OS_SCRIPTS: &[(&str, Script, Option<&str>)] = &[
    ("os.ipxe", Script::Good, None),
    (
        "os-imgfetch.ipxe",
        Script::FetchWithoutFree,
        Some("could not unpack its initramfs"),
    ),
    (
        "os-no-initrd.ipxe",
        Script::NoInitrd,
        Some("Linux panicked"),
    ),
    (
        "os-cmdline.ipxe",
        Script::WrongCmdline,
        Some("command line"),
    ),
];

/// Why Linux did not boot as wanted, as sentences; empty when `/init` reported every value.
pub fn linux_problems(want: &LinuxWant, dhcp: bool, outcome: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    match os::Report::find(&outcome.serial) {
        None => {
            problems.push(os::linux_failure(&outcome.serial));
            if let Some(e) = outcome.ipxe_error() {
                problems.push(format!("iPXE said: {e}"));
            }
        }
        Some(r) => {
            for (what, got, expected) in [
                ("address", &r.ip, &want.ip),
                ("gateway", &r.gateway, &want.gateway),
                ("dns", &r.dns, &want.dns),
                ("nonce", &r.nonce, &want.nonce),
            ] {
                if got != expected {
                    problems.push(format!("init reported {what} {got}, expected {expected}"));
                }
            }
            if r.cmdline_sha256 != want.cmdline_sha256 {
                problems.push(format!(
                    "init's command line hashes to {}, not to {}, the hash of the command line \
                     the script was meant to pass",
                    r.cmdline_sha256, want.cmdline_sha256
                ));
            }
        }
    }
    if !dhcp && outcome.dhcp_packets > 0 {
        problems.push(format!("it sent {} DHCP packets", outcome.dhcp_packets));
    }
    problems
}

/// The keys `vmx` would print for this ROM on QEMU's user network, chaining `chain`, through
/// the same library call: what users paste into Terraform decides what the ROM reads here.
pub fn qemu_keys(rom: &Path, nic: &'static Nic, chain: &str) -> Result<BTreeMap<String, String>> {
    let (facts, https) = vmconfig::rom_facts(rom, nic)?;
    let file = rom.file_name().unwrap_or_default().to_string_lossy();
    vmconfig::keys(&Request {
        nic,
        ethernet: 0,
        rom_path: format!("/vmfs/volumes/datastore1/vsphere-ipxe-rom/{file}"),
        network: Network::parse(
            &format!("{GUEST_IP}/{GUEST_PREFIX}"),
            qemu::HOST_FROM_GUEST,
            GUEST_DNS,
            chain,
            None,
        )?,
        rom: Some(facts),
        rom_has_https: https,
    })
}

/// A VM without keys must still boot (DHCP); a chain target that answers 404 and an address
/// iPXE cannot parse must end with iPXE's error, not hang.
pub fn fault_cases(
    label: &str,
    rom: &Path,
    device: &str,
    base: &BTreeMap<String, String>,
    bootfile: &str,
    ours: &str,
) -> Vec<Case> {
    let missing = format!("{ours}no-such-script.ipxe");
    let with = |key: &str, value: &str| {
        let mut keys = base.clone();
        keys.insert(key.into(), value.into());
        keys
    };
    let case = |path, bootfile, keys, expect, http| Case {
        label: label.into(),
        path,
        rom: rom.into(),
        device: device.into(),
        bootfile,
        keys: Some(keys),
        expect,
        http,
    };
    vec![
        case(
            "no-keys",
            Some(bootfile.into()),
            BTreeMap::new(),
            Expect::Report {
                ip: None,
                dhcp: true,
            },
            2,
        ),
        case(
            "chain-404",
            None,
            with("guestinfo.ipxe.filename", &missing),
            Expect::Fail {
                requested: Some("/no-such-script.ipxe".into()),
            },
            1,
        ),
        case(
            "bad-ip",
            None,
            with("guestinfo.ipxe.net0.ip", "10.0.2.300"),
            Expect::Fail { requested: None },
            0,
        ),
    ]
}

/// What went wrong in a boot, as sentences; empty when it did what its case expects.
/// A boot configured by guestinfo alone must have read every key `vmx` writes for it.
fn unread_keys(case: &Case, outcome: &Outcome) -> Option<String> {
    let static_from_guestinfo = matches!(
        case.expect,
        Expect::Report { dhcp: false, .. }
            | Expect::Linux {
                dhcp: false,
                fails_because: None,
                ..
            }
    );
    let bd = outcome
        .backdoor
        .as_ref()
        .filter(|_| static_from_guestinfo)?;
    let asked = bd.keys_asked();
    let missing: Vec<&str> = GUESTINFO_READ
        .iter()
        .copied()
        .filter(|k| !asked.contains(k))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the ROM never asked for {} over GuestRPC ({} backdoor calls caught)",
            missing.join(", "),
            bd.calls
        )
    })
}

/// A Linux boot passes when `/init` reported every value; a failing case, when it ended in
/// time with its reason named.
fn judge_linux(
    want: &LinuxWant,
    dhcp: bool,
    fails_because: Option<&str>,
    outcome: &Outcome,
) -> Vec<String> {
    let found = linux_problems(want, dhcp, outcome);
    let Some(reason) = fails_because else {
        return found;
    };
    let mut problems = Vec::new();
    if !found.iter().any(|p| p.contains(reason)) {
        problems.push(format!(
            "this case must fail naming \"{reason}\", but {}",
            if found.is_empty() {
                "it booted".to_string()
            } else {
                found.join("; ")
            }
        ));
    }
    if outcome.ended == Ending::TimedOut && outcome.serial_report.is_none() {
        problems.push("it did not end within the time limit".into());
    }
    problems
}

pub fn judge(case: &Case, outcome: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    match &case.expect {
        Expect::Report { ip, dhcp } => {
            match (&outcome.reported, ip) {
                (None, _) => problems.push(format!(
                    "it never reported back ({})",
                    outcome.ended.describe()
                )),
                (Some(got), Some(want)) if got != want => {
                    problems.push(format!("it reported address {got}, expected {want}"))
                }
                _ => {}
            }
            if !dhcp && outcome.dhcp_packets > 0 {
                problems.push(format!("it sent {} DHCP packets", outcome.dhcp_packets));
            }
            if *dhcp && outcome.dhcp_packets == 0 && outcome.reported.is_some() {
                problems.push("it reported back without DHCP, on a path that needs it".into());
            }
            if outcome.reported.is_some() && outcome.http_requests < case.http {
                problems.push(format!(
                    "the pcap shows {} HTTP requests, expected {}",
                    outcome.http_requests, case.http
                ));
            }
        }
        Expect::Fail { requested } => {
            if outcome.reported.is_some() {
                problems.push("it booted, but this case must fail".into());
            }
            if outcome.ended == Ending::TimedOut {
                problems.push("it did not end within the time limit".into());
            }
            if outcome.ipxe_error().is_none() {
                problems.push("iPXE's error is not on the screen".into());
            }
            if let Some(path) = requested {
                if !outcome.requests.iter().any(|p| p == path) {
                    problems.push(format!("the guest never requested {path}"));
                }
            }
        }
        Expect::Linux {
            want,
            dhcp,
            fails_because,
        } => problems.extend(judge_linux(want, *dhcp, *fails_because, outcome)),
    }
    problems.extend(unread_keys(case, outcome));
    problems
}

/// Writes what a person needs to look into a boot: the screen, the VM's keys and every
/// GuestRPC command.
pub fn keep(dir: &Path, case: &Case, outcome: &Outcome) -> Result<()> {
    fs::write(dir.join("screen.txt"), format!("{}\n", outcome.screen))?;
    if let Some(keys) = &case.keys {
        fs::write(
            dir.join("keys.json"),
            serde_json::to_string_pretty(keys)? + "\n",
        )?;
    }
    if let Some(bd) = &outcome.backdoor {
        let mut log = bd.commands.join("\n");
        log.push('\n');
        fs::write(dir.join("guestrpc.log"), log)?;
    }
    Ok(())
}

/// Reads keys as `vmx --format json` prints them.
pub fn load_keys(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = crate::input::read_text(path, crate::input::KEYS).context("--keys")?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "--keys {} is not a JSON object of strings, as `cargo xtask vmx --format json` prints",
            path.display()
        )
    })
}

/// The vSphere NIC a ROM file is for, by its PCI id.
pub fn device_nic(rom: &Path) -> Result<&'static Nic> {
    let (vendor, device) = pci_id(rom)?;
    Nic::by_pci(vendor, device).with_context(|| {
        format!(
            "{} is for PCI id {vendor:04x}:{device:04x}, not a vSphere NIC: pass --device with its \
             QEMU device (guestinfo boots need a vSphere NIC's ROM)",
            rom.display()
        )
    })
}

/// The QEMU device to boot a ROM on: the one asked for, else its vSphere NIC's.
pub fn device_for(rom: &Path, device: Option<&str>) -> Result<String> {
    match device {
        Some(d) => Ok(d.to_string()),
        None => Ok(device_nic(rom)?.qemu_device.to_string()),
    }
}

fn pci_id(rom: &Path) -> Result<(u16, u16)> {
    let bytes = romcheck::read(rom)?;
    let first = romcheck::parse(&bytes)
        .with_context(|| format!("{} is not an option ROM", rom.display()))?;
    Ok((first[0].vendor, first[0].device))
}

/// The default profile plus an embedded script that configures net0 statically, kept at a stable
/// path in the cache so that its build is cached between runs.
pub fn static_profile(cache: &Cache, configs: &Path, port: u16) -> Result<PathBuf> {
    let dir = cache.area("boot-test")?;
    let base = crate::input::read_text(&configs.join("vmware.toml"), crate::input::TOML)?;
    fs::write(dir.join("boot-static.ipxe"), qemu::static_script(port))?;
    let path = dir.join("vmware-boottest.toml");
    let text = format!("# written by cargo xtask boot-test\nembed = \"boot-static.ipxe\"\n{base}");
    crate::util::write_if_changed(&path, text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::guestrpc::Backdoor;

    fn outcome(reported: Option<&str>, dhcp: usize, asked: &[&str]) -> Outcome {
        let mut bd = Backdoor::new(BTreeMap::new());
        bd.commands = asked.iter().map(|k| format!("info-get {k}")).collect();
        Outcome {
            reported: reported.map(Into::into),
            first_request: None,
            dhcp_packets: dhcp,
            http_requests: 2,
            requests: vec!["/boot.ipxe".into()],
            ended: if reported.is_some() {
                Ending::Reported
            } else {
                Ending::TimedOut
            },
            screen: String::new(),
            backdoor: Some(bd),
            serial: String::new(),
            serial_report: None,
            largest_download: None,
        }
    }

    fn guestinfo_case() -> Case {
        let keys = BTreeMap::from([
            ("guestinfo.ipxe.net0.ip".to_string(), GUEST_IP.to_string()),
            (
                "guestinfo.ipxe.filename".to_string(),
                "http://10.0.2.2:1/boot.ipxe".to_string(),
            ),
        ]);
        Case::guestinfo(
            "vmware/vmxnet3",
            Path::new("r.rom"),
            "vmxnet3",
            keys,
            "http://10.0.2.2:1/",
        )
    }

    #[test]
    fn a_guestinfo_boot_passes_only_without_dhcp_and_having_read_every_key() {
        let case = guestinfo_case();
        assert_eq!((case.http, case.expects_requests()), (2, true));
        assert!(judge(&case, &outcome(Some(GUEST_IP), 0, GUESTINFO_READ)).is_empty());
        assert_eq!(
            judge(&case, &outcome(Some(GUEST_IP), 3, GUESTINFO_READ)),
            ["it sent 3 DHCP packets"]
        );
        let some = &GUESTINFO_READ[..4];
        let problems = judge(&case, &outcome(Some(GUEST_IP), 0, some));
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with(
                "the ROM never asked for guestinfo.ipxe.net0.gateway, guestinfo.ipxe.dns"
            ),
            "{problems:?}"
        );
        let wrong = judge(&case, &outcome(Some("10.0.2.16"), 0, GUESTINFO_READ));
        assert_eq!(wrong, ["it reported address 10.0.2.16, expected 10.0.2.15"]);
    }

    #[test]
    fn a_fault_case_must_end_with_ipxes_error_in_time() {
        let cases = fault_cases(
            "x",
            Path::new("r.rom"),
            "vmxnet3",
            &BTreeMap::new(),
            "http://10.0.2.2:1/boot.ipxe",
            "http://10.0.2.2:1/",
        );
        let names: Vec<&str> = cases.iter().map(|c| c.path).collect();
        assert_eq!(names, ["no-keys", "chain-404", "bad-ip"]);
        let bad_ip = &cases[2];
        let hung = outcome(None, 0, &[]);
        assert_eq!(
            judge(bad_ip, &hung),
            [
                "it did not end within the time limit",
                "iPXE's error is not on the screen"
            ]
        );
        let mut ended = outcome(None, 0, &[]);
        ended.ended = Ending::GaveUp;
        ended.screen = "Network unreachable (https://ipxe.org/280a6011)".into();
        assert!(judge(bad_ip, &ended).is_empty());
        // The 404 case must also have asked for the missing script.
        assert_eq!(
            judge(&cases[1], &ended),
            ["the guest never requested /no-such-script.ipxe"]
        );
    }
}
