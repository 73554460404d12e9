//! Stage 5: checked ROMs to `--out`, with `SHA256SUMS` and `manifest.json`, all or nothing.
//!
//! Everything is written into a staging directory beside `--out` and swapped in with two
//! renames, so a build that stops part-way leaves the previous outputs as they were.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use crate::{
    input,
    nic::{RomFormat, NICS},
    record::{Manifest, MANIFEST, SUMS},
    util,
};
use anyhow::{bail, Context, Result};

/// `sha256sum -c` format: `<hex> *<name>`, sorted by name, one trailing newline.
pub fn sums_file(roms: &BTreeMap<String, Vec<u8>>) -> String {
    sums_lines(
        roms.iter()
            .map(|(name, bytes)| (name, util::sha256_hex(bytes))),
    )
}

/// The same lines from names and hex digests already known, in the order given.
fn sums_lines<'a>(entries: impl Iterator<Item = (&'a String, String)>) -> String {
    entries
        .map(|(name, hex)| format!("{hex} *{name}\n"))
        .collect()
}

/// What became of the ROMs already in `--out` that this build did not make.
#[derive(Debug, Default)]
pub struct Carried {
    /// Kept: built from the same inputs, so they belong with the new ones.
    pub kept: Vec<String>,
    /// Of those, the ones whose file is not there (a fresh clone has only the records).
    pub records_only: Vec<String>,
    /// Left out, and why: they came from other inputs.
    pub dropped: Option<(Vec<String>, String)>,
    /// Built from other inputs (another runtime, say), the ROMs are the bytes the record lists,
    /// so the record was kept as it stands.
    pub record_kept: bool,
}

/// Adds to a build for some NICs the other NICs' ROMs already in `out`, when they were built
/// from the same inputs; SHA256SUMS and the manifest then stay whole.
///
/// Where every ROM built has the bytes the record in `out` lists (a native build of a record a
/// container build made, say), the record is kept as it stands, so a tracked `roms/` does not
/// change; `record` asks for it to be rewritten from this build all the same.
pub fn carry_over(
    out: &Path,
    roms: &mut BTreeMap<String, Vec<u8>>,
    manifest: &mut Manifest,
    record: bool,
) -> Result<Carried> {
    let mut carried = Carried::default();
    let Some(old) = listed(out)? else {
        return Ok(carried);
    };
    let others: Vec<String> = old
        .roms
        .keys()
        .filter(|k| !manifest.roms.contains_key(*k) && is_rom_name(k))
        .cloned()
        .collect();
    let bytes_match = !record
        && manifest
            .roms
            .iter()
            .all(|(name, info)| old.roms.get(name).is_some_and(|o| o.sha256 == info.sha256));
    let same_inputs = old.inputs() == manifest.inputs();
    carried.record_kept = bytes_match && !same_inputs;
    if bytes_match {
        *manifest = old.clone();
    }
    if others.is_empty() {
        return Ok(carried);
    }
    if !bytes_match && !same_inputs {
        carried.dropped = Some((
            others,
            "they were built from other inputs (source, profile, patches or toolchain)".into(),
        ));
        return Ok(carried);
    }
    for name in others {
        let info = old.roms[&name].clone();
        match input::read(&out.join(&name), input::ROM) {
            Ok(bytes) if util::sha256_hex(&bytes) == info.sha256 => {
                roms.insert(name.clone(), bytes);
            }
            Ok(_) => bail!(
                "{} does not match its manifest entry: delete {} and build again",
                out.join(&name).display(),
                out.display()
            ),
            Err(_) => carried.records_only.push(name.clone()),
        }
        manifest.roms.insert(name.clone(), info);
        carried.kept.push(name);
    }
    Ok(carried)
}

