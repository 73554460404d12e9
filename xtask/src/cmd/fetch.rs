//! `cargo xtask fetch`: the pinned iPXE source and the series' upstream patches into the cache.

use std::{path::PathBuf, time::Instant};

use anyhow::Result;
use xtask::{
    builder::series::{self, Got},
    builder::toolchain,
    source::pin::Pin,
    source::{self, Origin},
};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Import this tar or tar.gz archive of the pinned commit instead of downloading
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
    /// Import a patch of ipxe-patches/series.toml made elsewhere (git format-patch -1 <commit>);
    /// repeat for several
    #[arg(long, value_name = "FILE", conflicts_with_all = ["archive", "offline"])]
    patch: Vec<PathBuf>,
    /// Import the locked toolchain .debs from this directory (matched by sha256)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["archive", "offline", "patch"])]
    debs: Option<PathBuf>,
    /// Debian mirror for the locked .debs (their snapshot.debian.org URLs are tried next)
    #[arg(long, value_name = "URL", default_value = toolchain::DEFAULT_MIRROR)]
    deb_mirror: String,
    /// Only look in the cache; fail if the source is not there
    #[arg(long, conflicts_with = "archive")]
    offline: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let lock_path = ctx.project.configs().join(toolchain::LOCK);
    if let Some(dir) = &args.debs {
        let lock = toolchain::Lock::load(&lock_path)?;
        let names = toolchain::import(&lock, &ctx.cache, dir)?;
        let missing = toolchain::missing(&lock, toolchain::host_arch(), &ctx.cache)?;
        println!(
            "imported {} locked .deb(s) from {}",
            names.len(),
            dir.display()
        );
        if !missing.is_empty() {
            let names: Vec<String> = missing
                .iter()
                .map(|p| format!("{} {}", p.name, p.version))
                .collect();
            anyhow::bail!("still missing {}: {}", missing.len(), names.join(", "));
        }
        return Ok(());
    }
    if !args.patch.is_empty() {
        for file in &args.patch {
            let e = series::import(&ctx.project, &ctx.cache, file)?;
            println!(
                "{} imported from {}: {}",
                e.name(),
                file.display(),
                e.digest.unwrap_or_default()
            );
        }
        return Ok(());
    }
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
    if !args.offline {
        if lock_path.is_file() {
            let lock = toolchain::Lock::load(&lock_path)?;
            let arch = toolchain::host_arch();
            let got = toolchain::fetch(&lock, arch, &ctx.cache, &args.deb_mirror)?;
            println!(
                "toolchain .debs ({arch}): {} cached, {} downloaded",
                got.cached,
                got.downloaded.len()
            );
        }
        for (e, got) in series::fetch(&ctx.project, &ctx.cache)? {
            let how = match got {
                Got::Cached => "already cached",
                Got::Downloaded => "downloaded",
            };
            println!("{} {how}: {}", e.name(), e.digest.unwrap_or_default());
        }
    }
    Ok(())
}
