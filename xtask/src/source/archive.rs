//! Extracts a source archive (tar or tar.gz) into a directory, refusing anything that could
//! write outside it, and digests the tree as it goes. Every metadata entry (GNU long names and
//! links, pax headers) is read under a cap before the tar crate could read it whole, and links
//! are followed within Linux's own limit.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{self, BufRead, BufReader, Read},
    os::unix::fs::{symlink, OpenOptionsExt},
    path::Path,
};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::{
    input,
    source::digest::{Entry, Kind, TreeDigest},
    util::{self, shown, shown_path},
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
    let (file, _) = input::open(archive, input::ARCHIVE)?;
    let mut file = BufReader::new(file.take(input::ARCHIVE.cap));
    let head = file
        .fill_buf()
        .with_context(|| format!("cannot read {}", shown_path(archive)))?
        .to_vec();
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if head.len() >= 512 && &head[257..262] == b"ustar" {
        Box::new(file)
    } else {
        bail!(
            "{} is not a tar or tar.gz archive (it starts with {:02x?})",
            shown_path(archive),
            &head[..head.len().min(4)]
        );
    };
    extract_from(reader, dest, CAPS)
        .with_context(|| format!("cannot import {}", shown_path(archive)))
}

/// How much an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub bytes: u64,
    pub entries: usize,
    /// Every entry name and link target together.
    pub names: u64,
    /// Path components walked to check where the links lead, over all links.
    pub link_steps: usize,
}

/// The pinned tree unpacks to about 25 MB in about 4,000 entries, whose names take about 200 KB,
/// and has a handful of links. Twenty times each leaves room for later commits, and stops a gzip
/// bomb (1 MB of gzip can hold 1 GiB) long before it fills a disk or memory; nothing is held in
/// memory but one buffer and the names.
pub const CAPS: Caps = Caps {
    bytes: 512 << 20,
    entries: 100_000,
    names: 16 << 20,
    link_steps: 1_000_000,
};

/// A name or link target, from a GNU long name or link or a pax record: Linux's PATH_MAX.
const NAME_MAX: u64 = 4096;
/// A pax header, local or global: `git archive` writes a 52-byte one.
const PAX_MAX: u64 = 64 << 10;
/// Linux follows at most 40 links in one path lookup, then fails with ELOOP.
const MAX_FOLLOWS: usize = 40;

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
    check_links(&got.links, rel, caps)?;
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

/// Every link leads inside the tree, through the links before it, as the kernel would follow
/// them: within 40 links each, and within the archive's budget of steps for them all.
fn check_links(
    all: &BTreeMap<Vec<String>, String>,
    rel: impl Fn(&[String]) -> Vec<String>,
    caps: Caps,
) -> Result<()> {
    let links: BTreeMap<Vec<String>, String> =
        all.iter().map(|(p, t)| (rel(p), t.clone())).collect();
    let mut walk = Resolver::new(&links, caps.link_steps);
    for (entry, target) in all {
        let link = rel(entry);
        walk.follows = 0;
        let why = match walk.resolve(&link[..link.len() - 1], target)? {
            Leads::Inside(_) => continue,
            Leads::Outside => "points outside the tree".to_string(),
            Leads::TooManyLinks => {
                format!("takes more than {MAX_FOLLOWS} links to resolve (Linux gives up there too)")
            }
        };
        bail!(
            "entry '{}' is a symlink to '{}', which {why}",
            shown(&entry.join("/")),
            shown(target)
        );
    }
    Ok(())
}

fn unpack(reader: impl Read, dest: &Path, caps: Caps) -> Result<Unpacked> {
    let mut archive = tar::Archive::new(reader);
    let mut got = Unpacked::default();
    let mut seen = BTreeSet::new();
    let mut left = Left {
        bytes: caps.bytes,
        names: caps.names,
    };
    let mut pending = Pending::default();
    // Raw: the tar crate would read a long name or a pax header whole, whatever its size.
    let entries = archive
        .entries()
        .context("cannot read the archive")?
        .raw(true);
    for (index, entry) in entries.enumerate() {
        if index >= caps.entries {
            bail!(
                "the archive has more than {} entries; an iPXE tree has about 4,000",
                caps.entries
            );
        }
        let n = index + 1;
        let mut entry =
            entry.with_context(|| format!("the archive is truncated or corrupt at entry {n}"))?;
        if metadata(&mut entry, n, &mut pending, &mut got.described)? {
            continue;
        }
        let name = pending
            .name
            .take()
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        let link = pending
            .link
            .take()
            .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        left.take_names(name.len() + link.as_ref().map_or(0, Vec::len), caps)?;
        let parts = safe_parts(&utf8(name, "has a name")?)?;
        if parts.is_empty() {
            continue;
        }
        if !seen.insert(parts.clone()) {
            bail!(
                "entry '{}' appears twice in the archive",
                shown(&parts.join("/"))
            );
        }
        place(&mut entry, parts, link, dest, &mut left, caps, &mut got)?;
    }
    if pending.name.is_some() || pending.link.is_some() {
        bail!("the archive ends with a long name or pax header that no entry follows");
    }
    Ok(got)
}

