//! `configs/ipxe.toml`: the one pin of upstream iPXE, read by the tool, the tests and the docs.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::{source::digest::TreeDigest, util};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Upstream's name for the release, for people.
    pub version: String,
    pub commit: String,
    /// Committer time of `commit`; becomes `SOURCE_DATE_EPOCH`.
    pub commit_time: u64,
    /// Digest of the extracted tree (see `digest`), independent of archive format.
    pub tree_digest: TreeDigest,
    /// Tried in order; any archive of the commit gives the same tree.
    pub urls: Vec<String>,
}

impl Pin {
    pub fn load(path: &Path) -> Result<Pin> {
        let pin: Pin = util::read_toml(path)?;
        if pin.commit.len() != 40 || !pin.commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "{}: commit must be 40 hex digits, got '{}'",
                path.display(),
                pin.commit
            );
        }
        Ok(pin)
    }

    pub fn short_commit(&self) -> &str {
        &self.commit[..12]
    }

    /// `configs/ipxe.toml` as written by `cargo xtask pin`.
    pub fn to_toml(&self) -> String {
        let urls: Vec<String> = self.urls.iter().map(|u| format!("{u:?}")).collect();
        format!(
            "# The pinned upstream iPXE source. The tool, the tests and the README read this file; change it\n\
             # only on purpose (cargo xtask pin), together with the default profile's size measurements.\n\n\
             version = {:?}\ncommit = {:?}\n\
             # Committer time of the commit ({}); the build's SOURCE_DATE_EPOCH.\n\
             commit_time = {}\n\
             # Digest of the extracted tree, whoever made the archive; the scheme is in the README.\n\
             tree_digest = \"{}\"\nurls = [{}]\n",
            self.version,
            self.commit,
            rfc3339(self.commit_time),
            self.commit_time,
            self.tree_digest,
            urls.join(", ")
        )
    }
}

/// `2026-03-06T15:48:55Z` from seconds since the epoch (proleptic Gregorian, UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_pin_reads_back_and_dates_are_utc() {
        assert_eq!(rfc3339(1_772_812_135), "2026-03-06T15:48:55Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipxe.toml");
        std::fs::write(
            &path,
            std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ipxe.toml"),
            )
            .unwrap(),
        )
        .unwrap();
        let pin = Pin::load(&path).unwrap();
        std::fs::write(&path, pin.to_toml()).unwrap();
        let again = Pin::load(&path).unwrap();
        assert_eq!(
            (
                again.commit,
                again.commit_time,
                again.tree_digest.to_string()
            ),
            (pin.commit, pin.commit_time, pin.tree_digest.to_string())
        );
    }
}
