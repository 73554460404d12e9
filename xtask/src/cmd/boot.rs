//! `cargo xtask boot-test`: the ROMs really boot in QEMU: with DHCP, with an embedded static-IP
//! script, and configured by guestinfo alone, as on vSphere.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use xshell::Shell;
use xtask::{
    boot::qemu::{self, Boot, Ending, Guestinfo, Outcome, Server},
    builder::pipeline,
    check::romcheck,
    nic::{self, Nic},
    output::emit,
    util::TempDir,
    vm::vmconfig::{self, Request},
};

use crate::{cmd::build_rom::RuntimeArgs, Ctx};

/// Addresses of QEMU's user network, as a vSphere admin would put them in guestinfo.
const GUEST_IP: &str = "10.0.2.15";
const GUEST_PREFIX: u8 = 24;
const GUEST_DNS: &str = "10.0.2.3";

/// The keys every guestinfo boot must read; the check that the ROM reads what `vmx` writes.
const GUESTINFO_READ: &[&str] = &[
    "guestinfo.ipxe.scriptlet",
    "guestinfo.ipxe.filename",
    "guestinfo.ipxe.net0.ip",
    "guestinfo.ipxe.net0.netmask",
    "guestinfo.ipxe.net0.gateway",
    "guestinfo.ipxe.dns",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum BootPath {
    /// The release ROM, configured by QEMU's DHCP server
    Dhcp,
    /// A test build of the default profile with an embedded static-IP script
    Static,
    /// The release ROM, configured by guestinfo alone (emulated GuestRPC), no DHCP
    Guestinfo,
    /// Guestinfo cases that must end cleanly: no keys (falls back to DHCP), a 404 chain target,
    /// an unparseable net0.ip
    Faults,
}

#[derive(clap::Args)]
pub struct Args {
    /// NICs whose ROMs to boot
    #[arg(long, default_value = "all", value_delimiter = ',')]
    nic: Vec<String>,
    /// Boot these ROM files instead, e.g. third-party ROMs or a release from elsewhere
    #[arg(long, value_name = "FILE")]
    rom: Vec<PathBuf>,
    /// QEMU device for a --rom whose PCI id is not a vSphere NIC's (e.g. e1000 for 8086:100e)
    #[arg(long)]
    device: Option<String>,
    /// Which boots to run [default: all four; with --rom, dhcp]
    #[arg(long, value_enum, value_delimiter = ',')]
    path: Vec<BootPath>,
    /// Boot file URL QEMU's DHCP hands out instead of this server's /boot.ipxe (e.g. an HTTPS
    /// server you run; its script should report to http://10.0.2.2:PORT/report/...)
    #[arg(long, value_name = "URL")]
    bootfile: Option<String>,
    /// Guestinfo keys as `cargo xtask vmx --format json` prints them, instead of keys made for
    /// QEMU's network (ip 10.0.2.15/24, gateway 10.0.2.2, dns 10.0.2.3, this server's script)
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Port of the HTTP server on 127.0.0.1 (the guest sees 10.0.2.2)
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// Seconds before a boot that has not ended is stopped
    #[arg(long, default_value_t = 90)]
    timeout: u64,
    /// QEMU accelerator (tcg, or kvm where nested KVM works)
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// Keep each boot's pcap, screen and GuestRPC log in this directory
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    #[command(flatten)]
    how: RuntimeArgs,
}

/// What a boot must do to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Fetch the script and report back (this address, if given), with or without DHCP.
    Report { ip: Option<String>, dhcp: bool },
    /// End before the time limit with iPXE's error on screen, and without reporting.
    Fail { requested: Option<String> },
}

