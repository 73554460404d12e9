//! `cargo xtask lock-toolchain` (maintainers): resolve the builder's package closure on top of
//! the pinned base, write configs/toolchain.lock, and say what changed.

use anyhow::{bail, Result};
use xshell::Shell;
use xtask::{builder::runtime::container, builder::toolchain};

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Resolve against this base image instead of the Dockerfile's BASE (a local one where no
    /// registry is reachable)
    #[arg(long, env = "VSPHERE_IPXE_ROM_BASE_IMAGE", value_name = "IMAGE")]
    base_image: Option<String>,
    /// Print what would change and write nothing
    #[arg(long)]
    check: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let sh = Shell::new()?;
    let Some(engine) = container::detect(&sh) else {
        bail!("lock-toolchain resolves packages in a container of the base image: start Docker or Podman");
    };
    let base = match args.base_image {
        Some(b) => b,
        None => dockerfile_base(&ctx.project.dockerfile())?,
    };
    let path = ctx.project.configs().join(toolchain::LOCK);
    let old = path
        .is_file()
        .then(|| toolchain::Lock::load(&path))
        .transpose()?;
    let new = toolchain::resolve(&sh, &engine, &base)?;
    let changes = toolchain::diff(old.as_ref(), &new);
    println!("{}", toolchain::summary(&new));
    if changes.is_empty() {
        println!("no package changed");
    }
    for c in &changes {
        println!("  {c}");
    }
    if !args.check {
        std::fs::write(&path, new.to_toml())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The `ARG BASE=` default of the Dockerfile.
fn dockerfile_base(path: &std::path::Path) -> Result<String> {
    let text = xtask::input::read_text(path, xtask::input::DOCKERFILE)?;
    text.lines()
        .find_map(|l| l.strip_prefix("ARG BASE="))
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{} has no ARG BASE=", path.display()))
}
