//! `cargo xtask boot-test`: the ROMs really boot in QEMU: with DHCP, with an embedded static-IP
//! script, and configured by guestinfo alone, as on vSphere.

use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Result;
use xtask::{
    nic,
    ops::boot::{self, BootOptions, BootPath},
};

use crate::{cmd::RuntimeArgs, Ctx};

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
    /// Which boots to run [default: all, with os where the boot fixtures are cached; with
    /// --rom, dhcp]
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
    /// Port of the HTTP server on 127.0.0.1 (the guest sees 10.0.2.2) [default: a free port]
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    port: u16,
    /// Base URL of a server of yours (HTTPS, say) that serves --os-dir: the os boots fetch
    /// their scripts, kernel and initrd from it
    #[arg(long, value_name = "URL", requires = "os_dir")]
    os_url: Option<String>,
    /// Where to write the os boots' scripts, kernel and initrd for --os-url's server
    #[arg(long, value_name = "DIR", requires = "os_url")]
    os_dir: Option<PathBuf>,
    /// Seconds before a boot that has not ended is stopped
    #[arg(long, default_value_t = 90)]
    timeout: u64,
    /// QEMU accelerator (tcg, or kvm where nested KVM works)
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// Keep each boot's pcap, screen and GuestRPC log in this directory
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Also put a UDP socket at this loopback address on the guest's network: QEMU sends it
    /// every frame and puts what it sends back on the wire (e.g. a rogue DHCP server's)
    #[arg(long, value_name = "127.0.0.1:PORT")]
    lan_peer: Option<SocketAddr>,
    #[command(flatten)]
    how: RuntimeArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let paths: BTreeSet<BootPath> = args.path.iter().copied().collect();
    let options = BootOptions {
        nics: nic::select(&args.nic)?,
        roms: args.rom,
        device: args.device,
        paths,
        bootfile: args.bootfile,
        keys: args.keys,
        port: args.port,
        os_url: args.os_url,
        os_dir: args.os_dir,
        timeout: Duration::from_secs(args.timeout),
        accel: args.accel,
        keep: args.keep,
        lan_peer: args.lan_peer,
        how: args.how.how(),
    };
    boot::boot_test(&ctx.project, &ctx.cache, &options)
}
