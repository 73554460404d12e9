//! `cargo xtask check-size`: fail CI when a ROM grows past its budget in `roms/budget.toml`.

use anyhow::Result;
use xtask::ops::check_size;

use crate::{cmd::RuntimeArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// Only this profile [default: every profile in the budget; with --update, vmware too]
    #[arg(long)]
    profile: Option<String>,
    /// Rewrite the budget's sizes and objects from this build, deliberately
    #[arg(long)]
    update: bool,
    #[command(flatten)]
    how: RuntimeArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    check_size::check_size(
        &ctx.project,
        &ctx.cache,
        &args.how.how(),
        args.profile.as_deref(),
        args.update,
    )
}
