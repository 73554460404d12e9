//! The VM side: the guestinfo and ROM keys a vSphere VM needs to boot our ROM, validated, and
//! written as Terraform `extra_config`, `.vmx` lines, a `govc vm.change` command or JSON.

use std::{collections::BTreeMap, fmt::Write as _, fs, net::Ipv4Addr, path::Path};

use anyhow::{bail, Context, Result};

use crate::{
    check::romcheck,
    nic::{Nic, VMWARE_ROM_LIMIT},
    output::emit::{Manifest, MANIFEST},
};

/// iPXE runs this after reading guestinfo; `${filename}` is iPXE's, not Terraform's.
pub const DEFAULT_SCRIPTLET: &str = "ifopen net0 && chain ${filename}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `vsphere_virtual_machine` arguments: firmware and extra_config
    Terraform,
    /// Lines for the VM's .vmx file
    Vmx,
    /// `govc datastore.upload` and `govc vm.change` commands
    Govc,
    /// The keys as a JSON object
    Json,
    /// vsphere-iso / vsphere-clone `configuration_parameters`
    Packer,
    /// `community.vmware.vmware_guest` parameters (YAML)
    Ansible,
    /// PowerCLI `New-AdvancedSetting` commands
    Powercli,
}

/// What a format needs besides the keys.
#[derive(Debug, Clone)]
pub struct RenderContext {
    pub nic: &'static Nic,
    pub ethernet: u8,
    /// The VM's name; None leaves it to the tool's own default (govc reads GOVC_VM).
    pub vm: Option<String>,
    /// The local ROM file to upload (govc), or its file name.
    pub local_rom: String,
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

    fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.netmask()))
    }

    fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !u32::from(self.netmask()))
    }

    pub fn contains(&self, other: Ipv4Addr) -> bool {
        u32::from(other) & u32::from(self.netmask()) == u32::from(self.network())
    }
}

/// What the user asked for, before validation.
#[derive(Debug, Clone)]
pub struct Request {
    pub nic: &'static Nic,
    /// `ethernet<N>`: which virtual NIC of the VM.
    pub ethernet: u8,
    /// Where the ROM lives on the datastore, as the VMX key takes it.
    pub rom_path: String,
    pub ip: String,
    pub gateway: String,
    pub dns: String,
    pub chain: String,
    pub scriptlet: Option<String>,
    /// The local ROM file: its PCI id and size are checked and set `opromsize`.
    pub rom: Option<RomFacts>,
    /// Whether the ROM can fetch `https://` (from its manifest); false when unknown.
    pub rom_has_https: bool,
}

/// What the local ROM file says about itself.
#[derive(Debug, Clone)]
pub struct RomFacts {
    pub file: String,
    pub vendor: u16,
    pub device: u16,
    pub size: u64,
    /// The limit it was built for (from its manifest), else the NIC's.
    pub limit: u64,
}

/// The ROM file's id and size, and from the manifest beside it (if any) its limit and whether
/// it can fetch `https://`.
pub fn rom_facts(path: &Path, nic: &Nic) -> Result<(RomFacts, bool)> {
    let bytes = fs::read(path).with_context(|| format!("cannot read --rom {}", path.display()))?;
    let images = romcheck::parse(&bytes)
        .with_context(|| format!("--rom {} is not an option ROM", path.display()))?;
    let manifest = path
        .parent()
        .map(|d| d.join(MANIFEST))
        .filter(|m| m.is_file())
        .map(|m| Manifest::load(&m))
        .transpose()?;
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let info = manifest.as_ref().and_then(|m| m.roms.get(&name));
    let facts = RomFacts {
        file: path.display().to_string(),
        vendor: images[0].vendor,
        device: images[0].device,
        size: bytes.len() as u64,
        limit: info.map_or(nic.default_limit, |i| i.limit),
    };
    Ok((facts, info.is_some_and(|i| i.https)))
}

