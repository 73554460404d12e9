//! `cargo xtask <command>`: parses flags and calls the command's `run`.

mod cmd;

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
    Fetch(cmd::fetch::Args),
    /// Move the pin to another upstream commit: import it, check the patch series, rebuild
    Pin(cmd::pin::Args),
    /// Resolve the builder image's packages and lock them by sha256 (maintainers)
    LockToolchain(cmd::lock_toolchain::Args),
    /// Build, check and emit option ROMs for the chosen NICs
    BuildRom(cmd::build_rom::Args),
    /// Parse any PCI option ROM and check it against its NIC's limit
    Inspect(cmd::inspect::Args),
    /// Bytes per linked object and per source directory, largest first
    Sizes(cmd::sizes::Args),
    /// Compare ROM sizes with roms/budget.toml; --update records them
    CheckSize(cmd::check_size::Args),
    /// VM configuration (guestinfo and ROM keys) for Terraform, .vmx, govc or JSON
    Vmx(cmd::vmx::Args),
    /// Upload a ROM to a datastore and set a VM's keys through the vSphere API
    Deploy(cmd::deploy::Args),
    /// What deploy does, for many VMs: an Ansible playbook, or Terraform for for_each
    Fleet(cmd::fleet::Args),
    /// Rebuild from scratch in a fresh directory and compare with SHA256SUMS
    Verify(cmd::verify::Args),
    /// Time cold, no-op and config-only builds (and Docker) against plain make
    Bench(cmd::bench::Args),
    /// Boot the ROMs in QEMU, with and without DHCP, and check they fetch and report back
    BootTest(cmd::boot::Args),
    /// Build, check, verify and pack every profile for every NIC into dist/
    Release(cmd::release::Args),
    /// Upstream commits after the pin that touch linked files: taken, declined or untriaged
    Upstream(cmd::upstream::Args),
}

pub struct Ctx {
    pub project: Project,
    pub cache: Cache,
}

fn main() -> ExitCode {
    // govc treats an empty GOVC_* variable as unset; so do our flags that read them.
    for (name, value) in std::env::vars_os() {
        if value.is_empty() && name.to_string_lossy().starts_with("GOVC_") {
            std::env::remove_var(name);
        }
    }
    let cli = Cli::parse();
    let run = || -> anyhow::Result<()> {
        let ctx = Ctx {
            project: Project::locate(cli.project.as_deref()),
            cache: Cache::locate(cli.cache_dir.as_deref())?,
        };
        match cli.command {
            Command::Fetch(args) => cmd::fetch::run(&ctx, args),
            Command::Pin(args) => cmd::pin::run(&ctx, args),
            Command::LockToolchain(args) => cmd::lock_toolchain::run(&ctx, args),
            Command::BuildRom(args) => cmd::build_rom::run(&ctx, args),
            Command::Inspect(args) => cmd::inspect::run(args),
            Command::Sizes(args) => cmd::sizes::run(&ctx, args),
            Command::CheckSize(args) => cmd::check_size::run(&ctx, args),
            Command::Vmx(args) => cmd::vmx::run(args),
            Command::Deploy(args) => cmd::deploy::run(&ctx, args),
            Command::Fleet(args) => cmd::fleet::run(args),
            Command::Verify(args) => cmd::verify::run(&ctx, args),
            Command::Bench(args) => cmd::bench::run(&ctx, args),
            Command::BootTest(args) => cmd::boot::run(&ctx, args),
            Command::Release(args) => cmd::release::run(&ctx, args),
            Command::Upstream(args) => cmd::upstream::run(&ctx, args),
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
