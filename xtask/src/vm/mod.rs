//! The VM side: the keys that make a vSphere VM boot the ROM, written for the tools people use,
//! and put on a VM through the vSphere API.

pub mod deployment;
pub mod fleet;
pub mod http_url;
pub mod network;
pub mod quote;
pub mod server_text;
pub mod vmconfig;
pub mod vsphere;
