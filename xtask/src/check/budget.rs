//! `roms/budget.toml`: the expected size of each profile's ROM per NIC, and how much it may grow
//! before CI fails. `check-size --update` rewrites it on purpose.

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::util;

/// Profile name to NIC name to budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Budget(pub BTreeMap<String, BTreeMap<String, Entry>>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Bytes of the ROM when the budget was last updated.
    pub size: u64,
    /// Growth past `size` that still passes.
    pub allowed_growth: u64,
    /// A ceiling no update may raise `size` past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// Bytes per linked object at the last update, to name what grew.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, u64>,
}

const HEADER: &str = "# Size budgets per profile and NIC. cargo xtask check-size fails when a ROM grows more than\n\
# allowed_growth past size, or past max; cargo xtask check-size --update rewrites size and objects.\n\n";

impl Budget {
    pub fn load(path: &Path) -> Result<Budget> {
        if !path.exists() {
            return Ok(Budget::default());
        }
        util::read_toml(path)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).context("cannot serialize the budget")?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::write(path, format!("{HEADER}{text}"))
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Entry {
    /// Problems with a new build against this entry, as sentences; empty when it passes.
    pub fn check(&self, size: u64, objects: &BTreeMap<String, u64>) -> Vec<String> {
        let mut problems = Vec::new();
        let allowed = self.size + self.allowed_growth;
        if size > allowed {
            problems.push(format!(
                "{size} bytes grew {} past the budgeted {} (allowed growth {}){}",
                size - self.size,
                self.size,
                self.allowed_growth,
                top_growth(&self.objects, objects)
            ));
        }
        if let Some(max) = self.max.filter(|&m| size > m) {
            problems.push(format!(
                "{size} bytes is over the ceiling of {max} by {}",
                size - max
            ));
        }
        problems
    }
}

/// `; grew most: tcp +320, http +128` for the objects that grew most.
pub fn top_growth(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let mut grown: Vec<(i64, &str)> = after
        .iter()
        .map(|(name, &n)| {
            (
                n as i64 - before.get(name).copied().unwrap_or(0) as i64,
                name.as_str(),
            )
        })
        .filter(|(d, _)| *d > 0)
        .collect();
    grown.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    if grown.is_empty() {
        return String::new();
    }
    let list: Vec<String> = grown
        .iter()
        .take(5)
        .map(|(d, n)| format!("{n} +{d}"))
        .collect();
    format!("; grew most: {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_allowance_names_the_objects() {
        let entry = Entry {
            size: 50_176,
            allowed_growth: 512,
            max: Some(53_248),
            objects: BTreeMap::from([("tcp".into(), 1000), ("http".into(), 2000)]),
        };
        assert!(entry.check(50_688, &entry.objects).is_empty());
        let after = BTreeMap::from([
            ("tcp".into(), 1900),
            ("http".into(), 2100),
            ("tls".into(), 30),
        ]);
        let p = entry.check(51_200, &after);
        assert_eq!(p, ["51200 bytes grew 1024 past the budgeted 50176 (allowed growth 512); grew most: tcp +900, http +100, tls +30"]);
        let p = Entry {
            allowed_growth: 10_000,
            ..entry
        }
        .check(53_760, &after);
        assert_eq!(p, ["53760 bytes is over the ceiling of 53248 by 512"]);
    }

    #[test]
    fn round_trips_through_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.toml");
        let mut b = Budget::default();
        b.0.entry("vmware".into()).or_default().insert(
            "vmxnet3".into(),
            Entry {
                size: 1,
                allowed_growth: 2,
                max: None,
                objects: BTreeMap::from([("a".into(), 3)]),
            },
        );
        b.save(&path).unwrap();
        assert_eq!(Budget::load(&path).unwrap(), b);
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("[vmware.vmxnet3]"));
    }
}
