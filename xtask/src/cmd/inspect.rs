//! `cargo xtask inspect`: any PCI option ROM, ours or third-party.

use std::{
    fmt::Write as _,
    io::{self, Write},
    path::PathBuf,
};

use anyhow::{bail, Result};
use serde::Serialize;
use xtask::{
    check::romcheck::{self, CodeType, Image},
    nic::Nic,
    util::escape_for_terminal,
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
    /// The vSphere NIC whose PCI id the first image carries.
    nic: Option<&'static str>,
    size: u64,
    /// VMware's limit for that NIC; none for other ids.
    limit: Option<u64>,
    images: Vec<Img>,
    problems: Vec<String>,
}

/// An image as JSON shows it: PCI ids in hex, as `lspci` writes them.
#[derive(Serialize)]
struct Img {
    pci_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    device_list: Vec<String>,
    #[serde(flatten)]
    image: Image,
}

pub fn run(args: Args) -> Result<()> {
    let mut entries = Vec::new();
    for path in &args.roms {
        let bytes = romcheck::read(path)?;
        entries.push(inspect(path.to_string_lossy().into_owned(), &bytes));
    }
    let text = if args.json {
        serde_json::to_string_pretty(&entries)? + "\n"
    } else {
        table(&entries)
    };
    // A closed pipe (`| head`) is the reader's choice, not an error.
    match io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    let failed: Vec<String> = entries
        .iter()
        .filter(|e| !e.problems.is_empty())
        .map(|e| escape_for_terminal(&e.file))
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

fn inspect(file: String, bytes: &[u8]) -> Entry {
    let first = romcheck::parse(bytes)
        .ok()
        .and_then(|i| i.into_iter().next());
    let nic = first.as_ref().and_then(|i| Nic::by_pci(i.vendor, i.device));
    let (images, problems, limit) = match nic {
        Some(nic) => {
            let r = romcheck::check(bytes, nic, nic.default_limit);
            (r.images, r.problems, Some(nic.default_limit))
        }
        None => {
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
            (images, problems, None)
        }
    };
    let images = images
        .into_iter()
        .map(|image| Img {
            pci_id: format!("{:04x}:{:04x}", image.vendor, image.device),
            device_list: image
                .device_list
                .iter()
                .map(|d| format!("{d:04x}"))
                .collect(),
            image,
        })
        .collect();
    Entry {
        file,
        nic: nic.map(|n| n.name),
        size: bytes.len() as u64,
        limit,
        images,
        problems,
    }
}

fn table(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        let verdict = if e.problems.is_empty() { "ok" } else { "FAIL" };
        let limit = match (e.nic, e.limit) {
            (Some(nic), Some(limit)) => format!(
                "limit {limit} for {nic}, headroom {}",
                limit as i64 - e.size as i64
            ),
            _ => "not a vSphere NIC's PCI id, no size limit".to_string(),
        };
        // A file name can hold anything, an escape sequence too: shown, not obeyed.
        let file = escape_for_terminal(&e.file);
        let _ = writeln!(out, "{file}: {} bytes, {limit}: {verdict}", e.size);
        for (i, img) in e.images.iter().enumerate() {
            let image = &img.image;
            let code = match (image.code_type, &image.efi) {
                (CodeType::Efi, Some(efi)) => format!(
                    "efi {} {}{}",
                    efi.machine_name(),
                    efi.subsystem_name(),
                    if efi.compressed { " compressed" } else { "" }
                ),
                (CodeType::X86Legacy, _) => "x86 legacy".to_string(),
                (other, _) => format!("{other:?}"),
            };
            let sum = match image.checksum_ok {
                Some(true) => ", checksum ok",
                Some(false) => ", CHECKSUM BAD",
                None => "",
            };
            let devices = if img.device_list.is_empty() {
                String::new()
            } else {
                format!(", devices {}", img.device_list.join(" "))
            };
            let _ = writeln!(
                out,
                "  image {}: @{:#07x} {:>6} bytes {} {code}{sum}{devices}{}",
                i + 1,
                image.offset,
                image.length,
                img.pci_id,
                if image.last { ", last" } else { "" }
            );
        }
        for p in &e.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
    }
    out
}
