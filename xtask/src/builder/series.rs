//! `ipxe-patches/series.toml`: the patches every profile applies, in order, on top of the
//! pinned source. Upstream fixes are named by commit, URL and content digest and fetched into
//! the cache; they are never copied into this repository. Our own patches are files beside it.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::{
    builder::patch::{self, Fit, PatchSpec},
    cache::Cache,
    project::Project,
    record::{Offset, PatchRecord},
};

pub const SERIES: &str = "series.toml";
/// The cache area holding upstream patches, named by their digest.
const AREA: &str = "patches";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesFile {
    #[serde(default, rename = "patch")]
    patches: Vec<Entry>,
}

/// One line of the series.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Upstream: the commit the fix is.
    pub commit: Option<String>,
    /// Upstream: where its patch is served (`https://github.com/ipxe/ipxe/commit/<id>.patch`).
    pub url: Option<String>,
    /// Upstream: `sha256:` over the patch's file names and hunks ([`patch::digest`]).
    pub digest: Option<String>,
    /// Ours: a file in `ipxe-patches/`.
    pub file: Option<String>,
    /// Why it is in the series, in one line.
    pub reason: String,
}

impl Entry {
    pub fn name(&self) -> String {
        match (&self.commit, &self.file) {
            (Some(c), _) => format!("upstream-{}", &c[..c.len().min(12)]),
            (None, Some(f)) => f.clone(),
            (None, None) => "?".into(),
        }
    }
}

/// The series, checked: each entry is upstream (commit, url, digest) or ours (file).
pub fn load(project: &Project) -> Result<Vec<Entry>> {
    let path = project.patches().join(SERIES);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(Vec::new());
    }
    let file: SeriesFile = crate::util::read_toml(&path)?;
    for (i, e) in file.patches.iter().enumerate() {
        let n = i + 1;
        match (&e.commit, &e.url, &e.digest, &e.file) {
            (Some(c), Some(_), Some(d), None) => {
                if !crate::source::pin::is_full_commit_id(c) {
                    bail!(
                        "{}: patch {n}: commit must be a full 40-digit id",
                        path.display()
                    );
                }
                let hex = d.strip_prefix("sha256:").unwrap_or_default();
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!(
                        "{}: patch {n}: digest must be sha256:<64 hex digits>",
                        path.display()
                    );
                }
            }
            (None, None, None, Some(f)) => {
                own_path(project, f).with_context(|| format!("{}: patch {n}", path.display()))?;
            }
            _ => bail!(
                "{}: patch {n} must be either upstream (commit, url, digest) or ours (file)",
                path.display()
            ),
        }
    }
    Ok(file.patches)
}

fn cached_path(cache: &Cache, digest: &str) -> Result<PathBuf> {
    let hex = digest.trim_start_matches("sha256:");
    Ok(cache.area(AREA)?.join(format!("{hex}.patch")))
}

/// Stores a patch's text in the cache if its digest is the one the series names; a mismatch
/// leaves the cache as it was.
fn store(cache: &Cache, entry: &Entry, text: &str, from: &str) -> Result<PathBuf> {
    let want = entry.digest.as_deref().unwrap_or_default();
    let got = patch::digest(text).with_context(|| from.to_string())?;
    if got != want {
        bail!(
            "{from} does not match {} in the series: its digest is {got}, the series names {want}",
            entry.name()
        );
    }
    let hex = want.trim_start_matches("sha256:");
    cache.put(AREA, &format!("{hex}.patch"), text.as_bytes())
}

/// How a patch came to be in the cache.
pub enum Got {
    Cached,
    Downloaded,
}

/// Every upstream patch of the series into the cache, downloading what is missing.
pub fn fetch(project: &Project, cache: &Cache) -> Result<Vec<(Entry, Got)>> {
    let mut out = Vec::new();
    for e in load(project)?.into_iter().filter(|e| e.commit.is_some()) {
        let digest = e.digest.clone().unwrap_or_default();
        if cached_path(cache, &digest)?.is_file() {
            out.push((e, Got::Cached));
            continue;
        }
        let url = e.url.clone().unwrap_or_default();
        let text = crate::http::get(&url)
            .and_then(|b| String::from_utf8(b).context("the patch is not UTF-8 text"))
            .with_context(|| {
                format!(
                    "cannot download {url}; without network access, make it where the ipxe \
                     repository is (git format-patch -1 --stdout {} > fix.patch) and import it \
                     with cargo xtask fetch --patch fix.patch",
                    e.commit.as_deref().unwrap_or_default()
                )
            })?;
        store(cache, &e, &text, &url)?;
        out.push((e, Got::Downloaded));
    }
    Ok(out)
}

