//! `cargo xtask bench`: speed goals, measured as ratios against plain `make -jN` of the same
//! targets on the same tree.

use anyhow::Result;
use xtask::{
    nic,
    ops::{
        bench::{self, BenchOptions},
        How,
    },
};

use crate::{cmd::RuntimeArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// NICs to build
    #[arg(long, default_value = "all", value_delimiter = ',')]
    nic: Vec<String>,
    /// Also time a cold Docker build against the cold native one (the image is built first, untimed)
    #[arg(long)]
    docker: bool,
    /// Take every measure this many times and report medians (a shared host's speed drifts)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    #[command(flatten)]
    how: RuntimeArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let options = BenchOptions {
        nics: nic::select(&args.nic)?,
        docker: args.docker,
        base_image: args.how.base_image,
        runs: args.runs,
        jobs: args.how.jobs.unwrap_or_else(How::default_jobs),
    };
    bench::bench(&ctx.project, &ctx.cache, &options)
}
