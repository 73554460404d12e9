//! What the ROM reads from guestinfo (address, gateway, DNS, the script to chain and the
//! scriptlet), parsed and checked once; `vmx`, `deploy` and `boot-test` all carry this type.

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};

use crate::vm::quote::{check_chars, check_text};

/// iPXE runs this after reading guestinfo; `${filename}` is iPXE's, not Terraform's.
pub const DEFAULT_SCRIPTLET: &str = "ifopen net0 && chain ${filename}";

// What each rule says, as printf formats (`%s`, `%d`, `%04X`, `%%`): this validator fills them
// with [`say`], the playbook `fleet` writes with Python's `%` and its Terraform with `format`,
// so a value gets the same words wherever it is checked. The first `%s` names the value.
pub const CHARACTER: &str =
    "%s has %s, U+%04X, at character %d: VMware keys hold one line of printable text; remove it";
pub const WHITESPACE: &str = "%s has whitespace, U+%04X, at character %d: iPXE splits `chain \
     ${filename}` at spaces, so it could never boot; percent-encode it (a space is %%20)";
pub const NO_PREFIX: &str = "%s %s needs a prefix length, e.g. %s/24";
pub const BAD_ADDRESS: &str = "%s %s: '%s' is not an IPv4 address";
pub const BAD_PREFIX: &str = "%s %s: the prefix length must be 1 to 32";
pub const NOT_A_HOST: &str =
    "%s %s is the subnet's network or broadcast address, not a host address";
pub const NOT_IPV4: &str = "%s '%s' is not an IPv4 address";
pub const UNREACHABLE: &str = "%s %s is not another host in %s/%d: the VM could not reach it";
pub const NOT_A_URL: &str = "%s is not a URL: give http://host/path";
pub const SCHEME: &str = "%s: the ROM fetches http:// (or https://), not %s://";
pub const USER_INFO: &str = "%s has user info before its host (name:password@): iPXE would \
     send it in the clear and anyone who reads the VM's configuration would see it; give the \
     URL without it";
pub const NO_HOST: &str = "%s has no host: give http://host/path";
pub const BAD_HOST: &str =
    "%s host '%s' is not a host name, an IPv4 address or an IPv6 address in brackets";
pub const BAD_PORT: &str = "%s has '%s' after its host where a port (:1 to :65535) may go";
pub const NO_HTTPS: &str = "%s %s: HTTPS is cut from this ROM to fit VMware's 64 KiB limit; \
     serve the script over http://, or build a profile with HTTPS and pass its ROM with --rom";

/// Every message, by the name `fleet`'s templates use for it.
pub const MESSAGES: &[(&str, &str)] = &[
    ("CHARACTER", CHARACTER),
    ("WHITESPACE", WHITESPACE),
    ("NO_PREFIX", NO_PREFIX),
    ("BAD_ADDRESS", BAD_ADDRESS),
    ("BAD_PREFIX", BAD_PREFIX),
    ("NOT_A_HOST", NOT_A_HOST),
    ("NOT_IPV4", NOT_IPV4),
    ("UNREACHABLE", UNREACHABLE),
    ("NOT_A_URL", NOT_A_URL),
    ("SCHEME", SCHEME),
    ("USER_INFO", USER_INFO),
    ("NO_HOST", NO_HOST),
    ("BAD_HOST", BAD_HOST),
    ("BAD_PORT", BAD_PORT),
    ("NO_HTTPS", NO_HTTPS),
];

/// The whitespace a URL may not hold that [`crate::vm::quote::FORBIDDEN`] leaves, as (first,
/// last): with it, every character Rust calls whitespace.
pub const WHITESPACE_CHARS: &[(char, char)] = &[
    (' ', ' '),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// A value for one of a message's conversions.
pub enum Arg<'a> {
    S(&'a str),
    N(u64),
}

/// A message format filled as printf would: `%s` and `%d` in turn, `%04X` as four or more
/// upper-case hex digits, `%%` as `%`.
pub fn say(format: &str, args: &[Arg]) -> String {
    let mut out = String::with_capacity(format.len() + 32);
    let mut args = args.iter();
    let mut rest = format;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            out.push('%');
            rest = r;
            continue;
        }
        let hex = rest.starts_with("04X");
        match args.next() {
            Some(Arg::N(n)) if hex => out.push_str(&format!("{n:04X}")),
            Some(Arg::N(n)) => out.push_str(&n.to_string()),
            Some(Arg::S(s)) => out.push_str(s),
            None => {}
        }
        rest = &rest[if hex { 3 } else { 1.min(rest.len()) }..];
    }
    out.push_str(rest);
    out
}

