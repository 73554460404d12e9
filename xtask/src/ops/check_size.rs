//! Hold every ROM to its size budget in `roms/budget.toml`, or record the budget anew.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    cache::Cache,
    check::budget::{self, Budget, Entry},
    nic::{Nic, NICS},
    ops::{build, How, DEFAULT_PROFILE},
    project::Project,
};

/// Growth a new budget entry allows: one 512-byte ROM block.
const DEFAULT_GROWTH: u64 = 512;

/// Records a ROM's size and objects as its new budget, unless that passes the entry's ceiling.
fn record(
    entries: &mut BTreeMap<String, Entry>,
    name: &str,
    size: u64,
    objects: BTreeMap<String, u64>,
    label: &str,
) -> Vec<String> {
    let old = entries.get(name);
    let entry = Entry {
        size,
        allowed_growth: old.map_or(DEFAULT_GROWTH, |e| e.allowed_growth),
        max: old.and_then(|e| e.max),
        objects,
    };
    if let Some(max) = entry.max.filter(|&m| size > m) {
        return vec![format!(
            "{size} bytes is over the ceiling of {max}; not recorded"
        )];
    }
    let delta = old.map_or(String::new(), |o| {
        format!(" ({:+})", size as i64 - o.size as i64)
    });
    println!("{label}: recorded {size} bytes{delta}");
    entries.insert(name.to_string(), entry);
    Vec::new()
}

/// Holds a ROM to its budget entry, printing the verdict; returns what it broke.
fn hold(entry: &Entry, size: u64, objects: &BTreeMap<String, u64>, label: &str) -> Vec<String> {
    let problems = entry.check(size, objects);
    if problems.is_empty() {
        let change = size as i64 - entry.size as i64;
        let shrink = budget::top_growth(objects, &entry.objects);
        println!(
            "{label}: {size} bytes, budget {} + {}: ok ({change:+}){}",
            entry.size,
            entry.allowed_growth,
            if change < 0 {
                shrink.replace("grew most", "shrank most")
            } else {
                String::new()
            }
        );
    }
    for p in &problems {
        println!("{label}: {p}");
    }
    problems
}

/// Builds every profile in the budget (or `profile`) and holds each ROM to its budget; with
/// `update`, records this build's sizes instead, deliberately.
pub fn check_size(
    project: &Project,
    cache: &Cache,
    how: &How,
    profile: Option<&str>,
    update: bool,
) -> Result<()> {
    let path = project.budget_file();
    let mut budget = Budget::load(&path)?;
    let profiles: Vec<String> = match profile {
        Some(p) => vec![p.to_string()],
        None if budget.0.is_empty() && update => vec![DEFAULT_PROFILE.into()],
        None if budget.0.is_empty() => {
            bail!(
                "{} has no budgets: run cargo xtask check-size --update to record them",
                path.display()
            )
        }
        None => budget.0.keys().cloned().collect(),
    };
    let sh = Shell::new()?;
    let mut failures = Vec::new();
    for profile in profiles {
        let entries = budget.0.entry(profile.clone()).or_default();
        let nics: Vec<&'static Nic> = if entries.is_empty() {
            NICS.iter().filter(|n| n.in_all).collect()
        } else {
            entries
                .keys()
                .map(|n| Nic::by_name(n))
                .collect::<Result<_>>()?
        };
        let outcome = build::build(&sh, &how.request(project, cache, &profile, nics, false))?;
        for rom in &outcome.roms {
            let objects = rom.linked.sizes.clone();
            let label = format!("{profile}/{}", rom.nic.name);
            let problems = if update {
                record(entries, rom.nic.name, rom.report.size, objects, &label)
            } else {
                match entries.get(rom.nic.name) {
                    Some(entry) => hold(entry, rom.report.size, &objects, &label),
                    None => Vec::new(),
                }
            };
            failures.extend(problems.into_iter().map(|p| format!("{label}: {p}")));
        }
    }
    if update {
        budget.save(&path)?;
        println!("wrote {}", path.display());
    }
    if !failures.is_empty() {
        bail!(
            "{} size budget(s) exceeded:\n  {}\nCut the growth, or accept it with cargo xtask check-size --update (and say why in the commit)",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}
