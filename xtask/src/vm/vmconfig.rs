//! The VM side: the guestinfo and ROM keys a vSphere VM needs to boot our ROM, validated, and
//! written as Terraform `extra_config`, `.vmx` lines, a `govc vm.change` command or JSON.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{bail, Context, Result};

use crate::{
    check::romcheck,
    nic::{Nic, VMWARE_ROM_LIMIT},
    record::{Manifest, MANIFEST},
    util,
    vm::{
        network::{say, Arg, Network, NO_HTTPS},
        quote::{self, check_text},
    },
};

/// A VM has at most ten virtual NICs, ethernet0 to ethernet9.
pub const MAX_ETHERNET: u8 = 9;

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
    nic: &'static Nic,
    ethernet: u8,
    /// The VM's name; None leaves it to the tool's own default (govc reads GOVC_VM).
    vm: Option<String>,
    /// The local ROM file to upload (govc), or its file name.
    local_rom: String,
}

impl RenderContext {
    /// Checks the free text that reaches the printed commands.
    pub fn new(
        nic: &'static Nic,
        ethernet: u8,
        vm: Option<String>,
        local_rom: String,
    ) -> Result<RenderContext> {
        if let Some(vm) = &vm {
            check_text("--vm", vm)?;
        }
        check_text("--rom", &local_rom)?;
        Ok(RenderContext {
            nic,
            ethernet,
            vm,
            local_rom,
        })
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
    pub network: Network,
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
    let bytes = romcheck::read(path).context("--rom")?;
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
    if let Some(info) = info {
        let sha = util::sha256_hex(&bytes);
        if sha != info.sha256 {
            bail!(
                "the {MANIFEST} beside --rom {} records sha256 {} for {name}, but the file's is \
                 {sha}: the manifest is stale or belongs to another build, so its size limit and \
                 HTTPS flag cannot be trusted; rebuild the ROM with cargo xtask build-rom, or copy \
                 the ROM alone into a directory of its own",
                path.display(),
                info.sha256
            );
        }
    }
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
    let net = &req.network;
    if net.needs_https() && !req.rom_has_https {
        let args = [Arg::S("--chain"), Arg::S(&net.chain)];
        bail!(say(NO_HTTPS, &args));
    }
    if req.ethernet > MAX_ETHERNET {
        bail!(
            "--ethernet {}: a VM has ethernet0 to ethernet{MAX_ETHERNET}",
            req.ethernet
        );
    }
    check_text("--rom-path", &req.rom_path)?;
    if req.rom_path.trim().is_empty() {
        bail!(
            "--rom-path is empty: give the ROM's datastore path, e.g. /vmfs/volumes/datastore1/{}",
            req.nic.file_name(crate::nic::RomFormat::Rom)
        );
    }
    let opromsize = match &req.rom {
        Some(rom) => opromsize(req.nic, rom)?,
        None => VMWARE_ROM_LIMIT,
    };
    let eth = format!("ethernet{}", req.ethernet);
    let mut keys = BTreeMap::new();
    keys.insert(format!("{eth}.virtualDev"), req.nic.name.to_string());
    keys.insert(format!("{eth}.opromsize"), opromsize.to_string());
    keys.insert(req.nic.vmware_key.to_string(), req.rom_path.clone());
    for (k, v) in net.guestinfo() {
        keys.insert(k.to_string(), v);
    }
    Ok(keys)
}

/// `ethernetN.opromsize` for this ROM: the power of two that holds it, at least 64 KiB, once
/// the ROM is known to be the NIC's and within both its own limit and what VMware accepts.
fn opromsize(nic: &Nic, rom: &RomFacts) -> Result<u64> {
    if (rom.vendor, rom.device) != (nic.vendor, nic.device) {
        bail!(
            "{} is a ROM for PCI id {:04x}:{:04x}, but {} is {:04x}:{:04x}: build it with --nic {}",
            rom.file,
            rom.vendor,
            rom.device,
            nic.name,
            nic.vendor,
            nic.device,
            nic.name
        );
    }
    let limit = nic.hard_limit.map_or(rom.limit, |hard| rom.limit.min(hard));
    if rom.size > limit {
        bail!(
            "{} is {} bytes, over the {limit}-byte limit for {} by {}",
            rom.file,
            rom.size,
            nic.name,
            rom.size - limit
        );
    }
    Ok(rom.size.next_power_of_two().max(VMWARE_ROM_LIMIT))
}

/// Renders the keys in one of the output formats. The BIOS firmware these ROMs need is set
/// where the format can; where a tool manages the NIC type itself, that setting is named
/// instead of a raw `ethernetN.virtualDev` key the tool may override.
pub fn render(keys: &BTreeMap<String, String>, format: Format, ctx: &RenderContext) -> String {
    match format {
        Format::Terraform => terraform(keys, ctx),
        Format::Packer => packer(keys, ctx),
        Format::Ansible => ansible(keys, ctx),
        Format::Vmx => vmx(keys),
        Format::Govc => govc(keys, ctx),
        Format::Powercli => powercli(keys, ctx),
        Format::Json => serde_json::to_string_pretty(keys).expect("strings serialize") + "\n",
    }
}

/// The keys but the NIC type's own, where the tool sets the adapter type itself.
fn without_dev<'a>(
    keys: &'a BTreeMap<String, String>,
    ctx: &RenderContext,
) -> BTreeMap<&'a String, &'a String> {
    let dev = format!("ethernet{}.virtualDev", ctx.ethernet);
    keys.iter().filter(|(k, _)| **k != dev).collect()
}

