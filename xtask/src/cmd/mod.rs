//! One file per command: parse its flags, call the library's operations (`ops`), print. No
//! command calls another, and nothing in the library reaches back in here. The flag groups
//! several commands share are below.

pub mod bench;
pub mod boot;
pub mod build_rom;
pub mod check_size;
pub mod deploy;
pub mod fetch;
pub mod fleet;
pub mod inspect;
pub mod lock_toolchain;
pub mod pin;
pub mod release;
pub mod sizes;
pub mod upstream;
pub mod verify;
pub mod vmx;

use anyhow::Result;
use xtask::{
    builder::runtime::RuntimeChoice,
    nic,
    ops::{build::Request, How, DEFAULT_PROFILE},
    vm::network::{self, Network},
};

use crate::Ctx;

/// How to build: shared by every command that builds.
#[derive(clap::Args)]
pub struct RuntimeArgs {
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,
    /// Base image for the builder container instead of the Dockerfile's pinned one
    #[arg(long, env = "VSPHERE_IPXE_ROM_BASE_IMAGE", value_name = "IMAGE")]
    pub base_image: Option<String>,
    /// Parallel make jobs [default: number of cores]
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

impl RuntimeArgs {
    pub fn how(&self) -> How {
        How {
            runtime: self.runtime,
            base_image: self.base_image.clone(),
            jobs: self.jobs.unwrap_or_else(How::default_jobs),
        }
    }
}

/// What to build.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// NICs to build for: vmxnet3, e1000, e1000e, vlance, or all (vmxnet3, e1000, e1000e)
    #[arg(long, required = true, value_delimiter = ',')]
    pub nic: Vec<String>,
    /// Profile name in configs/, or a path to a profile .toml
    #[arg(long, default_value = DEFAULT_PROFILE)]
    pub profile: String,
    /// Build .mrom images for the NICs that have them (e1000, e1000e), as VMware's howto does
    #[arg(long)]
    pub mrom: bool,
    #[command(flatten)]
    pub how: RuntimeArgs,
}

impl BuildArgs {
    pub fn request(&self, ctx: &Ctx) -> Result<Request> {
        Ok(self.how.how().request(
            &ctx.project,
            &ctx.cache,
            &self.profile,
            nic::select(&self.nic)?,
            self.mrom,
        ))
    }
}

/// What the ROM reads from guestinfo: the static address and the script to chain. `deploy`
/// takes the same flags.
#[derive(clap::Args)]
pub struct NetworkArgs {
    /// Static address with prefix length, e.g. 10.0.0.11/24
    #[arg(long)]
    pub ip: String,
    #[arg(long)]
    pub gateway: String,
    #[arg(long)]
    pub dns: String,
    /// The iPXE script (or image) to chainload, http:// (https:// for a ROM with HTTPS)
    #[arg(long)]
    pub chain: String,
    /// Commands iPXE runs after reading guestinfo
    #[arg(long, default_value = network::DEFAULT_SCRIPTLET)]
    pub scriptlet: String,
}

impl NetworkArgs {
    pub fn parse(&self) -> Result<Network> {
        Network::parse(
            &self.ip,
            &self.gateway,
            &self.dns,
            &self.chain,
            Some(&self.scriptlet),
        )
    }
}
