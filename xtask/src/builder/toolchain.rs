//! `configs/toolchain.lock`: every .deb the builder image installs on top of its pinned base,
//! locked by sha256, so the image can be rebuilt with no network after Debian has moved on.
//! After repro-env (kpcyrd): fixed archive URLs, hashes checked, exactly these files installed.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::{cmd, Shell};

use crate::{cache::Cache, util};

pub const LOCK: &str = "toolchain.lock";
/// Debian's main archive, as apt reaches it: plain HTTP, since every .deb is held to its
/// locked sha256 (the hash is the trust anchor, as apt's signed indexes are).
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const SNAPSHOT: &str = "https://snapshot.debian.org/archive/debian";
const AREA: &str = "debs";

/// What the image needs beyond the base: the compiler, binutils and make for iPXE, and
/// libc6-dev, liblzma-dev and perl for the host tools it builds (util/zbin).
pub const REQUESTED: &[&str] = &[
    "gcc-12",
    "cpp-12",
    "gcc",
    "binutils",
    "binutils-x86-64-linux-gnu",
    "make",
    "libc6-dev",
    "liblzma-dev",
    "perl",
];

/// Packages whose change changes the ROM bytes: the compiler, the assembler and the linker, and
/// the libraries they run on. Any other change is to the image only.
pub const BYTE_DECIDING: &[&str] = &[
    "gcc-12",
    "cpp-12",
    "gcc",
    "cpp",
    "gcc-12-base",
    "libgcc-12-dev",
    "binutils",
    "binutils-common",
    "binutils-x86-64-linux-gnu",
    "libbinutils",
    "libctf0",
    "libctf-nobfd0",
    "libgprofng0",
    "libisl23",
    "libmpc3",
    "libmpfr6",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The base image the closure was resolved against (the Dockerfile's BASE); empty for a
    /// lock of files used as they are, such as the boot fixtures.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base: String,
    /// The archive state it was resolved from, as a snapshot.debian.org timestamp.
    pub snapshot: String,
    /// The mirror it was resolved against.
    pub resolved_from: String,
    #[serde(rename = "package")]
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
    pub size: u64,
    /// The path in any Debian mirror: `pool/main/g/gcc-12/gcc-12_..._amd64.deb`.
    pub pool: String,
    /// snapshot.debian.org's URL for it, which never changes.
    pub url: String,
    /// Its change changes the ROM bytes ([`BYTE_DECIDING`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub byte_deciding: bool,
}

impl Lock {
    pub fn load(path: &Path) -> Result<Lock> {
        let lock: Lock = util::read_toml(path)?;
        for p in &lock.packages {
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("{}: {} has no sha256", path.display(), p.name);
            }
            if p.pool.contains("..") || !p.pool.starts_with("pool/") {
                bail!(
                    "{}: {} has a pool path outside pool/",
                    path.display(),
                    p.name
                );
            }
        }
        Ok(lock)
    }

    /// `sha256:` of the lock file's bytes: the image is a function of the base and this.
    pub fn digest(path: &Path) -> Result<String> {
        Ok(format!("sha256:{}", util::sha256_file(path)?))
    }

    /// The packages for one architecture (`amd64`): its own and the `all` ones.
    pub fn for_arch(&self, arch: &str) -> Vec<&Package> {
        self.packages
            .iter()
            .filter(|p| p.architecture == arch || p.architecture == "all")
            .collect()
    }

    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# The builder image's packages on top of its pinned base, locked by sha256\n\
             # (cargo xtask lock-toolchain; README, \"The toolchain lock\"). The image installs\n\
             # exactly these files, with no network. byte_deciding marks the compiler, assembler\n\
             # and linker: a change there changes the ROM bytes.\n\n",
        );
        out.push_str(&toml::to_string(self).expect("a lock serializes"));
        out
    }
}

/// Where a locked .deb sits in the cache, by its sha256 (present or not).
pub fn cached(cache: &Cache, sha256: &str) -> Result<PathBuf> {
    Ok(cache.area(AREA)?.join(format!("{sha256}.deb")))
}

/// How each missing .deb came.
#[derive(Debug, Default)]
pub struct Fetched {
    pub cached: usize,
    pub downloaded: Vec<String>,
}

