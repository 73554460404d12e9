//! Move the pin to another upstream commit, for the next release: import the tree, check the
//! patch series on it, and only then rewrite configs/ipxe.toml.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{
    builder::series::{self, Fits},
    cache::Cache,
    project::Project,
    source,
    source::pin::Pin,
};

/// Where the new commit comes from, and what upstream calls it.
pub struct PinOptions {
    /// A tar or tar.gz of the commit; None downloads `commit` from GitHub.
    pub archive: Option<PathBuf>,
    pub commit: Option<String>,
    pub version: String,
}

/// Imports the commit, tries the series on it, and only if every patch applies rewrites
/// configs/ipxe.toml. Returns the patches upstream already has, which must leave the series
/// before the profiles are rebuilt.
pub fn pin(project: &Project, cache: &Cache, args: &PinOptions) -> Result<Vec<String>> {
    check_options(args)?;
    let scratch = crate::util::TempDir::new("vsphere-ipxe-rom-pin-")?;
    let archive = match (&args.archive, &args.commit) {
        (Some(a), _) => a.clone(),
        (None, Some(c)) => {
            let url = github_archive(c);
            let file = scratch.path().join("ipxe.tar.gz");
            crate::http::download(&url, &file)
                .with_context(|| format!("cannot download {url}: pass --archive FILE instead"))?;
            file
        }
        (None, None) => bail!("pass --archive FILE or --commit SHA"),
    };
    let (tree, pin) = import(cache, &archive, args)?;
    let already = try_series(project, cache, &tree, &pin)?;
    let path = project.pin_file();
    pin.reads_back().context("configs/ipxe.toml is unchanged")?;
    std::fs::write(&path, pin.to_toml())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {}: {} ({}), tree {}",
        path.display(),
        pin.version,
        pin.short_commit(),
        pin.tree_digest
    );
    Ok(already)
}

/// The version and commit as given, checked before anything is fetched, imported or written: a
/// pin holding them would be refused by every later command.
fn check_options(args: &PinOptions) -> Result<()> {
    if !source::pin::is_release_name(&args.version) {
        bail!(
            "--version '{}' is not a release name: {}",
            crate::util::shown(&args.version),
            source::pin::RELEASE_NAME
        );
    }
    if let Some(c) = &args.commit {
        if !(7..=40).contains(&c.len()) || !source::pin::is_commit_id(c) {
            bail!(
                "--commit '{}' is not a commit id: 7 to 40 hex digits",
                crate::util::shown(c)
            );
        }
    }
    Ok(())
}

/// The archive's tree in the cache, and the pin that names it.
fn import(cache: &Cache, archive: &Path, args: &PinOptions) -> Result<(PathBuf, Pin)> {
    let (tree, digest, described) = source::import_unpinned(cache, archive)?;
    let flag = args.commit.as_ref().map(|c| c.to_ascii_lowercase());
    let commit = match (&flag, described.commit.map(|c| c.to_ascii_lowercase())) {
        (Some(flag), Some(found)) if !found.starts_with(flag.as_str()) => {
            bail!("{} is commit {found}, not {flag}", archive.display())
        }
        (_, Some(found)) => found,
        (Some(flag), None) if source::pin::is_full_commit_id(flag) => flag.clone(),
        _ => bail!(
            "{} does not say which commit it holds (git archive records it; GitHub's archives \
             too): pass the full 40-digit --commit",
            archive.display()
        ),
    };
    let commit_time = described.mtime.with_context(|| {
        format!(
            "{} has no entry times to take the commit time from",
            archive.display()
        )
    })?;
    let pin = Pin {
        version: args.version.clone(),
        urls: vec![github_archive(&commit)],
        commit,
        commit_time,
        tree_digest: digest,
    };
    Ok((tree, pin))
}

/// Tries every patch of the series on the tree, saying how each fits; fails if any does not.
/// Returns the ones upstream already has.
fn try_series(project: &Project, cache: &Cache, tree: &Path, pin: &Pin) -> Result<Vec<String>> {
    let sh = Shell::new()?;
    let specs: Vec<_> = series::resolve(project, cache, &[])?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let mut failed = false;
    let mut already = Vec::new();
    for (name, fits) in series::try_on(&sh, tree, &specs)? {
        match fits {
            Fits::Applies(offsets) if offsets.is_empty() => println!("{name}: applies"),
            Fits::Applies(offsets) => {
                let moved: Vec<String> = offsets
                    .iter()
                    .map(|o| format!("{} hunk {} {:+}", o.file, o.hunk, o.lines))
                    .collect();
                println!("{name}: applies at an offset ({})", moved.join(", "));
            }
            Fits::AlreadyIn => {
                println!("{name}: already in the tree");
                already.push(name);
            }
            Fits::Fails(why) => {
                println!("{name}: fails: {why}");
                failed = true;
            }
        }
    }
    if failed {
        bail!(
            "the series does not apply to {} ({}); configs/ipxe.toml is unchanged. \
             Refresh or drop the failing patches, then run pin again",
            pin.version,
            pin.commit
        );
    }
    Ok(already)
}

fn github_archive(commit: &str) -> String {
    format!("https://github.com/ipxe/ipxe/archive/{commit}.tar.gz")
}
