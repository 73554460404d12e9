//! Just enough of the GDB remote serial protocol to stop a QEMU guest at given addresses, read
//! and write its registers, and let it go on. QEMU serves it on a Unix socket chardev: a stop
//! costs well under a millisecond there, against tens over TCP.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// Why the guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A breakpoint or another signal (`T05`, `S05`).
    Signal(u8),
    /// QEMU exited (`W`/`X`, or the socket closed).
    Exited,
}

/// The registers of the x86-64 target description that a backdoor call uses. QEMU reports them
/// 64 bits wide whatever mode the CPU is in; in 32-bit code the high halves are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    /// The instruction pointer as the code sees it (eip), not the linear address.
    pub rip: u64,
}

/// GDB's register numbers in QEMU's x86-64 description.
pub const RAX: u8 = 0;
pub const RBX: u8 = 1;
pub const RCX: u8 = 2;
pub const RDX: u8 = 3;
pub const RIP: u8 = 16;

pub struct Gdb {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    acks: bool,
}

impl Gdb {
    /// Connects to QEMU's gdbstub socket, waiting for QEMU to create it.
    pub fn connect(socket: &Path, wait: Duration) -> Result<Gdb> {
        let started = Instant::now();
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if started.elapsed() > wait => {
                    return Err(e).with_context(|| {
                        format!("QEMU's gdbstub did not open {}", socket.display())
                    })
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        };
        Ok(Gdb {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            acks: true,
        })
    }

    /// Turns acknowledgements off and reads the target description, without which QEMU
    /// refuses single-register writes.
    pub fn handshake(&mut self) -> Result<()> {
        self.request("qSupported:xmlRegisters=i386")?;
        if self.request("QStartNoAckMode")? == "OK" {
            self.acks = false;
        }
        let mut offset = 0;
        loop {
            let reply = self.request(&format!(
                "qXfer:features:read:target.xml:{offset:x},{:x}",
                0x800
            ))?;
            match reply.as_bytes().first() {
                Some(b'm') => offset += reply.len() - 1,
                Some(b'l') => return Ok(()),
                _ => bail!("QEMU's gdbstub gave no target description (reply '{reply}')"),
            }
        }
    }

    pub fn set_breakpoint(&mut self, linear: u64) -> Result<()> {
        self.expect_ok(&format!("Z0,{linear:x},1"))
    }

    pub fn registers(&mut self) -> Result<Registers> {
        let reply = self.request("g")?;
        let reg = |n: usize| -> Result<u64> {
            let hex = reply
                .get(n * 16..n * 16 + 16)
                .with_context(|| format!("register reply too short: {} chars", reply.len()))?;
            Ok(u64::from_le_bytes(
                decode_hex(hex)?.try_into().unwrap_or_default(),
            ))
        };
        Ok(Registers {
            rax: reg(RAX.into())?,
            rbx: reg(RBX.into())?,
            rcx: reg(RCX.into())?,
            rdx: reg(RDX.into())?,
            rip: reg(RIP.into())?,
        })
    }

    pub fn write_register(&mut self, n: u8, value: u64) -> Result<()> {
        self.expect_ok(&format!("P{n:x}={}", encode_hex(&value.to_le_bytes())))
    }

    /// Resumes the guest; the next [`Gdb::wait`] returns when it stops again.
    pub fn resume(&mut self) -> Result<()> {
        self.send("c")
    }

    pub fn wait(&mut self) -> Result<Stop> {
        match self.receive() {
            Ok(reply) => parse_stop(&reply),
            Err(e) if is_eof(&e) => Ok(Stop::Exited),
            Err(e) => Err(e),
        }
    }

    fn expect_ok(&mut self, packet: &str) -> Result<()> {
        match self.request(packet)?.as_str() {
            "OK" => Ok(()),
            other => bail!("QEMU's gdbstub refused '{packet}': '{other}'"),
        }
    }

    fn request(&mut self, packet: &str) -> Result<String> {
        self.send(packet)?;
        self.receive()
    }

    fn send(&mut self, packet: &str) -> Result<()> {
        self.writer.write_all(&frame(packet))?;
        if self.acks {
            let mut ack = [0u8; 1];
            self.reader.read_exact(&mut ack)?;
            if ack[0] != b'+' {
                bail!("QEMU's gdbstub did not acknowledge '{packet}'");
            }
        }
        Ok(())
    }

