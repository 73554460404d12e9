//! The whole build: pinned source → profile and patches → make → checks and audit. Writes
//! nothing to `--out`; `emit` does that once everything has passed.
//!
//! Results are cached by a key over everything that decides the bytes, so an unchanged build
//! runs no make at all; a changed one reuses the persistent build tree, so make recompiles only
//! what the change touches.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::PathBuf,
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use crate::{
    builder::compile::{self, Inputs, MakeJob},
    builder::patch::PatchSpec,
    builder::profile::{self, Profile},
    builder::runtime::{self, container, Runtime, RuntimeChoice},
    builder::series,
    cache::Cache,
    check::audit,
    check::romcheck::{self, Report},
    nic::{Nic, RomFormat},
    project::Project,
    record::{FileDigest, Manifest, PatchRecord, ProfileInfo, RomInfo, RuntimeInfo, SourceInfo},
    source,
    source::pin::Pin,
    util,
};

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
    /// What the linked ELF holds: `obj_<name>` symbols and bytes per object (link map).
    pub linked: Linked,
    /// The profile's promises this image breaks.
    pub broken: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Linked {
    pub objects: BTreeSet<String>,
    pub sizes: BTreeMap<String, u64>,
    /// The files the linked objects were compiled from, below the tree root: each object's
    /// source and the headers it included, from iPXE's `bin/deps`. What `upstream` watches.
    pub sources: BTreeSet<String>,
    /// Linked objects no dependency file names, so their sources are unknown.
    pub unsourced: BTreeSet<String>,
}

pub struct Outcome {
    pub manifest: Manifest,
    pub roms: Vec<Built>,
    pub runtime: Runtime,
    /// Served from the output cache: no make ran.
    pub cached: bool,
}

impl Outcome {
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.roms
            .iter()
            .map(|r| (r.file_name.clone(), r.bytes.clone()))
            .collect()
    }
}

