//! One file per command: parse its flags, call the library, print. Nothing in the library
//! reaches back in here.

pub mod bench;
pub mod boot;
pub mod build_rom;
pub mod check_size;
pub mod deploy;
pub mod fetch;
pub mod inspect;
pub mod lock_toolchain;
pub mod pin;
pub mod release;
pub mod sizes;
pub mod verify;
pub mod vmx;
