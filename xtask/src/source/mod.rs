//! Stage 1: the pinned iPXE tree, verified, from the cache, a download, or an imported archive.

pub mod archive;
pub mod digest;
pub mod pin;
pub mod upstream;

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::{cache::Cache, util::TempDir};
use digest::TreeDigest;
use pin::Pin;

/// A verified iPXE tree in the cache. Never written to: builds copy it.
#[derive(Debug, Clone)]
pub struct Source {
    pub tree: PathBuf,
    pub pin: Pin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Cache,
    Download(String),
    Import(PathBuf),
}

/// The pinned tree if the cache has it; no network, no lock.
pub fn cached(pin: &Pin, cache: &Cache) -> Option<Source> {
    let tree = tree_dir(cache, &pin.tree_digest);
    tree.join("src/Makefile").is_file().then(|| Source {
        tree,
        pin: pin.clone(),
    })
}

/// The pinned tree, downloaded into the cache when missing.
pub fn ensure(pin: &Pin, cache: &Cache) -> Result<(Source, Origin)> {
    if let Some(src) = cached(pin, cache) {
        return Ok((src, Origin::Cache));
    }
    let _lock = cache.lock("source")?;
    if let Some(src) = cached(pin, cache) {
        return Ok((src, Origin::Cache));
    }
    cache.sweep("source")?;
    cache.sweep("downloads")?;
    let downloads = cache.scratch("downloads")?;
    let mut failures = Vec::new();
    for url in &pin.urls {
        let file = downloads.path().join("archive");
        match download(url, &file) {
            Ok(()) => {
                let src = install(pin, cache, &file)
                    .with_context(|| format!("the archive from {url} was refused"))?;
                return Ok((src, Origin::Download(url.clone())));
            }
            Err(e) => failures.push(format!("  {url}: {e:#}")),
        }
    }
    bail!(
        "cannot download iPXE {} (commit {}):\n{}\n\
         Without network access, make the archive where there is some and import it here:\n  \
         git clone https://github.com/ipxe/ipxe && git -C ipxe archive --format=tar.gz --prefix=ipxe/ -o ipxe-{short}.tar.gz {commit}\n  \
         cargo xtask fetch --archive ipxe-{short}.tar.gz",
        pin.version,
        pin.commit,
        failures.join("\n"),
        short = pin.short_commit(),
        commit = pin.commit,
    )
}

/// A new, empty cache in a temporary directory that shares only the verified source and the
/// builder images' toolchain versions (by link, both content-addressed), so nothing an earlier
/// build left (trees, objects, outputs) can be reused. The source is
/// digested again first: it is what a from-scratch build trusts.
pub fn scratch_cache(pin: &Pin, cache: &Cache) -> Result<(TempDir, Cache)> {
    let (src, _) = ensure(pin, cache)?;
    let now = crate::source::digest::digest_dir(&src.tree)?;
    if now != pin.tree_digest {
        bail!(
            "the cached source {} has changed since it was verified (digest {now}, pinned {}): \
             delete it and run cargo xtask fetch again",
            src.tree.display(),
            pin.tree_digest
        );
    }
    let dir = TempDir::new("vsphere-ipxe-rom-scratch-")?;
    let fresh = Cache::at(dir.path().join("cache"));
    fresh.area("source")?;
    std::os::unix::fs::symlink(&src.tree, tree_dir(&fresh, &pin.tree_digest))
        .context("cannot link the verified source into the scratch cache")?;
    // Facts about builder images are keyed by image id, and patches by digest: content, so
    // they are shared too.
    for area in ["patches", "debs"] {
        std::os::unix::fs::symlink(cache.area(area)?, fresh.root().join(area))
            .with_context(|| format!("cannot link the {area} into the scratch cache"))?;
    }
    std::os::unix::fs::symlink(cache.area("images")?, fresh.root().join("images"))
        .context("cannot link the image facts into the scratch cache")?;
    Ok((dir, fresh))
}

/// Imports an archive made elsewhere; the same digest check as a download.
pub fn import(pin: &Pin, cache: &Cache, archive: &Path) -> Result<(Source, Origin)> {
    // Checked before the cache is touched: a FIFO or a device is refused here.
    crate::input::open(archive, crate::input::ARCHIVE)?;
    let _lock = cache.lock("source")?;
    cache.sweep("source")?;
    let src = install(pin, cache, archive)?;
    Ok((src, Origin::Import(archive.to_path_buf())))
}

/// Where the cache keeps the verified tree with this digest.
pub fn tree_dir(cache: &Cache, digest: &TreeDigest) -> PathBuf {
    cache.root().join("source").join(digest.hex())
}

/// Imports an archive of any commit, for moving the pin: the tree goes into the cache under
/// its own digest. Returns where, the digest, and what the archive says of its commit.
pub fn import_unpinned(
    cache: &Cache,
    archive: &Path,
) -> Result<(PathBuf, TreeDigest, archive::Described)> {
    crate::input::open(archive, crate::input::ARCHIVE)?;
    let _lock = cache.lock("source")?;
    cache.sweep("source")?;
    let scratch = cache.scratch("source")?;
    let tree = scratch.path().join("tree");
    fs::create_dir(&tree)?;
    let (digest, described) = archive::extract_described(archive, &tree)?;
    if !tree.join("src/Makefile").is_file() {
        bail!(
            "{} is not an iPXE tree: it has no src/Makefile",
            archive.display()
        );
    }
    let dest = tree_dir(cache, &digest);
    if !dest.exists() {
        fs::rename(&tree, &dest)
            .with_context(|| format!("cannot move the tree into {}", dest.display()))?;
    }
    Ok((dest, digest, described))
}

/// Extracts into a scratch directory inside the cache, checks the digest, renames into place.
fn install(pin: &Pin, cache: &Cache, archive: &Path) -> Result<Source> {
    let scratch = cache.scratch("source")?;
    let tree = scratch.path().join("tree");
    fs::create_dir(&tree)?;
    let got = archive::extract(archive, &tree)?;
    if got != pin.tree_digest {
        bail!(
            "{} is not iPXE {} (commit {}): its tree digest is\n  {got}\nbut the pin expects\n  {}\n\
             Archive the pinned commit itself, or update configs/ipxe.toml deliberately.",
            archive.display(),
            pin.version,
            pin.commit,
            pin.tree_digest
        );
    }
    if !tree.join("src/Makefile").is_file() {
        bail!(
            "{} has the pinned digest but no src/Makefile",
            archive.display()
        );
    }
    let dest = tree_dir(cache, &pin.tree_digest);
    if !dest.exists() {
        fs::rename(&tree, &dest)
            .with_context(|| format!("cannot move the tree into {}", dest.display()))?;
    }
    Ok(Source {
        tree: dest,
        pin: pin.clone(),
    })
}

fn download(url: &str, dest: &Path) -> Result<()> {
    eprintln!("downloading {url}");
    crate::http::download(url, dest)
}