/// Everything a build reads, resolved and validated before make runs. Choosing a container
/// runtime may build the builder image first (`runtime::choose_building_image`).
struct Plan {
    pin: Pin,
    profile: Profile,
    /// The series, then the profile's own patches.
    patches: Vec<(PatchSpec, PatchRecord)>,
    source: source::Source,
    config: profile::RenderedConfig,
    runtime: Runtime,
    /// Toolchain versions where they are cheap to ask (native); asked of the container on a miss.
    native_toolchain: Option<Vec<(String, String)>>,
    targets: Vec<(&'static Nic, RomFormat)>,
}

fn plan(sh: &Shell, req: &Request) -> Result<Plan> {
    let pin = Pin::load(&req.project.pin_file())?;
    let profile = Profile::load(&req.project, &req.profile)?;
    let (source, _) = source::ensure(&pin, &req.cache)?;
    let patches = series::resolve(&req.project, &req.cache, &profile.file.patches)
        .with_context(|| format!("profile {}", profile.path.display()))?;
    let config = profile.render(&profile::overridable_headers(&source.tree.join("src"))?)?;
    let runtime = runtime::choose_building_image(
        sh,
        req.runtime,
        &req.project,
        &req.cache,
        req.base_image.as_deref(),
    )?;
    let native_toolchain = match runtime {
        Runtime::Native { .. } => Some(runtime::toolchain(sh, &runtime)?),
        Runtime::Container(_) => None,
    };
    let format = |nic: &Nic| {
        if req.mrom && nic.mrom {
            RomFormat::Mrom
        } else {
            RomFormat::Rom
        }
    };
    let targets = req.nics.iter().map(|n| (*n, format(n))).collect();
    Ok(Plan {
        pin,
        profile,
        patches,
        source,
        config,
        runtime,
        native_toolchain,
        targets,
    })
}

impl Plan {
    /// Digest of everything that decides the bytes and the manifest.
    fn key(&self) -> Result<String> {
        let mut k = format!(
            "tool {}\nsource {}\ncommit {} {}\nprofile {}\nconfig {}\nruntime {}\n",
            env!("CARGO_PKG_VERSION"),
            self.pin.tree_digest,
            self.pin.commit,
            self.pin.commit_time,
            self.profile.sha256,
            self.config.sha256(),
            self.runtime.identity(),
        );
        for (name, version) in self.native_toolchain.iter().flatten() {
            k.push_str(&format!("toolchain {name} {version}\n"));
        }
        for (p, _) in &self.patches {
            k.push_str(&format!(
                "patch {} {}\n",
                p.name,
                util::sha256_file(&p.path)?
            ));
        }
        for p in &self.profile.files_to_embed() {
            k.push_str(&format!("file {} {}\n", p.display(), util::sha256_file(p)?));
        }
        for (nic, format) in &self.targets {
            k.push_str(&format!("target {}\n", nic.file_name(*format)));
        }
        Ok(util::sha256_hex(k.as_bytes()))
    }
}

/// What the output cache keeps of a build that passed.
#[derive(Serialize, Deserialize)]
struct CachedBuild {
    manifest: Manifest,
    linked: BTreeMap<String, Linked>,
}

pub fn build(sh: &Shell, req: &Request) -> Result<Outcome> {
    let plan = plan(sh, req)?;
    let key = plan.key()?;
    let entry = req.cache.area("outputs")?.join(&key[..32]);
    if let Some(outcome) = load_cached(&entry, &plan)? {
        return Ok(outcome);
    }
    let outcome = build_fresh(sh, req, plan)?;
    store(&req.cache, &entry, &outcome)?;
    Ok(outcome)
}

fn load_cached(entry: &std::path::Path, plan: &Plan) -> Result<Option<Outcome>> {
    let Ok(text) = fs::read_to_string(entry.join("result.json")) else {
        return Ok(None);
    };
    let Ok(cached) = serde_json::from_str::<CachedBuild>(&text) else {
        return Ok(None);
    };
    let mut roms = Vec::new();
    for (nic, format) in &plan.targets {
        let file_name = nic.file_name(*format);
        let Ok(bytes) = fs::read(entry.join(&file_name)) else {
            return Ok(None);
        };
        let info = &cached.manifest.roms[&file_name];
        if util::sha256_hex(&bytes) != info.sha256 {
            return Ok(None);
        }
        let report = romcheck::check(&bytes, nic, plan.profile.limit(nic));
        let linked = cached.linked.get(&file_name).cloned().unwrap_or_default();
        roms.push(Built {
            nic,
            file_name,
            bytes,
            report,
            linked,
            broken: Vec::new(),
        });
    }
    Ok(Some(Outcome {
        manifest: cached.manifest,
        roms,
        runtime: plan.runtime.clone(),
        cached: true,
    }))
}

/// Writes the entry whole: a scratch directory renamed into place.
fn store(cache: &Cache, entry: &std::path::Path, outcome: &Outcome) -> Result<()> {
    let scratch = cache.scratch("outputs")?;
    for rom in &outcome.roms {
        fs::write(scratch.path().join(&rom.file_name), &rom.bytes)?;
    }
    let cached = CachedBuild {
        manifest: outcome.manifest.clone(),
        linked: outcome
            .roms
            .iter()
            .map(|r| (r.file_name.clone(), r.linked.clone()))
            .collect(),
    };
    fs::write(
        scratch.path().join("result.json"),
        serde_json::to_string(&cached)?,
    )?;
    if entry.exists() {
        fs::remove_dir_all(entry)?;
    }
    fs::rename(scratch.keep(), entry).with_context(|| format!("cannot store {}", entry.display()))
}

/// A build with nothing cached: each stage takes what the one before gave.
fn build_fresh(sh: &Shell, req: &Request, plan: Plan) -> Result<Outcome> {
    let tree = prepare(sh, req, &plan)?;
    let runtime = with_toolchain_volume(sh, req, plan.runtime.clone())?;
    make(sh, req, &plan, &tree, &runtime)?;
    let roms = collect(&plan, &tree)?;
    refuse_failures(&plan, &roms)?;
    let manifest = describe(sh, req, plan, &tree, &runtime, &roms)?;
    Ok(Outcome {
        manifest,
        roms,
        runtime,
        cached: false,
    })
}

/// Stage 2: the patched build tree, with the profile's configuration written into it.
fn prepare(sh: &Shell, req: &Request, plan: &Plan) -> Result<compile::BuildTree> {
    let specs: Vec<PatchSpec> = plan.patches.iter().map(|(s, _)| s.clone()).collect();
    let tree = compile::prepare_tree(
        sh,
        &req.cache,
        &plan.source,
        &specs,
        &plan.profile.name,
        &plan.runtime,
    )?;
    plan.config.write(&tree.src())?;
    Ok(tree)
}

/// A container build on fuse-overlayfs storage gets the image's /usr as a volume.
fn with_toolchain_volume(sh: &Shell, req: &Request, runtime: Runtime) -> Result<Runtime> {
    Ok(match runtime {
        Runtime::Container(c) => Runtime::Container(runtime::Container {
            usr_volume: container::toolchain_volume(sh, &req.cache, &c)?,
            ..c
        }),
        native => native,
    })
}

/// Stage 3: make, with the profile's files and the byte-deciding variables.
fn make(
    sh: &Shell,
    req: &Request,
    plan: &Plan,
    tree: &compile::BuildTree,
    runtime: &Runtime,
) -> Result<()> {
    let job = MakeJob {
        targets: plan
            .targets
            .iter()
            .map(|(n, f)| n.make_target(*f))
            .collect(),
        commit: plan.pin.commit.clone(),
        source_date_epoch: plan.pin.commit_time,
        jobs: req.jobs,
        inputs: Inputs {
            embed: plan.profile.embed_path(),
            trust: plan.profile.trust_paths(),
            certs: plan.profile.cert_paths(),
        },
    };
    compile::make(sh, runtime, tree, &job).map(|_log| ())
}

/// Stage 4: each ROM read back, checked, and its linked image held to the profile's promises.
fn collect(plan: &Plan, tree: &compile::BuildTree) -> Result<Vec<Built>> {
    let promises = plan.profile.promises(&audit::config_objects(&tree.src())?);
    let deps = audit::dependency_files(&tree.src())?;
    let mut roms = Vec::new();
    for (nic, f) in &plan.targets {
        let path = tree.src().join(nic.make_target(*f));
        let bytes = fs::read(&path)
            .with_context(|| format!("make succeeded but left no {}", path.display()))?;
        let elf = tree.src().join(nic.elf_target(*f));
        let mut map = elf.clone().into_os_string();
        map.push(".map");
        let objects = audit::linked_objects(&elf)?;
        let sizes = audit::object_sizes(&PathBuf::from(map))?;
        let (sources, unsourced) = audit::linked_sources(&deps, objects.iter().chain(sizes.keys()));
        let linked = Linked {
            objects,
            sizes,
            sources,
            unsourced,
        };
        roms.push(Built {
            nic,
            file_name: nic.file_name(*f),
            report: romcheck::check(&bytes, nic, plan.profile.limit(nic)),
            broken: audit::broken(&promises, &linked.objects),
            bytes,
            linked,
        });
    }
    Ok(roms)
}

/// Nothing is written when a ROM fails its checks or breaks a promise.
fn refuse_failures(plan: &Plan, roms: &[Built]) -> Result<()> {
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
            plan.profile.path.display()
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
            plan.profile.path.display(),
            broken.join("\n")
        );
    }
    Ok(())
}

