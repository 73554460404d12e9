//! http(s) URLs as a URL library reads them (the `url` crate, a WHATWG parser), refused where
//! another reader would take them elsewhere. govc reads GOVC_URL with Go's net/url, curl with
//! its own parser, iPXE with its own: a URL they read differently (`http://a\@b/`, `127.1`,
//! `http:///b/`) could send a password or a boot to a host the user never named.
//!
//! One parse for every URL the tool connects to or hands on: `--url`, GOVC_URL and, through
//! `vm::network`, `--chain`.

use anyhow::{bail, Result};
use url::{Host, Url};

/// `raw` parsed, with an explicit http:// or https:// scheme and a host that Go's net/url reads
/// as the WHATWG parser does. `what` names the input in errors (`--url`, `GOVC_URL`), and
/// `example` is a URL to give instead. No error repeats the URL: its user info may hold a
/// password.
pub fn parse(raw: &str, what: &str, example: &str) -> Result<Url> {
    if let Some((i, c)) = raw
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() || c.is_whitespace())
    {
        bail!(
            "{what} has a control character or space, U+{:04X}, at character {}, which URL \
             parsers drop or refuse; remove it (a space in a path is written %20)",
            c as u32,
            i + 1
        );
    }
    if raw.contains('\\') {
        bail!(
            "{what} has a backslash, which URL parsers read differently (a WHATWG parser as '/', \
             Go's net/url as part of the host or user name); write '/' in its place, or %5C in a \
             user name or password"
        );
    }
    let Some((scheme, rest)) = raw.split_once("://").filter(|(s, _)| is_scheme(s)) else {
        bail!("{what} is not an http:// or https:// URL: give e.g. {example}");
    };
    if !["http", "https"].contains(&scheme.to_ascii_lowercase().as_str()) {
        bail!("{what} scheme '{scheme}' is not http or https: give e.g. {example}");
    }
    let (go_host, go_port) = go_host_port(rest);
    if go_host.is_empty() {
        bail!("{what} has no host: give e.g. {example}");
    }
    let url = match Url::parse(raw) {
        Ok(u) => u,
        Err(e) => bail!("{what} is not a valid URL ({e}): give e.g. {example}"),
    };
    let Some(host) = url.host() else {
        bail!("{what} has no host: give e.g. {example}");
    };
    let (same, read) = match &host {
        Host::Domain(d) => (*d == go_host.to_ascii_lowercase(), d.to_string()),
        Host::Ipv4(a) => (a.to_string() == go_host, a.to_string()),
        Host::Ipv6(a) => {
            let inner = go_host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
            (
                inner.and_then(|h| h.parse().ok()) == Some(*a),
                format!("[{a}]"),
            )
        }
    };
    if !same {
        bail!(
            "{what} names the host '{go_host}', which URL parsers read differently (a WHATWG \
             parser as '{read}', Go's net/url and so govc as written); write the host as '{read}'"
        );
    }
    let port = go_port.filter(|p| !p.is_empty()).map(str::parse::<u16>);
    if port.is_some_and(|p| p.ok() != url.port_or_known_default()) {
        bail!("{what} has a port that URL parsers read differently: give e.g. {example}");
    }
    Ok(url)
}

/// `\w+` before `://`, as govc (`soap.ParseURL`) and Go's net/url take a scheme.
pub fn is_scheme(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The host and port as Go's net/url reads them from what follows `scheme://`: the fragment
/// and the query cut off, the authority up to the first `/`, the user info up to its last `@`.
fn go_host_port(rest: &str) -> (&str, Option<&str>) {
    let rest = rest.split('#').next().unwrap_or_default();
    let rest = rest.split('?').next().unwrap_or_default();
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return match host_port.find(']') {
            Some(end) => (&host_port[..=end], host_port[end + 1..].strip_prefix(':')),
            None => (host_port, None),
        };
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> String {
        format!(
            "{:#}",
            parse(raw, "GOVC_URL", "https://vc/sdk").unwrap_err()
        )
    }

    #[test]
    fn hosts_both_parsers_agree_on() {
        for (raw, host, port) in [
            ("https://vc.example/sdk", "vc.example", 443),
            ("HTTPS://VC.Example:8443/sdk", "vc.example", 8443),
            ("http://a@b@127.0.0.1:9/sdk", "127.0.0.1", 9),
            ("https://[::1]:4443/sdk", "[::1]", 4443),
            // Go's resolver reads this address as the same one.
            ("https://[0:0::1]/sdk", "[::1]", 443),
            ("https://vc.example/x@127.0.0.1:1", "vc.example", 443),
            ("https://vc.example?x@127.0.0.1:1", "vc.example", 443),
        ] {
            let u = parse(raw, "GOVC_URL", "https://vc/sdk").unwrap();
            assert_eq!(u.host_str(), Some(host), "{raw}");
            assert_eq!(u.port_or_known_default(), Some(port), "{raw}");
        }
    }

    #[test]
    fn what_parsers_read_differently_is_refused() {
        for (raw, want) in [
            ("http://a\\@127.0.0.1/", "has a backslash"),
            ("http://127.1/sdk", "names the host '127.1'"),
            ("http://127.000.0.1/sdk", "write the host as '127.0.0.1'"),
            ("http://0x7f.0.0.1/sdk", "host '0x7f.0.0.1'"),
            ("http://%31%32%37.0.0.1/sdk", "host '%31%32%37.0.0.1'"),
            ("http://127.0.0.1./sdk", "host '127.0.0.1.'"),
            ("http:///127.0.0.1/sdk", "has no host"),
            ("http://u:p@/sdk", "has no host"),
            ("http://vc.exa\tmple/sdk", "U+0009, at character 14"),
            ("http://vc.example /sdk", "U+0020"),
            ("https://vç.example/sdk", "is not a valid URL"),
            ("ftp://vc/sdk", "scheme 'ftp' is not http or https"),
            ("file:///etc/passwd", "scheme 'file'"),
            ("https:vc.example/sdk", "is not an http:// or https:// URL"),
            (
                "https://vc:99999/sdk",
                "is not a valid URL (invalid port number)",
            ),
        ] {
            assert!(err(raw).contains(want), "{raw}: {}", err(raw));
        }
    }

    #[test]
    fn no_error_repeats_the_user_info() {
        for raw in [
            "https://admin:Secret@/sdk",
            "https://admin:Secret@vc:x/sdk",
            "https://admin:Secret\\@vc/sdk",
            "https://admin:Sec ret@vc/sdk",
            "https://admin:Secret://x@vc",
            "ftp://admin:Secret@vc",
        ] {
            assert!(!err(raw).contains("Secret"), "{raw}: {}", err(raw));
        }
    }
}
