//! Extracts a source archive (tar or tar.gz) into a directory, refusing anything that could
//! write outside it, and digests the tree as it goes.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{self, BufReader, Read},
    os::unix::fs::{symlink, OpenOptionsExt},
    path::Path,
};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
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
    extract_from(reader, dest, CAPS).with_context(|| format!("cannot import {}", archive.display()))
}

/// How much an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub bytes: u64,
    pub entries: usize,
}

/// The pinned tree unpacks to about 25 MB in about 4,000 entries. Twenty times either leaves
/// room for later commits, and stops a gzip bomb (1 MB of gzip can hold 1 GiB) long before it
/// fills a disk; nothing is held in memory but one buffer.
pub const CAPS: Caps = Caps {
    bytes: 512 << 20,
    entries: 100_000,
};

/// What the archive held, as written so far: paths are as in the archive (top dir not stripped).
#[derive(Default)]
struct Unpacked {
    entries: Vec<(Vec<String>, Kind, String)>,
    links: BTreeMap<Vec<String>, String>,
    dirs: BTreeSet<Vec<String>>,
    described: Described,
}

/// Streams every entry to disk below `dest`, one at a time, with caps on entries and bytes; the
/// archive's own top directory is stripped at the end, and links are checked once all are known.
fn extract_from(reader: impl Read, dest: &Path, caps: Caps) -> Result<(TreeDigest, Described)> {
    let raw = dest.join(".unpack");
    fs::create_dir_all(&raw).with_context(|| format!("cannot create {}", raw.display()))?;
    let got = unpack(reader, &raw, caps)?;
    let strip = common_top_dir(&got);
    let rel = |parts: &[String]| parts[usize::from(strip)..].to_vec();
    let links: BTreeMap<Vec<String>, String> =
        got.links.iter().map(|(p, t)| (rel(p), t.clone())).collect();
    for (entry, target) in &got.links {
        let link = rel(entry);
        if resolve(&links, &link[..link.len() - 1], target, 0).is_none() {
            bail!(
                "entry '{}' is a symlink to '{target}', which points outside the tree",
                entry.join("/")
            );
        }
    }
    let mut entries = Vec::new();
    for (parts, kind, sha256) in &got.entries {
        let path = rel(parts).join("/");
        if !path.is_empty() {
            entries.push(Entry {
                path,
                kind: *kind,
                sha256: sha256.clone(),
            });
        }
    }
    if entries.is_empty() {
        bail!("the archive holds no files");
    }
    let top = if strip {
        raw.join(&got.entries[0].0[0])
    } else {
        raw.clone()
    };
    for item in fs::read_dir(&top)? {
        let item = item?;
        fs::rename(item.path(), dest.join(item.file_name()))?;
    }
    fs::remove_dir_all(&raw)?;
    Ok((TreeDigest::of(entries), got.described))
}

