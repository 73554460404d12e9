//! Booting a ROM for real: QEMU with the NIC's device and the ROM as its `romfile`, user-mode
//! networking (the guest's 10.0.2.2 is this host's loopback), an HTTP server on 127.0.0.1 that
//! serves a script which reports back and powers off, and a pcap of the guest's traffic.
//!
//! For the guestinfo path QEMU's gdbstub stops the guest on each VMware backdoor `inl`, and
//! [`guestrpc::Backdoor`] answers it from the VM's keys, as ESXi would.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    boot::gdbstub::{self, Gdb, Stop},
    boot::guestrpc::{self, Backdoor, Regs},
};

/// Guest memory; the calibration boot dumps all of it.
const MEMORY_MIB: u64 = 256;

/// Where the guest reaches the host under QEMU's user-mode networking.
pub const HOST_FROM_GUEST: &str = "10.0.2.2";

/// The script every boot fetches: report the address iPXE configured, then power off. It
/// reports with `imgfetch`, not `chain`: with the PXE image type linked, `chain` would run the
/// reply as x86 code.
pub fn boot_script(port: u16) -> String {
    format!("#!ipxe\nimgfetch http://{HOST_FROM_GUEST}:{port}/report/${{net0/ip}} ||\npoweroff\n")
}

/// An embedded script for a boot with no DHCP at all: static settings, then the same chain.
pub fn static_script(port: u16) -> String {
    format!(
        "#!ipxe\nset net0/ip 10.0.2.15\nset net0/netmask 255.255.255.0\nset net0/gateway {HOST_FROM_GUEST}\n\
         set dns 10.0.2.3\nifopen net0\nchain http://{HOST_FROM_GUEST}:{port}/boot.ipxe\n"
    )
}

/// A request the server saw, and when.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub at: Instant,
}

/// Files the server hands out besides `/boot.ipxe`, by path.
type Published = Arc<Mutex<BTreeMap<String, Arc<Vec<u8>>>>>;

/// Serves `/boot.ipxe`, `/report/...` and published files on 127.0.0.1 and records every
/// request.
pub struct Server {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    files: Published,
}

impl Server {
    /// Listens on `port`, or on a free port the system picks when it is 0.
    pub fn start(port: u16) -> Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!(
                "cannot listen on 127.0.0.1:{port} for the boot test: pass --port with a free port, \
                 or leave --port out to have one picked"
            )
        })?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let files: Published = Arc::default();
        let (log, shared) = (hits.clone(), files.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, shared) = (log.clone(), shared.clone());
                thread::spawn(move || {
                    let _ = serve(stream, port, &log, &shared);
                });
            }
        });
        Ok(Server { port, hits, files })
    }

    /// Serves `bytes` at `path` from now on.
    pub fn publish(&self, path: &str, bytes: Vec<u8>) {
        if let Ok(mut f) = self.files.lock() {
            f.insert(path.to_string(), Arc::new(bytes));
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut h) = self.hits.lock() {
            h.clear();
        }
    }
}

fn serve(
    mut stream: std::net::TcpStream,
    port: u16,
    log: &Mutex<Vec<Hit>>,
    files: &Published,
) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
    log.lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .push(Hit {
            path: path.clone(),
            at: Instant::now(),
        });
    let published = files.lock().ok().and_then(|f| f.get(&path).cloned());
    let (status, body) = match (path.as_str(), published) {
        (_, Some(bytes)) => ("200 OK", bytes),
        ("/boot.ipxe", _) => ("200 OK", Arc::new(boot_script(port).into_bytes())),
        (p, _) if p.starts_with("/report/") => ("200 OK", Arc::new(b"reported\n".to_vec())),
        _ => ("404 Not Found", Arc::new(b"not found\n".to_vec())),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    Ok(())
}

/// One QEMU boot of one ROM.
pub struct Boot<'a> {
    pub rom: &'a Path,
    pub device: &'a str,
    /// Handed out by QEMU's DHCP server as the boot file; None for the no-DHCP path.
    pub bootfile: Option<String>,
    pub workdir: &'a Path,
    pub timeout: Duration,
    /// QEMU accelerator: `tcg` works everywhere; `kvm` is faster where nested KVM behaves.
    pub accel: &'a str,
    /// Serve these guestinfo keys over an emulated backdoor.
    pub guestinfo: Option<Guestinfo<'a>>,
    /// A UDP socket on 127.0.0.1 that QEMU also puts on the guest's network, raw frames both
    /// ways: a rogue server under test sees the guest's broadcasts and answers on the wire.
    pub lan_peer: Option<SocketAddr>,
}

