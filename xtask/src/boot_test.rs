//! `cargo xtask boot-test`: the ROMs really boot in QEMU, with DHCP and without.

use std::{fs, path::PathBuf, time::Duration};

use anyhow::{bail, Context, Result};
use xshell::Shell;
use xtask::{
    boot::{self, Boot, Server},
    nic::{self, Nic},
    pipeline, romcheck,
};

use crate::{build_rom::RuntimeArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// NICs whose ROMs to boot
    #[arg(long, default_value = "all", value_delimiter = ',')]
    nic: Vec<String>,
    /// Boot these ROM files instead (DHCP path only), e.g. third-party ROMs
    #[arg(long, value_name = "FILE")]
    rom: Vec<PathBuf>,
    /// QEMU device for a --rom whose PCI id is not a vSphere NIC's (e.g. e1000 for 8086:100e)
    #[arg(long)]
    device: Option<String>,
    /// Boot file URL QEMU's DHCP hands out instead of this server's /boot.ipxe (e.g. an HTTPS
    /// server you run; its script should report to http://10.0.2.2:PORT/report/...)
    #[arg(long, value_name = "URL")]
    bootfile: Option<String>,
    /// Port of the HTTP server on 127.0.0.1 (the guest sees 10.0.2.2)
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// Seconds before a boot that has not powered off is stopped
    #[arg(long, default_value_t = 90)]
    timeout: u64,
    /// QEMU accelerator (tcg, or kvm where nested KVM works)
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// Only the DHCP path (skips building the test ROM with an embedded static-IP script)
    #[arg(long)]
    dhcp_only: bool,
    #[command(flatten)]
    how: RuntimeArgs,
}

struct Case {
    label: String,
    rom: PathBuf,
    device: String,
    dhcp: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let server = Server::start(args.port)?;
    let work = tempfile::Builder::new()
        .prefix("vsphere-ipxe-rom-boot-")
        .tempdir()?;
    let bootfile = args
        .bootfile
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}/boot.ipxe", boot::HOST_FROM_GUEST, server.port));
    let mut cases = Vec::new();
    if !args.rom.is_empty() {
        for rom in &args.rom {
            let bytes = fs::read(rom).with_context(|| format!("cannot read {}", rom.display()))?;
            let first = romcheck::parse(&bytes)
                .with_context(|| format!("{} is not an option ROM", rom.display()))?;
            let device = match (Nic::by_pci(first[0].vendor, first[0].device), &args.device) {
                (_, Some(d)) => d.clone(),
                (Some(nic), None) => nic.qemu_device.to_string(),
                (None, None) => bail!(
                    "{} is for PCI id {:04x}:{:04x}, not a vSphere NIC: pass --device with its QEMU device",
                    rom.display(),
                    first[0].vendor,
                    first[0].device
                ),
            };
            let label = rom
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            cases.push(Case {
                label,
                rom: rom.clone(),
                device,
                dhcp: true,
            });
        }
    } else {
        let sh = Shell::new()?;
        let nics = nic::select(&args.nic)?;
        let release = pipeline::build(&sh, &args.how.request(ctx, "vmware", nics.clone(), false))?;
        for rom in &release.roms {
            let path = boot::workdir(work.path(), "release")?.join(&rom.file_name);
            fs::write(&path, &rom.bytes)?;
            cases.push(Case {
                label: rom.nic.name.into(),
                rom: path,
                device: rom.nic.qemu_device.into(),
                dhcp: true,
            });
        }
        if !args.dhcp_only {
            let profile = static_profile(ctx, server.port)?;
            let built = pipeline::build(
                &sh,
                &args
                    .how
                    .request(ctx, profile.to_str().unwrap_or_default(), nics, false),
            )?;
            for rom in &built.roms {
                let path = boot::workdir(work.path(), "static")?.join(&rom.file_name);
                fs::write(&path, &rom.bytes)?;
                cases.push(Case {
                    label: rom.nic.name.into(),
                    rom: path,
                    device: rom.nic.qemu_device.into(),
                    dhcp: false,
                });
            }
        }
    }

    println!(
        "{:<20} {:<8} {:<7} {:>14} {:>5} {:>5}",
        "rom", "path", "booted", "first request", "dhcp", "http"
    );
    let mut failed = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = boot::workdir(work.path(), &format!("boot-{i}"))?;
        let attempt = || {
            boot::run(
                &Boot {
                    rom: &case.rom,
                    device: &case.device,
                    bootfile: case.dhcp.then(|| bootfile.clone()),
                    workdir: &dir,
                    timeout: Duration::from_secs(args.timeout),
                    accel: &args.accel,
                },
                &server,
            )
        };
        let mut outcome = attempt()?;
        // Under heavy load SeaBIOS has been seen to skip the option ROM; a ROM that never reaches
        // the network gets one more try, and the table says so.
        let mut note = "";
        if outcome.first_request.is_none() && args.bootfile.is_none() {
            outcome = attempt()?;
            note = " (second try)";
        }
        let path = if case.dhcp { "dhcp" } else { "static" };
        let first = outcome
            .first_request
            .map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
        let booted = outcome.reported.is_some();
        println!(
            "{:<20} {:<8} {:<7} {:>14} {:>5} {:>5}{note}",
            case.label,
            path,
            if booted { "yes" } else { "NO" },
            first,
            outcome.dhcp_packets,
            outcome.http_requests
        );
        let mut problems = Vec::new();
        if !booted {
            problems.push("it never reported back".to_string());
        }
        if !case.dhcp && outcome.dhcp_packets > 0 {
            problems.push(format!(
                "the static-IP boot sent {} DHCP packets",
                outcome.dhcp_packets
            ));
        }
        if booted && args.bootfile.is_none() && outcome.http_requests < 2 {
            problems.push(format!(
                "the pcap shows {} HTTP requests, expected 2",
                outcome.http_requests
            ));
        }
        if !problems.is_empty() {
            println!(
                "  {}; last screen:\n{}",
                problems.join("; "),
                indent(&outcome.screen)
            );
            failed.push(format!("{} ({path})", case.label));
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

/// The default profile plus an embedded script that configures net0 statically, kept at a stable
/// path in the cache so that its build is cached between runs.
fn static_profile(ctx: &Ctx, port: u16) -> Result<PathBuf> {
    let dir = ctx.cache.area("boot-test")?;
    let base = fs::read_to_string(ctx.project.configs().join("vmware.toml"))
        .context("cannot read configs/vmware.toml")?;
    fs::write(dir.join("boot-static.ipxe"), boot::static_script(port))?;
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
