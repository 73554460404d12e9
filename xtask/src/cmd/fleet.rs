//! `cargo xtask fleet`: what `deploy` does to one VM, for many: an Ansible playbook over an
//! inventory group, or Terraform for `for_each` over a map of VMs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use xtask::{
    nic::Nic,
    vm::{
        deployment::Rom,
        fleet::{self, Fleet, Format},
    },
};

#[derive(clap::Args)]
pub struct Args {
    /// The VMs' NIC type: vmxnet3, e1000, e1000e or vlance
    #[arg(long)]
    nic: String,
    /// The ROM file to upload (checked against the NIC and its limit)
    #[arg(long)]
    rom: PathBuf,
    /// Which virtual NIC (ethernet<N>) boots
    #[arg(long, default_value_t = 0)]
    ethernet: u8,
    /// iPXE commands run before the chain [default: ifopen net0 && chain ${filename}]
    #[arg(long)]
    scriptlet: Option<String>,
    /// The Ansible inventory group whose hosts are the VMs
    #[arg(long, default_value = "ipxe")]
    group: String,
    #[arg(long, value_enum, default_value_t = Format::Ansible)]
    format: Format,
}

pub fn run(args: Args) -> Result<()> {
    let nic = Nic::by_name(&args.nic)?;
    let rom = Rom::load(&args.rom, nic)?;
    let src = args
        .rom
        .canonicalize()
        .with_context(|| format!("cannot find {}", args.rom.display()))?;
    let text = fleet::render(
        &Fleet {
            nic,
            ethernet: args.ethernet,
            rom: &rom,
            rom_src: &src,
            scriptlet: args.scriptlet,
            group: args.group,
        },
        args.format,
    )?;
    print!("{text}");
    Ok(())
}