struct Case {
    label: String,
    path: &'static str,
    rom: PathBuf,
    device: String,
    /// QEMU's DHCP boot file; None turns the boot file off (DHCP itself stays on).
    bootfile: Option<String>,
    keys: Option<BTreeMap<String, String>>,
    expect: Expect,
    /// HTTP requests the pcap must show on this server's port.
    http: usize,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let paths: BTreeSet<BootPath> = match (args.path.is_empty(), args.rom.is_empty()) {
        (false, _) => args.path.iter().copied().collect(),
        (true, true) => [
            BootPath::Dhcp,
            BootPath::Static,
            BootPath::Guestinfo,
            BootPath::Faults,
        ]
        .into(),
        (true, false) => [BootPath::Dhcp].into(),
    };
    if !args.rom.is_empty() && paths.contains(&BootPath::Static) {
        bail!("--path static boots a test build of its own and cannot boot a --rom; leave it out");
    }
    let server = Server::start(args.port)?;
    let scratch = TempDir::new("vsphere-ipxe-rom-boot-")?;
    let work = args.keep.clone().unwrap_or(scratch.path().to_path_buf());
    let ours = format!("http://{}:{}/", qemu::HOST_FROM_GUEST, server.port);
    let bootfile = args
        .bootfile
        .clone()
        .unwrap_or_else(|| format!("{ours}boot.ipxe"));
    let user_keys = args.keys.as_deref().map(load_keys).transpose()?;

    let mut roms: Vec<(String, PathBuf, String)> = Vec::new();
    let sh = Shell::new()?;
    if args.rom.is_empty() {
        let nics = nic::select(&args.nic)?;
        let release = pipeline::build(&sh, &args.how.request(ctx, "vmware", nics.clone(), false))?;
        let dir = work.join("release");
        emit::write(&dir, &release.files(), &release.manifest)?;
        for rom in &release.roms {
            let label = format!("{}/{}", release.manifest.profile.name, rom.nic.name);
            roms.push((label, dir.join(&rom.file_name), rom.nic.qemu_device.into()));
        }
    } else {
        for rom in &args.rom {
            let label = rom.file_name().unwrap_or_default().to_string_lossy();
            roms.push((
                label.into_owned(),
                rom.clone(),
                device_for(rom, &args.device)?,
            ));
        }
    }

    let mut cases = Vec::new();
    let dhcp_http = if args.bootfile.is_some() { 1 } else { 2 };
    for (label, rom, device) in &roms {
        let case = |path, bootfile, keys, expect, http| Case {
            label: label.clone(),
            path,
            rom: rom.clone(),
            device: device.clone(),
            bootfile,
            keys,
            expect,
            http,
        };
        if paths.contains(&BootPath::Dhcp) {
            let expect = Expect::Report {
                ip: None,
                dhcp: true,
            };
            cases.push(case(
                "dhcp",
                Some(bootfile.clone()),
                None,
                expect,
                dhcp_http,
            ));
        }
        if paths.contains(&BootPath::Guestinfo) {
            let keys = match &user_keys {
                Some(k) => k.clone(),
                None => qemu_keys(rom, device_nic(rom)?, &ours)?,
            };
            let ip = keys.get("guestinfo.ipxe.net0.ip").cloned();
            let http = if keys
                .get("guestinfo.ipxe.filename")
                .is_some_and(|f| f.starts_with(&ours))
            {
                2
            } else {
                1
            };
            let expect = Expect::Report { ip, dhcp: false };
            cases.push(case("guestinfo", None, Some(keys), expect, http));
        }
    }
    if paths.contains(&BootPath::Static) {
        let nics = nic::select(&args.nic)?;
        let profile = static_profile(ctx, server.port)?;
        let request = args
            .how
            .request(ctx, profile.to_str().unwrap_or_default(), nics, false);
        let built = pipeline::build(&sh, &request)?;
        let dir = qemu::workdir(&work, "static")?;
        for rom in &built.roms {
            let path = dir.join(&rom.file_name);
            fs::write(&path, &rom.bytes)?;
            cases.push(Case {
                label: format!("vmware/{}", rom.nic.name),
                path: "static",
                rom: path,
                device: rom.nic.qemu_device.into(),
                bootfile: None,
                keys: None,
                expect: Expect::Report {
                    ip: Some(GUEST_IP.into()),
                    dhcp: false,
                },
                http: 2,
            });
        }
    }
    if paths.contains(&BootPath::Faults) {
        let (label, rom, device) = roms.first().context("no ROM to boot")?;
        let base = match &user_keys {
            Some(k) => k.clone(),
            None => qemu_keys(rom, device_nic(rom)?, &ours)?,
        };
        cases.extend(fault_cases(label, rom, device, &base, &bootfile, &ours));
    }