/// What is left of the caps on bytes and names.
struct Left {
    bytes: u64,
    names: u64,
}

impl Left {
    fn take_names(&mut self, len: usize, caps: Caps) -> Result<()> {
        self.names = self.names.checked_sub(len as u64).with_context(|| {
            format!(
                "the archive's names take more than {} MiB; an iPXE tree's take about 200 KB",
                caps.names >> 20
            )
        })?;
        Ok(())
    }
}

/// Writes one entry that is a file, a directory or a link; refuses every other kind.
fn place<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    parts: Vec<String>,
    link: Option<Vec<u8>>,
    dest: &Path,
    left: &mut Left,
    caps: Caps,
    got: &mut Unpacked,
) -> Result<()> {
    let rel = parts.join("/");
    let shown_rel = shown(&rel);
    if (1..parts.len()).any(|i| got.links.contains_key(&parts[..i])) {
        bail!("entry '{shown_rel}' lies below a symlink; refusing to write through links");
    }
    let path = dest.join(&rel);
    match entry.header().entry_type() {
        EntryType::Directory => {
            fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            got.dirs.insert(parts);
        }
        EntryType::Regular | EntryType::Continuous => {
            let (kind, sha) = write_file(entry, &mut left.bytes, caps, &path, &shown_rel)?;
            got.entries.push((parts, kind, sha));
        }
        EntryType::Symlink => {
            let target = match link {
                Some(l) => utf8(l, &format!("'{shown_rel}' has a link target"))?,
                None => String::new(),
            };
            write_link(&target, &path, &shown_rel)?;
            let sha = util::sha256_hex(target.as_bytes());
            got.entries.push((parts.clone(), Kind::Symlink, sha));
            got.links.insert(parts, target);
        }
        EntryType::Link => bail!("entry '{shown_rel}' is a hard link; source archives have none"),
        EntryType::Char | EntryType::Block => bail!("entry '{shown_rel}' is a device file"),
        EntryType::Fifo => bail!("entry '{shown_rel}' is a named pipe"),
        other => bail!("entry '{shown_rel}' has unsupported tar type {:?}", other),
    }
    Ok(())
}

/// The name and link target the metadata entries before an entry give it (GNU `L` and `K`, pax
/// `path` and `linkpath`).
#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
}

/// Takes a metadata entry, read under its cap: a long name or link, a pax header, or `git
/// archive`'s pax global header, which names the commit. True for those; for any other entry,
/// notes its time (`git archive` stamps every entry with the commit time) and returns false.
fn metadata<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    n: usize,
    pending: &mut Pending,
    described: &mut Described,
) -> Result<bool> {
    let kind = entry.header().entry_type();
    let (what, cap) = match kind {
        EntryType::GNULongName => ("a GNU long name", NAME_MAX),
        EntryType::GNULongLink => ("a GNU long link", NAME_MAX),
        EntryType::XHeader => ("a pax header", PAX_MAX),
        EntryType::XGlobalHeader => ("a pax global header", PAX_MAX),
        _ => {
            if let Ok(t) = entry.header().mtime() {
                described.mtime = Some(described.mtime.map_or(t, |m| m.max(t)));
            }
            return Ok(false);
        }
    };
    let size = entry.size();
    if size > cap {
        bail!("entry {n} is {what} of {size} bytes; a source archive's are at most {cap} bytes");
    }
    let mut data = Vec::with_capacity(size as usize);
    let read = entry.take(cap).read_to_end(&mut data);
    if read.ok() != Some(size as usize) {
        bail!("the archive is truncated or corrupt in entry {n} ({what})");
    }
    match kind {
        EntryType::GNULongName => set(&mut pending.name, nul_ended(data), n)?,
        EntryType::GNULongLink => set(&mut pending.link, nul_ended(data), n)?,
        EntryType::XHeader => pax(&data, pending, n)?,
        _ => {
            described.commit = String::from_utf8_lossy(&data)
                .lines()
                .find_map(|l| l.split_once(" comment=").map(|(_, c)| c.trim().to_string()))
                .filter(|c| crate::source::pin::is_full_commit_id(c));
        }
    }
    Ok(true)
}

