//! HTTP through the system's `curl`. It trusts what the system trusts (its CA store,
//! `SSL_CERT_FILE`, `CURL_CA_BUNDLE`) and honours its proxy settings, and the tool compiles no TLS
//! stack of its own: rustls and ring were a third of a fresh clone's first `cargo xtask`.
//!
//! A request travels to curl as its config on stdin (`--config -`), so a password in a body or a
//! session cookie in a header never appears in a process's arguments. `--disable` (first, as
//! curl requires) keeps a user's `~/.curlrc` out of it.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

const CONNECT_TIMEOUT: &str = "15";
/// The most a reply's body may hold: a SOAP reply of vim25, or a file read from a datastore
/// (an option ROM is at most 16 MiB). A server that sends more is refused, in memory of that
/// size, instead of filling memory with it.
pub const MAX_REPLY: u64 = 16 << 20;
/// Room for the reply's header blocks, which curl's `--include` writes before the body.
const MAX_HEADERS: u64 = 64 << 10;
/// A transfer slower than 1 byte/s for this long has stalled.
const STALL_SECONDS: &str = "30";

/// Whom to trust: the system's store, the CAs of a PEM file, or no one (`--insecure`).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
}

pub enum Body<'a> {
    None,
    /// Sent as it is (curl's `--data-raw`).
    Text(&'a str),
    /// A file's bytes, with PUT (curl's `--upload-file`).
    File(&'a Path),
}

pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: Body<'a>,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Every value of a header, by case-insensitive name.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(self) -> Result<String> {
        String::from_utf8(self.body).context("the reply is not UTF-8")
    }
}

/// Requests whose status and body the caller judges (a SOAP fault comes with HTTP 500).
pub struct Client {
    trust: Trust,
    timeout: Duration,
}

impl Client {
    /// The CA file, if any, is curl's to read: check it first (`vsphere::Session` does).
    pub fn new(trust: Trust, timeout: Duration) -> Client {
        Client { trust, timeout }
    }

    /// Sends `req` and reads the reply, refusing one over [`MAX_REPLY`]: curl's `--max-filesize`
    /// stops a reply that announces its size, and the read stops any other at the cap.
    pub fn send(&self, req: &Request) -> Result<Response> {
        let config = config(req, &self.trust, self.timeout);
        let sh = Shell::new()?;
        let mut curl: std::process::Command = cmd!(
            sh,
            "curl --disable --config - --silent --show-error --include"
        )
        .into();
        let what = || format!("{} {}", req.method, req.url);
        let (status, out, stderr) = capped(&mut curl, &config, MAX_REPLY + MAX_HEADERS)?;
        let Some(out) = out else {
            bail!(
                "{}: the reply is over the {} MiB cap for a vSphere reply; is this a vSphere server?",
                what(),
                MAX_REPLY >> 20
            );
        };
        if !status.success() {
            if status.code() == Some(63) {
                bail!(
                    "{}: the reply announces more than the {} MiB cap for a vSphere reply; is this \
                     a vSphere server?",
                    what(),
                    MAX_REPLY >> 20
                );
            }
            bail!("{}: {}", what(), curl_error(&stderr));
        }
        parse(out).with_context(what)
    }
}

/// Runs `curl` with `config` on stdin; its stdout up to `cap` bytes (None past it, when curl
/// is killed), its exit status and stderr.
fn capped(
    curl: &mut std::process::Command,
    config: &str,
    cap: u64,
) -> Result<(std::process::ExitStatus, Option<Vec<u8>>, Vec<u8>)> {
    use std::{
        io::{Read, Write},
        process::Stdio,
    };
    let mut child = curl
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "cannot run curl, which the tool uses for HTTP; install it (Debian: apt-get install curl)",
        )?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let errors = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut buf);
        buf
    });
    // curl reads its whole config before it connects, so this write cannot wait on the reply.
    let written = child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(config.as_bytes());
    let mut out = Vec::new();
    let read = child
        .stdout
        .take()
        .context("no stdout")?
        .take(cap + 1)
        .read_to_end(&mut out);
    let over = out.len() as u64 > cap;
    if over {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let stderr = errors.join().unwrap_or_default();
    written?;
    read?;
    Ok((status, (!over).then_some(out), stderr))
}

/// A public file's bytes (GET, redirects followed, HTTP errors are errors).
pub fn get(url: &str) -> Result<Vec<u8>> {
    let sh = Shell::new()?;
    let out = cmd!(
        sh,
        "curl --disable --fail --location --silent --show-error --globoff --proto =http,https
              --connect-timeout {CONNECT_TIMEOUT} --speed-limit 1 --speed-time {STALL_SECONDS} {url}"
    )
    .quiet()
    .ignore_status()
    .output()
    .map_err(no_curl)?;
    if !out.status.success() {
        bail!("{}", curl_error(&out.stderr));
    }
    Ok(out.stdout)
}

