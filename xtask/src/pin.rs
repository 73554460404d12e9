//! `configs/ipxe.toml`: the one pin of upstream iPXE, read by the tool, the tests and the docs.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::{digest::TreeDigest, util};

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
}
