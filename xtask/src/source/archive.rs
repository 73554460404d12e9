//! Extracts a source archive (tar or tar.gz) into a directory, refusing anything that could
//! write outside it, and digests the tree as it goes.

use std::{
    collections::BTreeSet,
    fs,
    io::{self, BufReader, Read},
    os::unix::fs::{symlink, OpenOptionsExt},
    path::Path,
};

use anyhow::{bail, Context, Result};
use tar::EntryType;

use crate::{
    source::digest::{Entry, Kind, TreeDigest},
    util,
};

/// What an archive says of the commit it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Described {
    /// From `git archive`'s pax global header (`comment=<commit id>`).
    pub commit: Option<String>,
    /// The newest entry time: `git archive` stamps every entry with the commit time.
    pub mtime: Option<u64>,
}

/// Extracts `archive` into the empty directory `dest`. A single top-level directory (as GitHub
/// and `git archive --prefix` make) is removed. Returns the tree digest of what was written.
pub fn extract(archive: &Path, dest: &Path) -> Result<TreeDigest> {
    extract_described(archive, dest).map(|(d, _)| d)
}

/// [`extract`], and what the archive says of its commit.
pub fn extract_described(archive: &Path, dest: &Path) -> Result<(TreeDigest, Described)> {
    let head = util::read_prefix(archive, 512)?;
    let file =
        fs::File::open(archive).with_context(|| format!("cannot read {}", archive.display()))?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
    } else if head.len() == 512 && &head[257..262] == b"ustar" {
        Box::new(BufReader::new(file))
    } else {
        bail!(
            "{} is not a tar or tar.gz archive (it starts with {:02x?})",
            archive.display(),
            &head[..head.len().min(4)]
        );
    };
    extract_from(reader, dest).with_context(|| format!("cannot import {}", archive.display()))
}

struct Item {
    parts: Vec<String>,
    kind: EntryType,
    mode: u32,
    link: Option<String>,
    data: Vec<u8>,
}

fn extract_from(reader: impl Read, dest: &Path) -> Result<(TreeDigest, Described)> {
    let (items, described) = read_all(reader)?;
    let strip = common_top_dir(&items);
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    let mut symlinks = BTreeSet::new();
    for item in items {
        let parts = &item.parts[usize::from(strip)..];
        if parts.is_empty() {
            continue;
        }
        let rel = parts.join("/");
        if !seen.insert(rel.clone()) {
            bail!("entry '{rel}' appears twice in the archive");
        }
        for i in 1..parts.len() {
            if symlinks.contains(&parts[..i].join("/")) {
                bail!("entry '{rel}' lies below a symlink; refusing to write through links");
            }
        }
        let path = dest.join(&rel);
        match item.kind {
            EntryType::Directory => fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
            EntryType::Regular | EntryType::Continuous => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                let exec = item.mode & 0o111 != 0;
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if exec { 0o755 } else { 0o644 })
                    .open(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                io::copy(&mut item.data.as_slice(), &mut out)?;
                let kind = if exec { Kind::Exec } else { Kind::File };
                entries.push(Entry {
                    path: rel,
                    kind,
                    sha256: util::sha256_hex(&item.data),
                });
            }
            EntryType::Symlink => {
                let target = item.link.unwrap_or_default();
                if !link_stays_inside(parts, &target) {
                    bail!(
                        "entry '{rel}' is a symlink to '{target}', which points outside the tree"
                    );
                }
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                symlink(&target, &path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                entries.push(Entry {
                    path: rel.clone(),
                    kind: Kind::Symlink,
                    sha256: util::sha256_hex(target.as_bytes()),
                });
                symlinks.insert(rel);
            }
            EntryType::Link => bail!("entry '{rel}' is a hard link; source archives have none"),
            EntryType::Char | EntryType::Block => bail!("entry '{rel}' is a device file"),
            EntryType::Fifo => bail!("entry '{rel}' is a named pipe"),
            other => bail!("entry '{rel}' has unsupported tar type {:?}", other),
        }
    }
    if entries.is_empty() {
        bail!("the archive holds no files");
    }
    Ok((TreeDigest::of(entries), described))
}

