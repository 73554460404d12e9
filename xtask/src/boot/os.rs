//! The operating system `boot-test --path os` boots: Debian's cloud kernel and an initrd the
//! tool makes from a static busybox, both locked by sha256 in `configs/boot-fixtures.lock`.
//! The initrd's `/init` prints, on the serial console, what Linux was handed on its command
//! line (the address, gateway and DNS iPXE read from guestinfo, and a nonce) with the
//! sha256 of the whole command line, then powers off.

use std::{fs, io::Write};

use anyhow::{bail, Context, Result};
use flate2::{write::GzEncoder, Compression, GzBuilder};
use xshell::{cmd, Shell};

use crate::{
    builder::toolchain::{self, Lock, Package},
    cache::Cache,
    project::Project,
    util,
};

pub const LOCK: &str = "boot-fixtures.lock";
const AREA: &str = "boot-os";

/// The serial console line `/init` prints; everything after it is `key=value` words.
pub const REPORT: &str = "vsphere-ipxe-rom init:";

/// Kernel parameters carrying what iPXE knew; Linux ignores them (they have a dot and no
/// module of that name), `/init` reads them back from `/proc/cmdline`.
const PARAM: &str = "vsphere_ipxe_rom";

/// `/init`: mount /proc, read the command line, print one report line and power off.
const INIT: &str = r#"#!/bin/busybox sh
bb=/bin/busybox
$bb mount -t proc proc /proc
ip=- gateway=- dns=- nonce=-
for word in $($bb cat /proc/cmdline); do
    case "$word" in
        vsphere_ipxe_rom.ip=*) ip=${word#*=} ;;
        vsphere_ipxe_rom.gateway=*) gateway=${word#*=} ;;
        vsphere_ipxe_rom.dns=*) dns=${word#*=} ;;
        vsphere_ipxe_rom.nonce=*) nonce=${word#*=} ;;
    esac
done
sum=$($bb sha256sum /proc/cmdline)
echo "vsphere-ipxe-rom init: ip=$ip gateway=$gateway dns=$dns nonce=$nonce cmdline-sha256=${sum%% *}"
$bb poweroff -f
"#;

/// The kernel and initrd to boot, as bytes.
pub struct Os {
    /// `vmlinuz-<version>` as Debian names it.
    pub kernel_name: String,
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
}

/// The boot fixtures' lock, if the project has one.
pub fn lock(project: &Project) -> Result<Lock> {
    Lock::load(&project.configs().join(LOCK))
}

/// Whether the fixtures are all in the cache; the error says how to get them.
pub fn prepare_check(project: &Project, cache: &Cache) -> Result<()> {
    fixtures(&lock(project)?, cache).map(|_| ())
}

/// A value no earlier boot could have printed: the time and this process, hashed.
pub fn nonce() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    util::sha256_hex(format!("{now}-{}", std::process::id()).as_bytes())[..16].to_string()
}

/// The kernel and initrd from the cached fixtures; an error names the command that fetches
/// them. The kernel is extracted once and kept in the cache by its .deb's sha256.
pub fn prepare(project: &Project, cache: &Cache) -> Result<Os> {
    let lock = lock(project)?;
    let (kernel_deb, busybox_deb) = fixtures(&lock, cache)?;
    let sh = Shell::new()?;
    let extracted = cache
        .area(AREA)?
        .join(format!("{}.vmlinuz", kernel_deb.sha256));
    let kernel_name = format!(
        "vmlinuz-{}",
        kernel_deb.name.trim_start_matches("linux-image-")
    );
    let kernel = match fs::read(&extracted) {
        Ok(bytes) => bytes,
        Err(_) => {
            let bytes = extract(&sh, cache, kernel_deb, &format!("./boot/{kernel_name}"))?;
            cache.put(AREA, &format!("{}.vmlinuz", kernel_deb.sha256), &bytes)?;
            bytes
        }
    };
    let busybox = extract(&sh, cache, busybox_deb, "./bin/busybox")?;
    Ok(Os {
        kernel_name,
        kernel,
        initrd: initrd(&busybox)?,
    })
}

/// The locked kernel and busybox .debs, each checked to be in the cache.
fn fixtures<'a>(lock: &'a Lock, cache: &Cache) -> Result<(&'a Package, &'a Package)> {
    Ok((
        fixture(lock, cache, |p| p.name.starts_with("linux-image-"))?,
        fixture(lock, cache, |p| p.name == "busybox-static")?,
    ))
}

