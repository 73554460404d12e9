//! `cargo xtask verify`: rebuild from scratch elsewhere and compare with published sums.

use std::path::PathBuf;

use anyhow::Result;
use xtask::{
    ops::{verify, DEFAULT_PROFILE},
    record::SUMS,
};

use crate::{cmd::RuntimeArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// Profile to rebuild
    #[arg(long, default_value = DEFAULT_PROFILE)]
    profile: String,
    /// Published SHA256SUMS to compare with [default: roms/<profile>/SHA256SUMS]
    #[arg(long, value_name = "FILE")]
    against: Option<PathBuf>,
    #[command(flatten)]
    how: RuntimeArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let sums_file = args
        .against
        .unwrap_or_else(|| ctx.project.roms(&args.profile).join(SUMS));
    verify::verify(
        &ctx.project,
        &ctx.cache,
        &args.how.how(),
        &args.profile,
        &sums_file,
    )
}
