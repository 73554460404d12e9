//! Putting a ROM and its keys on a vSphere VM: a plan made from read-only calls, then one
//! upload and one ReconfigVM_Task. Everything that can be refused is refused while planning, so
//! a refusal changes nothing.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

use crate::{
    nic::Nic,
    vm::network::Network,
    vm::server_text::Shown,
    vm::vmconfig::{self, Request},
    vm::vsphere::{self, Datastore, Session, Vm},
};

/// Where on a datastore ROMs go: `vsphere-ipxe-rom/<sha256[..16]>/<pciid>.rom`. Named by
/// content, so a running VM's ROM is never overwritten and VMs share one file.
pub const ROM_FOLDER: &str = "vsphere-ipxe-rom";

/// How long one vSphere task may take.
const TASK_TIMEOUT: Duration = Duration::from_secs(600);

/// A ROM to deploy, as read from disk.
#[derive(Debug, Clone)]
pub struct Rom {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub facts: vmconfig::RomFacts,
    pub https: bool,
}

impl Rom {
    /// The ROM file for `nic`, with what it and its manifest say of it.
    pub fn load(path: &std::path::Path, nic: &'static Nic) -> Result<Rom> {
        let (facts, https) = vmconfig::rom_facts(path, nic)?;
        Ok(Rom {
            file_name: nic.file_name(crate::nic::RomFormat::Rom),
            bytes: crate::check::romcheck::read(path)?,
            facts,
            https,
        })
    }

    pub fn sha256(&self) -> String {
        format!("{:x}", Sha256::digest(&self.bytes))
    }