/// The locked package `pick` chooses, checked to be in the cache.
fn fixture<'a>(
    lock: &'a Lock,
    cache: &Cache,
    pick: impl Fn(&Package) -> bool,
) -> Result<&'a Package> {
    let p = lock
        .packages
        .iter()
        .find(|p| pick(p))
        .with_context(|| format!("configs/{LOCK} locks no kernel or no busybox-static"))?;
    if !toolchain::cached(cache, &p.sha256)?.is_file() {
        bail!(
            "{} {} is not in the cache: run cargo xtask fetch --boot-fixtures (or, offline, \
             cargo xtask fetch --boot-fixtures --debs DIR with the .debs of configs/{LOCK})",
            p.name,
            p.version
        );
    }
    Ok(p)
}

/// One file of a cached .deb, checked against the lock's sha256 first (dpkg-deb reads it).
fn extract(sh: &Shell, cache: &Cache, p: &Package, member: &str) -> Result<Vec<u8>> {
    let deb = toolchain::cached(cache, &p.sha256)?;
    if util::sha256_file(&deb)? != p.sha256 {
        bail!(
            "{} in the cache does not hash to the locked {}: delete it and run cargo xtask fetch --boot-fixtures",
            deb.display(),
            p.sha256
        );
    }
    let tar = cmd!(sh, "dpkg-deb --fsys-tarfile {deb}")
        .quiet()
        .output()
        .with_context(|| format!("cannot unpack {}: apt-get install dpkg", deb.display()))?
        .stdout;
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_os_str() == member {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes)?;
            return Ok(bytes);
        }
    }
    bail!("{} {} has no {member}", p.name, p.version)
}

/// The initrd: a gzipped cpio (newc) of busybox and `/init`, the same bytes every time (no
/// dates, inode numbers in order, gzip without a name or time).
pub fn initrd(busybox: &[u8]) -> Result<Vec<u8>> {
    let mut cpio = Cpio::default();
    cpio.dir("bin");
    cpio.file("bin/busybox", 0o755, busybox);
    cpio.dir("dev");
    cpio.node("dev/console", 0o020600, (5, 1));
    cpio.file("init", 0o755, INIT.as_bytes());
    cpio.dir("proc");
    let raw = cpio.finish();
    let mut gz: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), Compression::best());
    gz.write_all(&raw)?;
    Ok(gz.finish()?)
}

/// A cpio archive in the "new ASCII" format the kernel unpacks (Documentation/driver-api/
/// early-userspace/buffer-format.rst).
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }

    fn node(&mut self, name: &str, mode: u32, rdev: (u32, u32)) {
        self.entry(name, mode, rdev, &[]);
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// The kernel command line a boot script passes, with iPXE's settings still to expand.
pub fn cmdline_template(nonce: &str) -> String {
    format!(
        "console=ttyS0 panic=-1 {PARAM}.ip=${{net0/ip}} {PARAM}.gateway=${{net0/gateway}} \
         {PARAM}.dns=${{dns}} {PARAM}.nonce={nonce}"
    )
}

/// The command line Linux must see when iPXE had these settings.
pub fn cmdline(nonce: &str, ip: &str, gateway: &str, dns: &str) -> String {
    cmdline_template(nonce)
        .replace("${net0/ip}", ip)
        .replace("${net0/gateway}", gateway)
        .replace("${dns}", dns)
}

/// sha256 of `/proc/cmdline` as `/init` reads it: the command line and a newline.
pub fn cmdline_sha256(cmdline: &str) -> String {
    util::sha256_hex(format!("{cmdline}\n").as_bytes())
}

/// How a boot script may go wrong, for the cases that must fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// kernel, initrd, boot.
    Good,
    /// Fetches another file first and never frees it: Linux gets it as an initrd too.
    FetchWithoutFree,
    /// No initrd: Linux has no `/init`.
    NoInitrd,
    /// A command line with a word changed, as a stale or edited script would have.
    WrongCmdline,
}

/// The iPXE script that boots the kernel and initrd found under `base` (a URL ending in `/`).
pub fn script(base: &str, nonce: &str, kind: Script) -> String {
    let mut cmdline = cmdline_template(nonce);
    if kind == Script::WrongCmdline {
        cmdline = cmdline.replace("panic=-1", "panic=-2");
    }
    let mut s = String::from("#!ipxe\n");
    if kind == Script::FetchWithoutFree {
        s.push_str(&format!("imgfetch {base}os.ipxe\n"));
    } else {
        // Anything fetched before (a config, a report) would reach Linux as an initrd.
        s.push_str("imgfree\n");
    }
    s.push_str(&format!("kernel {base}vmlinuz {cmdline}\n"));
    if kind != Script::NoInitrd {
        s.push_str(&format!("initrd {base}initrd.gz\n"));
    }
    s.push_str("boot\n");
    s
}

