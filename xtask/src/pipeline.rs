//! The whole build: pinned source → profile and patches → make → checks. Writes nothing to
//! `--out`; `emit` does that once everything has passed.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::PathBuf,
};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{
    audit,
    cache::Cache,
    compile::{self, Inputs, MakeJob, Runtime},
    container,
    emit::{FileDigest, Manifest, ProfileInfo, RomInfo, RuntimeInfo, SourceInfo},
    nic::{Nic, RomFormat},
    pin::Pin,
    profile::{self, Profile},
    project::Project,
    romcheck::{self, Report},
    source, util,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// A container engine when one answers, else native.
    Auto,
    Docker,
    Podman,
    Native,
}

pub struct Request {
    pub project: Project,
    pub cache: Cache,
    pub profile: String,
    pub nics: Vec<&'static Nic>,
    /// Build `.mrom` for the NICs that have one.
    pub mrom: bool,
    pub runtime: RuntimeChoice,
    /// Replaces the Dockerfile's pinned base image.
    pub base_image: Option<String>,
    pub jobs: usize,
}

pub struct Built {
    pub nic: &'static Nic,
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub report: Report,
    /// The linked ELF, for audits of what went in.
    pub elf: PathBuf,
    /// `obj_<name>` symbols of the linked ELF.
    pub linked: BTreeSet<String>,
    /// The profile's promises this image breaks.
    pub broken: Vec<String>,
}

impl Built {
    /// Bytes per linked object, from the link map iPXE writes beside the ELF.
    pub fn object_sizes(&self) -> Result<BTreeMap<String, u64>> {
        let mut map = self.elf.clone().into_os_string();
        map.push(".map");
        audit::object_sizes(&PathBuf::from(map))
    }
}

pub struct Outcome {
    pub manifest: Manifest,
    pub roms: Vec<Built>,
    pub runtime: Runtime,
}

impl Outcome {
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.roms
            .iter()
            .map(|r| (r.file_name.clone(), r.bytes.clone()))
            .collect()
    }
}

pub fn resolve_runtime(sh: &Shell, req: &Request) -> Result<Runtime> {
    let engine = match req.runtime {
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
    match engine {
        Some(engine) => Ok(Runtime::Container(container::ensure_image(
            sh,
            &engine,
            &req.project.dockerfile(),
            req.base_image.as_deref(),
        )?)),
        None => {
            let cross = compile::native_cross(sh)?;
            eprintln!(
                "note: a native build's bytes match only builds made with the same compiler and binutils; \
                 --runtime docker gives bytes anyone can reproduce"
            );
            Ok(Runtime::Native { cross })
        }
    }
}

pub fn build(sh: &Shell, req: &Request) -> Result<Outcome> {
    let pin = Pin::load(&req.project.pin_file())?;
    let profile = Profile::load(&req.project.configs(), &req.profile)?;
    let patches: Vec<PathBuf> = profile
        .file
        .patches
        .iter()
        .map(|p| req.project.patches().join(p))
        .collect();
    for p in &patches {
        if !p.is_file() {
            bail!(
                "profile {} lists patch {}, which does not exist",
                profile.path.display(),
                p.display()
            );
        }
    }
    let (source, _) = source::ensure(&pin, &req.cache)?;
    let runtime = resolve_runtime(sh, req)?;
    let tree = compile::prepare_tree(sh, &req.cache, &source, &patches, &profile.name, &runtime)?;
    let config = profile.render(&profile::overridable_headers(&tree.src())?)?;
    config.write(&tree.src())?;

    let format = |nic: &Nic| {
        if req.mrom && nic.mrom {
            RomFormat::Mrom
        } else {
            RomFormat::Rom
        }
    };
    let job = MakeJob {
        targets: req.nics.iter().map(|n| n.make_target(format(n))).collect(),
        commit: pin.commit.clone(),
        source_date_epoch: pin.commit_time,
        jobs: req.jobs,
        inputs: Inputs {
            embed: profile.embed_path(),
            trust: profile.trust_paths(),
            certs: profile.cert_paths(),
        },
    };
    compile::make(sh, &runtime, &tree, &job)?;

    let promises = audit::promises(&profile, &audit::config_objects(&tree.src())?);
    let mut roms = Vec::new();
    for nic in &req.nics {
        let f = format(nic);
        let path = tree.src().join(nic.make_target(f));
        let bytes = fs::read(&path)
            .with_context(|| format!("make succeeded but left no {}", path.display()))?;
        let report = romcheck::check(&bytes, nic, profile.limit(nic));
        let elf = tree.src().join(nic.elf_target(f));
        let linked = audit::linked_objects(&elf)?;
        let broken = audit::broken(&promises, &linked);
        roms.push(Built {
            nic,
            file_name: nic.file_name(f),
            bytes,
            report,
            elf,
            linked,
            broken,
        });
    }
    let failed: Vec<String> = roms
        .iter()
        .filter(|r| !r.report.ok())
        .map(|r| {
            format!(
                "  {} ({}): {}",
                r.file_name,
                r.nic.name,
                r.report.problems.join("; ")
            )
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} ROM(s) failed their checks; nothing was written:\n{}\n\
             Cut more from profile {} (cargo xtask sizes shows what is largest), or raise the \
             NIC's limit under [limits] where VMware allows it.",
            failed.len(),
            failed.join("\n"),
            profile.path.display()
        );
    }
    let broken: Vec<String> = roms
        .iter()
        .flat_map(|r| {
            r.broken
                .iter()
                .map(move |b| format!("  {} ({}): {b}", r.file_name, r.nic.name))
        })
        .collect();
    if !broken.is_empty() {
        bail!(
            "the linked image does not keep profile {}'s promises; nothing was written:\n{}\n\
             Fix the profile's [headers] or [audit], or the patch that changed what links.",
            profile.path.display(),
            broken.join("\n")
        );
    }

    let inputs = profile
        .files_to_embed()
        .iter()
        .map(|p| {
            Ok(FileDigest {
                name: p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                sha256: util::sha256_file(p)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = Manifest {
        tool: format!("vsphere-ipxe-rom {}", env!("CARGO_PKG_VERSION")),
        source: SourceInfo {
            version: pin.version.clone(),
            commit: pin.commit.clone(),
            tree_digest: pin.tree_digest.to_string(),
            source_date_epoch: pin.commit_time,
        },
        profile: ProfileInfo {
            name: profile.name.clone(),
            sha256: profile.sha256.clone(),
            config_sha256: config.sha256(),
            inputs,
        },
        patches: patches
            .iter()
            .map(|p| {
                Ok(FileDigest {
                    name: p
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    sha256: util::sha256_file(p)?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
        toolchain: compile::toolchain(sh, &runtime)?.into_iter().collect(),
        runtime: RuntimeInfo {
            kind: runtime.name().to_string(),
            image: match &runtime {
                Runtime::Container(c) => Some(c.image_id.clone()),
                Runtime::Native { .. } => None,
            },
        },
        roms: roms
            .iter()
            .map(|r| {
                let info = RomInfo {
                    nic: r.nic.name.to_string(),
                    pci_id: r.nic.pci_id(),
                    size: r.report.size,
                    limit: r.report.limit,
                    headroom: r.report.headroom(),
                    sha256: util::sha256_hex(&r.bytes),
                    https: r.linked.contains("https"),
                };
                (r.file_name.clone(), info)
            })
            .collect(),
    };
    Ok(Outcome {
        manifest,
        roms,
        runtime,
    })
}