/// Replaces `out` with exactly these ROMs, the manifest, and SHA256SUMS of every ROM the
/// manifest lists. `out` is checked first ([`check_out`]); the old outputs are removed file by
/// file, and their directory only once empty: never a file this tool did not write, never a
/// directory with anything in it.
pub fn write(out: &Path, roms: &BTreeMap<String, Vec<u8>>, manifest: &Manifest) -> Result<()> {
    check_out(out)?;
    let parent = parent_of(out);
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = crate::util::TempDir::new_in(&parent, ".staging-")?;
    for (name, bytes) in roms {
        fs::write(staging.path().join(name), bytes)?;
    }
    let sums = sums_lines(manifest.roms.iter().map(|(n, i)| (n, i.sha256.clone())));
    fs::write(staging.path().join(SUMS), sums)?;
    fs::write(staging.path().join(MANIFEST), manifest.to_json())?;
    for item in fs::read_dir(staging.path())? {
        fs::File::open(item?.path())?.sync_all()?;
    }
    let staged = staging.keep();
    if !out.exists() {
        return fs::rename(&staged, out)
            .with_context(|| format!("cannot move the new outputs to {}", out.display()));
    }
    // An empty directory of a name no one else holds; `out` is renamed onto it.
    let old = crate::util::TempDir::new_in(&parent, ".old-")?.keep();
    fs::rename(out, &old).with_context(|| format!("cannot move {} aside", out.display()))?;
    if let Err(e) = fs::rename(&staged, out) {
        let _ = fs::rename(&old, out);
        return Err(e).with_context(|| format!("cannot move the new outputs to {}", out.display()));
    }
    remove_ours(&old).with_context(|| {
        format!(
            "the new outputs are in {}, but the old ones, moved to {}, hold something this \
             tool did not write (it appeared while building): look at it, then delete {}",
            out.display(),
            old.display(),
            old.display()
        )
    })
}

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `name` is a file this tool writes into `--out`: a ROM of a NIC it builds, the sums
/// or the manifest.
fn is_ours(name: &str) -> bool {
    name == SUMS || name == MANIFEST || is_rom_name(name)
}

fn is_rom_name(name: &str) -> bool {
    NICS.iter().any(|n| {
        [RomFormat::Rom, RomFormat::Mrom]
            .iter()
            .any(|f| n.file_name(*f) == name)
    })
}

/// Removes the files of old outputs by name, then their directory, which must then be empty.
fn remove_ours(dir: &Path) -> Result<()> {
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        if item.file_type()?.is_file() && is_ours(&name.to_string_lossy()) {
            fs::remove_file(item.path())?;
        }
    }
    fs::remove_dir(dir).with_context(|| format!("cannot remove {}", dir.display()))
}

/// `--out` is ours to replace only if every entry in it is a regular file this tool wrote: the
/// manifest, the sums, and the ROMs the manifest lists, with the bytes it records. Anything
/// else (a vendor's ROM, a directory, a link, a name a forged manifest lists, a ROM changed
/// since) is refused, each named with why, before anything is built or written.
pub fn check_out(out: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.with_context(|| format!("cannot read --out {}", out.display()))?,
    };
    if meta.is_symlink() {
        bail!(
            "--out {} is a link; pass the directory it leads to",
            out.display()
        );
    }
    if !meta.is_dir() {
        bail!("--out {} is a file; pass a directory", out.display());
    }
    let manifest = listed(out)?;
    let mut foreign = Vec::new();
    // A manifest that lists a name this tool never writes is not this tool's either.
    for name in manifest.iter().flat_map(|m| m.roms.keys()) {
        if !is_rom_name(name) {
            let name = util::shown(name);
            foreign.push(format!(
                "{MANIFEST} (it lists '{name}', not a ROM this tool builds)"
            ));
        }
    }
    for item in fs::read_dir(out).with_context(|| format!("cannot list {}", out.display()))? {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        if let Some(why) = foreign_why(&item, &name, manifest.as_ref())? {
            foreign.push(format!("{}{why}", util::shown(&name)));
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        bail!(
            "refusing to replace {}: it holds files this tool did not write: {}; nothing was \
             changed. Move them out, or pass an empty or new --out",
            out.display(),
            foreign.join(", ")
        );
    }
    Ok(())
}