/// What `/init` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ip: String,
    pub gateway: String,
    pub dns: String,
    pub nonce: String,
    pub cmdline_sha256: String,
}

impl Report {
    /// The report line on the serial console, if `/init` got that far.
    pub fn find(serial: &str) -> Option<Report> {
        let line = serial.lines().find_map(|l| l.trim().strip_prefix(REPORT))?;
        let word = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("-")
                .to_string()
        };
        Some(Report {
            ip: word("ip"),
            gateway: word("gateway"),
            dns: word("dns"),
            nonce: word("nonce"),
            cmdline_sha256: word("cmdline-sha256"),
        })
    }
}

/// Why Linux did not reach `/init`'s report, from the serial console: the kernel's own words
/// where it said them.
pub fn linux_failure(serial: &str) -> String {
    let said = |needle: &str| {
        serial
            .lines()
            .find(|l| l.contains(needle))
            .map(|l| l.trim().to_string())
    };
    if let Some(line) = said("Initramfs unpacking failed") {
        return format!(
            "Linux could not unpack its initramfs ({line}): iPXE hands every image it holds to \
             Linux as an initrd, so a script that fetched another file first must imgfree it"
        );
    }
    if let Some(line) = said("Kernel panic") {
        return format!("Linux panicked: {line}");
    }
    if !serial.contains("Linux version") {
        return "Linux never started: nothing on the serial console".into();
    }
    "Linux started but /init never reported".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initrd_is_the_same_bytes_every_time_and_a_newc_archive() {
        let a = initrd(b"busybox").unwrap();
        assert_eq!(a, initrd(b"busybox").unwrap());
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(a.as_slice()), &mut raw)
            .unwrap();
        assert!(raw.starts_with(b"070701"));
        assert_eq!(raw.len() % 4, 0);
        let text = String::from_utf8_lossy(&raw);
        for name in ["bin/busybox", "dev/console", "init", "proc", "TRAILER!!!"] {
            assert!(text.contains(&format!("{name}\0")), "{name}");
        }
    }

    #[test]
    fn the_expected_command_line_is_the_template_expanded() {
        let line = cmdline("n1", "10.0.2.15", "10.0.2.2", "10.0.2.3");
        assert_eq!(
            line,
            "console=ttyS0 panic=-1 vsphere_ipxe_rom.ip=10.0.2.15 vsphere_ipxe_rom.gateway=10.0.2.2 \
             vsphere_ipxe_rom.dns=10.0.2.3 vsphere_ipxe_rom.nonce=n1"
        );
        assert_eq!(cmdline_sha256("a"), util::sha256_hex(b"a\n"));
    }

    #[test]
    fn a_report_is_read_from_the_serial_console_and_failures_are_named() {
        let serial = "[    1.0] Linux version 6.1\r\nvsphere-ipxe-rom init: ip=10.0.2.15 gateway=10.0.2.2 dns=10.0.2.3 nonce=n1 cmdline-sha256=ab\r\n";
        let r = Report::find(serial).unwrap();
        assert_eq!(
            (
                r.ip.as_str(),
                r.gateway.as_str(),
                r.dns.as_str(),
                r.nonce.as_str()
            ),
            ("10.0.2.15", "10.0.2.2", "10.0.2.3", "n1")
        );
        assert_eq!(r.cmdline_sha256, "ab");
        let broken = "Linux version 6.1\n[ 2.1] Initramfs unpacking failed: invalid magic at start of compressed archive\n[ 2.5] Kernel panic - not syncing: No working init found.";
        assert!(linux_failure(broken).starts_with("Linux could not unpack its initramfs"));
        assert!(linux_failure("Linux version\nKernel panic - not syncing: VFS").contains("VFS"));
        assert_eq!(
            linux_failure(""),
            "Linux never started: nothing on the serial console"
        );
    }

    #[test]
    fn scripts_free_before_the_kernel_except_the_trap() {
        let good = script("http://h/", "n", Script::Good);
        assert!(good.contains("imgfree\nkernel http://h/vmlinuz console=ttyS0"));
        assert!(good.contains("initrd http://h/initrd.gz\nboot\n"));
        assert!(!script("http://h/", "n", Script::FetchWithoutFree).contains("imgfree"));
        assert!(!script("http://h/", "n", Script::NoInitrd).contains("initrd "));
        assert!(script("http://h/", "n", Script::WrongCmdline).contains("panic=-2"));
    }
}
