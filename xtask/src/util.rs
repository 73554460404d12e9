//! Small helpers the stages share.

use std::{
    fs,
    io::{self, Write},
    path::Path,
};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut HashWriter(&mut hasher))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex(&hasher.finalize()))
}

/// Feeds everything written into a hasher, so a copy can hash as it goes.
pub struct HashWriter<'a>(pub &'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a TOML file into `T` (a regular file within [`crate::input::TOML`]); errors name the
/// file, line and column.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = crate::input::read_text(path, crate::input::TOML)?;
    parse_toml(&text).map_err(|e| anyhow::anyhow!("cannot read {}:{e}", path.display()))
}

/// Parses TOML; the error starts with `line:column: ` so callers can prefix a file name.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = match e.span() {
            Some(span) => line_col(text, span.start),
            None => (1, 1),
        };
        format!("{line}:{col}: {}", e.message().trim_end())
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Writes a file only when its content differs, so make's timestamps stay put
/// and unchanged inputs do not trigger rebuilds.
pub fn write_if_changed(path: &Path, content: &[u8]) -> Result<bool> {
    if fs::read(path).ok().as_deref() == Some(content) {
        return Ok(false);
    }
    fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// The one escaping function for untrusted text on its way to a terminal (archive entry names,
/// file names, values from files, what a server sent): `\n`, `\r`, `\t` and `\\` as Rust
/// writes them, and every character a terminal acts on or a reader cannot see as `\u{..}`.
/// Nothing else changes, and no two texts escape alike. An OSC title, a screen clear, a forged
/// line or a right-to-left override is then shown, not obeyed.
pub fn escape_for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden_on_terminal(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// What no value may hold ([`crate::vm::quote::FORBIDDEN`]: C0 and C1 controls, DEL, line and
/// paragraph separators, bidi controls, invisible format characters, variation selectors, tags,
/// blank fillers), and the rest of Unicode's Cf, which a value may hold as part of the script
/// that draws it: the prepended number signs (Arabic, Syriac, Kaithi) and the Egyptian
/// hieroglyph format controls. Alone on a terminal they draw nothing.
fn hidden_on_terminal(c: char) -> bool {
    crate::vm::quote::forbidden(c).is_some()
        || matches!(
            c,
            '\u{600}'..='\u{605}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
        )
}

/// What an error shows of a name from untrusted input: escaped, and cut to 160 characters (a
/// tar name may be 4,096 bytes, and an error is read on one screen).
pub fn shown(s: &str) -> String {
    const MAX: usize = 160;
    if s.chars().count() <= MAX {
        return escape_for_terminal(s);
    }
    let head: String = s.chars().take(MAX).collect();
    format!("{}… ({} bytes in all)", escape_for_terminal(&head), s.len())
}

/// [`shown`] for a path.
pub fn shown_path(p: &Path) -> String {
    shown(&p.to_string_lossy())
}

/// `%2b` and the like decoded (URLs from apt and from GOVC_URL); a stray `%` stays.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
    }

    #[test]
    fn toml_errors_carry_line_and_column() {
        let err = parse_toml::<T>("name = \"x\"\ndefnes = 1\n").unwrap_err();
        assert!(err.starts_with("2:1: unknown field `defnes`"), "{err}");
        let err = parse_toml::<T>("name = [\n").unwrap_err();
        assert!(
            err.starts_with("1:9: unclosed array, expected `]`"),
            "{err}"
        );
    }

    #[test]
    fn terminal_controls_and_invisible_characters_are_shown_escaped() {
        let nasty = "a\u{1b}]0;t\u{7}\u{9b}\u{7f}\u{202e}\u{61c}\u{200b}\u{2060}\u{ad}\u{fff9}\u{e0041}\nz é😀";
        assert_eq!(
            escape_for_terminal(nasty),
            "a\\u{1b}]0;t\\u{7}\\u{9b}\\u{7f}\\u{202e}\\u{61c}\\u{200b}\\u{2060}\\u{ad}\\u{fff9}\\u{e0041}\\nz é😀"
        );
        let long = "x".repeat(4000);
        let cut = shown(&long);
        assert!(
            cut.len() < 200 && cut.ends_with("… (4000 bytes in all)"),
            "{cut}"
        );
    }

    /// The inverse of [`escape_for_terminal`], to show that it loses nothing.
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match it.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some('u') => {
                    let hex: String = it.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => panic!("stray escape {other:?}"),
            }
        }
        out
    }

    #[test]
    fn forged_lines_and_terminal_controls_are_escaped() {
        assert_eq!(
            escape_for_terminal("efi\nset       firmware = bios"),
            "efi\\nset       firmware = bios"
        );
        assert_eq!(
            escape_for_terminal("a\u{9b}2J\u{1b}[0m"),
            "a\\u{9b}2J\\u{1b}[0m"
        );
        assert_eq!(escape_for_terminal("\u{202e}exe.txt"), "\\u{202e}exe.txt");
        assert_eq!(
            escape_for_terminal("x\u{200b}\u{feff}\u{2028}\u{7f}"),
            "x\\u{200b}\\u{feff}\\u{2028}\\u{7f}"
        );
        assert_eq!(escape_for_terminal("C:\\u{41}"), "C:\\\\u{41}");
        assert_eq!(
            escape_for_terminal("poweredOn · vm-42 é"),
            "poweredOn · vm-42 é"
        );
    }

    proptest! {
        #[test]
        fn escaped_text_is_one_line_of_visible_characters(s in any::<String>()) {
            let e = escape_for_terminal(&s);
            prop_assert!(!e.chars().any(hidden_on_terminal));
            prop_assert!(!e.contains(['\n', '\r']));
            prop_assert_eq!(unescape(&e), s);
        }
    }

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

