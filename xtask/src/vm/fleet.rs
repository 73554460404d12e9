//! What `deploy` does, for many VMs, in the tools fleets are run with: an Ansible playbook
//! over an inventory group, or Terraform for `for_each` over a map of VMs. Either uploads the
//! ROM once to its content-addressed path and gives each VM BIOS firmware and the same keys
//! `deploy` sets. Each VM's address, gateway, DNS and chain come from the inventory (or the
//! map); everything else is fixed here and quoted for its consumer. The text around the keys
//! is a template beside this file.
//!
//! Ansible: module arguments are ones community.vmware 4.8.1 (the tests run it) and 6.2.1
//! (the newest, read from its source) both take. `vsphere_copy` and `vsphere_file` build their
//! URL from `hostname` alone (`'https://%s%s' % (hostname, path)` in both), so a port goes
//! there.

use std::{fmt::Write as _, path::Path};

use anyhow::{bail, Context, Result};

use crate::{
    nic::Nic,
    vm::{
        deployment::{self, Rom, Target},
        network::{Network, MESSAGES, WHITESPACE_CHARS},
        quote::{self, FORBIDDEN},
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An Ansible playbook for an inventory group (community.vmware)
    Ansible,
    /// Terraform variables, a vsphere_file upload and a locals map for for_each
    Terraform,
}

/// What the fleet boots, and how.
pub struct Fleet<'a> {
    pub nic: &'static Nic,
    pub ethernet: u8,
    pub rom: &'a Rom,
    /// The ROM file as the control node reads it.
    pub rom_src: &'a Path,
    /// The scriptlet every VM gets; None is vmx's default.
    pub scriptlet: Option<String>,
    /// The Ansible inventory group whose hosts are the VMs.
    pub group: String,
}

/// Per-VM values: the guestinfo key, and the Jinja and Terraform expressions that fill it.
const PER_VM: &[(&str, &str, &str)] = &[
    (
        "guestinfo.ipxe.net0.ip",
        "\"{{ ipxe_address }}\"",
        "split(\"/\", vm.ip)[0]",
    ),
    (
        "guestinfo.ipxe.net0.netmask",
        "\"{{ ipxe_netmask }}\"",
        "cidrnetmask(vm.ip)",
    ),
    (
        "guestinfo.ipxe.net0.gateway",
        "\"{{ ipxe_gateway }}\"",
        "vm.gateway",
    ),
    ("guestinfo.ipxe.dns", "\"{{ ipxe_dns }}\"", "vm.dns"),
    (
        "guestinfo.ipxe.filename",
        "\"{{ ipxe_chain }}\"",
        "vm.chain",
    ),
];

/// The playbook and the Terraform, with `@NAME@` where this ROM's and NIC's values go.
const ANSIBLE: &str = include_str!("fleet.yml");
const TERRAFORM: &str = include_str!("fleet.tf");

/// The check of each VM's values from the inventory or the map, as `vm::network` checks them:
/// in Jinja (the playbook's assert) and as a Terraform expression (the map's validation).
const ANSIBLE_CHECK: &str = include_str!("fleet_check.j2");
const TERRAFORM_CHECK: &str = include_str!("fleet_check.hcl");

/// A dotted-quad IPv4 address as Rust's `Ipv4Addr` reads one: no leading zeros, none over 255.
const IPV4: &str = "^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])([.](25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$";

/// The keys every VM gets, as (key, value) in the format's own syntax: what `deploy` sets,
/// with the per-VM values as expressions and the rest fixed and quoted.
pub fn settings(f: &Fleet, format: Format) -> Result<Vec<(String, String)>> {
    // deploy's keys for a stand-in VM: the per-VM values are replaced below, and the datastore
    // is one name the ROM key's path is rebuilt around.
    let keys = deployment::keys(
        &Target {
            vm: String::new(),
            datastore: "datastore".into(),
            nic: f.nic,
            ethernet: f.ethernet,
            network: Network::parse(
                "192.0.2.10/24",
                "192.0.2.1",
                "192.0.2.53",
                "http://192.0.2.1/boot.ipxe",
                f.scriptlet.as_deref(),
            )?,
            set_bios: false,
        },
        f.rom,
    )?;
    let quote = match format {
        Format::Ansible => quote::yaml,
        Format::Terraform => quote::hcl,
    };
    let rom_path = match format {
        Format::Ansible => "\"{{ ipxe_rom_key }}\"".to_string(),
        Format::Terraform => format!(
            "\"/vmfs/volumes/${{var.ipxe_datastore}}/{}\"",
            f.rom.datastore_path()
        ),
    };
    Ok(keys
        .into_iter()
        .map(|(k, v)| {
            let value = if k == f.nic.vmware_key {
                rom_path.clone()
            } else if let Some((_, jinja, hcl)) = PER_VM.iter().find(|(g, ..)| *g == k) {
                match format {
                    Format::Ansible => jinja.to_string(),
                    Format::Terraform => hcl.to_string(),
                }
            } else {
                quote(&v)
            };
            (quote(&k), value)
        })
        .collect())
}

