//! The build container: which engine answers, and the builder image made from `Dockerfile`.

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    builder::runtime::Container,
    builder::toolchain,
    cache::{self, Cache},
    project::Project,
    util,
};

pub const ENGINES: &[&str] = &["docker", "podman"];

/// The first engine whose daemon answers, if any.
pub fn detect(sh: &Shell) -> Option<String> {
    ENGINES
        .iter()
        .find(|e| answers(sh, e))
        .map(|e| e.to_string())
}

pub fn answers(sh: &Shell, engine: &str) -> bool {
    let format = "{{.Server.Version}}";
    cmd!(sh, "{engine} version --format {format}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// The builder image for this Dockerfile, base and toolchain lock, built once and then found
/// by tag. `base` overrides the Dockerfile's pinned `BASE` (a local image where no registry is
/// reachable). The image installs exactly the locked .debs, handed to it in the build context,
/// and is built with no network: it is a function of the base and the lock.
pub fn build_image_unless_built(
    sh: &Shell,
    engine: &str,
    project: &Project,
    cache: &Cache,
    base: Option<&str>,
    mirror: &str,
) -> Result<Container> {
    if !answers(sh, engine) {
        bail!("{engine} does not answer: start its daemon, or pass --runtime native");
    }
    let dockerfile = project.dockerfile();
    let lock_path = project.configs().join(toolchain::LOCK);
    let lock = toolchain::Lock::load(&lock_path)?;
    let lock_digest = toolchain::Lock::digest(&lock_path)?;
    let arch = toolchain::host_arch();
    if !lock.packages.iter().any(|p| p.architecture == arch) {
        bail!(
            "{} locks no packages for {arch}: run cargo xtask lock-toolchain on an {arch} host",
            lock_path.display()
        );
    }
    let text = crate::input::read(&dockerfile, crate::input::DOCKERFILE)?;
    let mut key = text.clone();
    key.extend(base.unwrap_or("").as_bytes());
    key.extend(lock_digest.as_bytes());
    let image = format!("vsphere-ipxe-rom-builder:{}", &util::sha256_hex(&key)[..16]);
    if image_id(sh, engine, &image).is_err() {
        toolchain::fetch(&lock, arch, cache, mirror)?;
        let build = ImageBuild {
            engine,
            image: &image,
            dockerfile: &text,
            base,
            lock: &lock,
            lock_digest: &lock_digest,
        };
        eprintln!(
            "building the builder image {image} from {} and {} (no network)",
            dockerfile.display(),
            lock_path.display()
        );
        build.run(sh, cache).with_context(|| {
            format!(
                "cannot build the builder image from {} and {}",
                dockerfile.display(),
                lock_path.display()
            )
        })?;
    }
    let image_id = image_id(sh, engine, &image)?;
    Ok(Container {
        engine: engine.to_string(),
        image,
        image_id,
        usr_volume: None,
        lock: Some(lock_digest),
    })
}

/// Docker's stderr without the legacy builder's deprecation notice (its first paragraph), which
/// it prints on every build and which says nothing about what went wrong.
/// One build of the builder image, from the Dockerfile and exactly the locked .debs.
struct ImageBuild<'a> {
    engine: &'a str,
    image: &'a str,
    dockerfile: &'a [u8],
    base: Option<&'a str>,
    lock: &'a toolchain::Lock,
    lock_digest: &'a str,
}

impl ImageBuild<'_> {
    fn run(&self, sh: &Shell, cache: &Cache) -> Result<()> {
        let context = crate::util::TempDir::new("vsphere-ipxe-rom-image-")?;
        let ctx = context.path();
        std::fs::write(ctx.join("Dockerfile"), self.dockerfile)?;
        toolchain::stage(self.lock, toolchain::host_arch(), cache, ctx)?;
        let mut build_args = vec![format!("--build-arg=LOCK_DIGEST={}", self.lock_digest)];
        build_args.extend(self.base.map(|b| format!("--build-arg=BASE={b}")));
        let (engine, image) = (self.engine, self.image);
        // The legacy builder's deprecation notice would print on every image build: stderr is
        // shown only when the build fails.
        let out = cmd!(
            sh,
            "{engine} build --quiet --network=none {build_args...} --tag={image} {ctx}"
        )
        .quiet()
        .ignore_status()
        .output()?;
        if !out.status.success() {
            eprint!(
                "{}",
                without_legacy_notice(&String::from_utf8_lossy(&out.stderr))
            );
            bail!(
                "{engine} build failed; where no registry is reachable, pass a local base image \
                 with --base-image"
            );
        }
        Ok(())
    }
}

