//! Stage 2: a profile (`configs/<name>.toml`) and its rendering as iPXE's `config/local/*.h`.
//!
//! iPXE includes `config/local/<header>.h` at the end of each `config/<header>.h`, after its own
//! platform defaults, so `#undef`/`#define` there win. That is upstream's supported override.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::{builder::series, check::audit::Promise, input, nic, project::Project, util};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// One line for people: what this profile is for.
    pub description: String,
    /// Per config header (`general`, `settings`, ...): what to switch on and off.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderEdits>,
    /// Applied in order from `ipxe-patches/`.
    #[serde(default)]
    pub patches: Vec<String>,
    /// iPXE script compiled into the ROM (EMBED=), relative to the profile file.
    pub embed: Option<PathBuf>,
    /// Root certificates the ROM trusts (TRUST=), relative to the profile file.
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// Certificates compiled in (CERT=), relative to the profile file.
    #[serde(default)]
    pub certs: Vec<PathBuf>,
    /// Size limits per NIC name where this profile's VMs allow a larger ROM.
    #[serde(default)]
    pub limits: BTreeMap<String, u64>,
    /// Objects (`obj_<name>` in the linked ELF) that must, or must not, be linked.
    #[serde(default)]
    pub audit: AuditSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    #[serde(default)]
    pub linked: Vec<String>,
    #[serde(default)]
    pub absent: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    #[serde(default)]
    pub undef: Vec<String>,
    #[serde(default)]
    pub define: Vec<String>,
    /// Defines with a value, e.g. `TLS_VERSION_MIN = "TLS_VERSION_TLS_1_2"`.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// A loaded, validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub path: PathBuf,
    pub file: ProfileFile,
    /// SHA-256 of the profile file as written.
    pub sha256: String,
}

/// The `config/local/*.h` files for one profile: header file name to content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    pub files: BTreeMap<String, String>,
}

impl Profile {
    /// What the profile promises: `define`s bring their objects in; `undef`s keep out the objects
    /// that no other macro of the tree also requires; `[audit]` adds explicit ones.
    pub fn promises(&self, map: &BTreeMap<String, BTreeSet<String>>) -> Vec<Promise> {
        let mut out = Vec::new();
        for (header, edits) in &self.file.headers {
            for name in edits.define.iter().chain(edits.set.keys()) {
                for object in map.get(name).into_iter().flatten() {
                    out.push(Promise {
                        object: object.clone(),
                        linked: true,
                        because: format!("[headers.{header}] defines {name}"),
                    });
                }
            }
            for name in &edits.undef {
                for object in map.get(name).into_iter().flatten() {
                    let shared = map
                        .iter()
                        .any(|(other, objs)| other != name && objs.contains(object));
                    if !shared {
                        out.push(Promise {
                            object: object.clone(),
                            linked: false,
                            because: format!("[headers.{header}] undefines {name}"),
                        });
                    }
                }
            }
        }
        for object in &self.file.audit.linked {
            out.push(Promise {
                object: object.clone(),
                linked: true,
                because: "[audit] linked".into(),
            });
        }
        for object in &self.file.audit.absent {
            out.push(Promise {
                object: object.clone(),
                linked: false,
                because: "[audit] absent".into(),
            });
        }
        out
    }

    /// `name` is a profile name in `configs/`, or a path to a `.toml` file.
    pub fn load(project: &Project, name: &str) -> Result<Profile> {
        let configs = project.configs();
        let path = if name.ends_with(".toml") || name.contains('/') {
            PathBuf::from(name)
        } else {
            configs.join(format!("{name}.toml"))
        };
        let stem = profile_name(name);
        if stem == "ipxe" {
            bail!("configs/ipxe.toml is the source pin, not a profile: pass --profile vmware or another profile");
        }
        if fs::symlink_metadata(&path).is_err() {
            bail!(
                "no profile '{}': {} does not exist (profiles: {})",
                util::shown(name),
                util::shown_path(&path),
                list(&configs).join(", ")
            );
        }
        let text = input::read_text(&path, input::TOML)?;
        let file: ProfileFile = util::parse_toml(&text)
            .map_err(|e| anyhow::anyhow!("cannot read {}:{e}", path.display()))?;
        let profile = Profile {
            name: stem,
            sha256: util::sha256_hex(text.as_bytes()),
            path,
            file,
        };
        profile
            .validate(project)
            .with_context(|| format!("invalid profile {}", profile.path.display()))?;
        Ok(profile)
    }