/// `hosts:` takes a host pattern: `all`, `*`, `web,db`, `~re`, `!x` or `a:&b` reach other
/// hosts than one group's. A plain name, as Ansible's inventory takes without a warning, is
/// only that group.
fn check_group(group: &str) -> Result<()> {
    quote::check_text("--group", group)?;
    let plain = group.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && group.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain || matches!(group, "all" | "ungrouped") {
        bail!(
            "--group '{}' is not a plain inventory group name: Ansible reads it as a host \
             pattern, which can pick other hosts than one group's (all, ungrouped, *, ?, [...], \
             commas, :, &, ! and ~); name one group, with letters, digits and _ and not a digit \
             first",
            group.escape_debug()
        );
    }
    Ok(())
}

/// The fleet's playbook or Terraform.
pub fn render(f: &Fleet, format: Format) -> Result<String> {
    check_group(&f.group)?;
    let src = f
        .rom_src
        .to_str()
        .with_context(|| format!("--rom {} is not UTF-8", f.rom_src.display()))?;
    quote::check_text("--rom", src)?;
    let mut lines = String::new();
    let settings = settings(f, format)?;
    let width = settings.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in settings {
        let _ = match format {
            Format::Ansible => writeln!(lines, "          - key: {k}\n            value: {v}"),
            Format::Terraform => writeln!(lines, "      {k:<width$} = {v}"),
        };
    }
    let (quote, template): (fn(&str) -> String, _) = match format {
        Format::Ansible => (quote::yaml, ANSIBLE),
        Format::Terraform => (quote::hcl, TERRAFORM),
    };
    let check = check(format, f.rom.https);
    let values = [
        ("@GROUP_TEXT@", f.group.clone()),
        ("@GROUP@", quote::yaml(&f.group)),
        ("@FILE@", f.rom.file_name.clone()),
        ("@NIC@", f.nic.name.to_string()),
        ("@ADAPTER@", adapter_note(f)),
        ("@SIZE@", f.rom.bytes.len().to_string()),
        ("@SHA256@", f.rom.sha256()),
        ("@ETH@", f.ethernet.to_string()),
        ("@UNIT@", (7 + u32::from(f.ethernet)).to_string()),
        ("@TOOL@", f.nic.tool_type.to_string()),
        ("@SRC@", quote(src)),
        ("@PATH@", quote(&f.rom.datastore_path())),
        ("@HTTPS@", f.rom.https.to_string()),
        ("@CHECK@", check.clone()),
        ("@PROBLEMS@", check),
        ("@SETTINGS@", lines),
    ];
    Ok(fill(template, &values))
}

/// A character class of ranges, in a consumer's regex syntax and string literal.
type Class = fn(&[(char, char)], bool) -> String;

/// The check of a VM's values in the consumer's language, with vmx's messages and character
/// classes written into it.
fn check(format: Format, https: bool) -> String {
    let forbidden: Vec<(char, char)> = FORBIDDEN.iter().map(|&(a, b, _)| (a, b)).collect();
    let (template, text, class): (_, fn(&str) -> String, Class) = match format {
        Format::Ansible => (ANSIBLE_CHECK, jinja_string, python_class),
        Format::Terraform => (TERRAFORM_CHECK, quote::hcl, re2_class),
    };
    let mut values = vec![
        ("@FORBIDDEN@".to_string(), class(&forbidden, false)),
        ("@NOT_FORBIDDEN@".to_string(), class(&forbidden, true)),
        ("@WHITESPACE@".to_string(), class(WHITESPACE_CHARS, false)),
        (
            "@NOT_WHITESPACE@".to_string(),
            class(WHITESPACE_CHARS, true),
        ),
        ("@KIND@".to_string(), kind(format)),
        ("@CODE@".to_string(), HCL_CODE_POINT.to_string()),
        ("@V4@".to_string(), text(IPV4)),
        ("@HTTPS@".to_string(), https.to_string()),
    ];
    for (name, message) in MESSAGES {
        values.push((format!("@M_{name}@"), text(message)));
    }
    let values: Vec<(&str, String)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    fill(template, &values).trim_end().to_string()
}

