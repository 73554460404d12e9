//! `cargo xtask vmx`: the VM configuration that boots our ROM, for Terraform, .vmx, govc or JSON.

use std::path::PathBuf;

use anyhow::Result;
use xtask::{
    nic::{Nic, RomFormat},
    vm::vmconfig::{self, Format},
};

use crate::cmd::NetworkArgs;

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
    #[command(flatten)]
    network: NetworkArgs,
    /// The local ROM file: checked against the NIC and its limit, and sets opromsize
    #[arg(long)]
    rom: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Terraform)]
    format: Format,
    /// VM name for govc and PowerCLI [default: govc reads GOVC_VM, PowerCLI $VMName]
    #[arg(long)]
    vm: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let nic = Nic::by_name(&args.nic)?;
    let (rom, rom_has_https) = match &args.rom {
        Some(path) => {
            let (facts, https) = vmconfig::rom_facts(path, nic)?;
            (Some(facts), https)
        }
        None => (None, false),
    };
    let req = vmconfig::Request {
        nic,
        ethernet: args.ethernet,
        rom_path: args.rom_path,
        network: args.network.parse()?,
        rom,
        rom_has_https,
    };
    let keys = vmconfig::keys(&req)?;
    let local_rom = match &args.rom {
        Some(p) => p.display().to_string(),
        None => nic.file_name(RomFormat::Rom),
    };
    let ctx = vmconfig::RenderContext::new(nic, args.ethernet, args.vm, local_rom)?;
    print!("{}", vmconfig::render(&keys, args.format, &ctx));
    Ok(())
}
