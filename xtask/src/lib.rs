//! vsphere-ipxe-rom: reproducible iPXE option ROMs for VMware vSphere VMs.
//!
//! One module per pipeline stage: `source` (pinned tree) → `profile` + `patch` (what to build)
//! → `compile` (make, natively or in a container) → `romcheck` → `emit`. `pipeline` runs them.

pub mod archive;
pub mod audit;
pub mod boot;
pub mod budget;
pub mod cache;
pub mod compile;
pub mod container;
pub mod deployment;
pub mod digest;
pub mod emit;
pub mod gdbstub;
pub mod guestrpc;
pub mod nic;
pub mod patch;
pub mod pin;
pub mod pipeline;
pub mod profile;
pub mod project;
pub mod release;
pub mod romcheck;
pub mod series;
pub mod source;
pub mod toolchain;
pub mod util;
pub mod vmconfig;
pub mod vsphere;