/// The guestinfo values of one VM, each already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub iface: Interface,
    pub gateway: Ipv4Addr,
    pub dns: Ipv4Addr,
    /// An `http://` or `https://` URL with a host, no user info and no whitespace.
    pub chain: String,
    pub scriptlet: String,
}

impl Network {
    /// Parses the values as users type them (`--ip 10.0.0.11/24` ...); None takes the default
    /// scriptlet. The rules apply in the order the playbook and Terraform of `fleet` apply
    /// them: characters of every value first, then address, gateway, DNS and chain.
    pub fn parse(
        ip: &str,
        gateway: &str,
        dns: &str,
        chain: &str,
        scriptlet: Option<&str>,
    ) -> Result<Network> {
        for (what, value) in [
            ("--ip", ip),
            ("--gateway", gateway),
            ("--dns", dns),
            ("--chain", chain),
        ] {
            check_chars(what, value)?;
        }
        let iface = Interface::parse(ip)?;
        let gateway = ipv4("--gateway", gateway)?;
        if !iface.contains(gateway)
            || gateway == iface.addr
            || (iface.prefix < 31 && (gateway == iface.network() || gateway == iface.broadcast()))
        {
            let net = iface.network().to_string();
            let args = [
                Arg::S("--gateway"),
                Arg::S(&gateway.to_string()),
                Arg::S(&net),
                Arg::N(iface.prefix.into()),
            ];
            bail!(say(UNREACHABLE, &args));
        }
        let dns = ipv4("--dns", dns)?;
        check_url(chain)?;
        let scriptlet = scriptlet.unwrap_or(DEFAULT_SCRIPTLET);
        check_text("--scriptlet", scriptlet)?;
        if scriptlet.trim().is_empty() {
            bail!("--scriptlet is empty: leave it out for the default, `{DEFAULT_SCRIPTLET}`");
        }
        Ok(Network {
            iface,
            gateway,
            dns,
            chain: chain.to_string(),
            scriptlet: scriptlet.to_string(),
        })
    }

    /// Whether the chain URL needs a ROM that can fetch `https://`.
    pub fn needs_https(&self) -> bool {
        self.chain.starts_with("https://")
    }

    /// The `guestinfo.ipxe.*` keys iPXE's VMware settings read.
    pub fn guestinfo(&self) -> [(&'static str, String); 6] {
        [
            ("guestinfo.ipxe.net0.ip", self.iface.addr.to_string()),
            (
                "guestinfo.ipxe.net0.netmask",
                self.iface.netmask().to_string(),
            ),
            ("guestinfo.ipxe.net0.gateway", self.gateway.to_string()),
            ("guestinfo.ipxe.dns", self.dns.to_string()),
            ("guestinfo.ipxe.filename", self.chain.clone()),
            ("guestinfo.ipxe.scriptlet", self.scriptlet.clone()),
        ]
    }
}

/// A dotted-quad IPv4 address: four decimal numbers to 255, without leading zeros.
fn ipv4(what: &str, value: &str) -> Result<Ipv4Addr> {
    value
        .parse()
        .ok()
        .with_context(|| say(NOT_IPV4, &[Arg::S(what), Arg::S(value)]))
}

/// The chain URL as iPXE fetches it: `http(s)://host[:port]/...`, no user info (iPXE would
/// send it in the clear, and it would sit in the VM's configuration), no whitespace. No message
/// repeats the URL, which may hold a password, but the parts that are checked.
fn check_url(url: &str) -> Result<()> {
    let what = Arg::S("--chain");
    // iPXE expands `chain ${filename}` and then splits the line at spaces.
    if let Some((n, c)) = url.chars().enumerate().find(|(_, c)| {
        WHITESPACE_CHARS
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(c))
    }) {
        bail!(say(
            WHITESPACE,
            &[what, Arg::N(c as u64), Arg::N(n as u64 + 1)]
        ));
    }
    check_text("--chain", url)?;
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| {
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        })
        .with_context(|| say(NOT_A_URL, &[Arg::S("--chain")]))?;
    if !matches!(scheme, "http" | "https") {
        bail!(say(SCHEME, &[what, Arg::S(scheme)]));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        bail!(say(USER_INFO, &[what]));
    }
    let host_len = match authority.strip_prefix('[') {
        Some(v6) => v6.find(']').map_or(authority.len(), |i| i + 2),
        None => authority.find(':').unwrap_or(authority.len()),
    };
    let (host, port) = authority.split_at(host_len);
    let name = |c: char| c.is_ascii_alphanumeric() || "._~-".contains(c);
    let v6 = |c: char| c.is_ascii_hexdigit() || ":.".contains(c);
    let good_host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => !inner.is_empty() && inner.chars().all(v6),
        None => host.chars().all(name),
    };
    if host.is_empty() {
        bail!(say(NO_HOST, &[what]));
    }
    if !good_host {
        bail!(say(BAD_HOST, &[what, Arg::S(host)]));
    }
    let digits = port.strip_prefix(':').unwrap_or("x");
    let port_ok = port.is_empty()
        || (digits.len() <= 5
            && digits.chars().all(|c| c.is_ascii_digit())
            && digits
                .parse::<u32>()
                .is_ok_and(|p| (1..=65535).contains(&p)));
    if !port_ok {
        bail!(say(BAD_PORT, &[what, Arg::S(port)]));
    }
    Ok(())
}

