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

use anyhow::Result;

use crate::{
    nic::Nic,
    vm::{
        deployment::{self, Rom, Target},
        network::Network,
        quote,
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
        Format::Ansible => format!(
            "\"/vmfs/volumes/{{{{ ipxe_datastore }}}}/{}\"",
            f.rom.datastore_path()
        ),
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

/// The fleet's playbook or Terraform.
pub fn render(f: &Fleet, format: Format) -> Result<String> {
    quote::check_text("--group", &f.group)?;
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
        ("@SRC@", quote(&f.rom_src.display().to_string())),
        ("@PATH@", quote(&f.rom.datastore_path())),
        ("@HTTPS@", f.rom.https.to_string()),
        (
            "@SCHEMES@",
            if f.rom.https { "https?" } else { "http" }.into(),
        ),
        (
            "@SCHEME_TEXT@",
            if f.rom.https {
                "http:// or https://"
            } else {
                "http://"
            }
            .into(),
        ),
        ("@SETTINGS@", lines),
    ];
    Ok(fill(template, &values))
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
    fn the_template_is_filled_in_one_pass() {
        let values = [("@A@", "@B@".to_string()), ("@B@", "b".to_string())];
        assert_eq!(fill("x @A@ @B@ a@b.c @", &values), "x @B@ b a@b.c @");
    }
}
