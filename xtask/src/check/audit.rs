//! What was really linked: the profile's promises checked against the linked ELF, and bytes per
//! linked object from the link map.
//!
//! iPXE's `config/*.c` turn each config macro into `REQUIRE_OBJECT ( name )`, and every linked
//! object carries an `obj_<name>` symbol. So the tree itself says which objects a `#define`
//! must bring in and an `#undef` must keep out; the ELF says which ones did.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use anyhow::{Context, Result};

/// Config macro to the objects its `#ifdef` block requires, from `config/*.c`.
pub fn config_objects(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let dir = src.join("config");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    files.sort();
    for file in files {
        let text = fs::read_to_string(&file)?;
        // Innermost condition first; None for anything but a plain `#ifdef NAME`.
        let mut stack: Vec<Option<String>> = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("#ifdef") {
                stack.push(Some(rest.trim().to_string()));
            } else if line.starts_with("#if") {
                stack.push(None);
            } else if line.starts_with("#endif") {
                stack.pop();
            } else if line.starts_with("#else") || line.starts_with("#elif") {
                if let Some(top) = stack.last_mut() {
                    *top = None;
                }
            } else if let Some(rest) = line.strip_prefix("REQUIRE_OBJECT") {
                let name = rest
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(';')
                    .trim_end_matches(')')
                    .trim();
                if let Some(Some(macro_name)) = stack.last() {
                    map.entry(macro_name.clone())
                        .or_default()
                        .insert(name.to_string());
                }
            }
        }
    }
    Ok(map)
}

/// The `obj_<name>` symbols of a linked ELF.
pub fn linked_objects(elf: &Path) -> Result<BTreeSet<String>> {
    let bytes =
        fs::read(elf).with_context(|| format!("cannot read the linked image {}", elf.display()))?;
    let parsed = goblin::elf::Elf::parse(&bytes)
        .with_context(|| format!("{} is not an ELF file", elf.display()))?;
    Ok(parsed
        .syms
        .iter()
        .filter_map(|sym| parsed.strtab.get_at(sym.st_name))
        .filter_map(|name| name.strip_prefix("obj_"))
        .map(String::from)
        .collect())
}

/// A promise the profile makes about the linked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promise {
    pub object: String,
    pub linked: bool,
    /// Where the promise comes from, for the error message.
    pub because: String,
}

/// The promises the linked objects break, as sentences.
pub fn broken(promises: &[Promise], linked: &BTreeSet<String>) -> Vec<String> {
    promises
        .iter()
        .filter(|p| linked.contains(&p.object) != p.linked)
        .map(|p| {
            if p.linked {
                format!("obj_{} is missing although {}", p.object, p.because)
            } else {
                format!("obj_{} is linked although {}", p.object, p.because)
            }
        })
        .collect()
}

/// Bytes each object puts into the loaded image (code and data, not bss or debug info), from
/// the GNU ld map iPXE writes beside the ELF (`bin/<target>.tmp.map`).
pub fn object_sizes(map_file: &Path) -> Result<BTreeMap<String, u64>> {
    let text = fs::read_to_string(map_file)
        .with_context(|| format!("cannot read the link map {}", map_file.display()))?;
    let body = text
        .split_once("Linker script and memory map")
        .map_or("", |(_, b)| b);
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut counted = false;
    let mut pending = false;
    for line in body.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            let output = line.split_whitespace().next().unwrap_or("");
            counted = !(output.starts_with(".bss")
                || output.starts_with(".debug")
                || output.starts_with(".zinfo")
                || output.starts_with(".comment")
                || output.starts_with(".note")
                || output.starts_with("/DISCARD/"));
            pending = false;
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (size, file) = match (fields.as_slice(), pending) {
            ([section, _addr, size, file], _)
                if line.starts_with(" .") && section.starts_with('.') =>
            {
                (*size, *file)
            }
            ([section], _) if line.starts_with(" .") && section.starts_with('.') => {
                pending = true;
                continue;
            }
            ([_addr, size, file], true) => (*size, *file),
            _ => {
                pending = false;
                continue;
            }
        };
        pending = false;
        if !counted {
            continue;
        }
        let Ok(bytes) = u64::from_str_radix(size.trim_start_matches("0x"), 16) else {
            continue;
        };
        if bytes == 0 {
            continue;
        }
        *sizes.entry(object_name(file)).or_default() += bytes;
    }
    Ok(sizes)
}