    fn validate(&self, project: &Project) -> Result<()> {
        for (header, edits) in &self.file.headers {
            check_edits(header, edits)?;
        }
        for (nic_name, limit) in &self.file.limits {
            let nic = nic::Nic::by_name(nic_name).context("in [limits]")?;
            if let Some(hard) = nic.hard_limit.filter(|h| limit > h) {
                bail!(
                    "[limits] {nic_name} = {limit}: VMware refuses a {nic_name} ROM over {hard} \
                     bytes whatever opromsize says; remove the line"
                );
            }
        }
        for patch in &self.file.patches {
            series::own_path(project, patch).context("patches")?;
        }
        self.check_files(project)
    }

    /// Every file the profile compiles in is named relative to the profile, lies inside the
    /// project (a profile outside it: inside its own directory) through any link, and is a
    /// regular file within [`input::EMBED`].
    fn check_files(&self, project: &Project) -> Result<()> {
        let cannot = |p: &Path| format!("cannot resolve {}", util::shown_path(p));
        let root = project
            .root
            .canonicalize()
            .with_context(|| cannot(&project.root))?;
        let dir = self
            .dir()
            .canonicalize()
            .with_context(|| cannot(self.dir()))?;
        let root = if dir.starts_with(&root) {
            root
        } else {
            dir.clone()
        };
        let f = &self.file;
        let named = f.embed.iter().map(|p| ("embed", p));
        let named = named
            .chain(f.trust.iter().map(|p| ("trust", p)))
            .chain(f.certs.iter().map(|p| ("certs", p)));
        for (field, rel) in named {
            let real = within(&root, &dir, rel).map_err(|why| {
                anyhow::anyhow!(
                    "{field}: '{}' {why}; a profile's files are relative to its directory and \
                     stay inside the project ({})",
                    util::shown_path(rel),
                    util::shown_path(&root)
                )
            })?;
            input::open(&real, input::EMBED).context(field)?;
        }
        Ok(())
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The files the build reads besides the tree, resolved against the profile's directory.
    pub fn files_to_embed(&self) -> Vec<PathBuf> {
        let f = &self.file;
        f.embed
            .iter()
            .chain(&f.trust)
            .chain(&f.certs)
            .map(|p| self.dir().join(p))
            .collect()
    }

    pub fn embed_path(&self) -> Option<PathBuf> {
        self.file.embed.as_ref().map(|p| self.dir().join(p))
    }

    pub fn trust_paths(&self) -> Vec<PathBuf> {
        self.file.trust.iter().map(|p| self.dir().join(p)).collect()
    }

    pub fn cert_paths(&self) -> Vec<PathBuf> {
        self.file.certs.iter().map(|p| self.dir().join(p)).collect()
    }

    pub fn limit(&self, nic: &nic::Nic) -> u64 {
        self.file
            .limits
            .get(nic.name)
            .copied()
            .unwrap_or(nic.default_limit)
    }

    /// Renders one file per header the tree can override; headers the profile leaves alone
    /// are rendered empty, as iPXE's own Makefile would create them.
    pub fn render(&self, overridable: &[String]) -> Result<RenderedConfig> {
        for header in self.file.headers.keys() {
            if !overridable.contains(header) {
                bail!(
                    "profile {} edits [headers.{header}], but iPXE has no config/{header}.h that reads \
                     config/local/{header}.h (it has: {})",
                    self.path.display(),
                    overridable.join(", ")
                );
            }
        }
        let mut files = BTreeMap::new();
        for header in overridable {
            let content = match self.file.headers.get(header) {
                Some(edits) => render_header(&self.name, header, edits),
                None => String::new(),
            };
            files.insert(format!("{header}.h"), content);
        }
        Ok(RenderedConfig { files })
    }
}

fn render_header(profile: &str, header: &str, edits: &HeaderEdits) -> String {
    let mut out = format!(
        "/* config/local/{header}.h: written by vsphere-ipxe-rom from profile '{profile}'. Do not edit. */\n"
    );
    for name in &edits.undef {
        out.push_str(&format!("#undef {name}\n"));
    }
    for name in &edits.define {
        out.push_str(&format!("#undef {name}\n#define {name}\n"));
    }
    for (name, value) in &edits.set {
        out.push_str(&format!("#undef {name}\n#define {name} {value}\n"));
    }
    out
}

impl RenderedConfig {
    /// One digest over every file name and content.
    pub fn sha256(&self) -> String {
        let mut all = String::new();
        for (name, content) in &self.files {
            all.push_str(&format!("{name}\0{}\0{content}", content.len()));
        }
        util::sha256_hex(all.as_bytes())
    }

