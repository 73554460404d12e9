//! One quoting function per output format. Each takes any string and returns a literal that the
//! format's own parser reads back as exactly that string; `tests/` parses them with those
//! parsers. [`check_text`] refuses, up front, what no VMware key should hold at all.

use anyhow::{bail, Result};
use unicode_normalization::UnicodeNormalization;

/// Refuses control characters (C0, DEL, C1), line and paragraph separators, the byte-order
/// mark and bidirectional controls: a VMware key holds one line of text, and a bidi control
/// makes printed code read differently from what runs. The error names the character and its
/// position (counted in characters from 1). Text must also be in Unicode NFC: Terraform
/// normalizes every string literal, so it would set another value than the other formats.
pub fn check_text(what: &str, value: &str) -> Result<()> {
    for (n, c) in value.chars().enumerate() {
        let kind = match c {
            c if c.is_control() => "a control character",
            '\u{2028}' | '\u{2029}' => "a line separator",
            '\u{feff}' => "a byte-order mark",
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                "a bidirectional control"
            }
            _ => continue,
        };
        bail!(
            "{what} has {kind}, U+{:04X}, at character {}: VMware keys hold one line of \
             printable text; remove it (put several iPXE commands on one line, joined by &&)",
            c as u32,
            n + 1
        );
    }
    if !value.nfc().eq(value.chars()) {
        let n = value
            .chars()
            .zip(value.nfc())
            .take_while(|(a, b)| a == b)
            .count();
        let c = value.chars().nth(n).or(value.chars().last()).unwrap_or(' ');
        bail!(
            "{what} is not in Unicode NFC (U+{:04X} at character {} composes with its \
             neighbour); Terraform would change it: type it composed",
            c as u32,
            n + 1
        );
    }
    Ok(())
}

/// An HCL2 quoted string (Terraform, Packer): `\` and `"` escaped, control characters as
/// `\uNNNN`, and `${`/`%{` doubled so that HCL does not interpolate iPXE's own `${filename}`.
pub fn hcl(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A YAML double-quoted scalar. Everything outside YAML's printable set, and every line break
/// (which a double-quoted scalar would fold into a space), is a `\u` escape. Tagged `!unsafe`
/// where Ansible would otherwise read Jinja2 in it.
pub fn yaml(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..
                if !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') =>
            {
                out.push(c)
            }
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
    if ["{{", "{%", "{#"].iter().any(|j| v.contains(j)) {
        format!("!unsafe {out}")
    } else {
        out
    }
}

/// PowerShell's single quotes: `'` and U+2018 to U+201B all open and close such a string (its
/// tokenizer's `IsSingleQuote`), and any of them doubled stands for itself. Nothing else expands.
pub fn powershell(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('\'');
    for c in v.chars() {
        if matches!(c, '\'' | '\u{2018}'..='\u{201b}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A POSIX shell word: bare where every character is plain, else single-quoted.
pub fn shell(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `.vmx` value: double-quoted, with `"`, `|` and control characters written as VMware
/// writes them, `|XX` per UTF-8 byte.
pub fn vmx(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '|' || c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("|{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PowerShell's single-quoted string scanner (`Tokenizer.ScanStringLiteral`): a quote
    /// character followed by another ends one of them; a lone one ends the string.
    fn ps_unquote(text: &str) -> Option<(String, &str)> {
        let is_quote = |c: char| matches!(c, '\'' | '\u{2018}'..='\u{201b}');
        let mut chars = text.char_indices().peekable();
        let (_, first) = chars.next()?;
        if !is_quote(first) {
            return None;
        }
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            if is_quote(c) {
                match chars.peek() {
                    Some(&(_, d)) if is_quote(d) => {
                        chars.next();
                        out.push(d);
                    }
                    _ => return Some((out, &text[i + c.len_utf8()..])),
                }
            } else {
                out.push(c);
            }
        }
        None
    }

    #[test]
    fn powershell_quotes_every_quote_it_closes_on() {
        for v in ["web’; Stop-Computer; ’", "a'b", "‘‚‛’", "", "plain"] {
            let quoted = powershell(v);
            assert_eq!(ps_unquote(&quoted), Some((v.to_string(), "")), "{quoted}");
        }
    }

    #[test]
    fn check_text_names_the_character_and_where() {
        let err = check_text("--scriptlet", "echo a\nreboot")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a control character, U+000A, at character 7"),
            "{err}"
        );
        let err = check_text("--vm", "ab\u{202e}c").unwrap_err().to_string();
        assert!(
            err.contains("bidirectional control, U+202E, at character 3"),
            "{err}"
        );
        for bad in ["\u{7f}", "\u{85}", "\u{9f}", "\u{2028}", "\u{feff}"] {
            assert!(check_text("x", bad).is_err(), "{bad:?}");
        }
        check_text("x", "ünïcödé ${filename} 'q' \"dq\" ’").unwrap();
        let err = check_text("--vm", "abe\u{301}").unwrap_err().to_string();
        assert!(
            err.contains("not in Unicode NFC (U+0065 at character 3"),
            "{err}"
        );
    }

    #[test]
    fn vmx_writes_bytes_as_vmware_does() {
        assert_eq!(vmx("a\"b|c\n"), "\"a|22b|7Cc|0A\"");
        assert_eq!(vmx("\u{85}"), "\"|C2|85\"");
    }
}
