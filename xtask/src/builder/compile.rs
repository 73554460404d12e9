//! Stage 3: the build tree (pinned source + patches + rendered config) and one `make` run,
//! natively or in a container, with everything that decides the bytes set in one place.

use std::{
    fs,
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    builder::{
        patch,
        runtime::{Container, Runtime, CROSS},
    },
    cache::Cache,
    record::Offset,
    source::Source,
    util,
};

/// Where the build tree's `src/` appears inside the container; the prefix map hides it.
const CONTAINER_SRC: &str = "/build/src";
/// A copy of the pinned tree with patches applied, kept between builds so that make only
/// recompiles what a change touches. Locked while in use.
pub struct BuildTree {
    pub root: PathBuf,
    /// Each patch that applied at an offset, by name, with its moved hunks.
    pub offsets: Vec<(String, Vec<Offset>)>,
    _lock: crate::cache::Lock,
}

/// Beside `src/` in a build tree: the offsets its patches applied at.
const OFFSETS_FILE: &str = ".patch-offsets.json";

impl BuildTree {
    pub fn src(&self) -> PathBuf {
        self.root.join("src")
    }
}

/// Applies the patches in order; returns the hunks that applied at an offset, by patch.
fn apply_all(patches: &[patch::PatchSpec], tree: &Path) -> Result<Vec<(String, Vec<Offset>)>> {
    let mut offsets = Vec::new();
    for p in patches {
        let moved = match patch::apply(p, tree) {
            Ok(moved) => moved,
            Err(_) if patch::already_applied(p, tree).unwrap_or(false) => bail!(
                "patch {} is already in this iPXE tree: remove it from ipxe-patches/series.toml \
                 (or the profile's patches)",
                p.name
            ),
            Err(e) => return Err(e),
        };
        if !moved.is_empty() {
            offsets.push((p.name.clone(), moved));
        }
    }
    Ok(offsets)
}