/// A public file into `dest`, with curl's progress bar where stderr is a terminal.
pub fn download(url: &str, dest: &Path) -> Result<()> {
    let sh = Shell::new()?;
    let terminal = std::io::stderr().is_terminal();
    let progress = if terminal {
        "--progress-bar"
    } else {
        "--silent"
    };
    let c = cmd!(
        sh,
        "curl --disable --fail --location {progress} --show-error --globoff --proto =http,https
              --connect-timeout {CONNECT_TIMEOUT} --speed-limit 1 --speed-time {STALL_SECONDS}
              --output {dest} {url}"
    )
    .quiet();
    if terminal {
        // curl draws its bar there, and prints its own error above ours.
        c.run()
            .context("curl did not finish (its message is above; install curl if it is missing)")?;
    } else {
        let out = c.ignore_status().output().map_err(no_curl)?;
        if !out.status.success() {
            bail!("{}", curl_error(&out.stderr));
        }
    }
    if !dest.is_file() {
        bail!("curl wrote no {}", dest.display());
    }
    Ok(())
}

/// curl's error line (`curl: (60) SSL certificate problem: ...`), without the paragraph of
/// advice it adds for some errors: ours names the fix. Escaped: it may quote the server (a
/// certificate's subject name).
fn curl_error(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("curl failed without a message")
        .trim();
    crate::util::escape_for_terminal(line)
}

fn no_curl(e: xshell::Error) -> anyhow::Error {
    anyhow::Error::new(e).context(
        "cannot run curl, which the tool uses for HTTP; install it (Debian: apt-get install curl)",
    )
}

/// curl's config for one request. Values are quoted, so nothing in them is read as an option.
fn config(req: &Request, trust: &Trust, timeout: Duration) -> String {
    let mut c = String::new();
    let mut set = |name: &str, value: &str| {
        c.push_str(&format!("{name} = {}\n", quote(value)));
    };
    set("url", req.url);
    set("request", req.method);
    for (k, v) in &req.headers {
        set("header", &format!("{k}: {v}"));
    }
    // No `Expect: 100-continue` round trip before a body.
    set("header", "Expect:");
    match req.body {
        Body::None => {}
        Body::Text(t) => set("data-raw", t),
        Body::File(p) => set("upload-file", &p.to_string_lossy()),
    }
    if let Some(ca) = &trust.ca_file {
        set("cacert", &ca.to_string_lossy());
    }
    set("connect-timeout", CONNECT_TIMEOUT);
    set("max-time", &timeout.as_secs().to_string());
    set("max-filesize", &MAX_REPLY.to_string());
    set("proto", "=http,https");
    c.push_str("globoff\nsuppress-connect-headers\n");
    if trust.insecure {
        c.push_str("insecure\n");
    }
    c
}

/// A config value in double quotes, with curl's escapes.
fn quote(v: &str) -> String {
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for ch in v.chars() {
        match ch {
            '\\' => q.push_str("\\\\"),
            '"' => q.push_str("\\\""),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// `--include` output: header blocks (interim 1xx ones skipped), then the body.
fn parse(mut out: Vec<u8>) -> Result<Response> {
    let mut rest = &out[..];
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("curl's output has no complete header block")?;
        let head = std::str::from_utf8(&rest[..end]).context("the reply's headers are not text")?;
        rest = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let status: u16 = first
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("the reply's status line is {first:?}"))?;
        if (100..200).contains(&status) && rest.starts_with(b"HTTP/") {
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        // The body, moved out rather than copied: it may be 16 MiB.
        let body = out.split_off(out.len() - rest.len());
        return Ok(Response {
            status,
            headers,
            body,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_with_curls_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny\tz"), r#""x\ny\tz""#);
        assert_eq!(quote("@/etc/passwd"), r#""@/etc/passwd""#);
    }

    #[test]
    fn the_config_carries_secrets_and_trust() {
        let req = Request {
            method: "POST",
            url: "https://vc/sdk",
            headers: vec![("Cookie", "vmware_soap_session=\"s3cr3t\"")],
            body: Body::Text("<password>pw</password>"),
        };
        let trust = Trust {
            ca_file: Some("/ca.pem".into()),
            insecure: false,
        };
        let c = config(&req, &trust, Duration::from_secs(120));
        assert!(c.contains("url = \"https://vc/sdk\"\n"));
        assert!(c.contains("header = \"Cookie: vmware_soap_session=\\\"s3cr3t\\\"\"\n"));
        assert!(c.contains("data-raw = \"<password>pw</password>\"\n"));
        assert!(c.contains("cacert = \"/ca.pem\"\n"));
        assert!(c.contains("max-time = \"120\"\n"));
        assert!(!c.contains("insecure"));
    }

    #[test]
    fn interim_replies_are_skipped() {
        let out = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\n\
                    Set-Cookie: vmware_soap_session=abc; Path=/\r\nContent-Type: text/xml\r\n\r\n<fault/>";
        let r = parse(out.to_vec()).unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(
            r.header_values("set-cookie").collect::<Vec<_>>(),
            ["vmware_soap_session=abc; Path=/"]
        );
        assert_eq!(r.body, b"<fault/>");
    }

    #[test]
    fn curls_error_line_without_its_advice() {
        let stderr = b"curl: (60) SSL certificate problem: self-signed certificate\n\
                       More details here: https://curl.se/docs/sslcerts.html\n\ncurl failed to verify\n";
        assert_eq!(
            curl_error(stderr),
            "curl: (60) SSL certificate problem: self-signed certificate"
        );
        assert_eq!(curl_error(b"\n"), "curl failed without a message");
    }

    #[test]
    fn an_empty_body_and_http2_status_lines() {
        let r = parse(b"HTTP/2 204\r\ndate: x\r\n\r\n".to_vec()).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        assert!(parse(b"HTTP/1.1 200 OK\r\n".to_vec()).is_err());
    }
}
