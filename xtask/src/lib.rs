//! vsphere-ipxe-rom: reproducible iPXE option ROMs for VMware vSphere VMs.
//!
//! The folders are the pipeline: `source` (the pinned tree) → `builder` (profile, patches, make,
//! natively or in the locked container) → `check` (ROM checks, audit, budget) → `output`
//! (outputs, releases). Beside it: `vm` (the keys a VM needs, their formats, and the vSphere
//! API) and `boot` (QEMU boots, with the VMware backdoor answered over QEMU's gdbstub). `ops`
//! holds one operation per command, running the stages; `record` is the build record they all
//! share, and `input` the one way every file a user gives is read. The commands that parse
//! flags and call `ops` live in the binary's `cmd/`.

pub mod boot;
pub mod builder;
pub mod cache;
pub mod check;
pub mod http;
pub mod input;
pub mod nic;
pub mod ops;
pub mod output;
pub mod project;
pub mod record;
pub mod source;
pub mod util;
pub mod vm;