    println!(
        "{:<22} {:<10} {:<7} {:<15} {:>8} {:>5} {:>5} {:>6} {:>9}",
        "rom", "path", "booted", "address", "first-req", "dhcp", "http", "rpc", "backdoor"
    );
    let mut sites: HashMap<PathBuf, BTreeSet<u64>> = HashMap::new();
    let mut failed = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = qemu::workdir(&work, &format!("boot-{i}-{}", case.path))?;
        let timeout = Duration::from_secs(args.timeout);
        if case.keys.is_some() && !sites.contains_key(&case.rom) {
            let found =
                qemu::find_backdoor_sites(&case.rom, &case.device, &dir, &args.accel, timeout)?;
            sites.insert(case.rom.clone(), found);
        }
        let attempt = || {
            qemu::run(
                &Boot {
                    rom: &case.rom,
                    device: &case.device,
                    bootfile: case.bootfile.clone(),
                    workdir: &dir,
                    timeout,
                    accel: &args.accel,
                    guestinfo: case.keys.as_ref().map(|keys| Guestinfo {
                        keys,
                        sites: &sites[&case.rom],
                    }),
                },
                &server,
            )
        };
        let mut outcome = attempt()?;
        // Under heavy load SeaBIOS has been seen to skip the option ROM; a ROM that never reaches
        // the network gets one more try, and the table says so.
        let mut note = "";
        let expect_request = matches!(case.expect, Expect::Report { .. }) && case.http > 1;
        if outcome.first_request.is_none() && expect_request {
            outcome = attempt()?;
            note = " (second try)";
        }
        if args.keep.is_some() {
            keep(&dir, case, &outcome)?;
        }
        print_row(case, &outcome, note);
        let problems = judge(case, &outcome);
        if let Expect::Fail { .. } = case.expect {
            if problems.is_empty() {
                println!(
                    "  ended as it should: {}: {}",
                    outcome.ended.describe(),
                    outcome.ipxe_error().unwrap_or_default()
                );
            }
        }
        if !problems.is_empty() {
            println!(
                "  {}; last screen:\n{}",
                problems.join("; "),
                indent(&outcome.screen)
            );
            failed.push(format!("{} ({})", case.label, case.path));
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} boot(s) failed: {}",
            failed.len(),
            cases.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The keys `vmx` would print for this ROM on QEMU's user network, through the same library
/// call: what users paste into Terraform decides what the ROM reads here.
fn qemu_keys(rom: &Path, nic: &'static Nic, ours: &str) -> Result<BTreeMap<String, String>> {
    let (facts, https) = vmconfig::rom_facts(rom, nic)?;
    let file = rom.file_name().unwrap_or_default().to_string_lossy();
    vmconfig::keys(&Request {
        nic,
        ethernet: 0,
        rom_path: format!("/vmfs/volumes/datastore1/vsphere-ipxe-rom/{file}"),
        ip: format!("{GUEST_IP}/{GUEST_PREFIX}"),
        gateway: qemu::HOST_FROM_GUEST.into(),
        dns: GUEST_DNS.into(),
        chain: format!("{ours}boot.ipxe"),
        scriptlet: None,
        rom: Some(facts),
        rom_has_https: https,
    })
}

/// A VM without keys must still boot (DHCP); a chain target that answers 404 and an address
/// iPXE cannot parse must end with iPXE's error, not hang.
fn fault_cases(
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

fn judge(case: &Case, outcome: &Outcome) -> Vec<String> {
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
    }
    // A boot configured by guestinfo alone must have read every key `vmx` writes for it.
    let static_from_guestinfo = matches!(case.expect, Expect::Report { dhcp: false, .. });
    if let (Some(bd), true) = (&outcome.backdoor, static_from_guestinfo) {
        let asked = bd.keys_asked();
        let missing: Vec<&str> = GUESTINFO_READ
            .iter()
            .copied()
            .filter(|k| !asked.contains(k))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "the ROM never asked for {} over GuestRPC ({} backdoor calls caught)",
                missing.join(", "),
                bd.calls
            ));
        }
    }
    problems
}

