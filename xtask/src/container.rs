//! The build container: which engine answers, and the builder image made from `Dockerfile`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{compile::Container, util};

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

/// The builder image for this Dockerfile and base, built once and then found by tag.
/// `base` overrides the Dockerfile's pinned `BASE` (a local image where no registry is reachable).
pub fn ensure_image(
    sh: &Shell,
    engine: &str,
    dockerfile: &Path,
    base: Option<&str>,
) -> Result<Container> {
    if !answers(sh, engine) {
        bail!("{engine} does not answer: start its daemon, or pass --runtime native");
    }
    let text = std::fs::read(dockerfile)
        .with_context(|| format!("cannot read {}", dockerfile.display()))?;
    let mut key = text.clone();
    key.extend(base.unwrap_or("").as_bytes());
    let image = format!("vsphere-ipxe-rom-builder:{}", &util::sha256_hex(&key)[..16]);
    if image_id(sh, engine, &image).is_err() {
        let context = tempfile::tempdir()?;
        let ctx = context.path();
        let build_args: Vec<String> = base
            .map(|b| format!("--build-arg=BASE={b}"))
            .into_iter()
            .collect();
        eprintln!(
            "building the builder image {image} from {}",
            dockerfile.display()
        );
        cmd!(
            sh,
            "{engine} build --quiet {build_args...} --tag={image} --file={dockerfile} {ctx}"
        )
        .quiet()
        .ignore_stdout()
        .run()
        .with_context(|| {
            format!(
                "cannot build the builder image from {}; where no registry is reachable, \
                     pass a local base image with --base-image",
                dockerfile.display()
            )
        })?;
    }
    let image_id = image_id(sh, engine, &image)?;
    Ok(Container {
        engine: engine.to_string(),
        image,
        image_id,
    })
}

fn image_id(sh: &Shell, engine: &str, image: &str) -> Result<String> {
    let format = "{{.Id}}";
    Ok(cmd!(sh, "{engine} image inspect --format {format} {image}")
        .quiet()
        .ignore_stderr()
        .read()?)
}
