//! `cargo xtask fetch`: the pinned iPXE source and the series' upstream patches into the cache.

use std::path::PathBuf;

use anyhow::Result;
use xtask::{builder::toolchain, ops::fetch};

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
    /// Only the Linux kernel and busybox that `boot-test --path os` boots
    /// (configs/boot-fixtures.lock): from the mirror, or from --debs DIR
    #[arg(long, conflicts_with_all = ["archive", "offline", "patch"])]
    boot_fixtures: bool,
    /// Debian mirror for the locked .debs (their snapshot.debian.org URLs are tried next)
    #[arg(long, value_name = "URL", default_value = toolchain::DEFAULT_MIRROR)]
    deb_mirror: String,
    /// Only look in the cache; fail if the source is not there
    #[arg(long, conflicts_with = "archive")]
    offline: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let (project, cache) = (&ctx.project, &ctx.cache);
    if args.boot_fixtures {
        return fetch::boot_fixtures(project, cache, args.debs.as_deref(), &args.deb_mirror);
    }
    if let Some(dir) = &args.debs {
        return fetch::import_debs(project, cache, dir);
    }
    if !args.patch.is_empty() {
        return fetch::import_patches(project, cache, &args.patch);
    }
    fetch::fetch(
        project,
        cache,
        args.archive.as_deref(),
        args.offline,
        &args.deb_mirror,
    )
}