/// Validates the request and returns the keys, sorted.
pub fn keys(req: &Request) -> Result<BTreeMap<String, String>> {
    let iface = Interface::parse(&req.ip)?;
    let gateway: Ipv4Addr = req
        .gateway
        .parse()
        .with_context(|| format!("--gateway '{}' is not an IPv4 address", req.gateway))?;
    if !iface.contains(gateway) || gateway == iface.addr {
        bail!(
            "--gateway {gateway} is not another host in {}/{}: the VM could not reach it",
            iface.network(),
            iface.prefix
        );
    }
    let dns: Ipv4Addr = req
        .dns
        .parse()
        .with_context(|| format!("--dns '{}' is not an IPv4 address", req.dns))?;
    check_url(&req.chain, req.rom_has_https)?;
    if req.rom_path.trim().is_empty() {
        bail!(
            "--rom-path is empty: give the ROM's datastore path, e.g. /vmfs/volumes/datastore1/{}",
            req.nic.file_name(crate::nic::RomFormat::Rom)
        );
    }
    let opromsize = match &req.rom {
        Some(rom) => {
            if (rom.vendor, rom.device) != (req.nic.vendor, req.nic.device) {
                bail!(
                    "{} is a ROM for PCI id {:04x}:{:04x}, but {} is {:04x}:{:04x}: build it with --nic {}",
                    rom.file,
                    rom.vendor,
                    rom.device,
                    req.nic.name,
                    req.nic.vendor,
                    req.nic.device,
                    req.nic.name
                );
            }
            if rom.size > rom.limit {
                bail!(
                    "{} is {} bytes, over the {}-byte limit for {} by {}",
                    rom.file,
                    rom.size,
                    rom.limit,
                    req.nic.name,
                    rom.size - rom.limit
                );
            }
            rom.size.next_power_of_two().max(VMWARE_ROM_LIMIT)
        }
        None => VMWARE_ROM_LIMIT,
    };
    let eth = format!("ethernet{}", req.ethernet);
    let mut keys = BTreeMap::new();
    let mut put = |k: &str, v: String| keys.insert(k.to_string(), v);
    put(&format!("{eth}.virtualDev"), req.nic.name.to_string());
    put(&format!("{eth}.opromsize"), opromsize.to_string());
    put(req.nic.vmware_key, req.rom_path.clone());
    put("guestinfo.ipxe.net0.ip", iface.addr.to_string());
    put("guestinfo.ipxe.net0.netmask", iface.netmask().to_string());
    put("guestinfo.ipxe.net0.gateway", gateway.to_string());
    put("guestinfo.ipxe.dns", dns.to_string());
    put("guestinfo.ipxe.filename", req.chain.clone());
    put(
        "guestinfo.ipxe.scriptlet",
        req.scriptlet
            .clone()
            .unwrap_or_else(|| DEFAULT_SCRIPTLET.to_string()),
    );
    Ok(keys)
}

fn check_url(url: &str, https_ok: bool) -> Result<()> {
    // iPXE expands `chain ${filename}` and then splits the line at spaces.
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "--chain '{}' has whitespace or a control character ({:?}); iPXE splits \
             `chain ${{filename}}` at spaces, so it could never boot: percent-encode it (a space is %20)",
            url.escape_debug(),
            c
        );
    }
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("--chain '{url}' is not a URL (http://host/path)"))?;
    match scheme {
        "http" => {}
        "https" if https_ok => {}
        "https" => bail!(
            "--chain {url}: HTTPS is cut from this ROM to fit VMware's 64 KiB limit; \
             serve the script over http://, or build a profile with HTTPS and pass its ROM with --rom"
        ),
        other => bail!("--chain {url}: the ROM fetches http:// only, not {other}://"),
    }
    if rest.split('/').next().unwrap_or("").is_empty() {
        bail!("--chain {url} has no host");
    }
    Ok(())
}