/// Imports a patch made elsewhere (`git format-patch -1 <id>`): it must be one the series names.
pub fn import(project: &Project, cache: &Cache, file: &Path) -> Result<Entry> {
    let text = crate::input::read_text(file, crate::input::PATCH).context("--patch")?;
    let digest = patch::digest(&text).with_context(|| format!("--patch {}", file.display()))?;
    let series = load(project)?;
    let Some(entry) = series
        .iter()
        .find(|e| e.digest.as_deref() == Some(digest.as_str()))
    else {
        let from = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("From "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("");
        let named = series.iter().find(|e| {
            e.commit
                .as_deref()
                .is_some_and(|c| !from.is_empty() && c.starts_with(from))
        });
        match named {
            Some(e) => bail!(
                "--patch {} is commit {from}, but its content differs from what the series pins: \
                 its digest is {digest}, the series names {}",
                file.display(),
                e.digest.as_deref().unwrap_or_default()
            ),
            None => bail!(
                "--patch {} (digest {digest}) is no patch of ipxe-patches/{SERIES}",
                file.display()
            ),
        }
    };
    store(cache, entry, &text, &file.display().to_string())?;
    Ok(entry.clone())
}

/// The series as patches to apply and records for the manifest; profile patches follow.
pub fn resolve(
    project: &Project,
    cache: &Cache,
    profile_patches: &[String],
) -> Result<Vec<(PatchSpec, PatchRecord)>> {
    let mut out = Vec::new();
    for e in load(project)? {
        let (spec, record) = match (&e.commit, &e.file) {
            (Some(commit), _) => {
                let digest = e.digest.clone().unwrap_or_default();
                let path = cached_path(cache, &digest)?;
                if !path.is_file() {
                    bail!(
                        "upstream patch {commit} is not in the cache: run cargo xtask fetch, or \
                         import it with cargo xtask fetch --patch FILE (FILE from git format-patch -1 {commit})"
                    );
                }
                let spec = PatchSpec {
                    name: e.name(),
                    path,
                    fit: Fit::WholeHunkOffset,
                };
                let record = PatchRecord {
                    name: e.name(),
                    origin: e.url.clone().unwrap_or_default(),
                    digest,
                    offsets: vec![],
                };
                (spec, record)
            }
            (None, Some(file)) => own(project, file)?,
            (None, None) => unreachable!("load checks every entry"),
        };
        out.push((spec, record));
    }
    for file in profile_patches {
        out.push(own(project, file)?);
    }
    Ok(out)
}

/// Where one of our patches is: `name` is a file name in ipxe-patches/, with no path, and no
/// link there leads out of the project.
pub fn own_path(project: &Project, name: &str) -> Result<PathBuf> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
    if !plain {
        bail!(
            "'{}' is not a file name in ipxe-patches/; patches are files in ipxe-patches/, \
             named without a path",
            crate::util::shown(name)
        );
    }
    let path = project.patches().join(name);
    let real = path.canonicalize().map_err(|_| {
        anyhow::anyhow!(
            "it lists patch ipxe-patches/{}, which does not exist",
            crate::util::shown(name)
        )
    })?;
    let root = project.root.canonicalize()?;
    if !real.starts_with(&root) {
        bail!(
            "ipxe-patches/{} is a link that leads out of the project, to {}",
            crate::util::shown(name),
            crate::util::shown_path(&real)
        );
    }
    Ok(path)
}

fn own(project: &Project, file: &str) -> Result<(PatchSpec, PatchRecord)> {
    let path = own_path(project, file)?;
    let text = crate::input::read_text(&path, crate::input::PATCH)?;
    let digest = patch::digest(&text).with_context(|| format!("patch {file}"))?;
    Ok((
        PatchSpec {
            name: file.to_string(),
            path,
            fit: Fit::Exact,
        },
        PatchRecord {
            name: file.to_string(),
            origin: format!("ipxe-patches/{file}"),
            digest,
            offsets: vec![],
        },
    ))
}

/// How a patch fits a tree the pin may move to.
#[derive(Debug)]
pub enum Fits {
    Applies(Vec<Offset>),
    /// Upstream has it: drop it from the series.
    AlreadyIn,
    /// Why not, naming file and hunk.
    Fails(String),
}

/// Applies the patches in order to a scratch copy of `tree`; `tree` itself is not changed.
pub fn try_on(sh: &xshell::Shell, tree: &Path, specs: &[PatchSpec]) -> Result<Vec<(String, Fits)>> {
    let scratch = crate::util::TempDir::new("vsphere-ipxe-rom-series-")?;
    let copy = scratch.path().join("tree");
    crate::util::copy_tree(sh, tree, &copy)?;
    let mut out = Vec::new();
    for spec in specs {
        let fits = match patch::apply(spec, &copy) {
            Ok(offsets) => Fits::Applies(offsets),
            Err(_) if patch::already_applied(spec, &copy).unwrap_or(false) => Fits::AlreadyIn,
            Err(e) => Fits::Fails(format!("{e:#}")),
        };
        out.push((spec.name.clone(), fits));
    }
    Ok(out)
}