/// Reads every entry first: a truncated archive is then refused before anything is trusted.
fn read_all(reader: impl Read) -> Result<(Vec<Item>, Described)> {
    let mut archive = tar::Archive::new(reader);
    let mut items = Vec::new();
    let mut described = Described::default();
    for (index, entry) in archive
        .entries()
        .context("cannot read the archive")?
        .enumerate()
    {
        let mut entry = entry.with_context(|| {
            format!("the archive is truncated or corrupt at entry {}", index + 1)
        })?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            described.commit = String::from_utf8_lossy(&data)
                .lines()
                .find_map(|l| l.split_once(" comment=").map(|(_, c)| c.trim().to_string()))
                .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()));
            continue;
        }
        if kind == EntryType::XHeader {
            continue;
        }
        if let Ok(t) = entry.header().mtime() {
            described.mtime = Some(described.mtime.map_or(t, |m| m.max(t)));
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|e| {
            anyhow::anyhow!(
                "entry '{}' has a name that is not UTF-8",
                String::from_utf8_lossy(e.as_bytes())
            )
        })?;
        let parts = safe_parts(&name)?;
        let link = match entry.link_name_bytes() {
            Some(l) => Some(
                String::from_utf8(l.into_owned())
                    .with_context(|| format!("entry '{name}': link target is not UTF-8"))?,
            ),
            None => None,
        };
        let mode = entry.header().mode().unwrap_or(0o644);
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .with_context(|| format!("the archive is truncated or corrupt in entry '{name}'"))?;
        items.push(Item {
            parts,
            kind,
            mode,
            link,
            data,
        });
    }
    Ok((items, described))
}

/// Splits an entry name into components, refusing absolute paths and `..`.
fn safe_parts(name: &str) -> Result<Vec<String>> {
    if name.starts_with('/') {
        bail!("entry '{name}' has an absolute path");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("entry '{name}' climbs out of the tree with '..'"),
            p => parts.push(p.to_string()),
        }
    }
    Ok(parts)
}

/// True when every entry sits below the same first directory.
fn common_top_dir(items: &[Item]) -> bool {
    let Some(first) = items.iter().find_map(|i| i.parts.first()) else {
        return false;
    };
    items.iter().all(|i| match i.parts.as_slice() {
        [top] => top == first && i.kind == EntryType::Directory,
        [top, ..] => top == first,
        [] => true,
    })
}

