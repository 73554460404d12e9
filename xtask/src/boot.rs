//! Booting a ROM for real: QEMU with the NIC's device and the ROM as its `romfile`, user-mode
//! networking (the guest's 10.0.2.2 is this host's loopback), an HTTP server on 127.0.0.1 that
//! serves a script which reports back and powers off, and a pcap of the guest's traffic.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

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

/// Serves `/boot.ipxe` and `/report/...` on 127.0.0.1 and records every request.
pub struct Server {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Server {
    pub fn start(port: u16) -> Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!(
                "cannot listen on 127.0.0.1:{port} for the boot test: pass --port with a free port"
            )
        })?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let log = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                thread::spawn(move || {
                    let _ = serve(stream, port, &log);
                });
            }
        });
        Ok(Server { port, hits })
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

fn serve(mut stream: std::net::TcpStream, port: u16, log: &Mutex<Vec<Hit>>) -> Result<()> {
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
    let (status, body) = match path.as_str() {
        "/boot.ipxe" => ("200 OK", boot_script(port)),
        p if p.starts_with("/report/") => ("200 OK", "reported\n".to_string()),
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())?;
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
}

/// What happened.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The guest reported back (a `/report/` request arrived).
    pub reported: Option<String>,
    pub first_request: Option<Duration>,
    pub dhcp_packets: usize,
    pub http_requests: usize,
    /// QEMU exited by itself (the script's `poweroff`) rather than being killed at the timeout.
    pub powered_off: bool,
    /// The VGA text screen when the boot ended, for a person to read.
    pub screen: String,
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
    let pcap = boot.workdir.join("guest.pcap");
    let monitor = boot.workdir.join("monitor.sock");
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&monitor);
    let mut netdev = "user,id=n0".to_string();
    if let Some(url) = &boot.bootfile {
        netdev.push_str(&format!(",bootfile={url}"));
    }
    let accel = boot.accel;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        &format!("pc,accel={accel}"),
        "-m",
        "256",
        "-nodefaults",
        "-vga",
        "std",
        "-display",
        "none",
    ])
    .args(["-netdev", &netdev])
    .args([
        "-device",
        &format!(
            "{},netdev=n0,romfile={},bootindex=1",
            boot.device,
            rom.display()
        ),
    ])
    .args([
        "-object",
        &format!("filter-dump,id=d0,netdev=n0,file={}", pcap.display()),
    ])
    .args([
        "-monitor",
        &format!("unix:{},server=on,wait=off", monitor.display()),
    ])
    .arg("-no-reboot")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    server.clear();
    let started = Instant::now();
    let mut qemu = Qemu(
        cmd.spawn()
            .context("cannot start qemu-system-x86_64: apt-get install qemu-system-x86")?,
    );
    let mut screen = String::new();
    let mut powered_off = false;
    let mut reported_at: Option<Instant> = None;
    loop {
        if let Some(status) = qemu.0.try_wait()? {
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = qemu.0.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                bail!("qemu exited with {status}: {}", err.trim());
            }
            powered_off = true;
            break;
        }
        if started.elapsed() > boot.timeout {
            break;
        }
        // Once the guest has reported, give it a moment to power off (third-party ROMs may lack
        // the command), then stop it.
        if reported_at.is_none() && server.hits().iter().any(|h| h.path.starts_with("/report/")) {
            reported_at = Some(Instant::now());
        }
        if reported_at.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            break;
        }
        // Read the screen while QEMU still runs: after poweroff there is none.
        if let Ok(text) = vga_text(&monitor) {
            screen = text;
        }
        thread::sleep(Duration::from_millis(500));
    }
    drop(qemu);
    let hits = server.hits();
    let (dhcp_packets, http_requests) = count_packets(&pcap, server.port).unwrap_or((0, 0));
    Ok(Outcome {
        reported: hits
            .iter()
            .find(|h| h.path.starts_with("/report/"))
            .map(|h| h.path["/report/".len()..].to_string()),
        first_request: hits.first().map(|h| h.at.duration_since(started)),
        dhcp_packets,
        http_requests,
        powered_off,
        screen,
    })
}

/// The 80x25 VGA text buffer at 0xb8000, read through the QEMU monitor.
fn vga_text(socket: &Path) -> Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"xp /2000hx 0xb8000\n")?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        // The last line of the dump starts at 0xb8f90; then the prompt returns.
        if raw.ends_with(b"(qemu) ") && raw.windows(6).any(|w| w == b"b8f90:") {
            break;
        }
    }
    Ok(decode_vga(&String::from_utf8_lossy(&raw)))
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
    let data = std::fs::read(pcap).with_context(|| format!("cannot read {}", pcap.display()))?;
    if data.len() < 24 || data[..4] != [0xd4, 0xc3, 0xb2, 0xa1] {
        bail!("{} is not a little-endian pcap file", pcap.display());
    }
    let (mut dhcp, mut http) = (0, 0);
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into()?) as usize;
        let Some(frame) = data.get(at + 16..at + 16 + len) else {
            break;
        };
        at += 16 + len;
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
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
