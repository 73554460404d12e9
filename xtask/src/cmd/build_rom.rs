//! `cargo xtask build-rom`: the main job.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::Shell;
use xtask::{builder::profile::profile_name, ops::build, output::emit, record::SUMS};

use crate::{cmd::BuildArgs, Ctx};

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
    let out = args
        .out
        .unwrap_or_else(|| ctx.project.roms(&profile_name(&args.build.profile)));
    // Before the build: a refused --out leaves the cache as it was too.
    emit::check_out(&out)?;
    let outcome = build::build(&sh, &args.build.request(ctx)?)?;
    let mut files = outcome.files();
    let mut manifest = outcome.manifest.clone();
    let carried = emit::carry_over(&out, &mut files, &mut manifest, args.record)?;
    emit::write(&out, &files, &manifest)?;
    print_table(&outcome);
    print_carried(&out, &carried);
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

fn print_table(outcome: &build::Outcome) {
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
}

/// What became of the record and of the other NICs' ROMs already in `out`.
fn print_carried(out: &Path, carried: &emit::Carried) {
    let absent = if carried.records_only.is_empty() {
        String::new()
    } else {
        format!(
            " ({} listed, not here: build them with --nic all)",
            carried.records_only.join(", ")
        )
    };
    if carried.record_kept {
        println!(
            "the ROMs are the bytes {} already lists: its record is kept as it stands{absent} \
             (--record rewrites it from this build)",
            out.join(SUMS).display()
        );
    } else if !carried.kept.is_empty() {
        println!(
            "kept {} from the same inputs, so SHA256SUMS and the manifest list every NIC{absent}",
            carried.kept.join(", ")
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
}
