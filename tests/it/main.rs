//! The end-to-end tests: one binary, so `support` is compiled once. Each module runs the real
//! tool against real parts (make, Docker, QEMU, vcsim, the parsers of the formats we print);
//! a test that needs a part this machine lacks says SKIP and why.

mod support;

mod boot;
mod build_rom;
mod deploy;
mod fetch;
mod fleet;
mod hostile;
mod inspect;
mod patches;
mod real_ipxe;
mod rebuild;
mod release;
mod tidy;
mod toolchain;
mod upstream;
mod vmx;
