//! Stage after emit: a release directory and a tarball that is itself reproducible, with an
//! in-toto/SLSA v1 provenance statement. Pure file work; the command runs the builds.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::record::Manifest;

/// What the provenance names besides the ROMs.
pub struct Provenance<'a> {
    pub version: &'a str,
    pub manifests: &'a BTreeMap<String, Manifest>,
    /// Repository-relative path to SHA-256 of each input file (Dockerfile, profiles, patches, pin).
    pub inputs: &'a BTreeMap<String, String>,
    /// This project's own commit, when built from a git checkout.
    pub project_commit: Option<String>,
}

/// An in-toto v1 Statement with a SLSA v1 provenance predicate. No clock readings: the same
/// inputs give the same statement.
pub fn provenance(p: &Provenance, subjects: &BTreeMap<String, String>) -> String {
    let first = p.manifests.values().next();
    let mut deps = Vec::new();
    if let Some(m) = first {
        deps.push(json!({
            "uri": format!("git+https://github.com/ipxe/ipxe@{}", m.source.commit),
            "digest": { "gitCommit": m.source.commit },
            "annotations": { "treeDigest": m.source.tree_digest, "version": m.source.version },
        }));
    }
    // Every patch applied on top of the source, with its origin and content digest (the
    // scheme of `patch::digest`), from the first profile that applied it.
    let mut seen = std::collections::BTreeSet::new();
    for m in p.manifests.values() {
        for patch in &m.patches {
            if seen.insert(patch.name.clone()) {
                deps.push(json!({
                    "uri": patch.origin,
                    "digest": { "sha256": patch.digest.trim_start_matches("sha256:") },
                    "annotations": { "name": patch.name, "digestScheme": "patch-hunks-v1" },
                }));
            }
        }
    }
    for (path, sha) in p.inputs {
        deps.push(json!({ "uri": path, "digest": { "sha256": sha } }));
    }
    if let Some(commit) = &p.project_commit {
        deps.push(json!({ "uri": "vsphere-ipxe-rom", "digest": { "gitCommit": commit } }));
    }
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects.iter().map(|(name, sha)| json!({ "name": name, "digest": { "sha256": sha } })).collect::<Vec<_>>(),
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "urn:vsphere-ipxe-rom:release:v1",
                "externalParameters": {
                    "version": p.version,
                    "profiles": p.manifests.keys().collect::<Vec<_>>(),
                },
                "internalParameters": {
                    "sourceDateEpoch": first.map(|m| m.source.source_date_epoch),
                    "runtime": first.map(|m| &m.runtime),
                    "toolchain": first.map(|m| &m.toolchain),
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": { "id": "urn:vsphere-ipxe-rom:cargo-xtask-release" },
            },
        },
    });
    let mut text = serde_json::to_string_pretty(&statement).expect("json");
    text.push('\n');
    text
}

/// Every regular file below `dir`, as sorted relative paths.
pub fn files_below(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(dir.join(&rel))
            .with_context(|| format!("cannot list {}", dir.join(&rel).display()))?
        {
            let entry = entry?;
            let path = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path.to_str().context("file name is not UTF-8")?.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A tar.gz of `dir` (under its own name) that depends only on the files' names, bytes and
/// execute bits: sorted entries, one fixed mtime, owner 0, no user or group names, and a gzip
/// header with no time or file name.
pub fn reproducible_tarball(dir: &Path, out: &Path, mtime: u64) -> Result<()> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("release directory has no name")?;
    let tmp = out.with_extension("tmp");
    let file = fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(file, flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut dirs_done = std::collections::BTreeSet::new();
    let entry_header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let mut h = entry_header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, name, std::io::empty())?;
    for rel in files_below(dir)? {
        // Parent directories first, once each, in order.
        let mut parent = PathBuf::from(name);
        for part in Path::new(&rel)
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
        {
            parent.push(part);
            if dirs_done.insert(parent.clone()) {
                let mut h = entry_header(tar::EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, &parent, std::io::empty())?;
            }
        }
        let bytes = fs::read(dir.join(&rel))?;
        let mut h = entry_header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        tar.append_data(&mut h, Path::new(name).join(&rel), bytes.as_slice())?;
    }
    let gz = tar.into_inner()?;
    let mut file = gz.finish()?;
    file.flush()?;
    file.sync_all()?;
    fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))
}

/// `SHA256SUMS` over the given files of `dir`, in the format `emit` writes.
pub fn sums(dir: &Path, files: &[String]) -> Result<String> {
    let mut contents = BTreeMap::new();
    for f in files {
        contents.insert(
            f.clone(),
            fs::read(dir.join(f)).with_context(|| format!("cannot read {f}"))?,
        );
    }
    Ok(crate::output::emit::sums_file(&contents))
}

/// A release version: what goes into directory and file names.
pub fn check_version(v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if !ok {
        bail!("--version '{v}' must be letters, digits and . _ - + (e.g. 1.0.0), starting with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tarball_depends_only_on_content() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for (root, delay) in [(a.path(), false), (b.path(), true)] {
            let rel = root.join("rel-1");
            fs::create_dir_all(rel.join("vmware")).unwrap();
            if delay {
                std::thread::sleep(std::time::Duration::from_millis(1100));
            }
            fs::write(rel.join("vmware/15ad07b0.rom"), b"rom").unwrap();
            fs::write(rel.join("SHA256SUMS"), b"sums").unwrap();
            reproducible_tarball(&rel, &root.join("rel-1.tar.gz"), 1_700_000_000).unwrap();
        }
        let x = fs::read(a.path().join("rel-1.tar.gz")).unwrap();
        let y = fs::read(b.path().join("rel-1.tar.gz")).unwrap();
        assert_eq!(x, y);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(x.as_slice()));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "rel-1",
                "rel-1/SHA256SUMS",
                "rel-1/vmware",
                "rel-1/vmware/15ad07b0.rom"
            ]
        );
    }

    #[test]
    fn versions_are_safe_names() {
        assert!(check_version("1.0.0").is_ok());
        assert!(check_version("v2.0.0-rc.1").is_ok());
        assert!(check_version("../x").is_err());
        assert!(check_version("").is_err());
        assert!(check_version("1 0").is_err());
    }
}
