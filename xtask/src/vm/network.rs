//! What the ROM reads from guestinfo (address, gateway, DNS, the script to chain and the
//! scriptlet), parsed and checked once; `vmx`, `deploy` and `boot-test` all carry this type.

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};

use crate::vm::quote::check_text;

/// iPXE runs this after reading guestinfo; `${filename}` is iPXE's, not Terraform's.
pub const DEFAULT_SCRIPTLET: &str = "ifopen net0 && chain ${filename}";

/// The guestinfo values of one VM, each already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub iface: Interface,
    pub gateway: Ipv4Addr,
    pub dns: Ipv4Addr,
    /// An `http://` or `https://` URL with a host and no whitespace.
    pub chain: String,
    pub scriptlet: String,
}

impl Network {
    /// Parses the values as users type them (`--ip 10.0.0.11/24` ...); None takes the default
    /// scriptlet.
    pub fn parse(
        ip: &str,
        gateway: &str,
        dns: &str,
        chain: &str,
        scriptlet: Option<&str>,
    ) -> Result<Network> {
        let iface = Interface::parse(ip)?;
        let gateway: Ipv4Addr = gateway.parse().with_context(|| {
            format!(
                "--gateway '{}' is not an IPv4 address",
                gateway.escape_debug()
            )
        })?;
        if !iface.contains(gateway)
            || gateway == iface.addr
            || (iface.prefix < 31 && (gateway == iface.network() || gateway == iface.broadcast()))
        {
            bail!(
                "--gateway {gateway} is not another host in {}/{}: the VM could not reach it",
                iface.network(),
                iface.prefix
            );
        }
        let dns: Ipv4Addr = dns
            .parse()
            .with_context(|| format!("--dns '{}' is not an IPv4 address", dns.escape_debug()))?;
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

fn check_url(url: &str) -> Result<()> {
    // iPXE expands `chain ${filename}` and then splits the line at spaces.
    if let Some((n, c)) = url
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        bail!(
            "--chain '{}' has whitespace or a control character ({c:?}) at character {}; iPXE \
             splits `chain ${{filename}}` at spaces, so it could never boot: percent-encode it \
             (a space is %20)",
            url.escape_debug(),
            n + 1
        );
    }
    check_text("--chain", url)?;
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("--chain '{url}' is not a URL (http://host/path)"))?;
    if !matches!(scheme, "http" | "https") {
        bail!("--chain {url}: the ROM fetches http:// (or https://), not {scheme}://");
    }
    if rest.split('/').next().unwrap_or("").is_empty() {
        bail!("--chain {url} has no host");
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
        let (addr, prefix) = cidr
            .split_once('/')
            .with_context(|| format!("--ip {cidr} needs a prefix length, e.g. {cidr}/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .with_context(|| format!("--ip {cidr}: '{addr}' is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .with_context(|| format!("--ip {cidr}: the prefix length must be 1 to 32"))?;
        let iface = Interface { addr, prefix };
        if prefix < 31 && (addr == iface.network() || addr == iface.broadcast()) {
            bail!("--ip {cidr} is the subnet's network or broadcast address, not a host address");
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
                "(' ') at character 22",
            ),
            (
                (ok.0, ok.1, ok.2, "http://boot.example/a\tb"),
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
        let err = Network::parse(ok.0, ok.1, ok.2, ok.3, Some("chain x\rreboot")).unwrap_err();
        assert!(err.to_string().contains("U+000D, at character 8"), "{err}");
        // A /31 has no network or broadcast address (RFC 3021).
        net("10.0.0.0/31", "10.0.0.1", ok.2, ok.3).unwrap();
    }
}