/// A VM's guestinfo, and where in guest memory the ROM's backdoor calls sit.
pub struct Guestinfo<'a> {
    /// Full VMX names, as `vmx --format json` prints them.
    pub keys: &'a BTreeMap<String, String>,
    /// Linear addresses of candidate `inl` instructions ([`find_backdoor_sites`]).
    pub sites: &'a BTreeSet<u64>,
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The guest's script reported back.
    Reported,
    /// QEMU exited by itself (the guest powered off) without reporting.
    PoweredOff,
    /// The ROM handed back to the BIOS, which found nothing else to boot.
    GaveUp,
    /// Nothing of the above before the time limit.
    TimedOut,
}

impl Ending {
    pub fn describe(self) -> &'static str {
        match self {
            Ending::Reported => "reported back",
            Ending::PoweredOff => "powered off without reporting",
            Ending::GaveUp => "the ROM gave up and the BIOS found no other boot device",
            Ending::TimedOut => "timed out",
        }
    }
}

/// What happened.
#[derive(Debug)]
pub struct Outcome {
    /// The guest reported back (a `/report/` request arrived).
    pub reported: Option<String>,
    pub first_request: Option<Duration>,
    pub dhcp_packets: usize,
    pub http_requests: usize,
    /// Paths the guest requested from the server, in order.
    pub requests: Vec<String>,
    pub ended: Ending,
    /// The VGA text screen when the boot ended, for a person to read.
    pub screen: String,
    /// What the guest asked over the emulated backdoor (guestinfo boots only).
    pub backdoor: Option<Backdoor>,
    /// Everything the guest wrote to its serial port (Linux's console).
    pub serial: String,
    /// From power-on to the report on the serial console.
    pub serial_report: Option<Duration>,
    /// The largest download the guest received: bytes, and the seconds from its first to its
    /// last data packet.
    pub largest_download: Option<(u64, f64)>,
}

impl Outcome {
    /// iPXE's last error message on screen (`... (https://ipxe.org/<code>)`), if any.
    pub fn ipxe_error(&self) -> Option<String> {
        ipxe_error(&self.screen)
    }
}

/// Kills QEMU however the boot ends.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(boot: &Boot, server: &Server) -> Result<Outcome> {
    let rom = boot
        .rom
        .canonicalize()
        .with_context(|| format!("cannot find ROM {}", boot.rom.display()))?;
    let files = Files::in_dir(boot.workdir);
    let mut cmd = command(boot, &rom, &files);
    server.clear();
    let started = Instant::now();
    let mut qemu = Qemu(
        cmd.spawn()
            .context("cannot start qemu-system-x86_64: apt-get install qemu-system-x86")?,
    );
    let backdoor = match &boot.guestinfo {
        Some(g) => Some(answer_backdoor(g, &files.gdb)?),
        None => None,
    };
    let watched = watch(&mut qemu, boot, server, &files, started)?;
    let (mut ended, screen, serial_report) = watched;
    drop(qemu);
    files.clean();
    let backdoor = match backdoor {
        Some(t) => Some(
            t.join()
                .map_err(|_| anyhow::anyhow!("the backdoor thread panicked"))??,
        ),
        None => None,
    };
    let hits = server.hits();
    if hits.iter().any(|h| h.path.starts_with("/report/")) {
        ended = Ending::Reported;
    }
    let (dhcp_packets, http_requests) = count_packets(&files.pcap, server.port).unwrap_or((0, 0));
    let serial = String::from_utf8_lossy(&std::fs::read(&files.serial).unwrap_or_default())
        .replace('\r', "");
    Ok(Outcome {
        reported: hits
            .iter()
            .find(|h| h.path.starts_with("/report/"))
            .map(|h| h.path["/report/".len()..].to_string()),
        first_request: hits.first().map(|h| h.at.duration_since(started)),
        dhcp_packets,
        http_requests,
        requests: hits.iter().map(|h| h.path.clone()).collect(),
        ended,
        screen,
        backdoor,
        serial,
        serial_report,
        largest_download: largest_download(&files.pcap).ok().flatten(),
    })
}

