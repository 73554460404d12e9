//! A release: every profile and NIC, built, checked, verified and held to its size budget,
//! then packed into a reproducible tarball with provenance.

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    builder::profile::{self, Profile},
    cache::Cache,
    check::budget::Budget,
    nic::NICS,
    ops::{build, verify, How},
    output::emit,
    output::release::{self, Provenance},
    project::Project,
    record::{Manifest, SUMS},
    source::pin::Pin,
    util,
    util::TempDir,
};

/// Every profile for every NIC of `--nic all`, built `how` (the container, for a release anyone
/// can reproduce), checked, verified from scratch and held to its budget, then packed with
/// provenance into `dist`. Nothing is published unless all of it passes.
pub fn release(
    project: &Project,
    cache: &Cache,
    how: &How,
    version: &str,
    dist: &Path,
) -> Result<()> {
    release::check_version(version)?;
    let name = format!("vsphere-ipxe-rom-{version}");
    fs::create_dir_all(dist).with_context(|| format!("cannot create {}", dist.display()))?;
    let staging = TempDir::new_in(dist, ".staging-")?;
    let dir = staging.path().join(&name);
    let pin = Pin::load(&project.pin_file())?;
    let budget = Budget::load(&project.budget_file())?;
    let profiles = profile::list(&project.configs());
    if profiles.is_empty() {
        bail!("no profiles in {}", project.configs().display());
    }
    let sh = Shell::new()?;
    let mut manifests = BTreeMap::new();
    let mut inputs = BTreeMap::new();
    let mut problems = Vec::new();
    for name in &profiles {
        eprintln!("release {version}: building profile {name}");
        let (manifest, over) = build_profile(&sh, project, cache, how, name, &budget, &dir)?;
        problems.extend(over);
        inputs.append(&mut profile_inputs(project, name)?);
        manifests.insert(name.clone(), manifest);
    }
    if !problems.is_empty() {
        bail!(
            "the release is over its size budget; nothing was published:\n  {}",
            problems.join("\n  ")
        );
    }
    for f in [project.dockerfile(), project.pin_file()] {
        inputs.insert(relative(project, &f), util::sha256_file(&f)?);
    }
    let root = &project.root;
    let project_commit = cmd!(sh, "git -C {root} rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .ok();
    let provenance = Provenance {
        version,
        manifests: &manifests,
        inputs: &inputs,
        project_commit,
    };
    seal(&dir, &provenance)?;
    publish(dist, &dir, &name, pin.commit_time)
}

/// Builds one profile into `dir/<profile>`, verifies it from scratch, and holds it to its
/// budget; returns its manifest and what broke the budget.
fn build_profile(
    sh: &Shell,
    project: &Project,
    cache: &Cache,
    how: &How,
    name: &str,
    budget: &Budget,
    dir: &Path,
) -> Result<(Manifest, Vec<String>)> {
    let nics: Vec<_> = NICS.iter().filter(|n| n.in_all).collect();
    let outcome = build::build(sh, &how.request(project, cache, name, nics, false))?;
    let out = dir.join(name);
    emit::write(&out, &outcome.files(), &outcome.manifest)?;
    verify::verify(project, cache, how, name, &out.join(SUMS))?;
    let mut problems = Vec::new();
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
    Ok((outcome.manifest, problems))
}

/// The files a profile's build read, by path in the project, with their digests.
fn profile_inputs(project: &Project, name: &str) -> Result<BTreeMap<String, String>> {
    let mut inputs = BTreeMap::new();
    let profile = Profile::load(project, name)?;
    let patches = profile
        .file
        .patches
        .iter()
        .map(|p| project.patches().join(p));
    for file in profile.files_to_embed().into_iter().chain(patches) {
        inputs.insert(relative(project, &file), util::sha256_file(&file)?);
    }
    inputs.insert(relative(project, &profile.path), profile.sha256.clone());
    let series = project.patches().join(crate::builder::series::SERIES);
    if series.is_file() {
        inputs.insert(relative(project, &series), util::sha256_file(&series)?);
    }
    Ok(inputs)
}

/// Writes the provenance of every ROM in `dir`, then the SHA256SUMS of everything in it.
fn seal(dir: &Path, provenance: &Provenance) -> Result<()> {
    let subjects: BTreeMap<String, String> = release::files_below(dir)?
        .into_iter()
        .filter(|f| f.ends_with(".rom"))
        .map(|f| Ok((f.clone(), util::sha256_file(&dir.join(&f))?)))
        .collect::<Result<_>>()?;
    fs::write(
        dir.join("provenance.json"),
        release::provenance(provenance, &subjects),
    )?;
    let listed: Vec<String> = release::files_below(dir)?;
    fs::write(dir.join(SUMS), release::sums(dir, &listed)?)?;
    Ok(())
}

/// Swaps the finished directory into `dist`, then packs it into a reproducible tarball.
fn publish(dist: &Path, dir: &Path, name: &str, commit_time: u64) -> Result<()> {
    let final_dir = dist.join(name);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir)
            .with_context(|| format!("cannot replace {}", final_dir.display()))?;
    }
    fs::rename(dir, &final_dir)?;
    let tar_name = format!("{name}.tar.gz");
    let tarball = dist.join(&tar_name);
    release::reproducible_tarball(&final_dir, &tarball, commit_time)?;
    fs::write(
        dist.join(SUMS),
        release::sums(dist, std::slice::from_ref(&tar_name))?,
    )?;
    println!("{}", final_dir.display());
    println!("{} {}", util::sha256_file(&tarball)?, tarball.display());
    Ok(())
}

fn relative(project: &Project, path: &Path) -> String {
    path.strip_prefix(&project.root)
        .unwrap_or(path)
        .display()
        .to_string()
}
