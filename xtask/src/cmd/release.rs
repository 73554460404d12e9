//! `cargo xtask release`: every profile and NIC, built in the container, checked, verified and
//! held to its size budget, then packed into a reproducible tarball with provenance.

use std::{collections::BTreeMap, fs, path::PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};
use xtask::{
    builder::pipeline,
    builder::profile::{self, Profile},
    builder::runtime::RuntimeChoice,
    check::budget::Budget,
    nic::NICS,
    output::emit,
    output::release::{self, Provenance},
    source::pin::Pin,
    util,
    util::TempDir,
};

use crate::{cmd::build_rom::RuntimeArgs, cmd::verify, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// Release version, used in names: dist/vsphere-ipxe-rom-<VERSION>/
    #[arg(long)]
    version: String,
    /// Where the release goes [default: dist/]
    #[arg(long, value_name = "DIR")]
    dist: Option<PathBuf>,
    /// Builds run in the container unless told otherwise; native releases are not reproducible elsewhere
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Docker)]
    runtime: RuntimeChoice,
    /// Base image for the builder container instead of the Dockerfile's pinned one
    #[arg(long, env = "VSPHERE_IPXE_ROM_BASE_IMAGE", value_name = "IMAGE")]
    base_image: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    release::check_version(&args.version)?;
    let how = RuntimeArgs {
        runtime: args.runtime,
        base_image: args.base_image.clone(),
        jobs: None,
    };
    if args.runtime == RuntimeChoice::Native {
        eprintln!("warning: a native release is reproducible only with this machine's toolchain");
    }
    let name = format!("vsphere-ipxe-rom-{}", args.version);
    let dist = args
        .dist
        .clone()
        .unwrap_or_else(|| ctx.project.root.join("dist"));
    fs::create_dir_all(&dist).with_context(|| format!("cannot create {}", dist.display()))?;
    let staging = TempDir::new_in(&dist, ".staging-")?;
    let dir = staging.path().join(&name);
    let pin = Pin::load(&ctx.project.pin_file())?;
    let budget = Budget::load(&ctx.project.root.join("roms/budget.toml"))?;
    let profiles = profile::list(&ctx.project.configs());
    if profiles.is_empty() {
        bail!("no profiles in {}", ctx.project.configs().display());
    }
    let sh = Shell::new()?;
    let nics: Vec<_> = NICS.iter().filter(|n| n.in_all).collect();
    let mut manifests = BTreeMap::new();
    let mut inputs = BTreeMap::new();
    let mut problems = Vec::new();
    for name in &profiles {
        eprintln!("release {}: building profile {name}", args.version);
        let outcome = pipeline::build(&sh, &how.request(ctx, name, nics.clone(), false))?;
        let out = dir.join(name);
        emit::write(&out, &outcome.files(), &outcome.manifest)?;
        verify::check(ctx, name, &out.join(xtask::record::SUMS), &how)?;
        match budget.0.get(name) {
            Some(entries) => {
                for rom in &outcome.roms {
                    if let Some(entry) = entries.get(rom.nic.name) {
                        for p in entry.check(rom.report.size, &rom.linked.sizes) {
                            problems.push(format!("{name}/{}: {p}", rom.nic.name));
                        }
                    }
                }
            }
            None => eprintln!("note: roms/budget.toml has no budget for profile {name}"),
        }
        let profile = Profile::load(&ctx.project.configs(), name)?;
        for file in profile.files_to_embed().into_iter().chain(
            profile
                .file
                .patches
                .iter()
                .map(|p| ctx.project.patches().join(p)),
        ) {
            inputs.insert(relative(ctx, &file), util::sha256_file(&file)?);
        }
        inputs.insert(relative(ctx, &profile.path), profile.sha256.clone());
        let series = ctx.project.patches().join(xtask::builder::series::SERIES);
        if series.is_file() {
            inputs.insert(relative(ctx, &series), util::sha256_file(&series)?);
        }
        manifests.insert(name.clone(), outcome.manifest);
    }
    if !problems.is_empty() {
        bail!(
            "the release is over its size budget; nothing was published:\n  {}",
            problems.join("\n  ")
        );
    }
    for f in [ctx.project.dockerfile(), ctx.project.pin_file()] {
        inputs.insert(relative(ctx, &f), util::sha256_file(&f)?);
    }
    let roms: Vec<String> = release::files_below(&dir)?
        .into_iter()
        .filter(|f| f.ends_with(".rom"))
        .collect();
    let subjects: BTreeMap<String, String> = roms
        .iter()
        .map(|f| Ok((f.clone(), util::sha256_file(&dir.join(f))?)))
        .collect::<Result<_>>()?;
    let root = &ctx.project.root;
    let project_commit = cmd!(sh, "git -C {root} rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .ok();
    let statement = release::provenance(
        &Provenance {
            version: &args.version,
            manifests: &manifests,
            inputs: &inputs,
            project_commit,
        },
        &subjects,
    );
    fs::write(dir.join("provenance.json"), statement)?;
    let listed: Vec<String> = release::files_below(&dir)?;
    fs::write(dir.join(xtask::record::SUMS), release::sums(&dir, &listed)?)?;

    // Swap the finished directory in, then pack it.
    let final_dir = dist.join(&name);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir)
            .with_context(|| format!("cannot replace {}", final_dir.display()))?;
    }
    fs::rename(&dir, &final_dir)?;
    let tarball = dist.join(format!("{name}.tar.gz"));
    release::reproducible_tarball(&final_dir, &tarball, pin.commit_time)?;
    let tar_name = format!("{name}.tar.gz");
    fs::write(
        dist.join(xtask::record::SUMS),
        release::sums(&dist, std::slice::from_ref(&tar_name))?,
    )?;
    println!("{}", final_dir.display());
    println!("{} {}", util::sha256_file(&tarball)?, tarball.display());
    Ok(())
}

fn relative(ctx: &Ctx, path: &std::path::Path) -> String {
    path.strip_prefix(&ctx.project.root)
        .unwrap_or(path)
        .display()
        .to_string()
}