/// A pax header's records: `path` and `linkpath` name the next entry; `size` and sparse files
/// are refused (the sizes in the tar headers are the ones read); others are ignored.
fn pax(data: &[u8], pending: &mut Pending, n: usize) -> Result<()> {
    for record in tar::PaxExtensions::new(data) {
        let record =
            record.map_err(|_| anyhow::anyhow!("entry {n} is a pax header that does not parse"))?;
        match record.key_bytes() {
            b"path" => set(&mut pending.name, record.value_bytes().to_vec(), n)?,
            b"linkpath" => set(&mut pending.link, record.value_bytes().to_vec(), n)?,
            b"size" => bail!(
                "entry {n} is a pax header that sets a size; a source archive's files need none"
            ),
            k if k.starts_with(b"GNU.sparse") => bail!("entry {n} describes a sparse file"),
            _ => {}
        }
    }
    Ok(())
}

/// Sets a name the next entry takes, once, within [`NAME_MAX`].
fn set(slot: &mut Option<Vec<u8>>, value: Vec<u8>, n: usize) -> Result<()> {
    if value.len() as u64 > NAME_MAX {
        bail!(
            "entry {n} gives a name of {} bytes; a name is at most {NAME_MAX} bytes",
            value.len()
        );
    }
    if slot.replace(value).is_some() {
        bail!("entry {n} names the entry after it a second time");
    }
    Ok(())
}

/// A GNU long name's data, without the NULs that end and pad it.
fn nul_ended(mut data: Vec<u8>) -> Vec<u8> {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    data.truncate(end);
    data
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

/// Makes the link at `path`; an absolute or empty target is refused here, and one that leaves
/// the tree through other links once all are known.
fn write_link(target: &str, path: &Path, rel: &str) -> Result<()> {
    if target.is_empty() || target.starts_with('/') {
        bail!(
            "entry '{rel}' is a symlink to '{}', which points outside the tree",
            shown(target)
        );
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    symlink(target, path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
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
            shown(&String::from_utf8_lossy(e.as_bytes()))
        )
    })
}

/// Where a link leads, followed as the kernel would.
#[derive(Debug, PartialEq, Eq)]
enum Leads {
    Inside(Vec<String>),
    Outside,
    /// Past [`MAX_FOLLOWS`] links: a loop, or links that multiply.
    TooManyLinks,
}

/// Follows links through the others: at most [`MAX_FOLLOWS`] per link, and a budget of steps
/// (path components) for the whole archive, so that links which multiply (`l1 -> l0/l0/l0`,
/// `l2 -> l1/l1/l1`, ...) cost a bounded time.
struct Resolver<'a> {
    links: &'a BTreeMap<Vec<String>, String>,
    follows: usize,
    steps_left: usize,
    steps: usize,
}