/// Renders the keys in one of the output formats. The BIOS firmware these ROMs need is set
/// where the format can; where a tool manages the NIC type itself, that setting is named
/// instead of a raw `ethernetN.virtualDev` key the tool may override.
pub fn render(keys: &BTreeMap<String, String>, format: Format, ctx: &RenderContext) -> String {
    let mut out = String::new();
    let dev = format!("ethernet{}.virtualDev", ctx.ethernet);
    let without_dev = |keep: bool| -> BTreeMap<&String, &String> {
        keys.iter().filter(|(k, _)| keep || **k != dev).collect()
    };
    let eth = ctx.ethernet;
    match format {
        Format::Terraform => {
            out.push_str("firmware = \"bios\"\n");
            let tf = ctx.nic.terraform_adapter;
            if tf {
                let _ = writeln!(
                    out,
                    "# ethernet{eth} is network_interface block {eth}: set its adapter_type = \"{}\"",
                    ctx.nic.name
                );
            } else {
                let _ = writeln!(
                    out,
                    "# the provider has no adapter_type for {}: {dev} below sets it",
                    ctx.nic.name
                );
            }
            out.push_str(&hcl_map("extra_config", &without_dev(!tf)));
        }
        Format::Packer => {
            out.push_str("firmware = \"bios\"\n");
            let _ = writeln!(
                out,
                "# ethernet{eth} is network_adapters block {eth}: set its network_card = \"{}\" \
                 (vsphere-clone keeps the template's adapter and firmware)",
                ctx.nic.tool_type
            );
            out.push_str(&hcl_map("configuration_parameters", &without_dev(false)));
        }
        Format::Ansible => {
            let _ = writeln!(
                out,
                "# community.vmware.vmware_guest parameters; ethernet{eth} is networks[{eth}]: \
                 set its device_type: {}",
                ctx.nic.tool_type
            );
            out.push_str("hardware:\n  boot_firmware: bios\nadvanced_settings:\n");
            for (k, v) in without_dev(false) {
                let _ = writeln!(out, "  - key: {}\n    value: {}", yaml_str(k), yaml_str(v));
            }
        }
        Format::Vmx => {
            out.push_str("firmware = \"bios\"\n");
            for (k, v) in keys {
                let _ = writeln!(out, "{k} = \"{}\"", vmx_escape(v));
            }
        }
        Format::Govc => {
            // The VM must use BIOS firmware; `govc vm.change` cannot set it.
            out.push_str("# the VM must boot with BIOS firmware (config.firmware = bios)\n");
            if let Some((ds, path)) = keys
                .get(ctx.nic.vmware_key)
                .and_then(|p| p.strip_prefix("/vmfs/volumes/"))
                .and_then(|p| p.split_once('/'))
            {
                let _ = writeln!(
                    out,
                    "govc datastore.upload -ds {} {} {}",
                    shell_quote(ds),
                    shell_quote(&ctx.local_rom),
                    shell_quote(path)
                );
            }
            out.push_str("govc vm.change");
            if let Some(vm) = &ctx.vm {
                let _ = write!(out, " -vm {}", shell_quote(vm));
            }
            for (k, v) in keys {
                let _ = write!(out, " \\\n  -e {}", shell_quote(&format!("{k}={v}")));
            }
            out.push('\n');
        }
        Format::Powercli => {
            match &ctx.vm {
                Some(vm) => {
                    let _ = writeln!(out, "$vm = Get-VM -Name {}", ps_quote(vm));
                }
                None => out.push_str("$vm = Get-VM -Name $VMName\n"),
            }
            for (k, v) in keys {
                let _ = writeln!(
                    out,
                    "New-AdvancedSetting -Entity $vm -Name {} -Value {} -Force -Confirm:$false | Out-Null",
                    ps_quote(k),
                    ps_quote(v)
                );
            }
            out.push_str(
                "# BIOS firmware, which these ROMs need (the VM must be powered off)\n\
                 $spec = New-Object VMware.Vim.VirtualMachineConfigSpec\n\
                 $spec.Firmware = 'bios'\n\
                 $vm.ExtensionData.ReconfigVM($spec)\n",
            );
        }
        Format::Json => {
            out = serde_json::to_string_pretty(keys).expect("strings serialize");
            out.push('\n');
        }
    }
    out
}

fn hcl_map(name: &str, keys: &BTreeMap<&String, &String>) -> String {
    let mut out = format!("{name} = {{\n");
    let width = keys.keys().map(|k| k.len() + 2).max().unwrap_or(0);
    for (k, v) in keys {
        let _ = writeln!(
            out,
            "  {:<width$} = \"{}\"",
            format!("\"{k}\""),
            hcl_escape(v)
        );
    }
    out.push_str("}\n");
    out
}

/// A double-quoted YAML scalar (JSON's string syntax is YAML's), tagged `!unsafe` where Ansible
/// would otherwise read Jinja2 in it.
fn yaml_str(v: &str) -> String {
    let quoted = serde_json::to_string(v).expect("strings serialize");
    if ["{{", "{%", "{#"].iter().any(|j| v.contains(j)) {
        format!("!unsafe {quoted}")
    } else {
        quoted
    }
}

/// A PowerShell single-quoted string: nothing expands inside, and `'` doubles.
fn ps_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// HCL string: escape `\` and `"`, and `${`/`%{` so Terraform does not interpolate iPXE's
/// own `${filename}`.
fn hcl_escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "$${")
        .replace("%{", "%%{")
}

