//! Put a ROM and its keys on a vSphere VM: everything that can be refused is refused before
//! any connection (addresses, URLs, the ROM) or while planning from read-only calls; then one
//! upload and one reconfiguration.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::{
    nic::{Nic, RomFormat},
    project::Project,
    vm::deployment::{self, Rom, Target},
    vm::vsphere::{Credentials, Endpoint, Session},
};

/// What to deploy where.
pub struct DeployOptions {
    pub target: Target,
    /// The ROM file; None takes the profile's from `roms/<profile>/`.
    pub rom: Option<PathBuf>,
    pub profile: String,
    pub dry_run: bool,
    pub power_on: bool,
}

/// Deploys, connecting through `connect` only once the request has passed every check that
/// needs no connection.
pub fn deploy(
    project: &Project,
    opts: &DeployOptions,
    connect: impl FnOnce() -> Result<(Endpoint, Credentials)>,
) -> Result<()> {
    let target = &opts.target;
    let rom = load_rom(project, &opts.profile, target.nic, opts.rom.as_deref())?;
    deployment::keys(target, &rom)?;
    let (endpoint, creds) = connect()?;
    let session = Session::login(&endpoint, &creds)?;
    println!(
        "vsphere   {} (user {})",
        endpoint.url,
        session.shown().text(&creds.username)
    );
    let plan = deployment::plan(&session, target, &rom)?;
    if !opts.dry_run {
        deployment::apply(&session, &plan, &rom, opts.power_on)?;
    }
    print!(
        "{}",
        deployment::describe(&plan, &rom, opts.power_on, !opts.dry_run, &session.shown())
    );
    session.logout()
}

/// The ROM file given, else the profile's built ROM for the NIC, with what it says of itself.
fn load_rom(
    project: &Project,
    profile: &str,
    nic: &'static Nic,
    rom: Option<&Path>,
) -> Result<Rom> {
    let path = match rom {
        Some(p) => p.to_path_buf(),
        None => {
            let p = project.roms(profile).join(nic.file_name(RomFormat::Rom));
            if !p.is_file() {
                bail!(
                    "no ROM at {}: build it with `cargo xtask build-rom --nic {} --profile {}`, or pass --rom FILE",
                    p.display(),
                    nic.name,
                    profile
                );
            }
            p
        }
    };
    Rom::load(&path, nic)
}
