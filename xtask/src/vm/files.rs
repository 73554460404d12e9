//! Reading what `deploy` is pointed at on the vSphere side (the CA file), each up to a stated
//! cap, so that a FIFO does not block and /dev/zero does not fill memory.
//!
//! `read_regular_file` has the name and signature of the reader for every file the tool takes
//! that `util` is getting; this one merges into it then.

use std::{fs, io::Read, path::Path};

use anyhow::{bail, Context, Result};

/// A regular file of at most `cap` bytes; `what` names it in errors ("the CA file").
pub fn read_regular_file(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
    let check = |meta: fs::Metadata| -> Result<u64> {
        if !meta.is_file() {
            bail!(
                "{what} {} is not a regular file (a directory, device or pipe); give a file",
                path.display()
            );
        }
        if meta.len() > cap {
            bail!(
                "{what} {} is {} bytes, over the {} cap; give the file itself",
                path.display(),
                meta.len(),
                size(cap)
            );
        }
        Ok(meta.len())
    };
    let cannot = || format!("cannot read {what} {}", path.display());
    // Asked before opening too: opening a FIFO for reading blocks until someone writes to it.
    check(fs::metadata(path).with_context(cannot)?)?;
    let file = fs::File::open(path).with_context(cannot)?;
    let len = check(file.metadata().with_context(cannot)?)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .with_context(cannot)?;
    if bytes.len() as u64 > cap {
        bail!(
            "{what} {} grew past the {} cap while it was read",
            path.display(),
            size(cap)
        );
    }
    Ok(bytes)
}

/// At most `cap` bytes from `r`; None where it holds more.
pub fn read_capped(r: impl Read, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    r.take(cap + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

/// `1 MiB`, `4 KiB`, or bytes.
fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n}-byte"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("ca.pem");
        fs::write(&small, "pem").unwrap();
        assert_eq!(read_regular_file(&small, 3, "the CA file").unwrap(), b"pem");
        let err = read_regular_file(&small, 2, "the CA file")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is 3 bytes, over the 2-byte cap"), "{err}");
        let err = read_regular_file(Path::new("/dev/zero"), 1 << 20, "the CA file")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev/zero is not a regular file"), "{err}");
        let err = read_regular_file(dir.path(), 1 << 20, "the CA file")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a regular file"), "{err}");
    }

    #[test]
    fn a_stream_is_read_up_to_its_cap() {
        assert_eq!(read_capped(&b"abcd"[..], 4).unwrap().unwrap(), b"abcd");
        assert!(read_capped(std::io::repeat(0), 4096).unwrap().is_none());
        assert_eq!(size(4096), "4 KiB");
        assert_eq!(size(1 << 20), "1 MiB");
    }
}
