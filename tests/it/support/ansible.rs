//! `ansible-playbook`, the consumer of the playbooks we print: found once, and run with the
//! json callback so that a test reads each host's result of each task as data.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use super::{repo, skip};

/// `ansible-playbook`: $VSPHERE_IPXE_ANSIBLE_PLAYBOOK, else `.ci/run`'s venv, else PATH; None
/// (with a SKIP) where there is none.
pub fn playbook() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("VSPHERE_IPXE_ANSIBLE_PLAYBOOK").map(PathBuf::from),
        Some(repo().join("target/ansible/bin/ansible-playbook")),
        Some(PathBuf::from("ansible-playbook")),
    ];
    let found = candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        skip(
            "ansible-playbook is missing; .ci/run installs ansible==10.7.0 and pyvmomi==7.0.3 \
             into target/ansible (or set VSPHERE_IPXE_ANSIBLE_PLAYBOOK)",
        );
    }
    found
}

/// Each task's name and, per host, its result: what the json callback prints.
pub type Results = Vec<(String, BTreeMap<String, serde_json::Value>)>;

/// Runs `playbook` over `inventory` without a vCenter, and returns each task's results.
pub fn run_json(bin: &Path, playbook: &Path, inventory: &Path) -> Results {
    let out = Command::new(bin)
        .arg("-i")
        .arg(inventory)
        .args(["--forks", "4"])
        .arg(playbook)
        .env("ANSIBLE_STDOUT_CALLBACK", "ansible.builtin.json")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_LOCALHOST_WARNING", "0")
        .env_remove("VMWARE_HOST")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "ansible-playbook printed no JSON ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut results = Vec::new();
    for play in json["plays"].as_array().unwrap() {
        for task in play["tasks"].as_array().unwrap() {
            let name = task["task"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let hosts = serde_json::from_value(task["hosts"].clone()).unwrap();
            results.push((name, hosts));
        }
    }
    results
}