/// A static IPv4 interface: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Interface {
    pub fn parse(cidr: &str) -> Result<Interface> {
        let what = Arg::S("--ip");
        let (addr, prefix) = cidr
            .split_once('/')
            .with_context(|| say(NO_PREFIX, &[Arg::S("--ip"), Arg::S(cidr), Arg::S(cidr)]))?;
        let addr: Ipv4Addr = addr
            .parse()
            .ok()
            .with_context(|| say(BAD_ADDRESS, &[Arg::S("--ip"), Arg::S(cidr), Arg::S(addr)]))?;
        // One or two digits: Rust's own parser would also take `+24` and `024`.
        let prefix: u8 = Some(prefix)
            .filter(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse().ok())
            .filter(|p| (1..=32).contains(p))
            .with_context(|| say(BAD_PREFIX, &[Arg::S("--ip"), Arg::S(cidr)]))?;
        let iface = Interface { addr, prefix };
        if prefix < 31 && (addr == iface.network() || addr == iface.broadcast()) {
            bail!(say(NOT_A_HOST, &[what, Arg::S(cidr)]));
        }
        Ok(iface)
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix))
                .unwrap_or(0),
        )
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.netmask()))
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !u32::from(self.netmask()))
    }

    pub fn contains(&self, other: Ipv4Addr) -> bool {
        u32::from(other) & u32::from(self.netmask()) == u32::from(self.network())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ip: &str, gw: &str, dns: &str, chain: &str) -> Result<Network> {
        Network::parse(ip, gw, dns, chain, None)
    }

    fn err(ip: &str, gw: &str, dns: &str, chain: &str) -> String {
        format!("{:#}", net(ip, gw, dns, chain).unwrap_err())
    }

    #[test]
    fn netmask_and_membership() {
        let i = Interface::parse("10.0.0.11/24").unwrap();
        assert_eq!(i.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(i.contains(Ipv4Addr::new(10, 0, 0, 1)) && !i.contains(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(
            Interface::parse("10.0.0.1/32").unwrap().netmask(),
            Ipv4Addr::new(255, 255, 255, 255)
        );
        assert_eq!(
            Interface::parse("10.0.0.1/1").unwrap().netmask(),
            Ipv4Addr::new(128, 0, 0, 0)
        );
    }

    #[test]
    fn every_bad_value_is_named() {
        let ok = (
            "10.0.0.11/24",
            "10.0.0.1",
            "10.0.0.200",
            "http://boot.example/boot.ipxe",
        );
        net(ok.0, ok.1, ok.2, ok.3).unwrap();
        let cases = [
            (
                ("10.0.0.11", ok.1, ok.2, ok.3),
                "needs a prefix length, e.g. 10.0.0.11/24",
            ),
            (
                ("10.0.0.300/24", ok.1, ok.2, ok.3),
                "'10.0.0.300' is not an IPv4 address",
            ),
            (
                ("10.0.0.11/33", ok.1, ok.2, ok.3),
                "prefix length must be 1 to 32",
            ),
            (
                ("10.0.0.0/24", ok.1, ok.2, ok.3),
                "network or broadcast address",
            ),
            (
                (ok.0, "10.0.1.1", ok.2, ok.3),
                "--gateway 10.0.1.1 is not another host in 10.0.0.0/24",
            ),
            ((ok.0, "10.0.0.11", ok.2, ok.3), "is not another host"),
            (
                (ok.0, "10.0.0.0", ok.2, ok.3),
                "--gateway 10.0.0.0 is not another host",
            ),
            (
                (ok.0, "10.0.0.255", ok.2, ok.3),
                "--gateway 10.0.0.255 is not another host",
            ),
            (
                (ok.0, ok.1, "dns.example", ok.3),
                "--dns 'dns.example' is not an IPv4 address",
            ),
            ((ok.0, ok.1, ok.2, "tftp://boot.example/x"), "not tftp://"),
            ((ok.0, ok.1, ok.2, "boot.ipxe"), "is not a URL"),
            ((ok.0, ok.1, ok.2, "http:///x"), "has no host"),
            (
                (ok.0, ok.1, ok.2, "http://boot.example/a b.ipxe"),
                "whitespace, U+0020, at character 22",
            ),
            (
                (ok.0, ok.1, ok.2, "http://boot.example/a\u{3000}b"),
                "percent-encode it",
            ),
            (
                (ok.0, ok.1, ok.2, "http://boot.example/\u{202e}x"),
                "bidirectional control",
            ),
        ];
        for ((ip, gw, dns, chain), want) in cases {
            let got = err(ip, gw, dns, chain);
            assert!(got.contains(want), "wanted '{want}', got '{got}'");
        }
        for (chain, want) in [
            (
                "http://u:secret@b/x",
                "--chain has user info before its host",
            ),
            ("http://@/x", "--chain has user info"),
            ("http://:80/x", "--chain has no host"),
            ("http://[::1/x", "--chain host '[::1' is not a host name"),
            ("http://[]/x", "--chain host '[]' is not"),
            ("http://b:99999/x", "--chain has ':99999' after its host"),
            ("http://b:/x", "--chain has ':' after its host"),
            (
                "ftp://u:secret@b/x",
                "--chain: the ROM fetches http:// (or https://), not ftp://",
            ),
            ("u:secret@b://x", "--chain is not a URL"),
            (
                "http://b/\u{200b}",
                "--chain has an invisible character, U+200B",
            ),
        ] {
            let got = err(ok.0, ok.1, ok.2, chain);
            assert!(
                got.contains(want) && !got.contains("secret"),
                "{chain}: {got}"
            );
        }
        for chain in ["http://[fe80::1]:80/x", "https://b:65535?x@y#z", "http://b"] {
            net(ok.0, ok.1, ok.2, chain).unwrap();
        }
        for ip in [
            "010.0.0.11/24",
            "10.0.0.11/+24",
            "10.0.0.11/024",
            "10.0.0.11/0",
        ] {
            assert!(net(ip, ok.1, ok.2, ok.3).is_err(), "{ip}");
        }
        let err = Network::parse(ok.0, ok.1, ok.2, ok.3, Some("chain x\rreboot")).unwrap_err();
        assert!(err.to_string().contains("U+000D, at character 8"), "{err}");
        // A /31 has no network or broadcast address (RFC 3021).
        net("10.0.0.0/31", "10.0.0.1", ok.2, ok.3).unwrap();
    }

    #[test]
    fn say_fills_as_printf() {
        let args = [Arg::S("--x"), Arg::N(0x202e), Arg::N(7)];
        assert_eq!(
            say("%s: U+%04X at %d, 100%%", &args),
            "--x: U+202E at 7, 100%"
        );
        assert_eq!(say("%04X", &[Arg::N(0xe0041)]), "E0041");
    }

    #[test]
    fn every_whitespace_character_is_refused_in_a_url() {
        for c in (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
        {
            let url = format!("http://b/{c}");
            assert!(check_url(&url).is_err(), "U+{:04X}", c as u32);
        }
    }
}