/// Finds or makes the build tree for this source, patch series, profile and runtime. The
/// runtime is part of the key because make does not notice changed flags or compilers: objects
/// from one toolchain must never be linked by another.
pub fn prepare_tree(
    sh: &Shell,
    cache: &Cache,
    source: &Source,
    patches: &[patch::PatchSpec],
    profile: &str,
    runtime: &Runtime,
) -> Result<BuildTree> {
    let mut key = format!(
        "{}\n{profile}\n{}\n",
        source.pin.tree_digest,
        runtime.identity()
    );
    for p in patches {
        key.push_str(&format!("{} {}\n", p.name, util::sha256_file(&p.path)?));
    }
    let key = util::sha256_hex(key.as_bytes());
    let lock = cache.lock(&format!("build-{}", &key[..16]))?;
    let root = cache.area("build")?.join(&key[..32]);
    if !root.join("src/Makefile").is_file() {
        let scratch = cache.scratch("build")?;
        let tree = scratch.path().join("tree");
        crate::util::copy_tree(sh, &source.tree, &tree)?;
        let offsets = apply_all(patches, &tree)?;
        fs::write(tree.join(OFFSETS_FILE), serde_json::to_string(&offsets)?)?;
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        fs::rename(&tree, &root)
            .with_context(|| format!("cannot move the build tree to {}", root.display()))?;
    }
    if fs::symlink_metadata(&root)?.file_type().is_symlink() {
        bail!(
            "{} is a link, not a build tree: delete it and build again",
            root.display()
        );
    }
    let offsets = fs::read_to_string(root.join(OFFSETS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok(BuildTree {
        root,
        offsets,
        _lock: lock,
    })
}

/// Files a profile compiles in, copied into the tree under fixed names so their paths are the
/// same for every runtime and every machine.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub embed: Option<PathBuf>,
    pub trust: Vec<PathBuf>,
    pub certs: Vec<PathBuf>,
}

/// Everything `make` is told.
#[derive(Debug, Clone)]
pub struct MakeJob {
    pub targets: Vec<String>,
    pub commit: String,
    pub source_date_epoch: u64,
    pub jobs: usize,
    pub inputs: Inputs,
}

const INPUT_DIR: &str = "vsphere-ipxe-rom";

/// Copies the profile's files in (rewriting only changed ones) and returns make variables for them.
fn stage_inputs(src: &Path, inputs: &Inputs) -> Result<Vec<String>> {
    let dir = src.join(INPUT_DIR);
    fs::create_dir_all(&dir)?;
    let mut vars = Vec::new();
    let put = |file: &Path, name: &str| -> Result<String> {
        let bytes = crate::input::read(file, crate::input::EMBED)?;
        util::write_if_changed(&dir.join(name), &bytes)?;
        Ok(format!("{INPUT_DIR}/{name}"))
    };
    // iPXE (v2.0.0 up to the pinned master) tracks what TRUST= and CERT= *name*, not the files'
    // content (rootcert_DEPS lists an undefined $(TRUSTED_FILES)): naming each file by its
    // digest makes any change of content a change of name, which make does notice. The names
    // never reach the ROM.
    let by_content = |file: &Path, role: &str| -> Result<String> {
        put(
            file,
            &format!("{role}-{}.pem", &util::sha256_file(file)?[..16]),
        )
    };
    if let Some(e) = &inputs.embed {
        vars.push(format!("EMBED={}", put(e, "embed.ipxe")?));
    }
    for (var, files, kind) in [
        ("TRUST", &inputs.trust, "trust"),
        ("CERT", &inputs.certs, "cert"),
    ] {
        let named = files
            .iter()
            .map(|f| by_content(f, kind))
            .collect::<Result<Vec<_>>>()?;
        if !named.is_empty() {
            vars.push(format!("{var}={}", named.join(",")));
        }
    }
    Ok(vars)
}

/// The make variables that decide the bytes besides the profile's files: the commit for the
/// version string, the prefix map that keeps the build path out, and the cross prefix.
pub fn byte_deciding_vars(runtime: &Runtime, src: &Path, job: &MakeJob) -> Result<Vec<String>> {
    let (src_in_build, cross) = match runtime {
        Runtime::Native { cross } => (
            src.to_str()
                .context("the cache path is not UTF-8")?
                .to_string(),
            cross.clone(),
        ),
        Runtime::Container(_) => (CONTAINER_SRC.to_string(), Some(CROSS.to_string())),
    };
    let mut vars = vec![
        format!("GITVERSION={}", job.commit),
        format!("EXTRA_CFLAGS=-ffile-prefix-map={src_in_build}=."),
    ];
    vars.extend(cross.map(|c| format!("CROSS={c}")));
    Ok(vars)
}

/// Runs make once for every target. Returns the combined output.
pub fn make(sh: &Shell, runtime: &Runtime, tree: &BuildTree, job: &MakeJob) -> Result<String> {
    let src = tree.src();
    let mut vars = stage_inputs(&src, &job.inputs)?;
    vars.extend(byte_deciding_vars(runtime, &src, job)?);
    let mut args = vec![format!("-j{}", job.jobs)];
    args.extend(vars);
    args.extend(job.targets.iter().cloned());
    let epoch = job.source_date_epoch.to_string();

    let _d = sh.push_dir(&src);
    let _env = [
        sh.push_env("SOURCE_DATE_EPOCH", &epoch),
        sh.push_env("TZ", "UTC"),
        sh.push_env("LC_ALL", "C"),
    ];
    let command = match runtime {
        Runtime::Native { .. } => cmd!(sh, "make {args...}"),
        Runtime::Container(c) => {
            let (engine, image) = (&c.engine, &c.image);
            let opts = container_opts(sh, c, tree, &epoch)?;
            cmd!(sh, "{engine} run {opts...} {image} make {args...}")
        }
    };
    let shown = format!("{command}");
    // A person at a terminal sees objects compiled and time elapsed; logs stay short.
    let output = if std::io::stderr().is_terminal() {
        let label = format!("{} ({})", job.targets.join(" "), runtime.name());
        with_progress(command.into(), &label, fresh_estimate(&src))
    } else {
        command.quiet().ignore_status().output().map_err(Into::into)
    };
    let output = output.with_context(|| format!("cannot run {shown}"))?;
    let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    fs::write(tree.root.join("build.log"), &log)?;
    if !output.status.success() {
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(25)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "make failed ({}):\n  {shown}\nlast lines (whole log in {}):\n{}",
            output.status,
            tree.root.join("build.log").display(),
            tail.join("\n")
        );
    }
    Ok(log)
}

