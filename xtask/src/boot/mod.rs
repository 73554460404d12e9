//! Booting ROMs in QEMU, and VMware's guestinfo channel, which QEMU lacks, answered for it.

pub mod cases;
pub mod gdbstub;
pub mod guestrpc;
pub mod os;
pub mod qemu;
