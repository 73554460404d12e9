//! The tree digest: what the pinned source *is*, whoever packed it.
//!
//! Scheme (also in docs/reproducibility.md, so anyone can recompute it): for every regular file and symlink
//! below the tree root, sorted by path bytes, one line
//! `<kind> <sha256 hex of content or link target> <path>\n`, kind `x` for a file with any
//! execute bit, `f` for other files, `l` for symlinks; directories are left out. The digest is
//! `sha256:` and the SHA-256 of those lines.

use std::{fmt, fs, os::unix::fs::PermissionsExt, path::Path, str::FromStr};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::util;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Exec,
    Symlink,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Exec => 'x',
            Kind::Symlink => 'l',
        }
    }
}

/// One file of a tree, as the digest sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreeDigest(String);

impl TreeDigest {
    pub fn of(mut entries: Vec<Entry>) -> TreeDigest {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let mut listing = String::new();
        for e in &entries {
            listing.push_str(&format!("{} {} {}\n", e.kind.letter(), e.sha256, e.path));
        }
        TreeDigest(format!("sha256:{}", util::sha256_hex(listing.as_bytes())))
    }

    /// The 64 hex digits, safe to use as a directory name.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for TreeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TreeDigest {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<TreeDigest> {
        let hex = s.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            bail!("'{s}' is not a tree digest: expected sha256: and 64 lowercase hex digits");
        }
        Ok(TreeDigest(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for TreeDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for TreeDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Digest of a tree already on disk.
pub fn digest_dir(root: &Path) -> Result<TreeDigest> {
    let mut entries = Vec::new();
    walk(root, "", &mut entries)?;
    Ok(TreeDigest::of(entries))
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Entry>) -> Result<()> {
    for item in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            bail!("{}: file name is not UTF-8", item.path().display());
        };
        let path = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(item.path())?;
        if meta.is_dir() {
            walk(&item.path(), &format!("{path}/"), out)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(item.path())?;
            let target = target.to_str().context("symlink target is not UTF-8")?;
            out.push(Entry {
                path,
                kind: Kind::Symlink,
                sha256: util::sha256_hex(target.as_bytes()),
            });
        } else if meta.is_file() {
            let kind = if meta.permissions().mode() & 0o111 != 0 {
                Kind::Exec
            } else {
                Kind::File
            };
            out.push(Entry {
                path,
                kind,
                sha256: util::sha256_file(&item.path())?,
            });
        } else {
            bail!(
                "{}: not a regular file, directory or symlink",
                item.path().display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: Kind, content: &str) -> Entry {
        Entry {
            path: path.into(),
            kind,
            sha256: util::sha256_hex(content.as_bytes()),
        }
    }

    /// Golden value: `printf 'f <sha of "a"> a\nx <sha of "b"> b/c\n' | sha256sum`.
    #[test]
    fn digest_is_sorted_listing_hash() {
        let one = TreeDigest::of(vec![e("b/c", Kind::Exec, "b"), e("a", Kind::File, "a")]);
        let listing = format!(
            "f {} a\nx {} b/c\n",
            util::sha256_hex(b"a"),
            util::sha256_hex(b"b")
        );
        assert_eq!(
            one.to_string(),
            format!("sha256:{}", util::sha256_hex(listing.as_bytes()))
        );
        assert_eq!(
            one.to_string(),
            "sha256:442e7c99b6b389c515c53e2f22419d6412e72b6189c23341f4b3d60fac75816e"
        );
    }

    #[test]
    fn mode_and_content_and_name_all_count() {
        let base = TreeDigest::of(vec![e("a", Kind::File, "a")]);
        assert_ne!(base, TreeDigest::of(vec![e("a", Kind::Exec, "a")]));
        assert_ne!(base, TreeDigest::of(vec![e("a", Kind::File, "b")]));
        assert_ne!(base, TreeDigest::of(vec![e("A", Kind::File, "a")]));
        assert_ne!(base, TreeDigest::of(vec![e("a", Kind::Symlink, "a")]));
    }

    #[test]
    fn sorting_is_by_bytes_not_locale() {
        let x = TreeDigest::of(vec![e("B", Kind::File, ""), e("a", Kind::File, "")]);
        let y = TreeDigest::of(vec![e("a", Kind::File, ""), e("B", Kind::File, "")]);
        assert_eq!(x, y);
    }

    #[test]
    fn digest_dir_matches_entries() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("b")).unwrap();
        fs::write(dir.path().join("a"), "a").unwrap();
        fs::write(dir.path().join("b/c"), "b").unwrap();
        fs::set_permissions(dir.path().join("b/c"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(dir.path().join("empty")).unwrap();
        let want = TreeDigest::of(vec![e("b/c", Kind::Exec, "b"), e("a", Kind::File, "a")]);
        assert_eq!(digest_dir(dir.path()).unwrap(), want);
    }

    #[test]
    fn rejects_malformed_digests() {
        assert!("sha256:abc".parse::<TreeDigest>().is_err());
        assert!("md5:00".parse::<TreeDigest>().is_err());
        assert!(format!("sha256:{}", "A".repeat(64))
            .parse::<TreeDigest>()
            .is_err());
        assert!(format!("sha256:{}", "a".repeat(64))
            .parse::<TreeDigest>()
            .is_ok());
    }
}