/// One line of progress on stderr, redrawn in place and cleared when dropped; nothing at all
/// where stderr is not a terminal, so logs stay short.
pub struct StatusLine {
    terminal: bool,
}

impl StatusLine {
    pub fn new() -> StatusLine {
        StatusLine {
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    pub fn show(&self, text: &str) {
        if self.terminal {
            eprint!("\r{text}\x1b[K");
        }
    }
}

impl Default for StatusLine {
    fn default() -> StatusLine {
        StatusLine::new()
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        if self.terminal {
            eprint!("\r\x1b[K");
        }
    }
}

/// A new private directory (mode 0700, a name no one else holds), removed with its contents
/// when dropped unless kept. tempfile's job, in the few lines this tool needs of it.
#[derive(Debug)]
pub struct TempDir {
    path: Option<std::path::PathBuf>,
}

impl TempDir {
    /// In the system's temporary directory.
    pub fn new(prefix: &str) -> Result<TempDir> {
        TempDir::new_in(&std::env::temp_dir(), prefix)
    }

    pub fn new_in(parent: &Path, prefix: &str) -> Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut last = None;
        for _ in 0..100 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("{prefix}{}-{n}-{nanos:08x}", std::process::id()));
            // create, not create_all: an existing directory of that name is someone else's.
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir { path: Some(path) }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot create a scratch directory in {}", parent.display())
                    })
                }
            }
        }
        Err(last.expect("tried")).context("no free scratch directory name")
    }

    pub fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("a TempDir has its path until kept")
    }

    /// The directory stays; the caller owns it now.
    pub fn keep(mut self) -> std::path::PathBuf {
        self.path.take().expect("a TempDir has its path until kept")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// A copy of an iPXE tree at `to`, a new directory. The contents are copied (`from/.`): the
/// source may be reached through a link (a scratch cache's), and the link itself must never
/// become the copy.
pub fn copy_tree(sh: &xshell::Shell, from: &Path, to: &Path) -> Result<()> {
    fs::create_dir(to).with_context(|| format!("cannot create {}", to.display()))?;
    let from = from.join(".");
    xshell::cmd!(sh, "cp -a {from} {to}")
        .quiet()
        .run()
        .context("cannot copy the iPXE tree")
}