    /// The ROM's path inside the datastore.
    pub fn datastore_path(&self) -> String {
        format!("{ROM_FOLDER}/{}/{}", &self.sha256()[..16], self.file_name)
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Target {
    pub vm: String,
    pub datastore: String,
    pub nic: &'static Nic,
    pub ethernet: u8,
    pub network: Network,
    /// Switch an EFI VM to BIOS firmware in the same reconfiguration.
    pub set_bios: bool,
}

/// What deploy will do, and what the VM has now.
#[derive(Debug)]
pub struct Plan {
    pub vm: Vm,
    pub datastore: Datastore,
    pub rom_path: String,
    /// The ROM is not on the datastore yet (or a damaged copy is).
    pub upload: bool,
    /// Every key `vmx` would print for this VM.
    pub keys: BTreeMap<String, String>,
    /// The keys whose value differs from the VM's.
    pub changes: BTreeMap<String, String>,
    pub to_bios: bool,
}

/// The keys deploy sets for this ROM at its datastore path, checked as `vmx` checks them; no
/// network. That is every key `vmx` prints but `ethernetN.virtualDev`: the vim25 reference
/// says extraConfig cannot set what other ConfigSpec properties set (the adapter's device
/// type), and vSphere ignores such keys, so deploy checks the adapter's type instead.
pub fn keys(target: &Target, rom: &Rom) -> Result<BTreeMap<String, String>> {
    let mut keys = vmconfig::keys(&Request {
        nic: target.nic,
        ethernet: target.ethernet,
        rom_path: vsphere::vmfs_path(&target.datastore, &rom.datastore_path()),
        network: target.network.clone(),
        rom: Some(rom.facts.clone()),
        rom_has_https: rom.https,
    })?;
    keys.remove(&format!("ethernet{}.virtualDev", target.ethernet));
    Ok(keys)
}

/// Reads the VM and the datastore and decides what to change; changes nothing.
pub fn plan(session: &Session, target: &Target, rom: &Rom) -> Result<Plan> {
    let keys = keys(target, rom)?;
    let vm = session.find_vm(&target.vm)?;
    check_nic(&vm, target)?;
    let to_bios = match vm.firmware.as_str() {
        "efi" if target.set_bios => true,
        "efi" => bail!(
            "VM '{}' boots with EFI firmware, where a BIOS option ROM never runs; pass \
             --set-bios-firmware to switch it to BIOS in the same change (its guest OS must then \
             boot with BIOS), or deploy to a VM with BIOS firmware",
            vm.name
        ),
        _ => false,
    };
    let datastore = session.find_datastore(&target.datastore)?;
    let rom_path = rom.datastore_path();
    let upload = match session.download(&datastore, &rom_path)? {
        Some(bytes) => bytes != rom.bytes,
        None => true,
    };
    let changes = keys
        .iter()
        .filter(|(k, v)| vm.extra_config.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Plan {
        vm,
        datastore,
        rom_path,
        upload,
        keys,
        changes,
        to_bios,
    })
}

/// The VM's adapters, as `ethernet0 e1000, ethernet2 vmxnet3`.
fn adapter_list(vm: &Vm) -> String {
    if vm.nics.is_empty() {
        return "it has no network adapter".into();
    }
    let list: Vec<String> = vm
        .nics
        .iter()
        .map(|(n, kind)| {
            let name = Nic::by_vim_type(kind).map_or(kind.as_str(), |nic| nic.name);
            format!("ethernet{n} {name}")
        })
        .collect();
    format!("its adapters: {}", list.join(", "))
}

fn check_nic(vm: &Vm, target: &Target) -> Result<()> {
    let eth = target.ethernet;
    let Some(kind) = vm.nics.get(&eth) else {
        bail!(
            "VM '{}' has no ethernet{eth} ({}); pass --ethernet N for the adapter that boots",
            vm.name,
            adapter_list(vm)
        );
    };
    if kind != target.nic.vim_type {
        let name = Nic::by_vim_type(kind).map_or(kind.as_str(), |n| n.name);
        bail!(
            "VM '{}' ethernet{eth} is {name} ({kind}), not {} ({}): deploy the {name} ROM with \
             --nic {name}, pick another adapter with --ethernet N, or change the VM's adapter type",
            vm.name,
            target.nic.name,
            adapter_list(vm)
        );
    }
    Ok(())
}

/// Uploads the ROM if it is not there, sets the keys in one ReconfigVM_Task and waits for it;
/// powers the VM on if asked and it is off.
pub fn apply(session: &Session, plan: &Plan, rom: &Rom, power_on: bool) -> Result<()> {
    if plan.upload {
        session.upload(&plan.datastore, &plan.rom_path, &rom.bytes)?;
    }
    if !plan.changes.is_empty() || plan.to_bios {
        // vSphere refuses a stale changeVersion with ConcurrentAccess, from the call or its task.
        let refused = |e: anyhow::Error| {
            if e.downcast_ref::<vsphere::Fault>()
                .is_some_and(|f| f.kind == "ConcurrentAccess")
            {
                anyhow::anyhow!(
                    "VM '{}' was changed by someone else after deploy read it (its changeVersion \
                     is no longer {}): its configuration was left as it is; run deploy again to \
                     plan against the VM as it is now",
                    plan.vm.name,
                    session
                        .shown()
                        .text(plan.vm.change_version.as_deref().unwrap_or("unset"))
                )
            } else {
                e
            }
        };
        let task = session
            .reconfigure(&plan.vm, &plan.changes, plan.to_bios.then_some("bios"))
            .map_err(refused)?;
        session.wait(&task, TASK_TIMEOUT).map_err(refused)?;
    }
    if power_on && plan.vm.power_state != "poweredOn" {
        let task = session.power_on(&plan.vm)?;
        session.wait(&task, TASK_TIMEOUT)?;
    }
    Ok(())
}

/// What the plan changes, for a person; `done` says whether it has been carried out. What the
/// server sent (the VM's reference, power state, firmware and old values) goes through `shown`.
pub fn describe(plan: &Plan, rom: &Rom, power_on: bool, done: bool, shown: &Shown) -> String {
    let mut out = String::new();
    if !done {
        out.push_str("dry run: the changes below are planned, and none is made\n");
    }
    let v = &plan.vm;
    let _ = writeln!(
        out,
        "vm        {} ({}), {}, firmware {}",
        shown.text(&v.name),
        shown.text(&v.moref.value),
        shown.text(&v.power_state),
        shown.text(&v.firmware)
    );
    let _ = writeln!(
        out,
        "rom       {} ({} bytes, sha256 {})",
        rom.file_name,
        rom.bytes.len(),
        rom.sha256()
    );
    let place = format!("[{}] {}", plan.datastore.name, plan.rom_path);
    if plan.upload {
        let _ = writeln!(out, "upload    {place}");
    } else {
        let _ = writeln!(out, "upload    {place} is there already: skipped");
    }
    for (k, new) in &plan.changes {
        let old = v
            .extra_config
            .get(k)
            .map_or("unset".to_string(), |o| format!("was {}", shown.text(o)));
        let _ = writeln!(out, "set       {k} = {new}  ({old})");
    }
    let same = plan.keys.len() - plan.changes.len();
    if same > 0 {
        let _ = writeln!(out, "unchanged {same} key(s) already set");
    }
    if plan.to_bios {
        let _ = writeln!(out, "set       firmware = bios  (was efi)");
    }
    if v.power_state == "poweredOn" && (!plan.changes.is_empty() || plan.to_bios) {
        let _ = writeln!(
            out,
            "note      the VM is powered on: it reads the ROM and the keys at its next power-on"
        );
    } else if power_on && v.power_state != "poweredOn" {
        let _ = writeln!(out, "power on  {}", v.name);
    }
    if !done {
        out.push_str("dry run: nothing was changed\n");
    }
    out
}