/// QEMU for this boot: the ROM on its NIC, a pcap of the guest's traffic, and where guestinfo
/// is answered, a paused start with a gdbstub for the breakpoints.
fn command(boot: &Boot, rom: &Path, files: &Files) -> Command {
    let net = netdevs(boot.bootfile.as_deref(), boot.lan_peer);
    let mut cmd = qemu_command(boot.accel, boot.device, rom, &net, &files.monitor);
    cmd.args([
        "-object",
        &format!("filter-dump,id=d0,netdev=n0,file={}", files.pcap.display()),
    ])
    .args(["-serial", &format!("file:{}", files.serial.display())]);
    if boot.guestinfo.is_some() {
        // Start paused, so that the breakpoints are in before the ROM runs.
        cmd.arg("-S").args([
            "-chardev",
            &format!(
                "socket,id=g,path={},server=on,wait=off",
                files.gdb.display()
            ),
            "-gdb",
            "chardev:g",
        ]);
    }
    cmd
}

/// The files a boot talks to QEMU through, in its work directory.
struct Files {
    pcap: PathBuf,
    monitor: PathBuf,
    gdb: PathBuf,
    serial: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        let files = Files {
            pcap: dir.join("guest.pcap"),
            monitor: dir.join("monitor.sock"),
            gdb: dir.join("gdb.sock"),
            serial: dir.join("serial.log"),
        };
        for f in [&files.pcap, &files.monitor, &files.gdb, &files.serial] {
            let _ = std::fs::remove_file(f);
        }
        files
    }

    /// Removes the sockets; the pcap stays to be counted.
    fn clean(&self) {
        let _ = std::fs::remove_file(&self.monitor);
        let _ = std::fs::remove_file(&self.gdb);
    }
}

/// Puts a breakpoint on every backdoor site and answers the guest's GuestRPC calls from
/// another thread until QEMU goes away.
fn answer_backdoor(g: &Guestinfo, socket: &Path) -> Result<thread::JoinHandle<Result<Backdoor>>> {
    let mut gdb = Gdb::connect(socket, Duration::from_secs(10))?;
    gdb.handshake()?;
    for &site in g.sites {
        gdb.set_breakpoint(site)?;
    }
    gdb.resume()?;
    let backdoor = Backdoor::new(g.keys.clone());
    Ok(thread::spawn(move || serve_backdoor(gdb, backdoor)))
}

/// Watches the boot until it powers off, gives up, reports (and has had a moment to power
/// off), or runs out of time; returns how it ended, the last screen, and when a report
/// appeared on the serial console.
fn watch(
    qemu: &mut Qemu,
    boot: &Boot,
    server: &Server,
    files: &Files,
    started: Instant,
) -> Result<(Ending, String, Option<Duration>)> {
    let monitor = &files.monitor;
    let mut screen = String::new();
    let mut reported_at: Option<Instant> = None;
    let mut serial_report = None;
    loop {
        if serial_report.is_none() && serial_has_report(&files.serial) {
            serial_report = Some(started.elapsed());
        }
        if let Some(status) = qemu.0.try_wait()? {
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = qemu.0.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                bail!("qemu exited with {status}: {}", err.trim());
            }
            return Ok((Ending::PoweredOff, screen, serial_report));
        }
        if started.elapsed() > boot.timeout {
            return Ok((Ending::TimedOut, screen, serial_report));
        }
        // Once the guest has reported, give it a moment to power off (third-party ROMs may lack
        // the command), then stop it.
        if reported_at.is_none()
            && (serial_report.is_some()
                || server.hits().iter().any(|h| h.path.starts_with("/report/")))
        {
            reported_at = Some(Instant::now());
        }
        if reported_at.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            return Ok((Ending::TimedOut, screen, serial_report));
        }
        // Read the screen while QEMU still runs: after poweroff there is none.
        if let Ok(text) = vga_text(monitor) {
            screen = text;
        }
        if screen.contains("No bootable device") {
            return Ok((Ending::GaveUp, screen, serial_report));
        }
        thread::sleep(Duration::from_millis(500));
    }
}

