//! Text a vSphere server sent (a power state, an extraConfig value, a fault's message), on its
//! way to a terminal. A server can put anything there: a newline that forges a line of the
//! plan, a C1 CSI that moves the cursor, a U+202E that reverses what follows, or the password
//! of the login it echoes back. All of it is printed through [`Shown::text`]: secrets
//! redacted, then [`escape`]d.

use std::fmt::Write as _;

/// Redacts the session's secrets, then escapes.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    /// Longest first, so that no part of a longer secret is left by a shorter one.
    secrets: Vec<String>,
}

impl Shown {
    /// Adds a secret in the forms a server could send it back in: as it is, and XML-escaped
    /// (as it travelled in the SOAP body).
    pub fn add(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let xml = secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;");
        for s in [secret.to_string(), xml] {
            if !self.secrets.contains(&s) {
                self.secrets.push(s);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` fit to print: each secret as `***`, then escaped.
    pub fn text(&self, text: &str) -> String {
        let mut t = text.to_string();
        for s in &self.secrets {
            if t.contains(s.as_str()) {
                t = t.replace(s.as_str(), "***");
            }
        }
        escape(&t)
    }
}

/// The one escaping function for text from outside: `\n`, `\r`, `\t` and `\\` as Rust writes
/// them, and every character a terminal acts on or a reader cannot see as `\u{..}`. Nothing
/// else changes, and no two texts escape alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// C0 and C1 controls and DEL; line and paragraph separators; bidi controls; Unicode's other
/// invisible format characters (category Cf), variation selectors and tags; the fillers that
/// draw as blanks.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{34f}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The inverse of [`escape`], to show that it loses nothing.
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
            escape("efi\nset       firmware = bios"),
            "efi\\nset       firmware = bios"
        );
        assert_eq!(escape("a\u{9b}2J\u{1b}[0m"), "a\\u{9b}2J\\u{1b}[0m");
        assert_eq!(escape("\u{202e}exe.txt"), "\\u{202e}exe.txt");
        assert_eq!(
            escape("x\u{200b}\u{feff}\u{2028}\u{7f}"),
            "x\\u{200b}\\u{feff}\\u{2028}\\u{7f}"
        );
        assert_eq!(escape("C:\\u{41}"), "C:\\\\u{41}");
        assert_eq!(escape("poweredOn · vm-42 é"), "poweredOn · vm-42 é");
    }

    #[test]
    fn secrets_are_redacted_in_every_form_before_escaping() {
        let mut shown = Shown::default();
        shown.add("p&ss\nword");
        shown.add("");
        shown.add("cookie-1");
        let echo = "<password>p&amp;ss\nword</password> p&ss\nword Cookie: x=\"cookie-1\"";
        assert_eq!(
            shown.text(echo),
            "<password>***</password> *** Cookie: x=\"***\""
        );
    }

    proptest! {
        #[test]
        fn escaped_text_is_one_line_of_visible_characters(s in any::<String>()) {
            let e = escape(&s);
            prop_assert!(!e.chars().any(hidden));
            prop_assert!(!e.contains(['\n', '\r']));
            prop_assert_eq!(unescape(&e), s);
        }
    }
}
