//! Every file the tool takes from a user, read one way: a regular file only (a FIFO would block,
//! `/dev/zero` would never end), and no larger than the cap its kind states, checked before a
//! byte is read. Profiles, the pin and locks, patches, archives, keys, ROMs, manifests, sums and
//! `deploy`'s CA file all come through here; [`read_capped`] is the same cap for a stream
//! (`--password-stdin`).

use std::{
    fs,
    io::Read,
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::Path,
};

use anyhow::{bail, Context, Result};

use crate::util::shown_path;

/// A kind of file the tool takes, and the most it reads of one.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// What the file is, with its article, as errors name it: "a patch".
    pub what: &'static str,
    pub cap: u64,
    /// Why the cap is where it is, where that is not plain; starts with ", ".
    pub why: &'static str,
}

impl Kind {
    /// A kind whose cap needs no reason beyond the file's usual size.
    const fn new(what: &'static str, cap: u64) -> Kind {
        Kind { what, cap, why: "" }
    }
}

const MIB: u64 = 1 << 20;

/// Profiles, the pin, the locks, the series and the budget: the largest, the toolchain lock,
/// is 18 KB.
pub const TOML: Kind = Kind::new("a TOML file", MIB);
/// A fix is a few KB of diff; 8 MiB leaves room for any commit the series would carry.
pub const PATCH: Kind = Kind::new("a patch", 8 * MIB);
/// An iPXE tarball is about 5 MB gzipped and 25 MB as plain tar.
pub const ARCHIVE: Kind = Kind {
    what: "a source archive",
    cap: 256 * MIB,
    why: ", ten times an iPXE tree as plain tar",
};
/// Embedded scripts and certificates go into a ROM of 64 to 256 KiB.
pub const EMBED: Kind = Kind {
    what: "a file a profile compiles in",
    cap: MIB,
    why: ", far more than a ROM of 64 to 256 KiB holds",
};
/// Guestinfo keys as `vmx --format json` prints them: a few KB.
pub const KEYS: Kind = Kind::new("a keys file", MIB);
pub const ROM: Kind = Kind {
    what: "an option ROM",
    cap: 16 * MIB,
    why: ", the most a PCI expansion ROM BAR maps",
};
pub const MANIFEST: Kind = Kind::new("a manifest", MIB);
pub const SUMS: Kind = Kind::new("a SHA256SUMS file", MIB);
pub const DOCKERFILE: Kind = Kind::new("a Dockerfile", MIB);
/// `deploy --ca-file` or `GOVC_TLS_CA_CERTS`: a bundle of every public root is about 200 KiB.
pub const CA_FILE: Kind = Kind::new("a CA file", MIB);
/// The largest locked .deb, the boot fixtures' Linux kernel, is 26 MB.
pub const DEB: Kind = Kind::new("a .deb", 128 * MIB);

/// Opens `path` (links followed) for reading, once it is known to be a regular file of at most
/// `kind.cap` bytes; returns it with its length.
pub fn open(path: &Path, kind: Kind) -> Result<(fs::File, u64)> {
    let cannot = || format!("cannot read {}", shown_path(path));
    // Asked before opening: opening a FIFO for reading blocks until someone writes to it. And
    // opened non-blocking, should a FIFO take the file's place in between.
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{}: no such file", cannot()),
        _ => anyhow::Error::new(e).context(cannot()),
    })?;
    check(path, kind, &meta)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(cannot)?;
    let len = check(path, kind, &file.metadata().with_context(cannot)?)?;
    Ok((file, len))
}

/// The whole of `path`, a regular file of at most `kind.cap` bytes.
pub fn read(path: &Path, kind: Kind) -> Result<Vec<u8>> {
    let (file, len) = open(path, kind)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(kind.cap + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", shown_path(path)))?;
    if bytes.len() as u64 > kind.cap {
        bail!(
            "{} grew past {} while it was read; {} is at most that",
            shown_path(path),
            size(kind.cap),
            kind.what
        );
    }
    Ok(bytes)
}

/// At most `cap` bytes from a stream, read no further than one byte past it; None where it
/// holds more.
pub fn read_capped(r: impl Read, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    r.take(cap + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

/// [`read`], as UTF-8 text.
pub fn read_text(path: &Path, kind: Kind) -> Result<String> {
    String::from_utf8(read(path, kind)?)
        .map_err(|e| anyhow::anyhow!("{} is not UTF-8 text: {e}", shown_path(path)))
}

/// The file's length, if it is a regular file within the cap.
fn check(path: &Path, kind: Kind, meta: &fs::Metadata) -> Result<u64> {
    let t = meta.file_type();
    if !t.is_file() {
        let is = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a named pipe"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        bail!(
            "{} is not a regular file but {is}; {} must be a file",
            shown_path(path),
            kind.what
        );
    }
    if meta.len() > kind.cap {
        bail!(
            "{} is {} bytes; {} is at most {}{}",
            shown_path(path),
            meta.len(),
            kind.what,
            size(kind.cap),
            kind.why
        );
    }
    Ok(meta.len())
}

/// `16 MiB`, `64 KiB`, `100 bytes`.
fn size(n: u64) -> String {
    match n {
        n if n >= MIB && n.is_multiple_of(MIB) => format!("{} MiB", n / MIB),
        n if n >= 1024 && n.is_multiple_of(1024) => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &Path, kind: Kind) -> String {
        format!("{:#}", read(path, kind).unwrap_err())
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        fs::write(&small, "12345").unwrap();
        let five = Kind::new("a test file", 5);
        assert_eq!(read(&small, five).unwrap(), b"12345");
        let four = Kind { cap: 4, ..five };
        assert!(err(&small, four).ends_with("is 5 bytes; a test file is at most 4 bytes"));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert!(err(&fifo, five)
            .ends_with("is not a regular file but a named pipe; a test file must be a file"));
        assert!(err(Path::new("/dev/zero"), five).contains("but a character device"));
        assert!(err(dir.path(), five).contains("but a directory"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&small, &link).unwrap();
        assert_eq!(
            read(&link, five).unwrap(),
            b"12345",
            "a link to a file is that file"
        );
        fs::write(&small, [0xff, 0xfe]).unwrap();
        let text = format!("{:#}", read_text(&small, five).unwrap_err());
        assert!(text.contains("is not UTF-8 text"), "{text}");
        assert_eq!(size(16 << 20), "16 MiB");
        assert_eq!(size(64 << 10), "64 KiB");
    }

    #[test]
    fn a_stream_is_read_up_to_its_cap() {
        assert_eq!(read_capped(&b"abcd"[..], 4).unwrap().unwrap(), b"abcd");
        assert!(read_capped(std::io::repeat(0), 4096).unwrap().is_none());
    }
}