    fn receive(&mut self) -> Result<String> {
        let mut skipped = Vec::new();
        self.reader.read_until(b'$', &mut skipped)?;
        if skipped.last() != Some(&b'$') {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        let mut body = Vec::new();
        self.reader.read_until(b'#', &mut body)?;
        let mut sum = [0u8; 2];
        self.reader.read_exact(&mut sum)?;
        body.pop();
        let want = u8::from_str_radix(std::str::from_utf8(&sum)?, 16)?;
        if checksum(&body) != want {
            bail!("a gdbstub packet failed its checksum");
        }
        if self.acks {
            self.writer.write_all(b"+")?;
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

fn is_eof(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
        )
    })
}

fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

/// `$packet#xx`. Our packets hold no `$`, `#`, `}` or `*`, so nothing needs escaping.
pub fn frame(packet: &str) -> Vec<u8> {
    format!("${packet}#{:02x}", checksum(packet.as_bytes())).into_bytes()
}

pub fn parse_stop(reply: &str) -> Result<Stop> {
    let signal = |s: &str| u8::from_str_radix(s.get(1..3).unwrap_or(""), 16);
    match reply.as_bytes().first() {
        Some(b'T' | b'S') => Ok(Stop::Signal(signal(reply)?)),
        Some(b'W' | b'X') => Ok(Stop::Exited),
        _ => bail!("unexpected reply from QEMU's gdbstub while the guest ran: '{reply}'"),
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(hex: &str) -> Result<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16)
                .with_context(|| format!("'{hex}' is not hex"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_with_a_modulo_256_checksum() {
        assert_eq!(frame("g"), b"$g#67");
        assert_eq!(frame("QStartNoAckMode"), b"$QStartNoAckMode#b0");
        assert_eq!(frame("P2=0000010000000000"), b"$P2=0000010000000000#c0");
    }

    #[test]
    fn stop_replies() {
        assert_eq!(parse_stop("T05thread:01;").unwrap(), Stop::Signal(5));
        assert_eq!(parse_stop("S02").unwrap(), Stop::Signal(2));
        assert_eq!(parse_stop("W00").unwrap(), Stop::Exited);
        assert!(parse_stop("E01").is_err());
    }

    #[test]
    fn talks_to_a_stub_over_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let stub = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Registers: rax = magic, rip = 0x1234, the rest zero; then a breakpoint stop.
            let mut regs = String::new();
            for n in 0..17 {
                let v: u64 = match n {
                    0 => 0x564d_5868,
                    16 => 0x1234,
                    _ => 0,
                };
                regs.push_str(&encode_hex(&v.to_le_bytes()));
            }
            for reply in [
                "PacketSize=1000".to_string(),
                "OK".into(),
                "l<target/>".into(),
                "OK".into(),
                regs,
                "OK".into(),
                "T05thread:01;".into(),
            ] {
                let n = s.read(&mut buf).unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let ack = if seen.len() <= 2 { "+" } else { "" };
                s.write_all(
                    format!("{ack}{}", String::from_utf8(frame(&reply)).unwrap()).as_bytes(),
                )
                .unwrap();
                if seen.len() <= 2 {
                    // The client acknowledges replies while acks are on, QStartNoAckMode's too.
                    s.read_exact(&mut buf[..1]).unwrap();
                    assert_eq!(buf[0], b'+');
                }
            }
            seen
        });
        let mut gdb = Gdb::connect(&path, Duration::from_secs(5)).unwrap();
        gdb.handshake().unwrap();
        gdb.set_breakpoint(0xfe1_2345).unwrap();
        let r = gdb.registers().unwrap();
        assert_eq!((r.rax, r.rip), (0x564d_5868, 0x1234));
        gdb.write_register(RIP, r.rip + 1).unwrap();
        gdb.resume().unwrap();
        assert_eq!(gdb.wait().unwrap(), Stop::Signal(5));
        drop(gdb);
        let seen = stub.join().unwrap();
        assert!(seen[3].starts_with("$Z0,fe12345,1#"), "{seen:?}");
        assert!(seen[5].starts_with("$P10=3512000000000000#"), "{seen:?}");
        assert!(seen[6].starts_with("$c#63"), "{seen:?}");
    }
}
