//! The build record: what decided a build's bytes and what came out (`manifest.json`), the
//! patch records and the names of the files that carry them. Every stage imports it from here,
//! downward; it imports no stage.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const SUMS: &str = "SHA256SUMS";
pub const MANIFEST: &str = "manifest.json";

/// What decided the bytes and what came out. Sorted maps and no clock readings, so identical
/// inputs give an identical file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub tool: String,
    pub source: SourceInfo,
    pub profile: ProfileInfo,
    /// The series, then the profile's own patches, in the order applied.
    pub patches: Vec<PatchRecord>,
    pub toolchain: BTreeMap<String, String>,
    pub runtime: RuntimeInfo,
    pub roms: BTreeMap<String, RomInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub version: String,
    pub commit: String,
    pub tree_digest: String,
    pub source_date_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileInfo {
    pub name: String,
    /// SHA-256 of the profile file.
    pub sha256: String,
    /// SHA-256 over the rendered `config/local/*.h` (see `RenderedConfig::sha256`).
    pub config_sha256: String,
    /// Embedded script, trusted roots and certificates, by role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<FileDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub name: String,
    pub sha256: String,
}

/// What the manifest and the provenance say of each applied patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRecord {
    pub name: String,
    /// The upstream URL, or `ipxe-patches/<file>`.
    pub origin: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<Offset>,
}

/// A hunk that applied away from the line it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offset {
    pub file: String,
    pub hunk: usize,
    /// Lines from where the hunk says it goes to where it went (negative: earlier).
    pub lines: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `sha256:` of configs/toolchain.lock, which the image was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolchain_lock: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RomInfo {
    pub nic: String,
    pub pci_id: String,
    pub size: u64,
    pub limit: u64,
    pub headroom: i64,
    pub sha256: String,
    /// Whether the linked image can fetch https:// (obj_https linked).
    #[serde(default)]
    pub https: bool,
}

impl Manifest {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serializes");
        s.push('\n');
        s
    }

    pub fn load(path: &Path) -> Result<Manifest> {
        let text = crate::input::read_text(path, crate::input::MANIFEST)?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a manifest this tool wrote", path.display()))
    }
}

impl Manifest {
    /// What decides the bytes, besides the ROM list: equal for builds that belong together.
    /// The image id is left out (an image rebuilt from the same lock has another id).
    pub fn inputs(&self) -> serde_json::Value {
        let mut m = self.clone();
        m.roms.clear();
        m.runtime.image = None;
        serde_json::to_value(&m).expect("a manifest serializes")
    }
}
