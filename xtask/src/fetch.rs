//! `cargo xtask fetch`: the pinned iPXE source into the cache.

use std::{path::PathBuf, time::Instant};

use anyhow::Result;
use xtask::{
    pin::Pin,
    source::{self, Origin},
};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Import this tar or tar.gz archive of the pinned commit instead of downloading
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
    /// Only look in the cache; fail if the source is not there
    #[arg(long, conflicts_with = "archive")]
    offline: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let started = Instant::now();
    let pin = Pin::load(&ctx.project.pin_file())?;
    let (src, origin) = match (&args.archive, args.offline) {
        (Some(file), _) => source::import(&pin, &ctx.cache, file)?,
        (None, true) => match source::cached(&pin, &ctx.cache) {
            Some(src) => (src, Origin::Cache),
            None => anyhow::bail!(
                "iPXE {} is not in the cache {}: run cargo xtask fetch, or cargo xtask fetch --archive FILE",
                pin.version,
                ctx.cache.root().display()
            ),
        },
        (None, false) => source::ensure(&pin, &ctx.cache)?,
    };
    let how = match origin {
        Origin::Cache => "already cached".to_string(),
        Origin::Download(url) => format!("downloaded from {url}"),
        Origin::Import(file) => format!("imported from {}", file.display()),
    };
    println!(
        "iPXE {} ({}) {}: {} [{} in {:.2?}]",
        pin.version,
        pin.short_commit(),
        how,
        src.tree.display(),
        pin.tree_digest,
        started.elapsed()
    );
    Ok(())
}
