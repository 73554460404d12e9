//! The NICs a vSphere VM can network-boot from, as data.

use anyhow::{bail, Result};

/// VMware refuses a larger option ROM for vmxnet3 ("unexpected file size").
pub const VMWARE_ROM_LIMIT: u64 = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nic {
    /// The name users type (`--nic vmxnet3`) and `ethernetN.virtualDev` takes.
    pub name: &'static str,
    pub vendor: u16,
    pub device: u16,
    /// The VMX key that points the NIC at a ROM file.
    pub vmware_key: &'static str,
    /// Largest ROM VMware loads for this NIC unless a profile raises it.
    pub default_limit: u64,
    /// Largest ROM VMware loads at all, whatever `opromsize` says; None where `opromsize`
    /// can raise it.
    pub hard_limit: Option<u64>,
    /// Whether iPXE can build a `.mrom` (ROM that maps the rest of itself through a BAR).
    pub mrom: bool,
    /// Built by `--nic all`.
    pub in_all: bool,
    /// The QEMU device with this PCI id, for boot tests.
    pub qemu_device: &'static str,
    /// The vSphere API's type for this adapter in `config.hardware.device`.
    pub vim_type: &'static str,
    /// The adapter type as Packer (`network_card`) and Ansible (`device_type`) name it.
    pub tool_type: &'static str,
    /// Terraform's vSphere provider can set it as `network_interface.adapter_type`.
    pub terraform_adapter: bool,
}

pub const NICS: &[Nic] = &[
    Nic {
        name: "vmxnet3",
        vendor: 0x15ad,
        device: 0x07b0,
        vmware_key: "nx3bios.filename",
        default_limit: VMWARE_ROM_LIMIT,
        hard_limit: Some(VMWARE_ROM_LIMIT),
        mrom: false,
        in_all: true,
        qemu_device: "vmxnet3",
        vim_type: "VirtualVmxnet3",
        tool_type: "vmxnet3",
        terraform_adapter: true,
    },
    Nic {
        name: "e1000",
        vendor: 0x8086,
        device: 0x100f,
        vmware_key: "e1000bios.filename",
        default_limit: VMWARE_ROM_LIMIT,
        hard_limit: None,
        mrom: true,
        in_all: true,
        qemu_device: "e1000-82545em",
        vim_type: "VirtualE1000",
        tool_type: "e1000",
        terraform_adapter: true,
    },
    Nic {
        name: "e1000e",
        vendor: 0x8086,
        device: 0x10d3,
        vmware_key: "e1000ebios.filename",
        default_limit: VMWARE_ROM_LIMIT,
        hard_limit: None,
        mrom: true,
        in_all: true,
        qemu_device: "e1000e",
        vim_type: "VirtualE1000e",
        tool_type: "e1000e",
        terraform_adapter: true,
    },
    Nic {
        name: "vlance",
        vendor: 0x1022,
        device: 0x2000,
        vmware_key: "nbios.filename",
        default_limit: VMWARE_ROM_LIMIT,
        hard_limit: None,
        mrom: false,
        in_all: false,
        qemu_device: "pcnet",
        vim_type: "VirtualPCNet32",
        tool_type: "pcnet32",
        terraform_adapter: false,
    },
];

/// The file format iPXE builds for a NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RomFormat {
    Rom,
    Mrom,
}

impl RomFormat {
    pub fn extension(self) -> &'static str {
        match self {
            RomFormat::Rom => "rom",
            RomFormat::Mrom => "mrom",
        }
    }
}

impl Nic {
    /// `15ad07b0`: how iPXE names the target and how we name the output.
    pub fn pci_id(&self) -> String {
        format!("{:04x}{:04x}", self.vendor, self.device)
    }

    pub fn file_name(&self, format: RomFormat) -> String {
        format!("{}.{}", self.pci_id(), format.extension())
    }

    /// The make target, relative to iPXE's `src/`.
    pub fn make_target(&self, format: RomFormat) -> String {
        format!("bin/{}", self.file_name(format))
    }

    /// The linked ELF iPXE keeps beside the ROM; it names every linked object.
    pub fn elf_target(&self, format: RomFormat) -> String {
        format!("bin/{}.tmp", self.file_name(format))
    }

    pub fn by_name(name: &str) -> Result<&'static Nic> {
        match NICS.iter().find(|n| n.name == name) {
            Some(nic) => Ok(nic),
            None => bail!("unknown NIC '{name}': expected one of {}, or all", names()),
        }
    }

    pub fn by_vim_type(kind: &str) -> Option<&'static Nic> {
        NICS.iter().find(|n| n.vim_type == kind)
    }

    pub fn by_pci(vendor: u16, device: u16) -> Option<&'static Nic> {
        NICS.iter()
            .find(|n| n.vendor == vendor && n.device == device)
    }
}

pub fn names() -> String {
    NICS.iter().map(|n| n.name).collect::<Vec<_>>().join(", ")
}

/// Resolves `--nic` values (`all` expands to the NICs vSphere offers by default),
/// keeping table order and dropping repeats.
pub fn select(names: &[String]) -> Result<Vec<&'static Nic>> {
    if names.is_empty() {
        bail!(
            "no NIC given: pass --nic with one of {}, or all",
            self::names()
        );
    }
    let mut picked: Vec<&'static Nic> = Vec::new();
    for name in names {
        for part in name.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if part == "all" {
                picked.extend(NICS.iter().filter(|n| n.in_all));
            } else {
                picked.push(Nic::by_name(part)?);
            }
        }
    }
    picked.sort();
    picked.dedup();
    picked.sort_by_key(|n| NICS.iter().position(|m| m == *n));
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_ids_are_ipxe_target_names() {
        let ids: Vec<_> = NICS.iter().map(|n| n.pci_id()).collect();
        assert_eq!(ids, ["15ad07b0", "8086100f", "808610d3", "10222000"]);
        assert_eq!(NICS[1].make_target(RomFormat::Mrom), "bin/8086100f.mrom");
        assert_eq!(NICS[0].elf_target(RomFormat::Rom), "bin/15ad07b0.rom.tmp");
    }

    #[test]
    fn all_expands_in_table_order_without_repeats() {
        let got = select(&["e1000e".into(), "all".into()]).unwrap();
        let names: Vec<_> = got.iter().map(|n| n.name).collect();
        assert_eq!(names, ["vmxnet3", "e1000", "e1000e"]);
        let got = select(&["vlance,vmxnet3".into()]).unwrap();
        assert_eq!(
            got.iter().map(|n| n.name).collect::<Vec<_>>(),
            ["vmxnet3", "vlance"]
        );
    }

    #[test]
    fn unknown_nic_lists_the_choices() {
        let err = select(&["vmxnet2".into()]).unwrap_err().to_string();
        assert!(err.contains("unknown NIC 'vmxnet2'"), "{err}");
        assert!(err.contains("vmxnet3, e1000, e1000e, vlance"), "{err}");
    }
}
