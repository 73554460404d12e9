//! `cargo xtask release`: every profile and NIC, built in the container, checked, verified and
//! held to its size budget, then packed into a reproducible tarball with provenance.

use std::path::PathBuf;

use anyhow::Result;
use xtask::{
    builder::runtime::RuntimeChoice,
    ops::{release, How},
};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Release version, used in names: dist/vsphere-ipxe-rom-<VERSION>/
    #[arg(long)]
    version: String,
    /// Where the release goes [default: dist/]
    #[arg(long, value_name = "DIR")]
    dist: Option<PathBuf>,
    /// Builds run in the container unless told otherwise; native releases are not reproducible elsewhere
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Docker)]
    runtime: RuntimeChoice,
    /// Base image for the builder container instead of the Dockerfile's pinned one
    #[arg(long, env = "VSPHERE_IPXE_ROM_BASE_IMAGE", value_name = "IMAGE")]
    base_image: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    if args.runtime == RuntimeChoice::Native {
        eprintln!("warning: a native release is reproducible only with this machine's toolchain");
    }
    let how = How {
        runtime: args.runtime,
        base_image: args.base_image,
        jobs: How::default_jobs(),
    };
    let dist = args.dist.unwrap_or_else(|| ctx.project.root.join("dist"));
    release::release(&ctx.project, &ctx.cache, &how, &args.version, &dist)
}
