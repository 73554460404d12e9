//! `cargo xtask deploy`: upload a ROM to a datastore and set the VM's keys through the vSphere
//! API, in one reconfiguration.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use xtask::{
    nic::Nic,
    ops::{
        deploy::{self, DeployOptions},
        DEFAULT_PROFILE,
    },
    vm::deployment::Target,
    vm::vsphere::{self, Credentials, Endpoint, Secret},
};

use crate::{cmd::NetworkArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// The VM to configure
    #[arg(long, env = "GOVC_VM")]
    vm: String,
    /// Datastore for the ROM file
    #[arg(long, env = "GOVC_DATASTORE")]
    datastore: String,
    /// The VM's NIC type: vmxnet3, e1000, e1000e or vlance
    #[arg(long)]
    nic: String,
    /// Which virtual NIC (ethernet<N>) boots
    #[arg(long, default_value_t = 0)]
    ethernet: u8,
    /// Profile whose ROM to deploy, from roms/<profile>/
    #[arg(long, default_value = DEFAULT_PROFILE)]
    profile: String,
    /// Deploy this ROM file instead (its manifest.json beside it, if any, is read)
    #[arg(long, value_name = "FILE")]
    rom: Option<PathBuf>,
    #[command(flatten)]
    network: NetworkArgs,
    /// Power the VM on afterwards if it is off
    #[arg(long)]
    power_on: bool,
    /// Switch a VM with EFI firmware to BIOS, which these ROMs need
    #[arg(long)]
    set_bios_firmware: bool,
    /// Print what would change, and change nothing
    #[arg(long)]
    dry_run: bool,
    /// vCenter or ESXi, e.g. https://vcenter.example/sdk [env: GOVC_URL, which may also carry
    /// user:password@; user info in --url is refused, as every user can read a process's flags
    /// and a user@ reads like a host]
    #[arg(long)]
    url: Option<String>,
    #[arg(long, env = "GOVC_USERNAME")]
    username: Option<String>,
    /// Read the password from standard input instead of GOVC_PASSWORD
    #[arg(long)]
    password_stdin: bool,
    /// Skip TLS verification (lab hosts with self-signed certificates)
    #[arg(long, env = "GOVC_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    insecure: bool,
    /// Trust the CA certificates in this PEM file (e.g. vCenter's VMCA root)
    #[arg(long, env = "GOVC_TLS_CA_CERTS", value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let options = DeployOptions {
        target: Target {
            vm: args.vm.clone(),
            datastore: args.datastore.clone(),
            nic: Nic::by_name(&args.nic)?,
            ethernet: args.ethernet,
            network: args.network.parse()?,
            set_bios: args.set_bios_firmware,
        },
        rom: args.rom.clone(),
        profile: args.profile.clone(),
        dry_run: args.dry_run,
        power_on: args.power_on,
    };
    deploy::deploy(&ctx.project, &options, || connection(&args))
}

/// The endpoint and credentials, govc's way. The password comes from GOVC_PASSWORD, the URL,
/// or standard input: never from a flag, where other users of the host could read it.
fn connection(args: &Args) -> Result<(Endpoint, Credentials)> {
    let (raw_url, from_flag) = match &args.url {
        Some(url) => (url.clone(), true),
        None => (
            std::env::var("GOVC_URL").ok().context(
                "no vSphere URL: set GOVC_URL or pass --url https://vcenter.example/sdk",
            )?,
            false,
        ),
    };
    let what = if from_flag { "--url" } else { "GOVC_URL" };
    let (url, url_user, url_password) = vsphere::parse_url(&raw_url, what)?;
    if from_flag && url_password.is_some() {
        bail!(
            "--url carries a password, which every user of this machine can read in the process \
             list; pass the URL without it, and the password in GOVC_PASSWORD or with \
             --password-stdin (GOVC_URL in the environment may carry user:password@)"
        );
    }
    // `https://vc.example@10.0.0.9/sdk` reads as vc.example to a person and logs in at
    // 10.0.0.9: a user name goes in its own flag, where no one mistakes it for the host.
    if from_flag && url_user.is_some() {
        bail!(
            "--url carries a user name (user@ before the host), which a reader can take for the \
             host; pass the URL as https://HOST/sdk and the user with --username or GOVC_USERNAME"
        );
    }
    let username = args
        .username
        .clone()
        .or(url_user)
        .context("no user name: set GOVC_USERNAME or pass --username")?;
    let password = if args.password_stdin {
        Secret::read(std::io::stdin().lock())?
    } else if let Ok(p) = std::env::var("GOVC_PASSWORD") {
        Secret::new(p)
    } else if let Some(p) = url_password {
        p
    } else {
        bail!("no password: set GOVC_PASSWORD, or pass --password-stdin and write it to standard input");
    };
    Ok((
        Endpoint {
            url,
            insecure: args.insecure,
            ca_file: args.ca_file.clone(),
        },
        Credentials { username, password },
    ))
}
