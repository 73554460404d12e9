//! Text a vSphere server sent (a power state, an extraConfig value, a fault's message), on its
//! way to a terminal. A server can put anything there: a newline that forges a line of the
//! plan, a C1 CSI that moves the cursor, a U+202E that reverses what follows, or the password
//! of the login it echoes back. All of it is printed through [`Shown::text`]: secrets
//! redacted, then escaped by the one escaping function, [`escape_for_terminal`].

use crate::util::escape_for_terminal;

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
        escape_for_terminal(&t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