/// The manifest in `out`, if there is one.
fn listed(out: &Path) -> Result<Option<Manifest>> {
    let path = out.join(MANIFEST);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    Manifest::load(&path).map(Some)
}

/// Why one entry of `--out` is not this tool's, as a note after its name; None if it is.
fn foreign_why(
    item: &fs::DirEntry,
    name: &str,
    manifest: Option<&Manifest>,
) -> Result<Option<&'static str>> {
    let kind = item.file_type()?;
    if kind.is_dir() {
        return Ok(Some(" (a directory)"));
    }
    if !kind.is_file() {
        return Ok(Some(" (a link or special file)"));
    }
    if name == SUMS || name == MANIFEST {
        return Ok(None);
    }
    if !is_rom_name(name) {
        return Ok(Some(" (not a ROM this tool builds)"));
    }
    let Some(record) = manifest.and_then(|m| m.roms.get(name)) else {
        return Ok(Some(" (not listed in manifest.json)"));
    };
    let bytes = input::read(&item.path(), input::ROM)?;
    if util::sha256_hex(&bytes) != record.sha256 {
        return Ok(Some(" (not the bytes manifest.json records)"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{
        FileDigest, Offset, PatchRecord, ProfileInfo, RomInfo, RuntimeInfo, SourceInfo,
    };

    fn manifest() -> Manifest {
        Manifest {
            tool: "t".into(),
            source: SourceInfo {
                version: "v".into(),
                commit: "c".into(),
                tree_digest: "d".into(),
                source_date_epoch: 1,
            },
            profile: ProfileInfo {
                name: "p".into(),
                sha256: "s".into(),
                config_sha256: "c".into(),
                inputs: vec![],
            },
            patches: vec![],
            toolchain: BTreeMap::new(),
            runtime: RuntimeInfo {
                kind: "native".into(),
                image: None,
                toolchain_lock: None,
            },
            roms: BTreeMap::new(),
        }
    }

    #[test]
    fn sums_are_sorted_with_one_trailing_newline() {
        let mut roms = BTreeMap::new();
        roms.insert("b.rom".to_string(), b"b".to_vec());
        roms.insert("a.rom".to_string(), b"a".to_vec());
        let s = sums_file(&roms);
        assert!(
            s.starts_with(&format!("{} *a.rom\n", util::sha256_hex(b"a"))),
            "{s}"
        );
        assert!(s.ends_with(" *b.rom\n") && !s.ends_with("\n\n"));
    }

    /// The test manifest, listing these ROMs with their digests.
    fn listing(roms: &BTreeMap<String, Vec<u8>>) -> Manifest {
        let mut m = manifest();
        for (name, bytes) in roms {
            m.roms.insert(
                name.clone(),
                RomInfo {
                    nic: "n".into(),
                    pci_id: name.trim_end_matches(".rom").into(),
                    size: bytes.len() as u64,
                    limit: 65536,
                    headroom: 0,
                    sha256: util::sha256_hex(bytes),
                    https: false,
                },
            );
        }
        m
    }

    #[test]
    fn replaces_outputs_whole_and_refuses_foreign_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("roms/vmware");
        let mut roms = BTreeMap::new();
        roms.insert("15ad07b0.rom".to_string(), vec![1, 2, 3]);
        write(&out, &roms, &listing(&roms)).unwrap();
        let mut roms2 = BTreeMap::new();
        roms2.insert("8086100f.rom".to_string(), vec![4]);
        write(&out, &roms2, &listing(&roms2)).unwrap();
        let mut names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["8086100f.rom", "SHA256SUMS", "manifest.json"]);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("roms"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");

        fs::write(out.join("notes.txt"), "mine").unwrap();
        fs::create_dir(out.join("vendor.rom")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", out.join("15ad07b0.rom")).unwrap();
        let err = write(&out, &roms, &listing(&roms)).unwrap_err().to_string();
        assert!(
            err.contains(
                "holds files this tool did not write: 15ad07b0.rom (a link or special file), \
                 notes.txt (not a ROM this tool builds), vendor.rom (a directory); nothing was changed"
            ),
            "{err}"
        );
        assert!(out.join("8086100f.rom").exists());
    }

    /// Old outputs are removed by name; a file that appears among them meanwhile stays, and so
    /// does its directory.
    #[test]
    fn old_outputs_go_file_by_file_and_a_stranger_stays() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        fs::create_dir(&old).unwrap();
        for name in ["15ad07b0.rom", SUMS, MANIFEST] {
            fs::write(old.join(name), "x").unwrap();
        }
        remove_ours(&old).unwrap();
        assert!(!old.exists());
        fs::create_dir(&old).unwrap();
        fs::write(old.join("15ad07b0.rom"), "x").unwrap();
        fs::write(old.join("vendor.rom"), "theirs").unwrap();
        assert!(remove_ours(&old).is_err());
        assert_eq!(
            fs::read_to_string(old.join("vendor.rom")).unwrap(),
            "theirs"
        );
        assert!(!old.join("15ad07b0.rom").exists());
    }

    /// A manifest in `--out` that lists a name this tool never writes is not believed.
    #[test]
    fn a_manifest_listing_other_names_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut roms = BTreeMap::new();
        roms.insert("../../etc/passwd".to_string(), b"x".to_vec());
        fs::create_dir(&out).unwrap();
        fs::write(out.join(MANIFEST), listing(&roms).to_json()).unwrap();
        let err = check_out(&out).unwrap_err().to_string();
        assert!(
            err.contains("manifest.json (it lists '../../etc/passwd', not a ROM this tool builds)"),
            "{err}"
        );
    }

    /// Every field set, maps filled in an order unlike their sorted one.
    fn populated() -> Manifest {
        let mut m = manifest();
        m.profile.inputs = vec![FileDigest {
            name: "lab-ca.pem".into(),
            sha256: "e".repeat(64),
        }];
        m.patches = vec![PatchRecord {
            name: "upstream-48c04ec047a1".into(),
            origin:
                "https://github.com/ipxe/ipxe/commit/48c04ec047a1a9bf49afa016528dceaa7f22bc5f.patch"
                    .into(),
            digest: format!("sha256:{}", "f".repeat(64)),
            offsets: vec![Offset {
                file: "src/net/tcp/httpcore.c".into(),
                hunk: 1,
                lines: -27,
            }],
        }];
        for (k, v) in [
            ("make", "GNU Make 4.3"),
            ("gcc", "gcc 12.2.0"),
            ("ld", "GNU ld 2.40"),
        ] {
            m.toolchain.insert(k.into(), v.into());
        }
        m.runtime = RuntimeInfo {
            kind: "docker".into(),
            image: Some(format!("sha256:{}", "a".repeat(64))),
            toolchain_lock: Some(format!("sha256:{}", "b".repeat(64))),
        };
        for (file, nic, size) in [
            ("8086100f.rom", "e1000", 52224),
            ("15ad07b0.rom", "vmxnet3", 51200),
        ] {
            m.roms.insert(
                file.into(),
                RomInfo {
                    nic: nic.into(),
                    pci_id: file.trim_end_matches(".rom").into(),
                    size,
                    limit: 65536,
                    headroom: 65536 - size as i64,
                    sha256: "c".repeat(64),
                    https: false,
                },
            );
        }
        m
    }

    /// The manifest's exact text, held to a committed file: a field renamed, reordered or
    /// dropped shows as a diff there (`UPDATE_EXPECT=1` rewrites it; review the diff).
    #[test]
    fn manifest_matches_its_expected_text_and_round_trips() {
        let m = populated();
        let json = m.to_json();
        let expected = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/it/expected/manifest.json");
        if std::env::var("UPDATE_EXPECT").as_deref() == Ok("1") {
            fs::write(&expected, &json).unwrap();
            panic!("updated {}; review the diff and rerun", expected.display());
        }
        assert_eq!(json, fs::read_to_string(&expected).unwrap());
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("m.json"), &json).unwrap();
        assert_eq!(Manifest::load(&dir.path().join("m.json")).unwrap(), m);
    }
}