fn serial_has_report(serial: &Path) -> bool {
    std::fs::read(serial)
        .is_ok_and(|b| String::from_utf8_lossy(&b).contains(crate::boot::os::REPORT))
}

/// The last line that ends in an iPXE error URL, with rows the 80-column screen wrapped joined.
pub fn ipxe_error(screen: &str) -> Option<String> {
    ipxe_errors(screen).pop()
}

/// Every line with an iPXE error URL, in screen order, with wrapped rows joined.
pub fn ipxe_errors(screen: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut wrapped = false;
    for row in screen.lines() {
        match lines.last_mut() {
            Some(last) if wrapped => last.push_str(row),
            _ => lines.push(row.to_string()),
        }
        wrapped = row.chars().count() == 80;
    }
    lines
        .into_iter()
        .filter(|l| l.contains("(https://ipxe.org/"))
        .map(|l| l.trim().to_string())
        .collect()
}

/// The guest's network as `-netdev` arguments: the NIC is on `n0`, which the pcap watches.
/// With a peer, `n0` is a port of one hub that also holds user networking and a UDP socket
/// carrying raw frames to and from the peer: the NIC sees, and the pcap records, the peer's
/// frames as well as slirp's, and the peer sees every frame on the hub.
fn netdevs(bootfile: Option<&str>, peer: Option<SocketAddr>) -> Vec<String> {
    let user = |id: &str| match bootfile {
        Some(url) => format!("user,id={id},bootfile={url}"),
        None => format!("user,id={id}"),
    };
    let netdevs = match peer {
        None => vec![user("n0")],
        Some(peer) => vec![
            user("slirp"),
            format!("socket,id=peer,udp={peer},localaddr=127.0.0.1:0"),
            "hubport,id=n0,hubid=0".into(),
            "hubport,id=n1,hubid=0,netdev=slirp".into(),
            "hubport,id=n2,hubid=0,netdev=peer".into(),
        ],
    };
    netdevs
        .into_iter()
        .flat_map(|n| ["-netdev".to_string(), n])
        .collect()
}

/// The QEMU command line both boots share: the NIC with the ROM on `net`, the monitor.
fn qemu_command(accel: &str, device: &str, rom: &Path, net: &[String], monitor: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        &format!("pc,accel={accel}"),
        "-m",
        &MEMORY_MIB.to_string(),
        "-nodefaults",
        "-vga",
        "std",
        "-display",
        "none",
    ])
    .args(net)
    .args([
        "-device",
        &format!("{device},netdev=n0,romfile={},bootindex=1", rom.display()),
    ])
    .args([
        "-monitor",
        &format!("unix:{},server=on,wait=off", monitor.display()),
    ])
    .arg("-no-reboot")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

/// Answers every backdoor stop until QEMU goes away; returns what the guest asked.
fn serve_backdoor(mut gdb: Gdb, mut backdoor: Backdoor) -> Result<Backdoor> {
    loop {
        match gdb.wait()? {
            Stop::Exited => return Ok(backdoor),
            Stop::Signal(_) => {}
        }
        let r = match gdb.registers() {
            Ok(r) => r,
            // QEMU was stopped while the guest sat at a breakpoint.
            Err(_) => return Ok(backdoor),
        };
        let before = Regs {
            eax: r.rax as u32,
            ebx: r.rbx as u32,
            ecx: r.rcx as u32,
            edx: r.rdx as u32,
        };
        let Some(after) = backdoor.call(before) else {
            bail!(
                "the guest stopped at eip {:#x}, an `inl` that is not a VMware backdoor call \
                 (eax {:#x}, edx {:#x}); the site search took a wrong candidate",
                r.rip,
                before.eax,
                before.edx
            );
        };
        for (n, old, new) in [
            (gdbstub::RAX, before.eax, after.eax),
            (gdbstub::RBX, before.ebx, after.ebx),
            (gdbstub::RCX, before.ecx, after.ecx),
            (gdbstub::RDX, before.edx, after.edx),
        ] {
            if old != new {
                gdb.write_register(n, u64::from(new))?;
            }
        }
        // Step over the one-byte `inl`: the call has been answered.
        gdb.write_register(gdbstub::RIP, r.rip + 1)?;
        gdb.resume()?;
    }
}