/// Every locked .deb for `arch` into the cache, by sha256: from the mirror, else from its
/// snapshot URL. A file whose hash is not the locked one never enters the cache.
pub fn fetch(lock: &Lock, arch: &str, cache: &Cache, mirror: &str) -> Result<Fetched> {
    let mut out = Fetched::default();
    for p in lock.for_arch(arch) {
        if cached(cache, &p.sha256)?.is_file() {
            out.cached += 1;
            continue;
        }
        let urls = [
            format!("{}/{}", mirror.trim_end_matches('/'), p.pool),
            p.url.clone(),
        ];
        let mut why = Vec::new();
        let mut got = false;
        for url in &urls {
            match crate::http::get(url) {
                Ok(bytes) if util::sha256_hex(&bytes) == p.sha256 => {
                    cache.put(AREA, &format!("{}.deb", p.sha256), &bytes)?;
                    out.downloaded.push(p.name.clone());
                    got = true;
                    break;
                }
                Ok(bytes) => why.push(format!(
                    "{url}: sha256 {} is not the locked {}",
                    util::sha256_hex(&bytes),
                    p.sha256
                )),
                Err(e) => why.push(format!("{url}: {e:#}")),
            }
        }
        if !got {
            bail!(
                "cannot fetch {} {} ({}):\n  {}\nWithout network access, put the .debs in a \
                 directory and import them: cargo xtask fetch --debs DIR",
                p.name,
                p.version,
                p.architecture,
                why.join("\n  ")
            );
        }
    }
    Ok(out)
}

/// Imports .debs from a directory: each file whose sha256 is locked enters the cache.
/// Returns the names imported; files that are not locked are left alone.
pub fn import(lock: &Lock, cache: &Cache, dir: &Path) -> Result<Vec<String>> {
    let by_hash: BTreeMap<&str, &Package> = lock
        .packages
        .iter()
        .map(|p| (p.sha256.as_str(), p))
        .collect();
    let mut names = Vec::new();
    for entry in
        fs::read_dir(dir).with_context(|| format!("cannot read --debs {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "deb") {
            continue;
        }
        if !path.is_file() {
            bail!(
                "--debs {}: {} is not a file; the directory should hold the locked .deb files",
                dir.display(),
                path.display()
            );
        }
        let bytes = crate::input::read(&path, crate::input::DEB)?;
        let sha = util::sha256_hex(&bytes);
        if let Some(p) = by_hash.get(sha.as_str()) {
            cache.put(AREA, &format!("{sha}.deb"), &bytes)?;
            names.push(p.name.clone());
        }
    }
    Ok(names)
}

/// The packages of `arch` not yet in the cache.
pub fn missing<'a>(lock: &'a Lock, arch: &str, cache: &Cache) -> Result<Vec<&'a Package>> {
    let mut out = Vec::new();
    for p in lock.for_arch(arch) {
        if !cached(cache, &p.sha256)?.is_file() {
            out.push(p);
        }
    }
    Ok(out)
}

/// Puts exactly the locked .debs of `arch` into `dir/debs/`, each checked again.
pub fn stage(lock: &Lock, arch: &str, cache: &Cache, dir: &Path) -> Result<()> {
    let debs = dir.join("debs");
    fs::create_dir_all(&debs)?;
    for p in lock.for_arch(arch) {
        let from = cached(cache, &p.sha256)?;
        let bytes = fs::read(&from).with_context(|| {
            format!(
                "{} {} is not in the cache: run cargo xtask fetch",
                p.name, p.version
            )
        })?;
        if util::sha256_hex(&bytes) != p.sha256 {
            bail!(
                "{} in the cache does not hash to the locked {}: delete it and run cargo xtask fetch",
                from.display(),
                p.sha256
            );
        }
        fs::write(debs.join(format!("{}_{}.deb", p.name, p.sha256)), bytes)?;
    }
    Ok(())
}