/// Object name to the source directory it is compiled from (`tcp` to `net`), the "feature
/// group" sizes are summed by. Generated objects such as `vmxnet3.ids` go with their driver.
/// Only x86 sources are looked at: the ROMs are x86, and stems repeat across architectures.
pub fn object_groups(
    src: &Path,
    objects: impl IntoIterator<Item = String>,
) -> BTreeMap<String, String> {
    let mut dirs: BTreeMap<String, String> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(src)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                let other_arch =
                    rel.starts_with("arch/") && rel != "arch/x86" && !rel.starts_with("arch/x86/");
                if !other_arch && !matches!(rel.as_str(), "bin" | "util" | "config/local") {
                    stack.push(path);
                }
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("c" | "S")) {
                let stem = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let parent = Path::new(&rel)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                dirs.entry(stem).or_insert(parent);
            }
        }
    }
    objects
        .into_iter()
        .map(|o| {
            let base = o.split('.').next().unwrap_or(&o).to_string();
            let group = dirs
                .get(&o)
                .or_else(|| dirs.get(&base))
                .cloned()
                .unwrap_or_else(|| "other".into());
            (o, group)
        })
        .collect()
}

/// `bin/blib.a(tcp.o)` to `tcp`.
fn object_name(file: &str) -> String {
    let inner = file
        .rsplit_once('(')
        .map_or(file, |(_, o)| o.trim_end_matches(')'));
    let base = inner.rsplit('/').next().unwrap_or(inner);
    base.trim_end_matches(".o").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_require_object_blocks() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("config")).unwrap();
        fs::write(
            dir.path().join("config/config.c"),
            "#ifdef DOWNLOAD_PROTO_TFTP\nREQUIRE_OBJECT ( tftp );\n#endif\n\
             #ifdef VMWARE_SETTINGS\nREQUIRE_OBJECT ( guestinfo );\n#endif\n\
             #if defined ( A ) && defined ( B )\nREQUIRE_OBJECT ( ab );\n#endif\n\
             #ifdef SHARED1\nREQUIRE_OBJECT ( both );\n#else\nREQUIRE_OBJECT ( other );\n#endif\n\
             #ifdef SHARED2\nREQUIRE_OBJECT ( both );\n#endif\n",
        )
        .unwrap();
        let map = config_objects(dir.path()).unwrap();
        assert_eq!(
            map["DOWNLOAD_PROTO_TFTP"],
            BTreeSet::from(["tftp".to_string()])
        );
        assert_eq!(
            map["VMWARE_SETTINGS"],
            BTreeSet::from(["guestinfo".to_string()])
        );
        assert!(!map
            .values()
            .any(|o| o.contains("ab") || o.contains("other")));
    }

    #[test]
    fn sums_loaded_sections_per_object_from_a_link_map() {
        let map = r"Archive member included

Linker script and memory map

.prefix         0x00000000      0xc21
 .prefix        0x00000000      0x4c0 bin/blib.a(pciromprefix.o)
                0x00000000                _pcirom_start
 .pci_devlist.15ad07b0
                0x000004f7        0x2 bin/blib.a(vmxnet3.ids.o)
.textdata       0x00000000    0x13ccc load address 0x00001480
 .text.tcp_open
                0x00000100       0x80 bin/blib.a(tcp.o)
 .text.tcp_close 0x00000180      0x20 bin/blib.a(tcp.o)
.bss.textdata   0x00013ce0   0x402270 load address 0x000178d0
 .bss.tcp       0x00013ce0      0x400 bin/blib.a(tcp.o)
.debug_info     0x00000000    0x927ef
 .debug_info    0x00000000      0x999 bin/blib.a(tcp.o)
";
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x.map"), map).unwrap();
        let sizes = object_sizes(&dir.path().join("x.map")).unwrap();
        assert_eq!(sizes["pciromprefix"], 0x4c0);
        assert_eq!(sizes["vmxnet3.ids"], 2);
        assert_eq!(
            sizes["tcp"], 0xa0,
            "bss and debug sections are not ROM bytes"
        );
    }

    #[test]
    fn broken_promises_read_as_sentences() {
        let promise = |object: &str, linked, because: &str| Promise {
            object: object.into(),
            linked,
            because: because.into(),
        };
        let promises = [
            promise(
                "tftp",
                false,
                "[headers.general] undefines DOWNLOAD_PROTO_TFTP",
            ),
            promise(
                "guestinfo",
                true,
                "[headers.settings] defines VMWARE_SETTINGS",
            ),
        ];
        let linked = BTreeSet::from(["tftp".to_string()]);
        assert_eq!(
            broken(&promises, &linked),
            [
                "obj_tftp is linked although [headers.general] undefines DOWNLOAD_PROTO_TFTP",
                "obj_guestinfo is missing although [headers.settings] defines VMWARE_SETTINGS"
            ]
        );
    }
}
