//! One quoting function per output format. Each takes any string and returns a literal that the
//! format's own parser reads back as exactly that string; `tests/` parses them with those
//! parsers. [`check_text`] refuses, up front, what no VMware key should hold at all.

use anyhow::{bail, Result};
use unicode_normalization::UnicodeNormalization;

use crate::vm::network::{say, Arg, CHARACTER};

/// What no value may hold, as (first, last, kind): a VMware key holds one line of text, a bidi
/// control makes printed code read differently from what runs, and an invisible character
/// makes two different values look alike. `fleet` writes these ranges into the playbook's and
/// Terraform's checks of the values that come from the inventory. The one terminal escape
/// ([`crate::util::escape_for_terminal`]) escapes these and the few Cf characters of scripts.
pub const FORBIDDEN: &[(char, char, &str)] = &[
    ('\u{0}', '\u{1f}', "a control character"),
    ('\u{7f}', '\u{9f}', "a control character"),
    ('\u{ad}', '\u{ad}', "an invisible character"),
    ('\u{34f}', '\u{34f}', "an invisible character"),
    ('\u{61c}', '\u{61c}', "a bidirectional control"),
    ('\u{115f}', '\u{1160}', "an invisible character"),
    ('\u{17b4}', '\u{17b5}', "an invisible character"),
    ('\u{180b}', '\u{180f}', "an invisible character"),
    ('\u{200b}', '\u{200d}', "an invisible character"),
    ('\u{200e}', '\u{200f}', "a bidirectional control"),
    ('\u{2028}', '\u{2029}', "a line separator"),
    ('\u{202a}', '\u{202e}', "a bidirectional control"),
    ('\u{2060}', '\u{2065}', "an invisible character"),
    ('\u{2066}', '\u{2069}', "a bidirectional control"),
    ('\u{206a}', '\u{206f}', "an invisible character"),
    ('\u{3164}', '\u{3164}', "an invisible character"),
    ('\u{fe00}', '\u{fe0f}', "an invisible character"),
    ('\u{feff}', '\u{feff}', "a byte-order mark"),
    ('\u{ffa0}', '\u{ffa0}', "an invisible character"),
    ('\u{fff0}', '\u{fffb}', "an invisible character"),
    ('\u{1bca0}', '\u{1bca3}', "an invisible character"),
    ('\u{1d173}', '\u{1d17a}', "an invisible character"),
    ('\u{e0000}', '\u{e0fff}', "an invisible character"),
];

/// The kind of character `c` is where no value may hold it.
pub fn forbidden(c: char) -> Option<&'static str> {
    FORBIDDEN
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&c))
        .map(|(.., kind)| *kind)
}

/// Refuses the characters of [`FORBIDDEN`]; the error names the character and its position
/// (counted in characters from 1), in the words the playbook and Terraform use too.
pub fn check_chars(what: &str, value: &str) -> Result<()> {
    if let Some((n, c, kind)) = value
        .chars()
        .enumerate()
        .find_map(|(n, c)| Some((n, c, forbidden(c)?)))
    {
        let hint = if what == "--scriptlet" {
            " (put several iPXE commands on one line, joined by &&)"
        } else {
            ""
        };
        let args = [
            Arg::S(what),
            Arg::S(kind),
            Arg::N(c as u64),
            Arg::N(n as u64 + 1),
        ];
        bail!("{}{hint}", say(CHARACTER, &args));
    }
    Ok(())
}

/// [`check_chars`], and text must also be in Unicode NFC: Terraform normalizes every string
/// literal, so it would set another value than the other formats.
pub fn check_text(what: &str, value: &str) -> Result<()> {
    check_chars(what, value)?;
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
/// (which a double-quoted scalar would fold into a space), is a `\u` escape. Always tagged
/// `!unsafe`: Ansible reads Jinja2 in a string that holds `{{`, and in one that opens with a
/// `#jinja2:` header changing the delimiters, so no test of the text could tell data apart.
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
    format!("!unsafe {out}")
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
        for bad in [
            "\u{7f}",
            "\u{85}",
            "\u{9f}",
            "\u{2028}",
            "\u{feff}",
            "\u{61c}",
            "\u{e0041}",
        ] {
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
    fn yaml_tags_every_string_unsafe() {
        for v in ["", "plain", "#jinja2:variable_start_string:'[['", "{{ x }}"] {
            assert!(yaml(v).starts_with("!unsafe \""), "{v}");
        }
    }

    #[test]
    fn vmx_writes_bytes_as_vmware_does() {
        assert_eq!(vmx("a\"b|c\n"), "\"a|22b|7Cc|0A\"");
        assert_eq!(vmx("\u{85}"), "\"|C2|85\"");
    }
}
