//! `cargo xtask <command>`: parses flags and calls the command's `run`.

mod bench;
mod boot_test;
mod build_rom;
mod check_size;
mod deploy;
mod fetch;
mod inspect;
mod lock_toolchain;
mod pin_cmd;
mod release_cmd;
mod sizes;
mod verify;
mod vmx;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use xtask::{cache::Cache, project::Project};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Reproducible iPXE option ROMs for VMware vSphere VMs",
    version
)]
struct Cli {
    /// Project directory holding configs/, ipxe-patches/ and roms/ [default: this checkout]
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Cache for source and build trees [env: VSPHERE_IPXE_ROM_CACHE; default: XDG cache dir]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download (or import) the pinned iPXE source and the series' patches, verify and cache them
    Fetch(fetch::Args),
    /// Move the pin to another upstream commit: import it, check the patch series, rebuild
    Pin(pin_cmd::Args),
    /// Resolve the builder image's packages and lock them by sha256 (maintainers)
    LockToolchain(lock_toolchain::Args),
    /// Build, check and emit option ROMs for the chosen NICs
    BuildRom(build_rom::Args),
    /// Parse any PCI option ROM and check it against its NIC's limit
    Inspect(inspect::Args),
    /// Bytes per linked object and per source directory, largest first
    Sizes(sizes::Args),
    /// Compare ROM sizes with roms/budget.toml; --update records them
    CheckSize(check_size::Args),
    /// VM configuration (guestinfo and ROM keys) for Terraform, .vmx, govc or JSON
    Vmx(vmx::Args),
    /// Upload a ROM to a datastore and set a VM's keys through the vSphere API
    Deploy(deploy::Args),
    /// Rebuild from scratch in a fresh directory and compare with SHA256SUMS
    Verify(verify::Args),
    /// Time cold, no-op and config-only builds (and Docker) against plain make
    Bench(bench::Args),
    /// Boot the ROMs in QEMU, with and without DHCP, and check they fetch and report back
    BootTest(boot_test::Args),
    /// Build, check, verify and pack every profile for every NIC into dist/
    Release(release_cmd::Args),
}

pub struct Ctx {
    pub project: Project,
    pub cache: Cache,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let run = || -> anyhow::Result<()> {
        let ctx = Ctx {
            project: Project::locate(cli.project.as_deref()),
            cache: Cache::locate(cli.cache_dir.as_deref())?,
        };
        match cli.command {
            Command::Fetch(args) => fetch::run(&ctx, args),
            Command::Pin(args) => pin_cmd::run(&ctx, args),
            Command::LockToolchain(args) => lock_toolchain::run(&ctx, args),
            Command::BuildRom(args) => build_rom::run(&ctx, args),
            Command::Inspect(args) => inspect::run(args),
            Command::Sizes(args) => sizes::run(&ctx, args),
            Command::CheckSize(args) => check_size::run(&ctx, args),
            Command::Vmx(args) => vmx::run(args),
            Command::Deploy(args) => deploy::run(&ctx, args),
            Command::Verify(args) => verify::run(&ctx, args),
            Command::Bench(args) => bench::run(&ctx, args),
            Command::BootTest(args) => boot_test::run(&ctx, args),
            Command::Release(args) => release_cmd::run(&ctx, args),
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
