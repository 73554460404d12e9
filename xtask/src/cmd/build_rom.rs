//! `cargo xtask build-rom`: the main job.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;
use xtask::{
    builder::pipeline::{self, Request},
    builder::runtime::RuntimeChoice,
    nic,
    output::emit,
};

use crate::Ctx;

/// How to build: shared by every command that builds.
#[derive(clap::Args)]
pub struct RuntimeArgs {
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,
    /// Base image for the builder container instead of the Dockerfile's pinned one
    #[arg(long, env = "VSPHERE_IPXE_ROM_BASE_IMAGE", value_name = "IMAGE")]
    pub base_image: Option<String>,
    /// Parallel make jobs [default: number of cores]
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

/// What to build.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// NICs to build for: vmxnet3, e1000, e1000e, vlance, or all (vmxnet3, e1000, e1000e)
    #[arg(long, required = true, value_delimiter = ',')]
    pub nic: Vec<String>,
    /// Profile name in configs/, or a path to a profile .toml
    #[arg(long, default_value = "vmware")]
    pub profile: String,
    /// Build .mrom images for the NICs that have them (e1000, e1000e), as VMware's howto does
    #[arg(long)]
    pub mrom: bool,
    #[command(flatten)]
    pub how: RuntimeArgs,
}

impl RuntimeArgs {
    pub fn request(
        &self,
        ctx: &Ctx,
        profile: &str,
        nics: Vec<&'static nic::Nic>,
        mrom: bool,
    ) -> Request {
        Request {
            project: ctx.project.clone(),
            cache: ctx.cache.clone(),
            profile: profile.to_string(),
            nics,
            mrom,
            runtime: self.runtime,
            base_image: self.base_image.clone(),
            jobs: self
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
    }
}

impl BuildArgs {
    pub fn request(&self, ctx: &Ctx) -> Result<Request> {
        Ok(self
            .how
            .request(ctx, &self.profile, nic::select(&self.nic)?, self.mrom))
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    build: BuildArgs,
    /// Output directory, replaced whole [default: roms/<profile>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Rewrite SHA256SUMS and manifest.json from this build even where the ROMs are the bytes
    /// they already list (otherwise such a record is kept as it stands)
    #[arg(long)]
    record: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let sh = Shell::new()?;
    let outcome = pipeline::build(&sh, &args.build.request(ctx)?)?;
    let out = args
        .out
        .unwrap_or_else(|| ctx.project.roms(&outcome.manifest.profile.name));
    let mut files = outcome.files();
    let mut manifest = outcome.manifest.clone();
    let carried = emit::carry_over(&out, &mut files, &mut manifest, args.record)?;
    emit::write(&out, &files, &manifest)?;
    println!(
        "{:<14} {:<8} {:>7} {:>7} {:>8}  sha256",
        "rom", "nic", "size", "limit", "headroom"
    );
    for rom in &outcome.roms {
        let r = &rom.report;
        println!(
            "{:<14} {:<8} {:>7} {:>7} {:>8}  {}",
            rom.file_name,
            rom.nic.name,
            r.size,
            r.limit,
            r.headroom(),
            outcome.manifest.roms[&rom.file_name].sha256
        );
    }
    if !carried.kept.is_empty() {
        println!(
            "kept {} from the same inputs, so SHA256SUMS and the manifest list every NIC{}",
            carried.kept.join(", "),
            if carried.records_only.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} listed, not here: build them with --nic all)",
                    carried.records_only.join(", ")
                )
            }
        );
    }
    if carried.record_kept {
        println!(
            "the ROMs are the bytes {} already lists: its record is kept as it stands \
             (--record rewrites it from this build)",
            out.join(xtask::record::SUMS).display()
        );
    }
    if let Some((names, why)) = &carried.dropped {
        println!(
            "replaced {}: {} ({}) are no longer listed, since {why}",
            out.display(),
            names.join(", "),
            names.len()
        );
    }
    println!(
        "wrote {} ({} runtime, profile {}{})",
        out.display(),
        outcome.runtime.name(),
        outcome.manifest.profile.name,
        if outcome.cached {
            "; inputs unchanged, so from the output cache"
        } else {
            ""
        }
    );
    Ok(())
}