/// `run` options for the builder container: no network, a read-only root, no capabilities,
/// the invoker's uid, the build tree as the only writable mount, and the byte-deciding env.
fn container_opts(sh: &Shell, c: &Container, tree: &BuildTree, epoch: &str) -> Result<Vec<String>> {
    let mount = format!("{}:/build", tree.root.display());
    let user = container_user(sh, &tree.root)?;
    let mut opts = vec![
        "--rm".to_string(),
        "--network=none".into(),
        "--read-only".into(),
        "--tmpfs=/tmp:exec".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        format!("--user={user}"),
        format!("--volume={mount}"),
        format!("--workdir={CONTAINER_SRC}"),
        format!("--env=SOURCE_DATE_EPOCH={epoch}"),
        "--env=TZ=UTC".into(),
        "--env=LC_ALL=C".into(),
        "--env=HOME=/tmp".into(),
    ];
    if c.engine == "podman" {
        opts.push("--userns=keep-id".into());
    }
    if let Some(v) = &c.usr_volume {
        opts.push(format!("--mount=type=volume,src={v},dst=/usr,readonly"));
    }
    Ok(opts)
}

/// The invoking user's uid:gid, so the container can do no more than the user can and what it
/// writes stays the user's. A root invoker's build runs as uid 0 with every capability dropped
/// (see [`make`]): it can write only its own tree and `/tmp`, and it is the owner of the
/// container's `/`, which on fuse-overlayfs spares every path lookup a permission round trip to
/// the FUSE daemon (an unprivileged uid made the Docker build a third slower there).
///
/// A tree left by another user (an earlier run under sudo, say) is taken over when the invoker
/// is root; a capability-less uid 0 could not write it.
fn container_user(sh: &Shell, tree: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let uid: u32 = cmd!(sh, "id -u").quiet().read()?.trim().parse()?;
    let gid: u32 = cmd!(sh, "id -g").quiet().read()?.trim().parse()?;
    if uid == 0 && fs::metadata(tree)?.uid() != 0 {
        cmd!(sh, "chown -R 0:0 {tree}").quiet().run()?;
    }
    Ok(format!("{uid}:{gid}"))
}

/// About how many objects a build tree that has never been built compiles: its C and assembly
/// sources outside the host tools. None for a tree built before (only changes recompile).
fn fresh_estimate(src: &Path) -> Option<usize> {
    if src.join("bin/blib.a").exists() {
        return None;
    }
    let mut n = 0;
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() && e.file_name() != "util" {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "c" || x == "S") {
                n += 1;
            }
        }
    }
    Some(n)
}

/// Runs make, counting the objects it compiles (iPXE prints `[BUILD] <object>` for each) on one
/// line that shows the elapsed time too.
/// Reads make's output on a thread, counting `[BUILD]` and `[DEPS]` lines as they come.
fn count_lines(
    out: impl std::io::Read + Send + 'static,
    built: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    deps: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::thread::JoinHandle<Vec<u8>> {
    use std::{
        io::{BufRead, BufReader},
        sync::atomic::Ordering,
    };
    std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
            if line.windows(7).any(|w| w == b"[BUILD]") {
                built.fetch_add(1, Ordering::Relaxed);
            } else if line.windows(6).any(|w| w == b"[DEPS]") {
                deps.fetch_add(1, Ordering::Relaxed);
            }
            all.extend_from_slice(&line);
            all.push(b'\n');
        }
        all
    })
}

/// What the status line says of `n` objects compiled and `d` dependency files read.
fn progress(n: usize, d: usize, estimate: Option<usize>) -> String {
    let of = match estimate {
        Some(t) if t >= n => format!(" of about {t}"),
        _ => String::new(),
    };
    if n == 0 && d > 0 {
        format!("{d} dependency files read")
    } else {
        format!("{n}{of} objects compiled")
    }
}

fn with_progress(
    mut cmd: std::process::Command,
    label: &str,
    estimate: Option<usize>,
) -> Result<std::process::Output> {
    use std::{
        io::Read,
        process::Stdio,
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let built = Arc::new(AtomicUsize::new(0));
    let deps = Arc::new(AtomicUsize::new(0));
    let out = child.stdout.take().context("no make stdout")?;
    let reader = count_lines(out, built.clone(), deps.clone());
    let mut err = child.stderr.take().context("no make stderr")?;
    let errors = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = err.read_to_end(&mut all);
        all
    });
    let started = std::time::Instant::now();
    let line = crate::util::StatusLine::new();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let (n, d) = (built.load(Ordering::Relaxed), deps.load(Ordering::Relaxed));
        let what = progress(n, d, estimate);
        line.show(&format!(
            "building {label}: {what}, {} s",
            started.elapsed().as_secs()
        ));
        std::thread::sleep(Duration::from_millis(250));
    };
    drop(line);
    Ok(std::process::Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: errors.join().unwrap_or_default(),
    })
}
