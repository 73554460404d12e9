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

/// What iPXE's dependency files (`bin/deps/<source>.d`, one per source make knows) say each
/// object is compiled from: its source and every header the preprocessor read for it, as paths
/// below the tree root (`src/net/tcp.c`). Keyed by object name with `-` as `_`, as iPXE's
/// `-DOBJECT` (and so the `obj_` symbols) spell it.
pub fn dependency_files(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut deps = BTreeMap::new();
    let mut stack = vec![src.join("bin/deps")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "d") {
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if let Some((object, files)) = parse_deps(&text) {
                    deps.insert(object.replace('-', "_"), files);
                }
            }
        }
    }
    Ok(deps)
}

/// `tcp_DEPS += net/tcp.c include/compiler.h \` (continued) to `tcp` and its files below the
/// tree root. Generated files (`bin/`) and paths that leave `src/` are not upstream's: left out.
fn parse_deps(text: &str) -> Option<(String, BTreeSet<String>)> {
    // The rule runs to its first line without a trailing `\`; `-MP`'s `header:` lines follow.
    let mut rule = String::new();
    for line in text.lines() {
        let continued = line.strip_suffix('\\');
        rule.push_str(continued.unwrap_or(line));
        rule.push(' ');
        if continued.is_none() {
            break;
        }
    }
    let mut words = rule.split_whitespace();
    let object = words.next()?.strip_suffix("_DEPS")?;
    if words.next()? != "+=" {
        return None;
    }
    let files = words
        .filter(|f| !f.starts_with('/') && !f.starts_with("bin/") && !f.contains(".."))
        .map(|f| format!("src/{f}"))
        .collect();
    Some((object.to_string(), files))
}

/// The files a ROM's linked objects were compiled from, and the linked objects no dependency
/// file names. `version.15ad07b0.rom` and `vmxnet3.ids` are compiled from `version` and
/// `vmxnet3`'s sources.
pub fn linked_sources<'a>(
    deps: &BTreeMap<String, BTreeSet<String>>,
    objects: impl IntoIterator<Item = &'a String>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut files = BTreeSet::new();
    let mut unsourced = BTreeSet::new();
    for object in objects {
        let name = object.replace('-', "_");
        let base = name.split('.').next().unwrap_or(&name);
        match deps.get(&name).or_else(|| deps.get(base)) {
            Some(f) => files.extend(f.iter().cloned()),
            None => {
                unsourced.insert(object.clone());
            }
        }
    }
    (files, unsourced)
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
    fn dependency_files_name_each_objects_source_and_headers() {
        let dir = tempfile::tempdir().unwrap();
        let deps = dir.path().join("bin/deps/drivers/net");
        fs::create_dir_all(&deps).unwrap();
        // As iPXE writes them: `cpp -M -MG -MP` piped through sed.
        fs::write(
            deps.join("3c509-eisa.c.d"),
            "3c509-eisa_DEPS += drivers/net/3c509-eisa.c include/compiler.h \\\n \
             include/ipxe/eisa.h bin/embedded.h /usr/include/x.h ../outside.h\n\
             include/compiler.h:\ninclude/ipxe/eisa.h:\n",
        )
        .unwrap();
        fs::write(
            deps.join("vmxnet3.c.d"),
            "vmxnet3_DEPS += drivers/net/vmxnet3.c drivers/net/vmxnet3.h\n",
        )
        .unwrap();
        fs::write(deps.join("junk.c.d"), "not a rule\n").unwrap();
        let map = dependency_files(dir.path()).unwrap();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["3c509_eisa", "vmxnet3"]);
        assert_eq!(
            map["3c509_eisa"].iter().collect::<Vec<_>>(),
            [
                "src/drivers/net/3c509-eisa.c",
                "src/include/compiler.h",
                "src/include/ipxe/eisa.h"
            ],
            "the rule only, below src/, without generated or outside files"
        );
        let objects: Vec<String> = ["3c509-eisa", "vmxnet3.ids", "general"]
            .map(String::from)
            .into();
        let (files, unsourced) = linked_sources(&map, &objects);
        assert!(files.contains("src/drivers/net/vmxnet3.h"), "{files:?}");
        assert!(files.contains("src/include/ipxe/eisa.h"), "{files:?}");
        assert_eq!(unsourced, BTreeSet::from(["general".to_string()]));
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