/// `vsphere_virtual_machine` arguments; the adapter type is the provider's own where it has one.
fn terraform(keys: &BTreeMap<String, String>, ctx: &RenderContext) -> String {
    let mut out = String::new();
    let eth = ctx.ethernet;
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
            "# the provider has no adapter_type for {}: ethernet{eth}.virtualDev below sets it",
            ctx.nic.name
        );
    }
    let keys = if tf {
        without_dev(keys, ctx)
    } else {
        keys.iter().collect()
    };
    out.push_str(&hcl_map("extra_config", &keys));
    out
}

/// vsphere-iso / vsphere-clone `configuration_parameters`.
fn packer(keys: &BTreeMap<String, String>, ctx: &RenderContext) -> String {
    let mut out = String::new();
    let eth = ctx.ethernet;
    out.push_str("firmware = \"bios\"\n");
    let _ = writeln!(
        out,
        "# ethernet{eth} is network_adapters block {eth}: set its network_card = \"{}\" \
         (vsphere-clone keeps the template's adapter and firmware)",
        ctx.nic.tool_type
    );
    out.push_str(&hcl_map(
        "configuration_parameters",
        &without_dev(keys, ctx),
    ));
    out
}

/// `community.vmware.vmware_guest` parameters.
fn ansible(keys: &BTreeMap<String, String>, ctx: &RenderContext) -> String {
    let mut out = String::new();
    let eth = ctx.ethernet;
    let _ = writeln!(
        out,
        "# community.vmware.vmware_guest parameters; ethernet{eth} is networks[{eth}]: \
         set its device_type: {}",
        ctx.nic.tool_type
    );
    // vmware_guest sets the firmware only when it creates the VM (on an existing one it reports
    // a change and leaves it as it was); `cargo xtask fleet` switches it with the boot manager.
    out.push_str(
        "# hardware.boot_firmware takes effect when vmware_guest creates the VM; switch an existing\n\
         # one with community.vmware.vmware_guest_boot_manager (boot_firmware: bios)\n\
         hardware:\n  boot_firmware: bios\nadvanced_settings:\n",
    );
    for (k, v) in without_dev(keys, ctx) {
        let _ = writeln!(
            out,
            "  - key: {}\n    value: {}",
            quote::yaml(k),
            quote::yaml(v)
        );
    }
    out
}

/// Lines for the `.vmx` file.
fn vmx(keys: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    out.push_str("firmware = \"bios\"\n");
    for (k, v) in keys {
        let _ = writeln!(out, "{k} = {}", quote::vmx(v));
    }
    out
}

/// `govc datastore.upload` and `govc vm.change`; govc cannot set the firmware.
fn govc(keys: &BTreeMap<String, String>, ctx: &RenderContext) -> String {
    let mut out = String::new();
    // The VM must use BIOS firmware; `govc vm.change` cannot set it.
    out.push_str("# the VM must boot with BIOS firmware (config.firmware = bios)\n");
    if let Some((ds, path)) = keys
        .get(ctx.nic.vmware_key)
        .and_then(|p| p.strip_prefix("/vmfs/volumes/"))
        .and_then(|p| p.split_once('/'))
    {
        // `--` ends govc's flags (Go's flag package): a path that starts with `-` is a file.
        let _ = writeln!(
            out,
            "govc datastore.upload -ds {} -- {} {}",
            quote::shell(ds),
            quote::shell(&ctx.local_rom),
            quote::shell(path)
        );
    }
    out.push_str("govc vm.change");
    if let Some(vm) = &ctx.vm {
        let _ = write!(out, " -vm {}", quote::shell(vm));
    }
    for (k, v) in keys {
        let _ = write!(out, " \\\n  -e {}", quote::shell(&format!("{k}={v}")));
    }
    out.push('\n');
    out
}