fn unpack(reader: impl Read, dest: &Path, caps: Caps) -> Result<Unpacked> {
    let mut archive = tar::Archive::new(reader);
    let mut got = Unpacked::default();
    let mut seen = BTreeSet::new();
    let mut budget = caps.bytes;
    for (index, entry) in archive
        .entries()
        .context("cannot read the archive")?
        .enumerate()
    {
        if index >= caps.entries {
            bail!(
                "the archive has more than {} entries; an iPXE tree has about 4,000",
                caps.entries
            );
        }
        let mut entry = entry.with_context(|| {
            format!("the archive is truncated or corrupt at entry {}", index + 1)
        })?;
        let kind = entry.header().entry_type();
        if describe(&mut entry, &mut got.described)? {
            continue;
        }
        let parts = safe_parts(&utf8(entry.path_bytes().into_owned(), "has a name")?)?;
        if parts.is_empty() {
            continue;
        }
        let rel = parts.join("/");
        if !seen.insert(parts.clone()) {
            bail!("entry '{rel}' appears twice in the archive");
        }
        if (1..parts.len()).any(|i| got.links.contains_key(&parts[..i])) {
            bail!("entry '{rel}' lies below a symlink; refusing to write through links");
        }
        let path = dest.join(&rel);
        match kind {
            EntryType::Directory => {
                fs::create_dir_all(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                got.dirs.insert(parts);
            }
            EntryType::Regular | EntryType::Continuous => {
                let (kind, sha) = write_file(&mut entry, &mut budget, caps, &path, &rel)?;
                got.entries.push((parts, kind, sha));
            }
            EntryType::Symlink => {
                let target = write_link(&entry, &path, &rel)?;
                let sha = util::sha256_hex(target.as_bytes());
                got.entries.push((parts.clone(), Kind::Symlink, sha));
                got.links.insert(parts, target);
            }
            EntryType::Link => bail!("entry '{rel}' is a hard link; source archives have none"),
            EntryType::Char | EntryType::Block => bail!("entry '{rel}' is a device file"),
            EntryType::Fifo => bail!("entry '{rel}' is a named pipe"),
            other => bail!("entry '{rel}' has unsupported tar type {:?}", other),
        }
    }
    Ok(got)
}

/// Takes what an entry says of the commit: `git archive`'s pax global header names it, and the
/// newest entry time is the commit time. True for a header entry, which holds no file.
fn describe<R: Read>(entry: &mut tar::Entry<'_, R>, described: &mut Described) -> Result<bool> {
    match entry.header().entry_type() {
        EntryType::XGlobalHeader => {
            let mut data = Vec::new();
            entry.take(64 << 10).read_to_end(&mut data)?;
            described.commit = String::from_utf8_lossy(&data)
                .lines()
                .find_map(|l| l.split_once(" comment=").map(|(_, c)| c.trim().to_string()))
                .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()));
            Ok(true)
        }
        EntryType::XHeader => Ok(true),
        _ => {
            if let Ok(t) = entry.header().mtime() {
                described.mtime = Some(described.mtime.map_or(t, |m| m.max(t)));
            }
            Ok(false)
        }
    }
}