/// Resolves a symlink target lexically from the link's own directory.
fn link_stays_inside(link_parts: &[String], target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') {
        return false;
    }
    let mut depth = link_parts.len() as isize - 1;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes raw tar headers, so the tests can build archives `tar::Builder` would refuse.
    pub(crate) struct Raw(tar::Builder<Vec<u8>>);

    impl Raw {
        fn new() -> Raw {
            Raw(tar::Builder::new(Vec::new()))
        }
        fn add(mut self, name: &str, kind: EntryType, mode: u32, link: &str, data: &[u8]) -> Raw {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }
        fn file(self, name: &str, data: &str) -> Raw {
            self.add(name, EntryType::Regular, 0o644, "", data.as_bytes())
        }
        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn run(raw: Raw) -> (tempfile::TempDir, Result<TreeDigest>) {
        let dir = tempfile::tempdir().unwrap();
        let res = extract_from(raw.bytes().as_slice(), dir.path()).map(|(d, _)| d);
        (dir, res)
    }

    fn err(raw: Raw) -> String {
        format!("{:#}", run(raw).1.unwrap_err())
    }

    #[test]
    fn strips_top_dir_and_digests_like_the_disk() {
        let raw = Raw::new()
            .add("ipxe-1/", EntryType::Directory, 0o755, "", b"")
            .file("ipxe-1/COPYING", "gpl")
            .add(
                "ipxe-1/src/util/x.pl",
                EntryType::Regular,
                0o755,
                "",
                b"#!perl",
            )
            .add(
                "ipxe-1/src/link",
                EntryType::Symlink,
                0o777,
                "util/x.pl",
                b"",
            );
        let (dir, res) = run(raw);
        let got = res.unwrap();
        assert!(dir.path().join("COPYING").is_file());
        assert_eq!(got, crate::source::digest::digest_dir(dir.path()).unwrap());
    }

    #[test]
    fn archives_without_a_prefix_keep_their_paths() {
        let (dir, res) = run(Raw::new().file("COPYING", "a").file("src/Makefile", "b"));
        res.unwrap();
        assert!(dir.path().join("src/Makefile").is_file());
    }

    #[test]
    fn refuses_escapes_and_special_files() {
        let cases = [
            (
                Raw::new().file("/etc/passwd", "x"),
                "entry '/etc/passwd' has an absolute path",
            ),
            (
                Raw::new().file("a/../../x", "x"),
                "entry 'a/../../x' climbs out of the tree",
            ),
            (
                Raw::new().file("t/a", "").add(
                    "t/evil",
                    EntryType::Symlink,
                    0o777,
                    "../../etc",
                    b"",
                ),
                "entry 'evil' is a symlink to '../../etc', which points outside the tree",
            ),
            (
                Raw::new().file("t/a", "").add(
                    "t/abs",
                    EntryType::Symlink,
                    0o777,
                    "/etc/passwd",
                    b"",
                ),
                "entry 'abs' is a symlink to '/etc/passwd'",
            ),
            (
                Raw::new()
                    .file("t/a", "")
                    .add("t/dev", EntryType::Char, 0o644, "", b""),
                "entry 'dev' is a device file",
            ),
            (
                Raw::new()
                    .file("t/a", "")
                    .add("t/blk", EntryType::Block, 0o644, "", b""),
                "entry 'blk' is a device file",
            ),
            (
                Raw::new()
                    .file("t/a", "")
                    .add("t/h", EntryType::Link, 0o644, "t/a", b""),
                "entry 'h' is a hard link",
            ),
            (
                Raw::new().file("t/a", "1").file("t/a", "2"),
                "entry 'a' appears twice",
            ),
            (
                Raw::new()
                    .file("t/x", "")
                    .add("t/l", EntryType::Symlink, 0o777, "d", b"")
                    .file("t/l/f", ""),
                "entry 'l/f' lies below a symlink",
            ),
            (Raw::new(), "the archive holds no files"),
        ];
        for (raw, want) in cases {
            let got = err(raw);
            assert!(got.contains(want), "wanted '{want}', got '{got}'");
        }
    }

    #[test]
    fn refuses_truncated_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = Raw::new()
            .file("t/a", &"x".repeat(5000))
            .file("t/b", "y")
            .bytes();
        let cut = dir.path().join("cut.tar");
        fs::write(&cut, &bytes[..3000]).unwrap();
        let msg = format!("{:#}", extract(&cut, &dir.path().join("o1")).unwrap_err());
        assert!(msg.contains("truncated or corrupt"), "{msg}");

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, &bytes).unwrap();
        let gz = gz.finish().unwrap();
        let cutgz = dir.path().join("cut.tar.gz");
        fs::write(&cutgz, &gz[..gz.len() / 2]).unwrap();
        fs::create_dir(dir.path().join("o2")).unwrap();
        let msg = format!("{:#}", extract(&cutgz, &dir.path().join("o2")).unwrap_err());
        assert!(msg.contains("truncated or corrupt"), "{msg}");

        let text = dir.path().join("notes.txt");
        fs::write(&text, "hello, this is not an archive").unwrap();
        let msg = format!("{:#}", extract(&text, &dir.path().join("o3")).unwrap_err());
        assert!(msg.contains("is not a tar or tar.gz archive"), "{msg}");
    }

    #[test]
    fn link_resolution_is_lexical_from_the_link_dir() {
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        assert!(link_stays_inside(&p("a/b/l"), "../c"));
        assert!(link_stays_inside(&p("a/l"), "../c"));
        assert!(!link_stays_inside(&p("a/l"), "../../c"));
        assert!(!link_stays_inside(&p("l"), "x/../../y"));
    }
}