    /// Writes into `<src>/config/local/`, touching only files whose content changed.
    pub fn write(&self, src: &Path) -> Result<()> {
        let dir = src.join("config/local");
        fs::create_dir_all(&dir)?;
        for (name, content) in &self.files {
            util::write_if_changed(&dir.join(name), content.as_bytes())?;
        }
        Ok(())
    }
}

/// The headers of an iPXE tree that read a `config/local/` override, from the tree itself.
pub fn overridable_headers(src: &Path) -> Result<Vec<String>> {
    let dir = src.join("config");
    let mut out = Vec::new();
    for item in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = item?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "h") {
            let text = fs::read_to_string(&path).unwrap_or_default();
            if text.contains(&format!("#include <config/local/{stem}.h>")) {
                out.push(stem.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Profile names in a configs directory.
pub fn list(configs: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(configs)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let stem = p.file_stem()?.to_str()?.to_string();
            (p.extension()? == "toml" && stem != "ipxe").then_some(stem)
        })
        .collect();
    names.sort();
    names
}

/// The profile a `--profile` names: the name itself, or the file stem of a path (a `.toml`
/// file, or a name with a `/`), as [`Profile::load`] takes it.
pub fn profile_name(arg: &str) -> String {
    if !(arg.ends_with(".toml") || arg.contains('/')) {
        return arg.to_string();
    }
    Path::new(arg)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string()
}

/// One header's edits: macro names, each in one list, and `set` values that are constants.
fn check_edits(header: &str, edits: &HeaderEdits) -> Result<()> {
    let mut seen = BTreeMap::new();
    let all = edits
        .undef
        .iter()
        .map(|n| (n, "undef"))
        .chain(edits.define.iter().map(|n| (n, "define")))
        .chain(edits.set.keys().map(|n| (n, "set")));
    for (name, list) in all {
        if !is_identifier(name) {
            bail!(
                "[headers.{header}] {list}: '{}' is not a C macro name",
                util::shown(name)
            );
        }
        if let Some(other) = seen.insert(name.clone(), list) {
            bail!("[headers.{header}] names {name} in both {other} and {list}; keep one");
        }
    }
    for (name, value) in &edits.set {
        check_c_value(value).map_err(|why| {
            anyhow::anyhow!(
                "[headers.{header}] set: {name} = '{}': {why}; {SET_RULE}",
                util::shown(value)
            )
        })?;
    }
    Ok(())
}

/// What a `set` value may be, as errors say it (docs/profiles.md has the grammar).
const SET_RULE: &str = "a value is one C constant: an integer (40, -1, 0x1f, 4096UL), a \
    string of printable ASCII (\"vSphere iPXE\", with the escapes \\\\ \\\" \\' \\n \\t \\r \\0 \
    only) or a macro name in capitals (TLS_VERSION_TLS_1_2)";

/// Where `rel`, named by a profile in `dir`, really is, if that is inside `root` (both
/// canonical); else why not.
fn within(root: &Path, dir: &Path, rel: &Path) -> Result<PathBuf, String> {
    if rel.is_absolute() {
        return Err("is an absolute path".into());
    }
    let mut lexical = dir.to_path_buf();
    for part in rel.components() {
        match part {
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            std::path::Component::Normal(p) => lexical.push(p),
            _ => {}
        }
    }
    if !lexical.starts_with(root) {
        return Err("leads outside the project".into());
    }
    let real = dir
        .join(rel)
        .canonicalize()
        .map_err(|_| "does not exist".to_string())?;
    if !real.starts_with(root) {
        return Err(format!(
            "leads outside the project through a link, to {}",
            util::shown_path(&real)
        ));
    }
    Ok(real)
}

/// Whether `value` is one C constant of a kind a config header takes, so that `#define NAME
/// value` stays one definition of a constant, with nothing for the compiler to run or read: an
/// integer literal (decimal, octal or hex, an optional `-`, a `U`/`L`/`LL` suffix), a string
/// literal of printable ASCII with simple escapes, or a macro name in capitals. Spaces around
/// it are allowed. The error gives the first character out of place and its position.
fn check_c_value(value: &str) -> Result<(), String> {
    let chars: Vec<char> = value.chars().collect();
    let blank = |c: &char| *c == ' ' || *c == '\t';
    let start = chars.iter().position(|c| !blank(c)).ok_or("it is empty")?;
    let word = |from: usize| {
        let len = chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .count();
        chars[from..from + len].iter().collect::<String>()
    };
    let end = match chars[start] {
        '"' => after_literal(&chars, start)?,
        '-' | '0'..='9' => {
            let sign = usize::from(chars[start] == '-');
            let token = word(start + sign);
            if !is_integer(&token) {
                let sign = if sign == 1 { "-" } else { "" };
                return Err(format!("'{sign}{token}' is not an integer"));
            }
            start + sign + token.chars().count()
        }
        c if c.is_ascii_alphabetic() || c == '_' => {
            let name = word(start);
            if !is_macro_name(&name) {
                return Err(format!("'{name}' is not a macro name in capitals"));
            }
            start + name.chars().count()
        }
        _ => return Err(out_of_place(&chars, start)),
    };
    match (end..chars.len()).find(|&i| !blank(&chars[i])) {
        Some(i) => Err(out_of_place(&chars, i)),
        None => Ok(()),
    }
}

/// `40`, `0x1f`, `017`, `4096UL`: one C integer literal, no sign.
fn is_integer(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    let digits = lower.trim_end_matches(['u', 'l']);
    let suffix = &lower[digits.len()..];
    let suffix_ok = matches!(suffix, "" | "u" | "l" | "ul" | "lu" | "ll" | "ull" | "llu");
    let body_ok = if let Some(hex) = digits.strip_prefix("0x") {
        !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
    } else if let Some(oct) = digits.strip_prefix('0') {
        oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
    } else {
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    suffix_ok && body_ok
}

/// `TLS_VERSION_TLS_1_2`: capitals, digits and `_`, starting with a capital. Names starting
/// with `_` are the compiler's (`__FILE__`, `__TIME__`), and lowercase ones are C's (`sizeof`).
fn is_macro_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The character at `i`, said so that a reader sees what it is.
fn out_of_place(chars: &[char], i: usize) -> String {
    let pos = i + 1;
    match chars[i] {
        '\\' => format!("a backslash at character {pos}"),
        c if (' '..='~').contains(&c) => format!("'{c}' at character {pos}"),
        c => format!("the character U+{:04X} at character {pos}", c as u32),
    }
}

/// Where the string literal that opens at `start` ends: only printable ASCII and simple escapes
/// inside, and a closing quote.
fn after_literal(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(format!(
                    "the quote at character {} is not closed",
                    start + 1
                ))
            }
            Some(q) if *q == quote => return Ok(i + 1),
            Some('\\') if chars.get(i + 1).is_some_and(|e| "\\\"'ntr0".contains(*e)) => i += 2,
            Some('\\') => {
                return Err(format!(
                    "a backslash that starts no simple escape at character {}",
                    i + 1
                ))
            }
            Some(x) if !(' '..='~').contains(x) => {
                return Err(format!(
                    "the character U+{:04X} in a string at character {}",
                    *x as u32,
                    i + 1
                ))
            }
            Some(_) => i += 1,
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_profile(text: &str) -> (tempfile::TempDir, Result<Profile>) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("configs")).unwrap();
        fs::write(dir.path().join("configs/p.toml"), text).unwrap();
        let res = Profile::load(&project(dir.path()), "p");
        (dir, res)
    }