fn print_row(case: &Case, outcome: &Outcome, note: &str) {
    let first = outcome
        .first_request
        .map_or("-".to_string(), |d| format!("{:.1}s", d.as_secs_f64()));
    let (rpc, calls) = outcome
        .backdoor
        .as_ref()
        .map_or(("-".into(), "-".into()), |b| {
            (b.commands.len().to_string(), b.calls.to_string())
        });
    println!(
        "{:<22} {:<10} {:<7} {:<15} {:>8} {:>5} {:>5} {:>6} {:>9}{note}",
        case.label,
        case.path,
        if outcome.reported.is_some() {
            "yes"
        } else {
            "no"
        },
        outcome.reported.as_deref().unwrap_or("-"),
        first,
        outcome.dhcp_packets,
        outcome.http_requests,
        rpc,
        calls
    );
}

/// Writes what a person needs to look into a boot: the screen, the VM's keys and every
/// GuestRPC command.
fn keep(dir: &Path, case: &Case, outcome: &Outcome) -> Result<()> {
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
fn load_keys(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read --keys {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "--keys {} is not a JSON object of strings, as `cargo xtask vmx --format json` prints",
            path.display()
        )
    })
}

/// The vSphere NIC a ROM file is for, by its PCI id.
fn device_nic(rom: &Path) -> Result<&'static Nic> {
    let (vendor, device) = pci_id(rom)?;
    Nic::by_pci(vendor, device).with_context(|| {
        format!(
            "{} is for PCI id {vendor:04x}:{device:04x}, not a vSphere NIC: pass --device with its \
             QEMU device (guestinfo boots need a vSphere NIC's ROM)",
            rom.display()
        )
    })
}

fn device_for(rom: &Path, device: &Option<String>) -> Result<String> {
    match device {
        Some(d) => Ok(d.clone()),
        None => Ok(device_nic(rom)?.qemu_device.to_string()),
    }
}

fn pci_id(rom: &Path) -> Result<(u16, u16)> {
    let bytes = fs::read(rom).with_context(|| format!("cannot read {}", rom.display()))?;
    let first = romcheck::parse(&bytes)
        .with_context(|| format!("{} is not an option ROM", rom.display()))?;
    Ok((first[0].vendor, first[0].device))
}

/// The default profile plus an embedded script that configures net0 statically, kept at a stable
/// path in the cache so that its build is cached between runs.
fn static_profile(ctx: &Ctx, port: u16) -> Result<PathBuf> {
    let dir = ctx.cache.area("boot-test")?;
    let base = fs::read_to_string(ctx.project.configs().join("vmware.toml"))
        .context("cannot read configs/vmware.toml")?;
    fs::write(dir.join("boot-static.ipxe"), qemu::static_script(port))?;
    let path = dir.join("vmware-boottest.toml");
    let text = format!("# written by cargo xtask boot-test\nembed = \"boot-static.ipxe\"\n{base}");
    xtask::util::write_if_changed(&path, text.as_bytes())?;
    Ok(path)
}

fn indent(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("    | {l}"))
        .collect();
    if lines.is_empty() {
        "    (blank)".into()
    } else {
        lines.join("\n")
    }
}