impl<'a> Resolver<'a> {
    fn new(links: &'a BTreeMap<Vec<String>, String>, steps: usize) -> Resolver<'a> {
        Resolver {
            links,
            follows: 0,
            steps_left: steps,
            steps,
        }
    }

    /// Where `target`, read from the directory `from`, leads.
    fn resolve(&mut self, from: &[String], target: &str) -> Result<Leads> {
        if target.starts_with('/') {
            return Ok(Leads::Outside);
        }
        let mut at = from.to_vec();
        for part in target.split('/') {
            self.steps_left = self.steps_left.checked_sub(1).with_context(|| {
                format!(
                    "checking where the archive's links lead takes more than {} steps; an \
                     iPXE tree's take a few hundred",
                    self.steps
                )
            })?;
            match part {
                "" | "." => {}
                ".." => {
                    if at.pop().is_none() {
                        return Ok(Leads::Outside);
                    }
                }
                name => {
                    at.push(name.to_string());
                    let Some(next) = self.links.get(&at) else {
                        continue;
                    };
                    self.follows += 1;
                    if self.follows > MAX_FOLLOWS {
                        return Ok(Leads::TooManyLinks);
                    }
                    at.pop();
                    match self.resolve(&at, next)? {
                        Leads::Inside(real) => at = real,
                        other => return Ok(other),
                    }
                }
            }
        }
        Ok(Leads::Inside(at))
    }
}

/// Splits an entry name into components, refusing absolute paths and `..`.
fn safe_parts(name: &str) -> Result<Vec<String>> {
    if name.starts_with('/') {
        bail!("entry '{}' has an absolute path", shown(name));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("entry '{}' climbs out of the tree with '..'", shown(name)),
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
        let resolve = |links: &BTreeMap<Vec<String>, String>, from: &[String], target: &str| {
            Resolver::new(links, 1000).resolve(from, target).unwrap()
        };
        let none = BTreeMap::new();
        assert_eq!(resolve(&none, &p("a/b"), "../c"), Leads::Inside(p("a/c")));
        assert_eq!(resolve(&none, &p("a"), "../c"), Leads::Inside(p("c")));
        assert_eq!(resolve(&none, &p("a"), "../../c"), Leads::Outside);
        assert_eq!(resolve(&none, &[], "x/../../y"), Leads::Outside);
        let mut links = BTreeMap::new();
        links.insert(p("d/up"), "..".to_string());
        assert_eq!(resolve(&links, &p("d"), "up/x"), Leads::Inside(p("x")));
        assert_eq!(resolve(&links, &p("d"), "up/.."), Leads::Outside);
        links.insert(p("l1"), "l2".to_string());
        links.insert(p("l2"), "l1".to_string());
        assert_eq!(resolve(&links, &[], "l1"), Leads::TooManyLinks, "a loop");
    }

    /// `l0 -> .`, `l<i> -> l<i-1>/l<i-1>/l<i-1>`: 3^i links to follow `l<i>`. Linux stops at 40
    /// links, and so does the check, in a few steps whatever `i` is; the whole archive's links
    /// have a budget of steps besides.
    #[test]
    fn links_that_multiply_stop_at_forty_and_the_step_budget() {
        let mut raw = Raw::new()
            .file("t/a", "")
            .add("t/l0", EntryType::Symlink, 0o777, ".", b"");
        for i in 1..=30 {
            let prev = format!("l{}", i - 1);
            let target = format!("{prev}/{prev}/{prev}");
            raw = raw.add(&format!("t/l{i}"), EntryType::Symlink, 0o777, &target, b"");
        }
        let started = std::time::Instant::now();
        let got = err(raw);
        assert!(
            got.contains("which takes more than 40 links to resolve"),
            "{got}"
        );
        assert!(started.elapsed().as_secs() < 2, "{:?}", started.elapsed());
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        let mut links = BTreeMap::new();
        links.insert(p("a"), "b/".repeat(50));
        let mut walk = Resolver::new(&links, 100);
        walk.resolve(&[], "a").unwrap();
        let over = walk.resolve(&[], "a").unwrap_err().to_string();
        assert!(over.contains("takes more than 100 steps"), "{over}");
    }

    /// Long names, long links and pax records are read under their caps, whatever the header
    /// says; a pax record that changes a size is refused.
    #[test]
    fn metadata_entries_are_read_under_their_caps() {
        let long = format!("t/{}", "n".repeat(200));
        let pax = |records: &str| {
            Raw::new()
                .file("t/a", "")
                .add("pax", EntryType::XHeader, 0o644, "", records.as_bytes())
                .file("t/b", "")
        };
        let record = |k: &str, v: &str| {
            let body = format!(" {k}={v}\n");
            let mut n = body.len() + 1;
            while format!("{n}{body}").len() != n {
                n += 1;
            }
            format!("{n}{body}")
        };
        let (dir, res) = run(Raw::new()
            .file("t/a", "")
            .add(
                "././@LongLink",
                EntryType::GNULongName,
                0o644,
                "",
                format!("{long}\0").as_bytes(),
            )
            .file("t/short", "x"));
        res.unwrap();
        assert!(dir.path().join(&long[2..]).is_file());
        let (dir, res) = run(pax(&record("path", "t/from-pax")));
        res.unwrap();
        assert!(dir.path().join("from-pax").is_file());
        let got = err(pax(&record("size", "100")));
        assert!(got.contains("a pax header that sets a size"), "{got}");
        let got = err(pax(&record("path", &"p".repeat(5000))));
        assert!(got.contains("a name is at most 4096 bytes"), "{got}");
        let big = vec![b'a'; 5000];
        let got = err(Raw::new().file("t/a", "").add(
            "././@LongLink",
            EntryType::GNULongLink,
            0o644,
            "",
            &big,
        ));
        assert!(
            got.contains("entry 2 is a GNU long link of 5000 bytes"),
            "{got}"
        );
        let got = err(Raw::new().file("t/a", "").add(
            "././@LongLink",
            EntryType::GNULongName,
            0o644,
            "",
            b"t/x\0",
        ));
        assert!(got.contains("no entry follows"), "{got}");
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
            ..CAPS
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