/// `.vmx` values are double-quoted; VMware writes `"`, `|` and control characters as `|XX` hex.
fn vmx_escape(v: &str) -> String {
    v.chars()
        .map(|c| match c {
            '"' | '|' => format!("|{:02X}", c as u32),
            c if c.is_control() => format!("|{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            nic: Nic::by_name("vmxnet3").unwrap(),
            ethernet: 0,
            rom_path: "/vmfs/volumes/ds1/15ad07b0.rom".into(),
            ip: "10.0.0.11/24".into(),
            gateway: "10.0.0.1".into(),
            dns: "10.0.0.200".into(),
            chain: "http://boot.example/boot.ipxe".into(),
            scriptlet: None,
            rom: None,
            rom_has_https: false,
        }
    }

    fn err(r: Request) -> String {
        format!("{:#}", keys(&r).unwrap_err())
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
    fn every_bad_input_is_named() {
        type Edit = fn(&mut Request);
        let cases: Vec<(Edit, &str)> = vec![
            (
                |r| r.ip = "10.0.0.11".into(),
                "needs a prefix length, e.g. 10.0.0.11/24",
            ),
            (
                |r| r.ip = "10.0.0.300/24".into(),
                "'10.0.0.300' is not an IPv4 address",
            ),
            (
                |r| r.ip = "10.0.0.11/33".into(),
                "prefix length must be 1 to 32",
            ),
            (
                |r| r.ip = "10.0.0.0/24".into(),
                "network or broadcast address",
            ),
            (
                |r| r.gateway = "10.0.1.1".into(),
                "--gateway 10.0.1.1 is not another host in 10.0.0.0/24",
            ),
            (|r| r.gateway = "10.0.0.11".into(), "is not another host"),
            (
                |r| r.dns = "dns.example".into(),
                "--dns 'dns.example' is not an IPv4 address",
            ),
            (
                |r| r.chain = "https://boot.example/x".into(),
                "HTTPS is cut from this ROM",
            ),
            (
                |r| r.chain = "tftp://boot.example/x".into(),
                "fetches http:// only, not tftp://",
            ),
            (|r| r.chain = "boot.ipxe".into(), "is not a URL"),
            (|r| r.chain = "http:///x".into(), "has no host"),
            (
                |r| r.chain = "http://boot.example/a b.ipxe".into(),
                "has whitespace or a control character (' ')",
            ),
            (
                |r| r.chain = "http://boot.example/a\tb".into(),
                "percent-encode it",
            ),
        ];
        for (edit, want) in cases {
            let mut r = req();
            edit(&mut r);
            let got = err(r);
            assert!(got.contains(want), "wanted '{want}', got '{got}'");
        }
        let mut r = req();
        r.rom = Some(RomFacts {
            file: "x.rom".into(),
            vendor: 0x8086,
            device: 0x100f,
            size: 50_000,
            limit: 65_536,
        });
        assert!(err(r.clone())
            .contains("x.rom is a ROM for PCI id 8086:100f, but vmxnet3 is 15ad:07b0"));
        r.rom = Some(RomFacts {
            file: "x.rom".into(),
            vendor: 0x15ad,
            device: 0x07b0,
            size: 70_000,
            limit: 65_536,
        });
        assert!(
            err(r.clone()).contains("70000 bytes, over the 65536-byte limit for vmxnet3 by 4464")
        );
        r.chain = "https://boot.example/x".into();
        r.rom_has_https = true;
        r.rom = None;
        assert!(keys(&r).is_ok(), "an HTTPS-capable ROM takes https://");
    }

    #[test]
    fn opromsize_covers_the_rom() {
        let mut r = req();
        r.nic = Nic::by_name("e1000").unwrap();
        r.rom = Some(RomFacts {
            file: "x".into(),
            vendor: 0x8086,
            device: 0x100f,
            size: 73_216,
            limit: 262_144,
        });
        assert_eq!(keys(&r).unwrap()["ethernet0.opromsize"], "131072");
        r.rom.as_mut().unwrap().size = 51_712;
        assert_eq!(keys(&r).unwrap()["ethernet0.opromsize"], "65536");
    }

    #[test]
    fn escaping_per_format() {
        let mut keys = BTreeMap::new();
        keys.insert("k".to_string(), "a \"b\" | ${c} %{d} \\ it's".to_string());
        let ctx = RenderContext {
            nic: Nic::by_name("vmxnet3").unwrap(),
            ethernet: 0,
            vm: Some("my vm".into()),
            local_rom: "15ad07b0.rom".into(),
        };
        let body = |f| {
            let text = render(&keys, f, &ctx);
            text.lines()
                .filter(|l| l.contains("\"k\"") || l.starts_with("k ") || l.contains(" 'k"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(body(Format::Vmx), "k = \"a |22b|22 |7C ${c} %{d} \\ it's\"");
        assert_eq!(
            body(Format::Terraform),
            "  \"k\" = \"a \\\"b\\\" | $${c} %%{d} \\\\ it's\""
        );
        assert_eq!(
            render(&keys, Format::Govc, &ctx),
            "# the VM must boot with BIOS firmware (config.firmware = bios)\n\
             govc vm.change -vm 'my vm' \\\n  -e 'k=a \"b\" | ${c} %{d} \\ it'\\''s'\n"
        );
        assert!(render(&keys, Format::Powercli, &ctx)
            .contains("-Name 'k' -Value 'a \"b\" | ${c} %{d} \\ it''s'"));
        assert_eq!(yaml_str("{{ x }}"), "!unsafe \"{{ x }}\"");
    }
}
