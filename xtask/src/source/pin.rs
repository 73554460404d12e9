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
        pin.check()
            .map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
        Ok(pin)
    }

    /// Why the pin cannot be taken, if so: its commit is 40 hex digits and its version a
    /// release name (see [`is_release_name`]).
    pub fn check(&self) -> Result<(), String> {
        if !is_full_commit_id(&self.commit) {
            return Err(format!(
                "commit must be 40 hex digits, got '{}'",
                util::shown(&self.commit)
            ));
        }
        if !is_release_name(&self.version) {
            return Err(format!(
                "version '{}' is not a release name: {RELEASE_NAME}",
                util::shown(&self.version)
            ));
        }
        Ok(())
    }

    /// The pin `to_toml` writes, read back: refused unless it is this pin, whole.
    pub fn reads_back(&self) -> Result<()> {
        let text = self.to_toml();
        let back: Pin = util::parse_toml(&text)
            .map_err(|e| anyhow::anyhow!("the pin would not read back ({e})"))?;
        back.check()
            .map_err(|why| anyhow::anyhow!("the pin would not read back: {why}"))?;
        if back.to_toml() != text {
            bail!("the pin would read back as another pin");
        }
        Ok(())
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

/// What a release name is, as errors say it.
pub const RELEASE_NAME: &str = "letters, digits and . _ + - (e.g. v2.1.0), starting with a \
    letter or digit, at most 64";

/// A release name as upstream tags them (`v2.0.0`, `v2.1.0-rc1`): a token that prints as it is
/// and reads back from TOML as it was written.
pub fn is_release_name(v: &str) -> bool {
    v.len() <= 64
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
}

/// A commit id, whole or abbreviated: hex digits only.
pub fn is_commit_id(c: &str) -> bool {
    !c.is_empty() && c.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A whole commit id: 40 hex digits, as the pin, the series and the upstream record name one.
pub fn is_full_commit_id(c: &str) -> bool {
    c.len() == 40 && is_commit_id(c)
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
    fn versions_and_commits_that_would_not_read_back_are_refused() {
        for good in ["v2.0.0", "v2.1.0-rc1", "fake", "2024.01+git"] {
            assert!(is_release_name(good), "{good}");
        }
        for bad in [
            "",
            "v\u{7f}",
            "v 2",
            "-v",
            ".",
            "v\u{202e}1",
            "\"x",
            &"v".repeat(65),
        ] {
            assert!(!is_release_name(bad), "{bad:?}");
        }
        assert!(is_commit_id("12798ec") && !is_commit_id(&"g".repeat(40)) && !is_commit_id(""));
    }

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
        pin.reads_back().unwrap();
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