    fn project(root: &Path) -> Project {
        Project {
            root: root.to_path_buf(),
        }
    }

    #[test]
    fn renders_local_headers() {
        let (_d, p) = write_profile(
            r#"
description = "test"
[headers.general]
undef = ["DOWNLOAD_PROTO_HTTPS", "NET_PROTO_IPV6"]
define = ["PING_CMD"]
[headers.crypto]
set = { TLS_VERSION_MIN = "TLS_VERSION_TLS_1_2" }
"#,
        );
        let r = p
            .unwrap()
            .render(&["crypto".into(), "general".into(), "settings".into()])
            .unwrap();
        assert_eq!(
            r.files["general.h"],
            "/* config/local/general.h: written by vsphere-ipxe-rom from profile 'p'. Do not edit. */\n\
             #undef DOWNLOAD_PROTO_HTTPS\n#undef NET_PROTO_IPV6\n#undef PING_CMD\n#define PING_CMD\n"
        );
        assert!(r.files["crypto.h"]
            .ends_with("#undef TLS_VERSION_MIN\n#define TLS_VERSION_MIN TLS_VERSION_TLS_1_2\n"));
        assert_eq!(r.files["settings.h"], "");
    }

    #[test]
    fn unknown_keys_and_bad_toml_name_the_place() {
        let (_d, p) = write_profile("description = \"x\"\n[headers.general]\ndefnes = [\"A\"]\n");
        let err = format!("{:#}", p.unwrap_err());
        assert!(err.contains("p.toml:3:1: unknown field `defnes`"), "{err}");
        let (_d, p) = write_profile("description = \"x\"\npatches = [\n");
        let err = format!("{:#}", p.unwrap_err());
        assert!(
            err.contains("p.toml:2:12: unclosed array, expected `]`"),
            "{err}"
        );
    }