/// Boots the ROM once without the emulator, stops it as soon as iPXE runs, and finds its
/// backdoor calls in memory: each `inl %dx,%eax` (0xED) within 128 bytes after
/// `mov $VMW_MAGIC,%eax`. The code sits at the same linear addresses on every boot of the
/// same ROM and memory size. A candidate that is not an instruction start never stops the guest.
pub fn find_backdoor_sites(
    rom: &Path,
    device: &str,
    workdir: &Path,
    accel: &str,
    timeout: Duration,
) -> Result<BTreeSet<u64>> {
    let rom = rom
        .canonicalize()
        .with_context(|| format!("cannot find ROM {}", rom.display()))?;
    let monitor = workdir.join("calibrate.sock");
    let dump = workdir.join("memory.bin");
    let _ = std::fs::remove_file(&monitor);
    let mut cmd = qemu_command(accel, device, &rom, &netdevs(None, None), &monitor);
    let qemu = Qemu(
        cmd.spawn()
            .context("cannot start qemu-system-x86_64: apt-get install qemu-system-x86")?,
    );
    let started = Instant::now();
    let mut screen = String::new();
    // iPXE prints this right after its init functions (guestinfo's among them) have run.
    while !screen.contains("initialising devices") {
        if screen.contains("No bootable device") {
            bail!(
                "{} returned to the BIOS without starting iPXE, so it has no guestinfo to read; screen:\n{screen}",
                rom.display()
            );
        }
        if started.elapsed() > timeout {
            bail!(
                "{} never started iPXE within {} s, so its backdoor calls could not be located; screen:\n{screen}",
                rom.display(),
                timeout.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(100));
        screen = vga_text(&monitor).unwrap_or_default();
    }
    let wait = Duration::from_secs(30);
    monitor_command(&monitor, "stop", wait)?;
    monitor_command(
        &monitor,
        &format!("pmemsave 0 {:#x} \"{}\"", MEMORY_MIB << 20, dump.display()),
        wait,
    )?;
    drop(qemu);
    let _ = std::fs::remove_file(&monitor);
    let memory = std::fs::read(&dump).with_context(|| format!("cannot read {}", dump.display()))?;
    let _ = std::fs::remove_file(&dump);
    let sites = backdoor_sites(&memory);
    if sites.is_empty() {
        bail!(
            "{} has no VMware backdoor call in memory: it was not built with VMWARE_SETTINGS, \
             so it cannot read guestinfo",
            rom.display()
        );
    }
    Ok(sites)
}

/// Candidate backdoor `inl` addresses in a dump of guest memory from address 0.
pub fn backdoor_sites(memory: &[u8]) -> BTreeSet<u64> {
    let mut magic = [0xb8u8; 5];
    magic[1..].copy_from_slice(&guestrpc::MAGIC.to_le_bytes());
    let mut sites = BTreeSet::new();
    for (at, window) in memory.windows(magic.len()).enumerate() {
        if window != magic {
            continue;
        }
        let from = at + magic.len();
        let to = (from + 128).min(memory.len());
        sites.extend((from..to).filter(|&i| memory[i] == 0xed).map(|i| i as u64));
    }
    sites
}

/// Sends one command to the QEMU monitor and returns what it printed before the next prompt.
fn monitor_command(socket: &Path, command: &str, wait: Duration) -> Result<String> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("cannot reach the QEMU monitor at {}", socket.display()))?;
    s.set_read_timeout(Some(wait))?;
    read_to_prompt(&mut s, command)?;
    s.write_all(format!("{command}\n").as_bytes())?;
    Ok(String::from_utf8_lossy(&read_to_prompt(&mut s, command)?).into_owned())
}

fn read_to_prompt(s: &mut UnixStream, command: &str) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    while !raw.ends_with(b"(qemu) ") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("the QEMU monitor closed during '{command}'");
        }
        raw.extend_from_slice(&buf[..n]);
    }
    Ok(raw)
}

/// The 80x25 VGA text buffer at 0xb8000, read through the QEMU monitor.
fn vga_text(socket: &Path) -> Result<String> {
    let dump = monitor_command(socket, "xp /2000hx 0xb8000", Duration::from_secs(2))?;
    Ok(decode_vga(&dump))
}