/// Streams one file to a new file at `path`, hashing as it goes, within what is left of the
/// byte cap.
fn write_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    budget: &mut u64,
    caps: Caps,
    path: &Path,
    rel: &str,
) -> Result<(Kind, String)> {
    let size = entry.header().size().unwrap_or(u64::MAX);
    if size > *budget {
        bail!(
            "the archive unpacks to more than {} MiB (at entry '{rel}'); an iPXE tree is about 25 MB",
            caps.bytes >> 20
        );
    }
    *budget -= size;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let exec = entry.header().mode().unwrap_or(0o644) & 0o111 != 0;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if exec { 0o755 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut tee = Tee(&mut out, util::HashWriter(&mut hasher));
    let copied = io::copy(&mut entry.take(size), &mut tee);
    if copied.ok() != Some(size) {
        bail!("the archive is truncated or corrupt in entry '{rel}'");
    }
    let kind = if exec { Kind::Exec } else { Kind::File };
    Ok((kind, util::hex(&hasher.finalize())))
}

/// Makes the link at `path` and returns its target; an absolute or empty target is refused
/// here, and one that leaves the tree through other links once all are known.
fn write_link<R: Read>(entry: &tar::Entry<'_, R>, path: &Path, rel: &str) -> Result<String> {
    let target = match entry.link_name_bytes() {
        Some(l) => utf8(l.into_owned(), &format!("'{rel}' has a link target"))?,
        None => String::new(),
    };
    if target.is_empty() || target.starts_with('/') {
        bail!("entry '{rel}' is a symlink to '{target}', which points outside the tree");
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    symlink(&target, path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(target)
}

/// Writes to a file and a hasher at once.
struct Tee<'a, 'h>(&'a mut fs::File, util::HashWriter<'h>);

impl io::Write for Tee<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.write_all(&buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn utf8(raw: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(raw).map_err(|e| {
        anyhow::anyhow!(
            "entry '{}' {what} that is not UTF-8",
            String::from_utf8_lossy(e.as_bytes())
        )
    })
}

/// Where `target`, read from the directory `from`, leads once every link it passes through is
/// followed as the kernel would; None if any step leaves the tree or the links loop.
fn resolve(
    links: &BTreeMap<Vec<String>, String>,
    from: &[String],
    target: &str,
    depth: usize,
) -> Option<Vec<String>> {
    // Linux gives up after 40 links (ELOOP).
    if depth > 40 || target.starts_with('/') {
        return None;
    }
    let mut at = from.to_vec();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                at.pop()?;
            }
            name => {
                at.push(name.to_string());
                if let Some(next) = links.get(&at) {
                    at.pop();
                    at = resolve(links, &at, next, depth + 1)?;
                }
            }
        }
    }
    Some(at)
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
fn common_top_dir(got: &Unpacked) -> bool {
    let Some(first) = got.entries.first().map(|e| &e.0[0]) else {
        return false;
    };
    got.entries
        .iter()
        .all(|(p, ..)| p.len() > 1 && &p[0] == first)
        && got.dirs.iter().all(|d| &d[0] == first)
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
        let res = extract_from(raw.bytes().as_slice(), dir.path(), CAPS).map(|(d, _)| d);
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
                "entry 't/evil' is a symlink to '../../etc', which points outside the tree",
            ),
            (
                Raw::new().file("t/a", "").add(
                    "t/abs",
                    EntryType::Symlink,
                    0o777,
                    "/etc/passwd",
                    b"",
                ),
                "entry 't/abs' is a symlink to '/etc/passwd'",
            ),
            (
                Raw::new()
                    .file("t/a", "")
                    .add("t/dev", EntryType::Char, 0o644, "", b""),
                "entry 't/dev' is a device file",
            ),
            (
                Raw::new()
                    .file("t/a", "")
                    .add("t/blk", EntryType::Block, 0o644, "", b""),
                "entry 't/blk' is a device file",
            ),
            (
                Raw::new()
                    .file("t/a", "")
                    .add("t/h", EntryType::Link, 0o644, "t/a", b""),
                "entry 't/h' is a hard link",
            ),
            (
                Raw::new().file("t/a", "1").file("t/a", "2"),
                "entry 't/a' appears twice",
            ),
            (
                Raw::new()
                    .file("t/x", "")
                    .add("t/l", EntryType::Symlink, 0o777, "d", b"")
                    .file("t/l/f", ""),
                "entry 't/l/f' lies below a symlink",
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
    fn links_resolve_through_the_links_before_them() {
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        let none = BTreeMap::new();
        assert_eq!(resolve(&none, &p("a/b"), "../c", 0), Some(p("a/c")));
        assert_eq!(resolve(&none, &p("a"), "../c", 0), Some(p("c")));
        assert_eq!(resolve(&none, &p("a"), "../../c", 0), None);
        assert_eq!(resolve(&none, &[], "x/../../y", 0), None);
        let mut links = BTreeMap::new();
        links.insert(p("d/up"), "..".to_string());
        assert_eq!(resolve(&links, &p("d"), "up/x", 0), Some(p("x")));
        assert_eq!(resolve(&links, &p("d"), "up/..", 0), None);
        links.insert(p("l1"), "l2".to_string());
        links.insert(p("l2"), "l1".to_string());
        assert_eq!(resolve(&links, &[], "l1", 0), None, "a loop is refused");
    }

    /// `d/up -> ..`, `d/up2 -> up/..`, ... each lexically inside; together they leave the tree.
    #[test]
    fn a_chain_of_links_that_leaves_the_tree_is_refused() {
        let mut raw =
            Raw::new()
                .file("t/a", "")
                .add("t/d/up", EntryType::Symlink, 0o777, "..", b"");
        let mut prev = "up".to_string();
        for n in 2..=9 {
            let name = format!("t/d/up{n}");
            raw = raw.add(&name, EntryType::Symlink, 0o777, &format!("{prev}/.."), b"");
            prev = format!("up{n}");
        }
        raw = raw.add("t/d/esc", EntryType::Symlink, 0o777, "up9/etc", b"");
        let got = err(raw);
        assert!(got.contains("points outside the tree"), "{got}");
    }

    #[test]
    fn a_bomb_stops_at_the_caps() {
        let zeros = vec![0u8; 4096];
        let raw = Raw::new()
            .file("t/a", "")
            .add("t/big", EntryType::Regular, 0o644, "", &zeros);
        let dir = tempfile::tempdir().unwrap();
        let small = Caps {
            bytes: 1000,
            entries: 10,
        };
        let got = format!(
            "{:#}",
            extract_from(raw.bytes().as_slice(), dir.path(), small).unwrap_err()
        );
        assert!(got.contains("unpacks to more than"), "{got}");
        let mut many = Raw::new();
        for n in 0..11 {
            many = many.file(&format!("t/{n}"), "");
        }
        let dir = tempfile::tempdir().unwrap();
        let got = format!(
            "{:#}",
            extract_from(many.bytes().as_slice(), dir.path(), small).unwrap_err()
        );
        assert!(got.contains("more than 10 entries"), "{got}");
    }
}
