//! `cargo xtask boot-test`: the ROMs really boot in QEMU: with DHCP, with an embedded static-IP
//! script, and configured by guestinfo alone, as on vSphere.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    path::PathBuf,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use xshell::Shell;
use xtask::{
    boot::cases::{self, Case, Expect},
    boot::qemu::{self, Boot, Guestinfo, Outcome, Server},
    builder::pipeline,
    nic,
    output::emit,
    util::TempDir,
};

use crate::{cmd::build_rom::RuntimeArgs, Ctx};

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
    let user_keys = args.keys.as_deref().map(cases::load_keys).transpose()?;

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
                cases::device_for(rom, args.device.as_deref())?,
            ));
        }
    }

    let mut boots = Vec::new();
    let dhcp_http = if args.bootfile.is_some() { 1 } else { 2 };
    for (label, rom, device) in &roms {
        if paths.contains(&BootPath::Dhcp) {
            boots.push(Case::dhcp(label, rom, device, &bootfile, dhcp_http));
        }
        if paths.contains(&BootPath::Guestinfo) {
            let keys = match &user_keys {
                Some(k) => k.clone(),
                None => cases::qemu_keys(rom, cases::device_nic(rom)?, &ours)?,
            };
            boots.push(Case::guestinfo(label, rom, device, keys, &ours));
        }
    }
    if paths.contains(&BootPath::Static) {
        let nics = nic::select(&args.nic)?;
        let profile = cases::static_profile(&ctx.cache, &ctx.project.configs(), server.port)?;
        let request = args
            .how
            .request(ctx, profile.to_str().unwrap_or_default(), nics, false);
        let built = pipeline::build(&sh, &request)?;
        let dir = qemu::workdir(&work, "static")?;
        for rom in &built.roms {
            let path = dir.join(&rom.file_name);
            fs::write(&path, &rom.bytes)?;
            let label = format!("vmware/{}", rom.nic.name);
            boots.push(Case::static_ip(&label, &path, rom.nic.qemu_device));
        }
    }
    if paths.contains(&BootPath::Faults) {
        let (label, rom, device) = roms.first().context("no ROM to boot")?;
        let base = match &user_keys {
            Some(k) => k.clone(),
            None => cases::qemu_keys(rom, cases::device_nic(rom)?, &ours)?,
        };
        boots.extend(cases::fault_cases(
            label, rom, device, &base, &bootfile, &ours,
        ));
    }

    println!(
        "{:<22} {:<10} {:<7} {:<15} {:>8} {:>5} {:>5} {:>6} {:>9}",
        "rom", "path", "booted", "address", "first-req", "dhcp", "http", "rpc", "backdoor"
    );
    let mut sites: HashMap<PathBuf, BTreeSet<u64>> = HashMap::new();
    let mut failed = Vec::new();
    for (i, case) in boots.iter().enumerate() {
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
        if outcome.first_request.is_none() && case.expects_requests() {
            outcome = attempt()?;
            note = " (second try)";
        }
        if args.keep.is_some() {
            cases::keep(&dir, case, &outcome)?;
        }
        print_row(case, &outcome, note);
        let problems = cases::judge(case, &outcome);
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
            boots.len(),
            failed.join(", ")
        );
    }
    Ok(())
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