/// `New-AdvancedSetting` commands and a reconfiguration to BIOS firmware.
fn powercli(keys: &BTreeMap<String, String>, ctx: &RenderContext) -> String {
    let mut out = String::new();
    // Get-VM -Name reads `*`, `?` and `[...]` as wildcards and ignores case: the name is
    // escaped for its wildcards, the match made exact, and one VM required.
    let name = ctx
        .vm
        .as_deref()
        .map_or("$VMName".to_string(), quote::powershell);
    let _ = writeln!(
        out,
        "$vm = @(Get-VM -Name ([WildcardPattern]::Escape({name})) | Where-Object {{ $_.Name -ceq {name} }})\n\
         if (@($vm).Count -ne 1) {{ throw \"$(@($vm).Count) VMs have this name: give the name of one\" }}\n\
         $vm = $vm[0]"
    );
    for (k, v) in keys {
        let _ = writeln!(
            out,
            "New-AdvancedSetting -Entity $vm -Name {} -Value {} -Force -Confirm:$false | Out-Null",
            quote::powershell(k),
            quote::powershell(v)
        );
    }
    out.push_str(
        "# BIOS firmware, which these ROMs need (the VM must be powered off)\n\
         $spec = New-Object VMware.Vim.VirtualMachineConfigSpec\n\
         $spec.Firmware = 'bios'\n\
         $vm.ExtensionData.ReconfigVM($spec)\n",
    );
    out
}

fn hcl_map(name: &str, keys: &BTreeMap<&String, &String>) -> String {
    let mut out = format!("{name} = {{\n");
    let width = keys.keys().map(|k| k.len() + 2).max().unwrap_or(0);
    for (k, v) in keys {
        let _ = writeln!(out, "  {:<width$} = {}", quote::hcl(k), quote::hcl(v));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            nic: Nic::by_name("vmxnet3").unwrap(),
            ethernet: 0,
            rom_path: "/vmfs/volumes/ds1/15ad07b0.rom".into(),
            network: Network::parse(
                "10.0.0.11/24",
                "10.0.0.1",
                "10.0.0.200",
                "http://boot.example/boot.ipxe",
                None,
            )
            .unwrap(),
            rom: None,
            rom_has_https: false,
        }
    }

    fn err(r: Request) -> String {
        format!("{:#}", keys(&r).unwrap_err())
    }

    fn facts(vendor: u16, device: u16, size: u64, limit: u64) -> Option<RomFacts> {
        Some(RomFacts {
            file: "x.rom".into(),
            vendor,
            device,
            size,
            limit,
        })
    }

    #[test]
    fn the_request_is_checked_against_the_rom() {
        let mut r = req();
        r.rom = facts(0x8086, 0x100f, 50_000, 65_536);
        assert!(err(r.clone())
            .contains("x.rom is a ROM for PCI id 8086:100f, but vmxnet3 is 15ad:07b0"));
        r.rom = facts(0x15ad, 0x07b0, 70_000, 65_536);
        assert!(
            err(r.clone()).contains("70000 bytes, over the 65536-byte limit for vmxnet3 by 4464")
        );
        // A manifest may claim any limit; VMware still refuses a vmxnet3 ROM over 64 KiB.
        r.rom = facts(0x15ad, 0x07b0, 131_072, 262_144);
        assert!(err(r.clone()).contains("over the 65536-byte limit for vmxnet3"));
        r.rom = None;
        r.network.chain = "https://boot.example/x".into();
        assert!(err(r.clone()).contains("HTTPS is cut from this ROM"));
        r.rom_has_https = true;
        assert!(keys(&r).is_ok(), "an HTTPS-capable ROM takes https://");
        r.ethernet = 10;
        assert!(err(r.clone()).contains("--ethernet 10: a VM has ethernet0 to ethernet9"));
        r.ethernet = 0;
        r.rom_path = "/vmfs/volumes/ds/x\n.rom".into();
        assert!(err(r).contains("--rom-path has a control character, U+000A, at character 19"));
    }

    #[test]
    fn opromsize_covers_the_rom() {
        let mut r = req();
        r.nic = Nic::by_name("e1000").unwrap();
        r.rom = facts(0x8086, 0x100f, 73_216, 262_144);
        assert_eq!(keys(&r).unwrap()["ethernet0.opromsize"], "131072");
        r.rom.as_mut().unwrap().size = 51_712;
        assert_eq!(keys(&r).unwrap()["ethernet0.opromsize"], "65536");
    }

    #[test]
    fn escaping_per_format() {
        let mut keys = BTreeMap::new();
        keys.insert("k".to_string(), "a \"b\" | ${c} %{d} \\ it's".to_string());
        let ctx = RenderContext::new(
            Nic::by_name("vmxnet3").unwrap(),
            0,
            Some("my vm".into()),
            "15ad07b0.rom".into(),
        )
        .unwrap();
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
        assert_eq!(quote::yaml("{{ x }}"), "!unsafe \"{{ x }}\"");
        let err = RenderContext::new(ctx.nic, 0, Some("web’\u{202e}".into()), "r".into());
        assert!(format!("{:#}", err.unwrap_err()).contains("--vm has a bidirectional control"));
    }
}
