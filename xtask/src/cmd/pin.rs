//! `cargo xtask pin`: move the pin to another upstream commit, for the next release. Imports
//! the tree, checks the patch series on it, and only then rewrites configs/ipxe.toml and
//! rebuilds every profile against the size budget.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use xshell::Shell;
use xtask::{
    builder::series::{self, Fits},
    source,
    source::pin::Pin,
};

use crate::{cmd::build_rom::RuntimeArgs, cmd::check_size, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// A tar or tar.gz of the commit (git archive, or GitHub's archive)
    #[arg(long, value_name = "FILE", required_unless_present = "commit")]
    archive: Option<PathBuf>,
    /// The commit: checked against the archive's own record, or downloaded from GitHub
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// Upstream's name for the release, e.g. v2.1.0
    #[arg(long)]
    version: String,
    #[command(flatten)]
    how: RuntimeArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let scratch = xtask::util::TempDir::new("vsphere-ipxe-rom-pin-")?;
    let archive = match (&args.archive, &args.commit) {
        (Some(a), _) => a.clone(),
        (None, Some(c)) => {
            let url = github_archive(c);
            let file = scratch.path().join("ipxe.tar.gz");
            xtask::http::download(&url, &file)
                .with_context(|| format!("cannot download {url}: pass --archive FILE instead"))?;
            file
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let (tree, digest, described) = source::import_unpinned(&ctx.cache, &archive)?;
    let commit = match (&args.commit, described.commit) {
        (Some(flag), Some(found)) if !found.starts_with(flag.as_str()) => {
            bail!("{} is commit {found}, not {flag}", archive.display())
        }
        (_, Some(found)) => found,
        (Some(flag), None) if flag.len() == 40 => flag.clone(),
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
        commit: commit.clone(),
        commit_time,
        tree_digest: digest,
        urls: vec![github_archive(&commit)],
    };

    let sh = Shell::new()?;
    let specs: Vec<_> = series::resolve(&ctx.project, &ctx.cache, &[])?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let mut failed = false;
    let mut already = Vec::new();
    for (name, fits) in series::try_on(&sh, &tree, &specs)? {
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
            "the series does not apply to {} ({commit}); configs/ipxe.toml is unchanged. \
             Refresh or drop the failing patches, then run pin again",
            args.version
        );
    }
    let path = ctx.project.pin_file();
    std::fs::write(&path, pin.to_toml())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {}: {} ({}), tree {}",
        path.display(),
        pin.version,
        pin.short_commit(),
        pin.tree_digest
    );
    if !already.is_empty() {
        println!(
            "remove {} from ipxe-patches/series.toml (upstream has them), then run \
             cargo xtask check-size to rebuild every profile against its budget",
            already.join(", ")
        );
        return Ok(());
    }
    check_size::run(ctx, check_size::Args::all(args.how))
}

fn github_archive(commit: &str) -> String {
    format!("https://github.com/ipxe/ipxe/archive/{commit}.tar.gz")
}