/// Parses `xp /Nhx` output (`00000000000b8000: 0x0741 0x0720 ...`) into screen lines.
pub fn decode_vga(dump: &str) -> String {
    let mut chars = Vec::new();
    for line in dump.lines() {
        let Some((addr, words)) = line.split_once(": ") else {
            continue;
        };
        // The monitor may put terminal escapes before the address: keep its trailing hex digits.
        let addr = addr
            .rsplit(|c: char| !c.is_ascii_hexdigit())
            .next()
            .unwrap_or("");
        if !u64::from_str_radix(addr, 16).is_ok_and(|a| (0xb8000..0xb8fa0).contains(&a)) {
            continue;
        }
        for w in words.split_whitespace() {
            if let Ok(v) = u16::from_str_radix(w.trim_start_matches("0x"), 16) {
                let c = (v & 0xff) as u8;
                chars.push(if c.is_ascii_graphic() || c == b' ' {
                    c as char
                } else {
                    ' '
                });
            }
        }
    }
    chars
        .chunks(80)
        .map(|row| row.iter().collect::<String>().trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

/// DHCP packets (UDP 67/68) and HTTP requests (TCP to `port` carrying `GET `) in a pcap.
pub fn count_packets(pcap: &Path, port: u16) -> Result<(usize, usize)> {
    let data = read_pcap(pcap)?;
    let (mut dhcp, mut http) = (0, 0);
    for (_, ip) in ipv4_packets(&data) {
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let Some(l4) = ip.get(ihl..) else { continue };
        if l4.len() < 4 {
            continue;
        }
        let (sport, dport) = (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        );
        match ip[9] {
            17 if [67, 68].contains(&sport) || [67, 68].contains(&dport) => dhcp += 1,
            6 if dport == port && l4.len() > 20 => {
                let off = usize::from(l4[12] >> 4) * 4;
                if l4.get(off..off + 4) == Some(b"GET ".as_slice()) {
                    http += 1;
                }
            }
            _ => {}
        }
    }
    Ok((dhcp, http))
}

/// A pcap file QEMU's filter-dump wrote, checked.
pub fn read_pcap(pcap: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(pcap).with_context(|| format!("cannot read {}", pcap.display()))?;
    if data.len() < 24 || data[..4] != [0xd4, 0xc3, 0xb2, 0xa1] {
        bail!("{} is not a little-endian pcap file", pcap.display());
    }
    Ok(data)
}

/// Each IPv4 packet of a pcap's Ethernet frames (from the IP header on), with its capture time
/// in seconds.
pub fn ipv4_packets(data: &[u8]) -> impl Iterator<Item = (f64, &[u8])> {
    let mut at = 24;
    std::iter::from_fn(move || loop {
        let header = data.get(at..at + 16)?;
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let secs = f64::from(word(0)) + f64::from(word(4)) / 1e6;
        let len = word(8) as usize;
        let frame = data.get(at + 16..at + 16 + len)?;
        at += 16 + len;
        if frame.len() >= 34 && frame[12..14] == [0x08, 0x00] {
            return Some((secs, &frame[14..]));
        }
    })
}

/// TCP payload bytes sent to the guest, per connection, with the first and last data packet's
/// time: the largest one (a kernel, in an OS boot), over HTTP or TLS alike.
pub fn largest_download(pcap: &Path) -> Result<Option<(u64, f64)>> {
    let data = read_pcap(pcap)?;
    let mut flows: BTreeMap<(u16, u16), (u64, f64, f64)> = BTreeMap::new();
    for (secs, ip) in ipv4_packets(&data) {
        if ip[9] != 6 {
            continue;
        }
        let (ihl, total) = (
            usize::from(ip[0] & 0x0f) * 4,
            usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        );
        let Some(tcp) = ip.get(ihl..) else { continue };
        if tcp.len() < 20 || ip[12..16] != [10, 0, 2, 2] {
            continue;
        }
        let payload = total.saturating_sub(ihl + usize::from(tcp[12] >> 4) * 4) as u64;
        if payload == 0 {
            continue;
        }
        let key = (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        let flow = flows.entry(key).or_insert((0, secs, secs));
        flow.0 += payload;
        flow.2 = secs;
    }
    Ok(flows
        .into_values()
        .max_by_key(|f| f.0)
        .map(|(bytes, first, last)| (bytes, last - first)))
}

/// A working directory for one boot.
pub fn workdir(base: &Path, name: &str) -> Result<PathBuf> {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_vga_text_buffer() {
        let mut dump = String::from("xp /2000hx 0xb8000\r\n");
        dump.push_str(
            "00000000000b8000: 0x0769 0x0750 0x0758 0x0745 0x0720 0x0720 0x0720 0x0720\r\n",
        );
        let text = decode_vga(&dump);
        assert_eq!(text, "iPXE");
    }

    #[test]
    fn finds_ipxe_errors_across_wrapped_rows() {
        let url =
            "http://10.0.2.2:18080/no-such-script.ipxe... Not found (https://ipxe.org/2d0c613";
        let screen = format!(
            "iPXE (https://ipxe.org) 00:03.0 CA00\n{url:<80}\nb)\nBooting from Hard Disk..."
        );
        assert_eq!(
            ipxe_error(&screen).unwrap(),
            format!("{url}b)"),
            "the error URL is joined across the wrap"
        );
        assert_eq!(
            ipxe_error("iPXE (https://ipxe.org) 00:03.0\nNo bootable device."),
            None
        );
        let two = format!("a... Not found (https://ipxe.org/1)\n{screen}");
        assert_eq!(ipxe_errors(&two).len(), 2, "every error, in order");
    }

    #[test]
    fn a_lan_peer_shares_one_hub_with_the_nic_and_user_networking() {
        assert_eq!(
            netdevs(Some("http://10.0.2.2:1/b"), None),
            ["-netdev", "user,id=n0,bootfile=http://10.0.2.2:1/b"]
        );
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let args = netdevs(None, Some(peer));
        let values: Vec<&str> = args.iter().skip(1).step_by(2).map(String::as_str).collect();
        assert_eq!(
            values,
            [
                "user,id=slirp",
                "socket,id=peer,udp=127.0.0.1:4000,localaddr=127.0.0.1:0",
                "hubport,id=n0,hubid=0",
                "hubport,id=n1,hubid=0,netdev=slirp",
                "hubport,id=n2,hubid=0,netdev=peer",
            ]
        );
    }

    #[test]
    fn finds_backdoor_sites_after_the_magic() {
        let mut memory = vec![0u8; 4096];
        // mov $0x564d5868,%eax; mov $0x1e,%ecx; mov $0x5658,%edx; inl (%dx),%eax
        let call = [
            0xb8, 0x68, 0x58, 0x4d, 0x56, 0xb9, 0x1e, 0, 0, 0, 0xba, 0x58, 0x56, 0, 0, 0xed,
        ];
        memory[0x100..0x100 + call.len()].copy_from_slice(&call);
        memory[0x900..0x900 + call.len()].copy_from_slice(&call);
        // An 0xed far from any magic is not a candidate.
        memory[0x400] = 0xed;
        let sites: Vec<u64> = backdoor_sites(&memory).into_iter().collect();
        assert_eq!(sites, [0x10f, 0x90f]);
    }

    #[test]
    fn counts_dhcp_and_http_in_a_pcap() {
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        pcap.extend([0u8; 8]);
        pcap.extend(65535u32.to_le_bytes());
        pcap.extend(1u32.to_le_bytes());
        let frame = |proto: u8, sport: u16, dport: u16, payload: &[u8]| {
            let mut f = vec![0u8; 12];
            f.extend([0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0]);
            f.extend([10, 0, 2, 15, 10, 0, 2, 2]);
            f.extend(sport.to_be_bytes());
            f.extend(dport.to_be_bytes());
            if proto == 6 {
                f.extend([0u8; 8]);
                f.extend([0x50, 0x18, 0, 0, 0, 0, 0, 0]);
            } else {
                f.extend([0u8; 4]);
            }
            f.extend(payload);
            f
        };
        for f in [
            frame(17, 68, 67, b""),
            frame(6, 40000, 18080, b"GET /boot.ipxe"),
            frame(6, 40000, 18080, b""),
        ] {
            pcap.extend([0u8; 8]);
            pcap.extend((f.len() as u32).to_le_bytes());
            pcap.extend((f.len() as u32).to_le_bytes());
            pcap.extend(f);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.pcap"), pcap).unwrap();
        assert_eq!(
            count_packets(&dir.path().join("x.pcap"), 18080).unwrap(),
            (1, 1)
        );
    }
}
