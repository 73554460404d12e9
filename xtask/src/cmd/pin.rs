//! `cargo xtask pin`: move the pin to another upstream commit, for the next release. Imports
//! the tree, checks the patch series on it, and only then rewrites configs/ipxe.toml and
//! rebuilds every profile against the size budget.

use std::path::PathBuf;

use anyhow::Result;
use xtask::ops::{check_size, pin};

use crate::{cmd::RuntimeArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// A tar or tar.gz of the commit (git archive, or GitHub's archive)
    #[arg(long, value_name = "FILE", required_unless_present = "commit")]
    archive: Option<PathBuf>,
    /// The commit: checked against the archive's own record, or downloaded from GitHub
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// Upstream's name for the release, e.g. v2.1.0
    #[arg(long)]
    version: String,
    #[command(flatten)]
    how: RuntimeArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let options = pin::PinOptions {
        archive: args.archive,
        commit: args.commit,
        version: args.version,
    };
    let already = pin::pin(&ctx.project, &ctx.cache, &options)?;
    if !already.is_empty() {
        println!(
            "remove {} from ipxe-patches/series.toml (upstream has them), then run \
             cargo xtask check-size to rebuild every profile against its budget",
            already.join(", ")
        );
        return Ok(());
    }
    check_size::check_size(&ctx.project, &ctx.cache, &args.how.how(), None, false)
}