fn without_legacy_notice(stderr: &str) -> String {
    let mut skipping = false;
    let mut out = String::new();
    for line in stderr.lines() {
        if line.starts_with("DEPRECATED: The legacy builder") {
            skipping = true;
        } else if skipping && line.trim().is_empty() {
            skipping = false;
            continue;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Whether the engine serves container filesystems through fuse-overlayfs (rootless engines,
/// and hosts without kernel overlay support): there, every file a process opens on the image
/// is a round trip to one user-space daemon.
///
/// `VSPHERE_IPXE_ROM_USR_VOLUME=1` (or `0`) overrides the answer: the volume path can be run,
/// and tested, on any storage driver.
pub fn fuse_backed(sh: &Shell, engine: &str) -> bool {
    match std::env::var("VSPHERE_IPXE_ROM_USR_VOLUME").as_deref() {
        Ok("1") => return true,
        Ok("0") => return false,
        _ => {}
    }
    let format = match engine {
        "podman" => "{{.Store.GraphOptions}}",
        _ => "{{.Driver}}",
    };
    cmd!(sh, "{engine} info --format {format}")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|answer| answer.contains("fuse-overlayfs"))
}

/// Label on the toolchain volumes, naming the image whose `/usr` each one copies; list or
/// remove them with `docker volume ls --filter label=vsphere-ipxe-rom.usr-of`.
const VOLUME_LABEL: &str = "vsphere-ipxe-rom.usr-of";

/// Marks a finished fill; a volume without it may be a fill cut short.
const FILLED: &str = "/usr/.vsphere-ipxe-rom-filled";

/// Makes volume `name` anew from the image's `/usr`, removing a copy that was cut short, and
/// marks it filled.
fn fill_volume(sh: &Shell, c: &Container, name: &str, exists: bool) -> Result<()> {
    let (engine, image, id) = (&c.engine, &c.image, c.digest());
    if exists {
        cmd!(sh, "{engine} volume rm {name}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| {
                format!(
                    "volume {name} holds a copy of the toolchain that was cut short and cannot be \
                     removed; remove it with `{engine} volume rm {name}` once no container \
                     uses it, then build again"
                )
            })?;
    }
    eprintln!("copying the builder image's /usr into volume {name} (once per image)");
    let label = format!("--label={VOLUME_LABEL}={id}");
    let writable = format!("--mount=type=volume,src={name},dst=/usr");
    cmd!(sh, "{engine} volume create {label} {name}")
        .quiet()
        .ignore_stdout()
        .run()
        .and_then(|()| {
            cmd!(
                sh,
                "{engine} run --rm --network=none --user=0:0 --cap-drop=ALL {writable} {image} touch {FILLED}"
            )
            .quiet()
            .run()
        })
        .with_context(|| {
            format!(
                "cannot fill volume {name} from {image} (it takes about 400 MB of the \
                 engine's disk); {engine}'s message above says why"
            )
        })?;
    Ok(())
}

/// On fuse-overlayfs storage, a named volume holding a copy of the image's `/usr` (compiler,
/// binutils, headers, libraries), to be mounted read-only over it: the host's own filesystem
/// then serves what thousands of compiler runs read. Elsewhere `None`: the image is served
/// directly.
///
/// The engine fills an empty named volume from the image when it first mounts it; the same run
/// then marks the fill finished. One fill at a time on a host; an unmarked volume is removed and
/// filled again. Named by image id, so it never goes stale, and recorded in the cache so later
/// builds need not look inside it.
pub fn toolchain_volume(sh: &Shell, cache: &Cache, c: &Container) -> Result<Option<String>> {
    if !fuse_backed(sh, &c.engine) {
        return Ok(None);
    }
    let id = c.digest();
    let (engine, image) = (&c.engine, &c.image);
    let name = format!("vsphere-ipxe-rom-usr-{}", &id[..16]);
    let record_name = format!("{id}.usr-volume");
    let recorded = cache.area("images")?.join(&record_name).is_file();
    let exists = || {
        cmd!(sh, "{engine} volume inspect {name}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_ok()
    };
    if recorded && exists() {
        return Ok(Some(name));
    }
    // Shared by every cache on this host, as the engine's volumes are.
    let _lock = cache::lock_file(&std::env::temp_dir().join(format!("{name}.lock")))?;
    let read_only = format!("--mount=type=volume,src={name},dst=/usr,readonly");
    let marked = || {
        cmd!(
            sh,
            "{engine} run --rm --network=none {read_only} {image} test -e {FILLED}"
        )
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    };
    if !(exists() && marked()) {
        fill_volume(sh, c, &name, exists())?;
    }
    cache.put("images", &record_name, name.as_bytes())?;
    Ok(Some(name))
}

/// The image's content id, checked to be a sha256 digest: caches and volume names are keyed by it.
fn image_id(sh: &Shell, engine: &str, image: &str) -> Result<String> {
    let format = "{{.Id}}";
    let id = cmd!(sh, "{engine} image inspect --format {format} {image}")
        .quiet()
        .ignore_stderr()
        .read()?;
    let hex = id.trim_start_matches("sha256:");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{engine} reported image id {id:?} for {image}, not a sha256 digest; the build \
             needs an engine that names images by content (Docker or Podman), or --runtime native"
        );
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_legacy_builder_notice_is_dropped_and_the_error_kept() {
        let stderr = "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            Install the buildx component to build images with BuildKit:\n            https://docs.docker.com/go/buildx/\n\nStep 2/8 : FROM ${BASE}\nGet \"https://registry-1.docker.io/v2/\": no such host\n";
        assert_eq!(
            super::without_legacy_notice(stderr),
            "Step 2/8 : FROM ${BASE}\nGet \"https://registry-1.docker.io/v2/\": no such host\n"
        );
    }
}