/// Stage 5's record: what decided the bytes and what came out.
fn describe(
    sh: &Shell,
    req: &Request,
    plan: Plan,
    tree: &compile::BuildTree,
    runtime: &Runtime,
    roms: &[Built],
) -> Result<Manifest> {
    let toolchain = match plan.native_toolchain {
        Some(t) => t,
        None => runtime::image_toolchain(sh, &req.cache, runtime)?,
    };
    let profile = &plan.profile;
    Ok(Manifest {
        tool: format!("vsphere-ipxe-rom {}", env!("CARGO_PKG_VERSION")),
        source: SourceInfo {
            version: plan.pin.version.clone(),
            commit: plan.pin.commit.clone(),
            tree_digest: plan.pin.tree_digest.to_string(),
            source_date_epoch: plan.pin.commit_time,
        },
        profile: ProfileInfo {
            name: profile.name.clone(),
            sha256: profile.sha256.clone(),
            config_sha256: plan.config.sha256(),
            inputs: profile
                .files_to_embed()
                .iter()
                .map(|p| file_digest(p))
                .collect::<Result<_>>()?,
        },
        patches: patch_records(plan.patches, tree),
        toolchain: toolchain.into_iter().collect(),
        runtime: runtime_info(runtime),
        roms: roms
            .iter()
            .map(|r| (r.file_name.clone(), rom_info(r)))
            .collect(),
    })
}

fn file_digest(p: &std::path::Path) -> Result<FileDigest> {
    Ok(FileDigest {
        name: p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        sha256: util::sha256_file(p)?,
    })
}

/// Each patch's record, with the offsets its hunks applied at in this tree.
fn patch_records(
    patches: Vec<(PatchSpec, PatchRecord)>,
    tree: &compile::BuildTree,
) -> Vec<PatchRecord> {
    patches
        .into_iter()
        .map(|(_, mut record)| {
            if let Some((_, moved)) = tree.offsets.iter().find(|(n, _)| *n == record.name) {
                record.offsets = moved.clone();
            }
            record
        })
        .collect()
}

fn runtime_info(runtime: &Runtime) -> RuntimeInfo {
    let (image, toolchain_lock) = match runtime {
        Runtime::Container(c) => (Some(c.image_id.clone()), c.lock.clone()),
        Runtime::Native { .. } => (None, None),
    };
    RuntimeInfo {
        kind: runtime.name().to_string(),
        image,
        toolchain_lock,
    }
}

fn rom_info(r: &Built) -> RomInfo {
    RomInfo {
        nic: r.nic.name.to_string(),
        pci_id: r.nic.pci_id(),
        size: r.report.size,
        limit: r.report.limit,
        headroom: r.report.headroom(),
        sha256: util::sha256_hex(&r.bytes),
        https: r.linked.objects.contains("https"),
    }
}
