//! `cargo xtask vmx`: the VM configuration that boots our ROM, for Terraform, .vmx, govc or JSON.

use std::{fs, path::PathBuf};

use anyhow::{Context, Result};
use xtask::{
    emit::{Manifest, MANIFEST},
    nic::Nic,
    romcheck,
    vmconfig::{self, Format, RomFacts},
};

#[derive(clap::Args)]
pub struct Args {
    /// The VM's NIC type: vmxnet3, e1000, e1000e or vlance
    #[arg(long)]
    nic: String,
    /// Which virtual NIC (ethernet<N>) boots
    #[arg(long, default_value_t = 0)]
    ethernet: u8,
    /// The ROM's path on the datastore, e.g. /vmfs/volumes/datastore1/15ad07b0.rom
    #[arg(long)]
    rom_path: String,
    /// Static address with prefix length, e.g. 10.0.0.11/24
    #[arg(long)]
    ip: String,
    #[arg(long)]
    gateway: String,
    #[arg(long)]
    dns: String,
    /// The iPXE script (or image) to chainload, http://
    #[arg(long)]
    chain: String,
    /// Commands iPXE runs after reading guestinfo
    #[arg(long, default_value = vmconfig::DEFAULT_SCRIPTLET)]
    scriptlet: String,
    /// The local ROM file: checked against the NIC and its limit, and sets opromsize
    #[arg(long)]
    rom: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Terraform)]
    format: Format,
    /// VM name for the govc command line
    #[arg(long, default_value = "$VM")]
    vm: String,
}

pub fn run(args: Args) -> Result<()> {
    let nic = Nic::by_name(&args.nic)?;
    let (rom, rom_has_https) = match &args.rom {
        Some(path) => rom_facts(path, nic)?,
        None => (None, false),
    };
    let req = vmconfig::Request {
        nic,
        ethernet: args.ethernet,
        rom_path: args.rom_path,
        ip: args.ip,
        gateway: args.gateway,
        dns: args.dns,
        chain: args.chain,
        scriptlet: Some(args.scriptlet),
        rom,
        rom_has_https,
    };
    let keys = vmconfig::keys(&req)?;
    print!("{}", vmconfig::render(&keys, args.format, &args.vm));
    Ok(())
}

/// The ROM's id and size, and from the manifest beside it (if any) its limit and HTTPS support.
fn rom_facts(path: &PathBuf, nic: &Nic) -> Result<(Option<RomFacts>, bool)> {
    let bytes = fs::read(path).with_context(|| format!("cannot read --rom {}", path.display()))?;
    let images = romcheck::parse(&bytes)
        .with_context(|| format!("--rom {} is not an option ROM", path.display()))?;
    let manifest = path
        .parent()
        .map(|d| d.join(MANIFEST))
        .filter(|m| m.is_file())
        .map(|m| Manifest::load(&m))
        .transpose()?;
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let info = manifest.as_ref().and_then(|m| m.roms.get(&name));
    let facts = RomFacts {
        file: path.display().to_string(),
        vendor: images[0].vendor,
        device: images[0].device,
        size: bytes.len() as u64,
        limit: info.map_or(nic.default_limit, |i| i.limit),
    };
    Ok((Some(facts), info.is_some_and(|i| i.https)))
}