    #[test]
    fn refuses_contradictions_and_bad_names() {
        let (_d, p) = write_profile(
            "description = \"x\"\n[headers.general]\nundef = [\"A\"]\ndefine = [\"A\"]\n",
        );
        assert!(format!("{:#}", p.unwrap_err()).contains("names A in both undef and define"));
        let (_d, p) = write_profile("description = \"x\"\n[headers.general]\ndefine = [\"A B\"]\n");
        assert!(format!("{:#}", p.unwrap_err()).contains("'A B' is not a C macro name"));
        let (_d, p) = write_profile("description = \"x\"\n[limits]\nvmxnet4 = 1\n");
        assert!(format!("{:#}", p.unwrap_err()).contains("unknown NIC 'vmxnet4'"));
        let (_d, p) = write_profile("description = \"x\"\nembed = \"missing.ipxe\"\n");
        let err = format!("{:#}", p.unwrap_err());
        assert!(
            err.contains("embed: 'missing.ipxe' does not exist"),
            "{err}"
        );
    }

    #[test]
    fn refuses_headers_the_tree_cannot_override() {
        let (_d, p) = write_profile("description = \"x\"\n[headers.genral]\nundef = [\"A\"]\n");
        let err = p
            .unwrap()
            .render(&["general".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[headers.genral]"), "{err}");
        assert!(err.contains("it has: general"), "{err}");
    }

    #[test]
    fn config_digest_tracks_content() {
        let (_d, p) = write_profile("description = \"x\"\n[headers.general]\nundef = [\"A\"]\n");
        let p = p.unwrap();
        let a = p.render(&["general".into()]).unwrap();
        let mut b = a.clone();
        b.files.insert("general.h".into(), "changed".into());
        assert_ne!(a.sha256(), b.sha256());
        assert_eq!(a.sha256(), p.render(&["general".into()]).unwrap().sha256());
    }

    #[test]
    fn promises_come_from_defines_undefines_and_the_audit_list() {
        let (_d, p) = write_profile(
            "description = \"x\"\n[headers.general]\nundef = [\"SHARED1\", \"DOWNLOAD_PROTO_TFTP\"]\n[headers.settings]\ndefine = [\"VMWARE_SETTINGS\"]\n[audit]\nabsent = [\"iscsi\"]\n",
        );
        let map: BTreeMap<String, BTreeSet<String>> = [
            ("SHARED1", "shared"),
            ("SHARED2", "shared"),
            ("DOWNLOAD_PROTO_TFTP", "tftp"),
            ("VMWARE_SETTINGS", "guestinfo"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), BTreeSet::from([v.to_string()])))
        .collect();
        let objects: Vec<(String, bool)> = p
            .unwrap()
            .promises(&map)
            .into_iter()
            .map(|p| (p.object, p.linked))
            .collect();
        assert_eq!(
            objects,
            [
                ("tftp".to_string(), false),
                ("guestinfo".to_string(), true),
                ("iscsi".to_string(), false)
            ],
            "a shared object makes no promise"
        );
    }

    #[test]
    fn set_values_are_one_c_constant() {
        for good in [
            "TLS_VERSION_TLS_1_2",
            "40",
            " 40\t",
            "0x1f",
            "0X1F",
            "017",
            "0",
            "4096UL",
            "1ull",
            "-1",
            "\"vSphere iPXE\"",
            "\"a\\\"b\\n\"",
            "\"\"",
        ] {
            check_c_value(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        for (bad, want) in [
            (
                "1\r#include \"/etc/hostname\"",
                "the character U+000D at character 2",
            ),
            ("1\r#define DOWNLOAD_PROTO_HTTPS", "U+000D"),
            ("1 \\", "a backslash at character 3"),
            ("# x", "'#' at character 1"),
            ("1 /* x */", "'/' at character 3"),
            ("( 1 << 3 ) | 2", "'(' at character 1"),
            (
                "({ __asm__ (\".incbin \\\"/etc/hostname\\\"\"); 20; })",
                "'(' at character 1",
            ),
            ("20 + 1", "'+' at character 4"),
            ("\"a\" \"b\"", "'\"' at character 5"),
            ("__FILE__", "'__FILE__' is not a macro name in capitals"),
            ("sizeof(int)", "'sizeof' is not a macro name in capitals"),
            ("Tls", "'Tls' is not a macro name in capitals"),
            ("0x", "'0x' is not an integer"),
            ("08", "'08' is not an integer"),
            ("1e3", "'1e3' is not an integer"),
            ("1.5", "'.' at character 2"),
            ("-", "'-' is not an integer"),
            ("1uu", "'1uu' is not an integer"),
            ("'a'", "''' at character 1"),
            ("\"open", "is not closed"),
            ("\"a\\\r\"", "a backslash that starts no simple escape"),
            ("\"\u{85}\"", "U+0085 in a string"),
            ("\"\u{202e}\"", "U+202E in a string"),
            ("  ", "it is empty"),
            ("1\n2", "U+000A"),
        ] {
            let err = check_c_value(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: wanted '{want}', got '{err}'");
        }
    }

    /// A profile's files stay inside the project, through any link; a profile outside the
    /// project keeps to its own directory.
    #[test]
    fn files_are_named_inside_the_project() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("v"), "secret").unwrap();
        for d in ["configs", "scripts", "ipxe-patches"] {
            fs::create_dir(root.path().join(d)).unwrap();
        }
        fs::write(root.path().join("scripts/boot.ipxe"), "#!ipxe\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("configs/out")).unwrap();
        let v = outside.path().join("v").display().to_string();
        let load = |top: &str| {
            let text = format!("{top}\ndescription = \"x\"\n");
            fs::write(root.path().join("configs/p.toml"), text).unwrap();
            Profile::load(&project(root.path()), "p").map_err(|e| format!("{e:#}"))
        };
        load("embed = \"../scripts/boot.ipxe\"").unwrap();
        for (top, want) in [
            (format!("embed = {v:?}"), "embed: '/"),
            (
                "trust = [\"../../../../../../../../x\"]".into(),
                "leads outside the project;",
            ),
            (
                "certs = [\"out/v\"]".into(),
                "leads outside the project through a link, to /",
            ),
            (
                "patches = [\"../x.patch\"]".into(),
                "is not a file name in ipxe-patches/",
            ),
            (
                "patches = [\"gone.patch\"]".into(),
                "it lists patch ipxe-patches/gone.patch, which does not exist",
            ),
        ] {
            let err = load(&top).unwrap_err();
            assert!(err.contains(want), "{top}: wanted '{want}', got '{err}'");
        }
        // Outside the project, a profile's own directory is the limit.
        let p = outside.path().join("p.toml");
        fs::write(&p, "embed = \"v\"\ndescription = \"x\"\n").unwrap();
        Profile::load(&project(root.path()), p.to_str().unwrap()).unwrap();
    }

    #[test]
    fn a_vmxnet3_limit_over_what_vmware_takes_is_refused() {
        let (_d, res) = write_profile("description = \"x\"\n[limits]\nvmxnet3 = 131072\n");
        let err = format!("{:#}", res.unwrap_err());
        assert!(
            err.contains("VMware refuses a vmxnet3 ROM over 65536 bytes"),
            "{err}"
        );
    }
}
