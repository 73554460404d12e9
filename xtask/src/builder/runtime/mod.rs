//! How a build runs: natively with the machine's cross compiler, or in the builder container
//! made from the locked toolchain. The choice, the container and the native toolchain live
//! here; `container` holds the engine's side (image, volume).

pub mod container;

use std::fs;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{builder::toolchain, cache::Cache, project::Project};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// A container engine when one answers, else native.
    Auto,
    Docker,
    Podman,
    Native,
}

/// The cross prefix the container image guarantees on every host architecture.
pub const CROSS: &str = "x86_64-linux-gnu-";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    Native { cross: Option<String> },
    Container(Container),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// `docker` or `podman`.
    pub engine: String,
    pub image: String,
    pub image_id: String,
    /// A named volume holding a copy of the image's `/usr`, mounted over it for the build
    /// (see [`crate::builder::runtime::container::toolchain_volume`]).
    pub usr_volume: Option<String>,
    /// `sha256:` of the toolchain lock the image was built from.
    pub lock: Option<String>,
}

impl Container {
    /// The image id's hex digest, without the `sha256:` docker puts in front.
    pub fn digest(&self) -> &str {
        self.image_id.trim_start_matches("sha256:")
    }
}

impl Runtime {
    /// What distinguishes one runtime's objects from another's.
    pub fn identity(&self) -> String {
        match self {
            Runtime::Native { cross } => format!("native {}", cross.as_deref().unwrap_or("")),
            Runtime::Container(c) => format!("{} {}", c.engine, c.image_id),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Runtime::Native { .. } => "native",
            Runtime::Container(c) => &c.engine,
        }
    }
}

/// The runtime a build asked for. A container runtime needs the builder image: this may build
/// it (once per Dockerfile, lock and base), which is why its name says so.
pub fn choose_building_image(
    sh: &Shell,
    choice: RuntimeChoice,
    project: &Project,
    cache: &Cache,
    base_image: Option<&str>,
) -> Result<Runtime> {
    let engine = match choice {
        RuntimeChoice::Native => None,
        RuntimeChoice::Docker => Some("docker".to_string()),
        RuntimeChoice::Podman => Some("podman".to_string()),
        RuntimeChoice::Auto => {
            let found = container::detect(sh);
            if found.is_none() {
                eprintln!("note: no container engine answers (docker, podman); building natively");
            }
            found
        }
    };
    let image = engine.map(|e| {
        container::build_image_unless_built(
            sh,
            &e,
            project,
            cache,
            base_image,
            toolchain::DEFAULT_MIRROR,
        )
    });
    match image {
        Some(Ok(container)) => Ok(Runtime::Container(container)),
        // Asked for a container: its failure is the answer.
        Some(Err(e)) if choice != RuntimeChoice::Auto => Err(e),
        Some(Err(e)) => {
            eprintln!("note: {e:#}");
            eprintln!(
                "note: building natively instead; pass --runtime docker to make this an error"
            );
            native_runtime(sh)
        }
        None => native_runtime(sh),
    }
}

fn native_runtime(sh: &Shell) -> Result<Runtime> {
    let cross = native_cross(sh)?;
    eprintln!(
        "note: a native build's bytes match only builds made with the same compiler and binutils; \
         --runtime docker gives bytes anyone can reproduce"
    );
    Ok(Runtime::Native { cross })
}

/// A container image's toolchain versions, asked once per image: an image id names its content,
/// so the answer never goes stale, and later builds skip three container starts.
pub fn image_toolchain(
    sh: &Shell,
    cache: &Cache,
    runtime: &Runtime,
) -> Result<Vec<(String, String)>> {
    let Runtime::Container(c) = runtime else {
        return toolchain(sh, runtime);
    };
    let id = c.digest();
    let path = cache.area("images")?.join(format!("{id}.toolchain.json"));
    if let Some(known) = fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        return Ok(known);
    }
    let asked = toolchain(sh, runtime)?;
    cache.put(
        "images",
        &format!("{id}.toolchain.json"),
        serde_json::to_string(&asked)?.as_bytes(),
    )?;
    Ok(asked)
}

/// The native cross prefix: `x86_64-linux-gnu-` where that compiler exists, else the plain
/// compiler on an x86-64 host.
pub fn native_cross(sh: &Shell) -> Result<Option<String>> {
    if which(sh, &format!("{CROSS}gcc")) {
        return Ok(Some(CROSS.to_string()));
    }
    if std::env::consts::ARCH == "x86_64" && which(sh, "gcc") {
        return Ok(None);
    }
    bail!(
        "a native build needs {CROSS}gcc (Debian: apt-get install gcc-x86-64-linux-gnu binutils-x86-64-linux-gnu), \
         or use --runtime docker"
    )
}

pub fn which(sh: &Shell, program: &str) -> bool {
    cmd!(sh, "which {program}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// Versions of what compiles the ROM, asked of the runtime that does.
pub fn toolchain(sh: &Shell, runtime: &Runtime) -> Result<Vec<(String, String)>> {
    let cross = match runtime {
        Runtime::Native { cross } => cross.clone().unwrap_or_default(),
        Runtime::Container(_) => CROSS.to_string(),
    };
    let mut out = Vec::new();
    for (name, tool) in [
        ("gcc", format!("{cross}gcc")),
        ("ld", format!("{cross}ld")),
        ("make", "make".into()),
    ] {
        let line = match runtime {
            Runtime::Native { .. } => cmd!(sh, "{tool} --version").quiet().read(),
            Runtime::Container(c) => {
                let (engine, image) = (&c.engine, &c.image);
                cmd!(
                    sh,
                    "{engine} run --rm --network=none {image} {tool} --version"
                )
                .quiet()
                .read()
            }
        }
        .with_context(|| format!("cannot ask {tool} for its version"))?;
        out.push((
            name.to_string(),
            line.lines().next().unwrap_or_default().to_string(),
        ));
    }
    Ok(out)
}
