//! The on-disk cache: verified source trees by digest, build trees, locks.
//!
//! Entries appear whole or not at all: each is assembled in a temporary directory inside the
//! cache and renamed into place once verified.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::util::TempDir;

pub const CACHE_ENV: &str = "VSPHERE_IPXE_ROM_CACHE";

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// Held while a cache entry is read or written; released on drop.
pub struct Lock {
    _file: fs::File,
}

impl Cache {
    /// `--cache-dir`, else `$VSPHERE_IPXE_ROM_CACHE`, else the XDG cache directory.
    pub fn locate(flag: Option<&Path>) -> Result<Cache> {
        let root = match flag {
            Some(p) => p.to_path_buf(),
            None => match env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
                Some(p) => PathBuf::from(p),
                None => xdg_cache_home()?.join("vsphere-ipxe-rom"),
            },
        };
        Ok(Cache::at(root))
    }

    pub fn at(root: PathBuf) -> Cache {
        Cache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory for one kind of entry, created on first use.
    pub fn area(&self, name: &str) -> Result<PathBuf> {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create the cache directory {} (set --cache-dir or {CACHE_ENV})",
                dir.display()
            )
        })?;
        Ok(dir)
    }

    /// A scratch directory on the same file system as `area`, so it can be renamed into it.
    pub fn scratch(&self, area: &str) -> Result<TempDir> {
        TempDir::new_in(&self.area(area)?, ".tmp-")
    }

    /// Removes the scratch directories that an interrupted run left in `area` (a killed import
    /// leaves a half-unpacked tree). Only with the lock that guards `area` held.
    pub fn sweep(&self, area: &str) -> Result<()> {
        let dir = self.area(area)?;
        for item in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let item = item?;
            if item.file_name().to_string_lossy().starts_with(".tmp-") {
                fs::remove_dir_all(item.path()).with_context(|| {
                    format!("cannot remove the leftover {}", item.path().display())
                })?;
            }
        }
        Ok(())
    }

    /// Writes `area/name` whole (scratch file, then rename), so a reader never sees half of it.
    pub fn put(&self, area: &str, name: &str, content: &[u8]) -> Result<PathBuf> {
        let scratch = self.scratch(area)?;
        let tmp = scratch.path().join(name);
        fs::write(&tmp, content)?;
        let path = self.area(area)?.join(name);
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// Takes an exclusive lock named `name`, waiting (and saying so) while another run holds it.
    pub fn lock(&self, name: &str) -> Result<Lock> {
        lock_file(&self.area("locks")?.join(format!("{name}.lock")))
    }
}

/// An exclusive lock on the file at `path`, waiting (and saying so) while another run holds it.
/// A lock file another user made is locked through a read-only handle.
pub fn lock_file(path: &Path) -> Result<Lock> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .or_else(|_| fs::File::open(path))
        .with_context(|| format!("cannot open the lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!("waiting for another run that holds {} ...", path.display());
            file.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    Ok(Lock { _file: file })
}

fn xdg_cache_home() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache")),
        None => anyhow::bail!(
            "cannot find a cache directory: HOME is not set; pass --cache-dir or set {CACHE_ENV}"
        ),
    }
}
