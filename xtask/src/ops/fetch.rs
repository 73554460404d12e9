//! Fill the cache with what builds need: the pinned source, the series' upstream patches and
//! the locked toolchain .debs, each downloaded or imported from what was made elsewhere, and
//! each checked against its digest.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};

use crate::{
    boot::os,
    builder::series::{self, Got},
    builder::toolchain,
    cache::Cache,
    project::Project,
    source::pin::Pin,
    source::{self, Origin},
};

/// Imports the locked .debs found in `dir`; fails naming any the lock still misses.
pub fn import_debs(project: &Project, cache: &Cache, dir: &Path) -> Result<()> {
    let lock = toolchain::Lock::load(&project.configs().join(toolchain::LOCK))?;
    let names = toolchain::import(&lock, cache, dir)?;
    let missing = toolchain::missing(&lock, toolchain::host_arch(), cache)?;
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
        bail!("still missing {}: {}", missing.len(), names.join(", "));
    }
    Ok(())
}

/// The boot fixtures into the cache: imported from `dir`, or downloaded from `mirror` (then
/// their snapshot URLs); fails naming any still missing.
pub fn boot_fixtures(
    project: &Project,
    cache: &Cache,
    dir: Option<&Path>,
    mirror: &str,
) -> Result<()> {
    let lock = os::lock(project)?;
    match dir {
        Some(dir) => {
            let names = toolchain::import(&lock, cache, dir)?;
            println!(
                "imported {} boot fixture(s) from {}",
                names.len(),
                dir.display()
            );
        }
        None => {
            let got = toolchain::fetch(&lock, toolchain::host_arch(), cache, mirror).context(
                "cannot fetch the boot fixtures of configs/boot-fixtures.lock; offline, import \
                 them with cargo xtask fetch --boot-fixtures --debs DIR",
            )?;
            println!(
                "boot fixtures: {} cached, {} downloaded",
                got.cached,
                got.downloaded.len()
            );
        }
    }
    os::prepare_check(project, cache)
}

/// Imports patches of the series made elsewhere (`git format-patch -1 <commit>`).
pub fn import_patches(project: &Project, cache: &Cache, files: &[PathBuf]) -> Result<()> {
    for file in files {
        let e = series::import(project, cache, file)?;
        println!(
            "{} imported from {}: {}",
            e.name(),
            file.display(),
            e.digest.unwrap_or_default()
        );
    }
    Ok(())
}

/// The pinned source: imported from `archive`, found in the cache (`offline`), or downloaded.
/// Unless offline, then the locked .debs (from `mirror`) and the series' upstream patches.
pub fn fetch(
    project: &Project,
    cache: &Cache,
    archive: Option<&Path>,
    offline: bool,
    mirror: &str,
) -> Result<()> {
    let started = Instant::now();
    let pin = Pin::load(&project.pin_file())?;
    let (src, origin) = match (archive, offline) {
        (Some(file), _) => source::import(&pin, cache, file)?,
        (None, true) => match source::cached(&pin, cache) {
            Some(src) => (src, Origin::Cache),
            None => bail!(
                "iPXE {} is not in the cache {}: run cargo xtask fetch, or cargo xtask fetch --archive FILE",
                pin.version,
                cache.root().display()
            ),
        },
        (None, false) => source::ensure(&pin, cache)?,
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
    if offline {
        return Ok(());
    }
    fetch_debs(project, cache, mirror)?;
    for (e, got) in series::fetch(project, cache)? {
        let how = match got {
            Got::Cached => "already cached",
            Got::Downloaded => "downloaded",
        };
        println!("{} {how}: {}", e.name(), e.digest.unwrap_or_default());
    }
    Ok(())
}

fn fetch_debs(project: &Project, cache: &Cache, mirror: &str) -> Result<()> {
    let lock_path = project.configs().join(toolchain::LOCK);
    if !lock_path.is_file() {
        return Ok(());
    }
    let lock = toolchain::Lock::load(&lock_path)?;
    let arch = toolchain::host_arch();
    let got = toolchain::fetch(&lock, arch, cache, mirror)?;
    println!(
        "toolchain .debs ({arch}): {} cached, {} downloaded",
        got.cached,
        got.downloaded.len()
    );
    Ok(())
}
