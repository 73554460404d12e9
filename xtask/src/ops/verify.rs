//! Rebuild a profile from scratch, in a fresh cache that shares only the verified source, and
//! compare each ROM with the published SHA256SUMS; the ROM files beside the sums, if any,
//! locate the first difference.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{
    cache::Cache,
    input,
    nic::{Nic, RomFormat, NICS},
    ops::{build, How},
    project::Project,
    source,
    source::pin::Pin,
    util,
};

/// Rebuilds `profile` from scratch and compares with `sums_file`; the ROM files beside it, if
/// any, locate the first difference.
pub fn verify(
    project: &Project,
    cache: &Cache,
    how: &How,
    profile: &str,
    sums_file: &Path,
) -> Result<()> {
    let (expected, nics, mrom) = published(sums_file)?;

    let pin = Pin::load(&project.pin_file())?;
    let (scratch, fresh) = source::scratch_cache(&pin, cache)?;
    eprintln!("rebuilding from scratch in {}", scratch.path().display());
    let req = how.request(project, &fresh, profile, nics, mrom);
    let sh = Shell::new()?;
    let outcome = build::build(&sh, &req)?;

    let reference_dir = sums_file.parent().unwrap_or(Path::new("."));
    let mut mismatches = 0;
    for rom in &outcome.roms {
        let got = util::sha256_hex(&rom.bytes);
        let want = &expected[&rom.file_name];
        if &got == want {
            println!("{}: match {got}", rom.file_name);
            continue;
        }
        mismatches += 1;
        let wherever = match input::read(&reference_dir.join(&rom.file_name), input::ROM) {
            Ok(reference) if util::sha256_hex(&reference) == *want => {
                first_difference(&reference, &rom.bytes)
            }
            _ => "(no published copy beside the sums file to locate the difference)".to_string(),
        };
        println!(
            "{}: MISMATCH rebuilt {got}, published {want}; {wherever}",
            rom.file_name
        );
    }
    if mismatches > 0 {
        bail!(
            "{mismatches} of {} ROM(s) did not rebuild to the published bytes ({} runtime; the manifest beside the sums names the toolchain and image that made them)",
            outcome.roms.len(),
            outcome.runtime.name()
        );
    }
    println!(
        "all {} ROM(s) rebuilt to the published bytes",
        outcome.roms.len()
    );
    Ok(())
}

/// The published sums, the NICs they name, and whether they name `.mrom` files.
fn published(sums_file: &Path) -> Result<(BTreeMap<String, String>, Vec<&'static Nic>, bool)> {
    let text = input::read_text(sums_file, input::SUMS).with_context(|| {
        format!(
            "cannot read {}: build first (cargo xtask build-rom) or pass --against FILE",
            sums_file.display()
        )
    })?;
    let expected = parse_sums(&text)
        .with_context(|| format!("{} is not a SHA256SUMS file", sums_file.display()))?;
    let mut nics = Vec::new();
    let mut mrom = false;
    for name in expected.keys() {
        let (nic, format) = nic_for_file(name)?;
        mrom |= format == RomFormat::Mrom;
        nics.push(nic);
    }
    Ok((expected, nics, mrom))
}

/// `<hex> *<name>` or `<hex>  <name>` per line, as `sha256sum` writes.
fn parse_sums(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (hex, name) = line
            .split_once(' ')
            .with_context(|| format!("line {}: no file name", n + 1))?;
        let name = name.trim_start_matches([' ', '*']);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("line {}: '{}' is not a SHA-256", n + 1, util::shown(hex));
        }
        out.insert(name.to_string(), hex.to_ascii_lowercase());
    }
    if out.is_empty() {
        bail!("it lists no files");
    }
    Ok(out)
}

fn nic_for_file(name: &str) -> Result<(&'static Nic, RomFormat)> {
    for nic in NICS {
        for format in [RomFormat::Rom, RomFormat::Mrom] {
            if nic.file_name(format) == name {
                return Ok((nic, format));
            }
        }
    }
    bail!(
        "'{}' is not a ROM this tool builds (15ad07b0.rom, 8086100f.rom, 808610d3.rom, \
         10222000.rom, .mrom)",
        util::shown(name)
    )
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(
            "first difference at offset {i:#x} ({i}): published {:#04x}, rebuilt {:#04x}",
            a[i], b[i]
        ),
        None => format!(
            "identical for {} bytes, then the lengths differ ({} published, {} rebuilt)",
            a.len().min(b.len()),
            a.len(),
            b.len()
        ),
    }
}