/// The host's Debian architecture name, as the lock and the image use it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Resolves the closure of [`REQUESTED`] in a container of `base`, against the mirror its apt
/// sources name: what `lock-toolchain` writes. Needs network access for apt.
pub fn resolve(sh: &Shell, engine: &str, base: &str) -> Result<Lock> {
    let name = format!("vsphere-ipxe-rom-lock-{}", std::process::id());
    cmd!(
        sh,
        "{engine} run --detach --rm --name={name} {base} sleep 900"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .with_context(|| format!("cannot start {base} to resolve the toolchain"))?;
    let result = (|| -> Result<Lock> {
        cmd!(sh, "{engine} exec {name} apt-get update -qq")
            .quiet()
            .run()
            .context("apt-get update failed in the base image: it needs the Debian mirror")?;
        let pkgs = REQUESTED;
        let uris = cmd!(
            sh,
            "{engine} exec {name} apt-get install --print-uris -qq --no-install-recommends {pkgs...}"
        )
        .quiet()
        .read()?;
        let lists = cmd!(
            sh,
            "{engine} exec {name} find /var/lib/apt/lists -name *_Packages"
        )
        .quiet()
        .read()?;
        let mut index = String::new();
        for list in lists.lines() {
            index.push_str(&cmd!(sh, "{engine} exec {name} cat {list}").quiet().read()?);
            index.push_str("\n\n");
        }
        let releases = cmd!(
            sh,
            "{engine} exec {name} find /var/lib/apt/lists -name *InRelease"
        )
        .quiet()
        .read()?;
        let mut newest = String::new();
        for r in releases.lines() {
            let text = cmd!(sh, "{engine} exec {name} cat {r}").quiet().read()?;
            if let Some(stamp) = text.lines().find_map(|l| l.strip_prefix("Date: ")) {
                let stamp = snapshot_stamp(stamp)?;
                newest = newest.max(stamp);
            }
        }
        lock_from(base, &uris, &index, &newest)
    })();
    let _ = cmd!(sh, "{engine} rm --force {name}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run();
    result
}

/// Builds the lock from `apt-get --print-uris` lines and the Packages indexes they come from.
pub fn lock_from(base: &str, uris: &str, index: &str, snapshot: &str) -> Result<Lock> {
    let stanzas: BTreeMap<String, BTreeMap<String, String>> = index
        .split("\n\n")
        .filter_map(|stanza| {
            let fields: BTreeMap<String, String> = stanza
                .lines()
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Some((fields.get("Filename")?.clone(), fields))
        })
        .collect();
    let mut packages = Vec::new();
    let mut mirror = String::new();
    for line in uris.lines().filter(|l| l.starts_with('\'')) {
        let url = line
            .split('\'')
            .nth(1)
            .context("a --print-uris line without a URL")?;
        let (root, rest) = url
            .split_once("/pool/")
            .with_context(|| format!("{url} is not a pool path"))?;
        mirror = root.to_string();
        let pool = format!("pool/{}", util::percent_decode(rest));
        let s = stanzas
            .get(&pool)
            .with_context(|| format!("{pool} is not in the Packages index"))?;
        let field = |k: &str| {
            s.get(k)
                .cloned()
                .with_context(|| format!("{pool}: no {k} in the Packages index"))
        };
        let name = field("Package")?;
        packages.push(Package {
            byte_deciding: BYTE_DECIDING.contains(&name.as_str()),
            name,
            version: field("Version")?,
            architecture: field("Architecture")?,
            sha256: field("SHA256")?,
            size: field("Size")?.parse()?,
            url: format!("{SNAPSHOT}/{snapshot}/{pool}"),
            pool,
        });
    }
    if packages.is_empty() {
        bail!("apt resolved nothing to install: is the base image already a builder?");
    }
    packages.sort();
    Ok(Lock {
        base: base.to_string(),
        snapshot: snapshot.to_string(),
        resolved_from: mirror,
        packages,
    })
}

/// `Sat, 09 Nov 2026 10:11:12 UTC` to snapshot.debian.org's `20261109T101112Z`.
fn snapshot_stamp(date: &str) -> Result<String> {
    let parts: Vec<&str> = date.split_whitespace().collect();
    let [_, day, month, year, time, ..] = parts.as_slice() else {
        bail!("cannot read the Release date '{date}'");
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS
        .iter()
        .position(|x| x == month)
        .with_context(|| format!("cannot read the Release date '{date}'"))?
        + 1;
    Ok(format!(
        "{year}{m:02}{:0>2}T{}Z",
        day,
        time.replace(':', "")
    ))
}

/// What changed against the old lock, one line each, saying whether the ROM bytes change.
pub fn diff(old: Option<&Lock>, new: &Lock) -> Vec<String> {
    let key = |p: &Package| (p.name.clone(), p.architecture.clone());
    let before: BTreeMap<_, &Package> = old
        .map(|l| l.packages.iter().map(|p| (key(p), p)).collect())
        .unwrap_or_default();
    let after: BTreeMap<_, &Package> = new.packages.iter().map(|p| (key(p), p)).collect();
    let names: BTreeSet<_> = before.keys().chain(after.keys()).cloned().collect();
    let mut out = Vec::new();
    for k in names {
        let effect = |p: &Package| {
            if p.byte_deciding {
                "ROM bytes will change"
            } else {
                "image only"
            }
        };
        let line = match (before.get(&k), after.get(&k)) {
            (Some(a), Some(b)) if a.sha256 == b.sha256 => continue,
            (Some(a), Some(b)) => format!(
                "{} ({}): {} -> {}: {}",
                k.0,
                k.1,
                a.version,
                b.version,
                effect(b)
            ),
            (None, Some(b)) => format!("{} ({}): added {}: {}", k.0, k.1, b.version, effect(b)),
            (Some(a), None) => format!("{} ({}): removed {}: {}", k.0, k.1, a.version, effect(a)),
            (None, None) => continue,
        };
        out.push(line);
    }
    out
}

/// A readable summary of a lock for the terminal.
pub fn summary(lock: &Lock) -> String {
    let mut s = String::new();
    let total: u64 = lock.packages.iter().map(|p| p.size).sum();
    let deciding: Vec<String> = lock
        .packages
        .iter()
        .filter(|p| p.byte_deciding)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    let _ = write!(
        s,
        "{} packages, {} MB, snapshot {}; byte-deciding: {}",
        lock.packages.len(),
        total >> 20,
        lock.snapshot,
        deciding.join(", ")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "Package: make\nVersion: 4.3-4.1\nArchitecture: amd64\nFilename: pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb\nSize: 396688\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n\nPackage: gcc-12\nVersion: 12.2.0-14+deb12u1\nArchitecture: amd64\nFilename: pool/main/g/gcc-12/gcc-12_12.2.0-14+deb12u1_amd64.deb\nSize: 19000000\nSHA256: 2222222222222222222222222222222222222222222222222222222222222222\n";
    const URIS: &str = "'http://deb.debian.org/debian/pool/main/g/gcc-12/gcc-12_12.2.0-14%2bdeb12u1_amd64.deb' gcc-12_12.2.0-14+deb12u1_amd64.deb 19000000 MD5Sum:00\n'http://deb.debian.org/debian/pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb' make_4.3-4.1_amd64.deb 396688 MD5Sum:00\n";

    #[test]
    fn a_lock_from_apt_and_the_packages_index() {
        let lock = lock_from(
            "debian:bookworm-slim@sha256:ab",
            URIS,
            INDEX,
            "20261109T101112Z",
        )
        .unwrap();
        assert_eq!(lock.resolved_from, "http://deb.debian.org/debian");
        let gcc = &lock.packages[0];
        assert_eq!(
            (gcc.name.as_str(), gcc.version.as_str(), gcc.byte_deciding),
            ("gcc-12", "12.2.0-14+deb12u1", true)
        );
        assert_eq!(
            gcc.pool,
            "pool/main/g/gcc-12/gcc-12_12.2.0-14+deb12u1_amd64.deb"
        );
        assert_eq!(
            gcc.url,
            "https://snapshot.debian.org/archive/debian/20261109T101112Z/pool/main/g/gcc-12/gcc-12_12.2.0-14+deb12u1_amd64.deb"
        );
        assert!(!lock.packages[1].byte_deciding, "make decides no bytes");
        let text = lock.to_toml();
        let path = tempfile::NamedTempFile::new().unwrap();
        fs::write(path.path(), &text).unwrap();
        assert_eq!(
            Lock::load(path.path()).unwrap(),
            lock,
            "the lock round-trips"
        );
    }

    #[test]
    fn changes_say_whether_the_rom_bytes_change() {
        let old = lock_from("b", URIS, INDEX, "20261109T101112Z").unwrap();
        let mut new = old.clone();
        new.packages[0].version = "12.2.0-14+deb12u2".into();
        new.packages[0].sha256 = "3".repeat(64);
        new.packages[1].version = "4.3-4.2".into();
        new.packages[1].sha256 = "4".repeat(64);
        assert_eq!(
            diff(Some(&old), &new),
            [
                "gcc-12 (amd64): 12.2.0-14+deb12u1 -> 12.2.0-14+deb12u2: ROM bytes will change",
                "make (amd64): 4.3-4.1 -> 4.3-4.2: image only",
            ]
        );
        assert!(diff(Some(&old), &old).is_empty());
    }

    #[test]
    fn release_dates_become_snapshot_stamps() {
        assert_eq!(
            snapshot_stamp("Sat, 9 Nov 2026 10:11:12 UTC").unwrap(),
            "20261109T101112Z"
        );
    }
}