/// The code point of the one-character string `c`, in Terraform, which has no `ord`: its
/// UTF-8 bytes from `urlencode` (which writes a space as `+`), decoded.
const HCL_CODE_POINT: &str = "[for b in [[for h in split(\"%\", c == \" \" ? \"%20\" : urlencode(c)) : \
    parseint(h, 16) if h != \"\"]] : [for q in [concat(b, [128, 128, 128])] : length(b) == 1 ? q[0] : \
    length(b) == 2 ? (q[0] - 192) * 64 + q[1] - 128 : length(b) == 3 ? (q[0] - 224) * 4096 + \
    (q[1] - 128) * 64 + q[2] - 128 : (q[0] - 240) * 262144 + (q[1] - 128) * 4096 + (q[2] - 128) \
    * 64 + q[3] - 128][0]][0]";

/// A Jinja2 string literal: Jinja reads backslash escapes in one as Python does.
fn jinja_string(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A Python regex character class of these ranges (or of all others, anchored, for the text
/// before the first of them), as a Jinja2 string literal whose `\U` escapes Jinja reads.
fn python_class(ranges: &[(char, char)], before: bool) -> String {
    let set: String = ranges
        .iter()
        .map(|&(a, b)| format!("\\U{:08x}-\\U{:08x}", a as u32, b as u32))
        .collect();
    if before {
        format!("'^[^{set}]*'")
    } else {
        format!("'[{set}]'")
    }
}

/// The same class for RE2 (Terraform's `regex`), as an HCL string.
fn re2_class(ranges: &[(char, char)], before: bool) -> String {
    let set: String = ranges
        .iter()
        .map(|&(a, b)| format!("\\x{{{:x}}}-\\x{{{:x}}}", a as u32, b as u32))
        .collect();
    quote::hcl(&if before {
        format!("^[^{set}]*")
    } else {
        format!("[{set}]")
    })
}

/// The kind of the forbidden character with code point `n`, as the consumer writes it.
fn kind(format: Format) -> String {
    let mut out = String::new();
    for &(a, b, kind) in FORBIDDEN {
        let (a, b) = (a as u32, b as u32);
        let _ = match format {
            Format::Ansible => write!(out, "'{kind}' if {a} <= n <= {b} else "),
            Format::Terraform => write!(out, "n >= {a} && n <= {b} ? \"{kind}\" : "),
        };
    }
    match format {
        Format::Ansible => format!("({out}'')"),
        Format::Terraform => format!("({out}\"\")"),
    }
}

/// Where Terraform sets the adapter type: the provider's `adapter_type`, where it has this one.
fn adapter_note(f: &Fleet) -> String {
    let eth = f.ethernet;
    if f.nic.terraform_adapter {
        format!(
            "and its network_interface block {eth} (ethernet{eth}) with adapter_type = \"{}\".",
            f.nic.name
        )
    } else {
        format!(
            "The provider's adapter_type has no {}: ethernet{eth} must already be one.",
            f.nic.name
        )
    }
}

/// The template with each `@NAME@` replaced, in one pass: a value is never scanned again.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('@') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match values.iter().find(|(name, _)| tail.starts_with(name)) {
            Some((name, value)) => {
                out.push_str(value);
                rest = &tail[name.len()..];
            }
            None => {
                out.push('@');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_are_filled_in_full() {
        for (format, https) in [(Format::Ansible, true), (Format::Terraform, false)] {
            let text = check(format, https);
            let left =
                text.split('@').skip(1).step_by(2).find(|w| {
                    !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                });
            assert_eq!(left, None, "{text}");
        }
    }

    #[test]
    fn the_template_is_filled_in_one_pass() {
        let values = [("@A@", "@B@".to_string()), ("@B@", "b".to_string())];
        assert_eq!(fill("x @A@ @B@ a@b.c @", &values), "x @B@ b a@b.c @");
    }
}
