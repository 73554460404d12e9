//! `cargo xtask inspect`: any PCI option ROM, ours or third-party.

use std::{fs, path::PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use xtask::{
    nic::Nic,
    romcheck::{self, CodeType},
};

#[derive(clap::Args)]
pub struct Args {
    /// ROM files to inspect
    #[arg(required = true)]
    roms: Vec<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Entry {
    file: String,
    nic: Option<&'static str>,
    #[serde(flatten)]
    report: romcheck::Report,
}

pub fn run(args: Args) -> Result<()> {
    let mut entries = Vec::new();
    for path in &args.roms {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let first = romcheck::parse(&bytes)
            .ok()
            .and_then(|i| i.into_iter().next());
        let nic = first.as_ref().and_then(|i| Nic::by_pci(i.vendor, i.device));
        let report = match nic {
            Some(nic) => romcheck::check(&bytes, nic, nic.default_limit),
            None => unknown_nic_report(&bytes),
        };
        entries.push(Entry {
            file: path.display().to_string(),
            nic: nic.map(|n| n.name),
            report,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        for e in &entries {
            print_table(e);
        }
    }
    let failed: Vec<&str> = entries
        .iter()
        .filter(|e| !e.report.ok())
        .map(|e| e.file.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} ROM(s) failed their checks: {}",
            failed.len(),
            entries.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// A ROM for a NIC vSphere does not offer: structure checks only, VMware's general limit.
fn unknown_nic_report(bytes: &[u8]) -> romcheck::Report {
    let mut problems = Vec::new();
    let images = romcheck::parse(bytes).unwrap_or_else(|e| {
        problems.push(e.to_string());
        Vec::new()
    });
    for (i, img) in images.iter().enumerate() {
        if img.checksum_ok == Some(false) {
            problems.push(format!("image {} checksum byte is wrong", i + 1));
        }
    }
    romcheck::Report {
        size: bytes.len() as u64,
        limit: xtask::nic::VMWARE_ROM_LIMIT,
        images,
        problems,
    }
}

fn print_table(e: &Entry) {
    let r = &e.report;
    let verdict = if r.ok() { "ok" } else { "FAIL" };
    println!(
        "{}: {} bytes, limit {} ({}), headroom {}: {verdict}",
        e.file,
        r.size,
        r.limit,
        e.nic.unwrap_or("no vSphere NIC"),
        r.headroom()
    );
    for (i, img) in r.images.iter().enumerate() {
        let code = match (img.code_type, &img.efi) {
            (CodeType::Efi, Some(efi)) => format!(
                "efi {} {}{}",
                efi.machine_name(),
                efi.subsystem_name(),
                if efi.compressed { " compressed" } else { "" }
            ),
            (CodeType::X86Legacy, _) => "x86 legacy".to_string(),
            (other, _) => format!("{other:?}"),
        };
        let sum = match img.checksum_ok {
            Some(true) => ", checksum ok",
            Some(false) => ", CHECKSUM BAD",
            None => "",
        };
        let devices = if img.device_list.is_empty() {
            String::new()
        } else {
            format!(
                ", devices {}",
                img.device_list
                    .iter()
                    .map(|d| format!("{d:04x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        println!(
            "  image {}: @{:#07x} {:>6} bytes {:04x}:{:04x} {code}{sum}{devices}{}",
            i + 1,
            img.offset,
            img.length,
            img.vendor,
            img.device,
            if img.last { ", last" } else { "" }
        );
    }
    for p in &r.problems {
        println!("  problem: {p}");
    }
}
