//! Hostile peers for the boot tests: a rogue DHCP server on the guest's segment (the socket
//! `boot-test --lan-peer` puts on QEMU's hub) and an HTTP server whose lengths run up to 2^32.
//! Each runs in a thread of the test, on loopback only, bounded in time and in what it answers,
//! and stops when dropped.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

/// The rogue's address on the guest's network, and the address it offers.
pub const ROGUE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 66);
pub const ROGUE_OFFER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 99);
const ROGUE_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xde, 0xad, 0x66];

/// BOOTP's fixed header (RFC 951); DHCP's magic cookie and options follow it.
pub const BOOTP_HEADER: usize = 236;
const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// The most DHCPDISCOVERs the rogue answers.
const MOST_DISCOVERS: usize = 100;

/// Polls the stop flag this often while waiting for a frame or a connection.
const POLL: Duration = Duration::from_millis(100);

/// The value of a DHCP option in a well-formed BOOTP payload; None where the payload has no
/// cookie, or the options are malformed before the tag.
pub fn dhcp_option(bootp: &[u8], tag: u8) -> Option<&[u8]> {
    let mut opts = bootp.get(BOOTP_HEADER..)?.strip_prefix(&COOKIE)?;
    loop {
        match *opts.first()? {
            0 => opts = &opts[1..],
            255 => return None,
            t => {
                let len = usize::from(*opts.get(1)?);
                let value = opts.get(2..2 + len)?;
                if t == tag {
                    return Some(value);
                }
                opts = &opts[2 + len..];
            }
        }
    }
}

/// A UDP datagram in an Ethernet frame: its IPv4 source, ports and payload.
pub struct Udp<'a> {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

impl Udp<'_> {
    /// From an IPv4 packet (its header on).
    pub fn in_ipv4(ip: &[u8]) -> Option<Udp<'_>> {
        let ihl = usize::from(ip.first()? & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
        if *ip.get(9)? != 17 {
            return None;
        }
        let udp = ip.get(ihl..total)?;
        let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
        Some(Udp {
            src: src.into(),
            sport: u16::from_be_bytes([*udp.first()?, *udp.get(1)?]),
            dport: u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]),
            payload: udp.get(8..)?,
        })
    }

    /// From an Ethernet frame.
    pub fn in_frame(frame: &[u8]) -> Option<Udp<'_>> {
        (frame.get(12..14)? == [0x08, 0x00]).then_some(())?;
        Udp::in_ipv4(frame.get(14..)?)
    }

    /// The DHCP message type of a client's (to 67) or a server's (from 67) packet.
    pub fn dhcp_type(&self) -> Option<u8> {
        (self.dport == 67 || self.sport == 67).then_some(())?;
        dhcp_option(self.payload, 53)?.first().copied()
    }
}

/// The rogue's two answers to a DHCPDISCOVER, each a whole frame: a BOOTP reply cut before
/// the magic cookie, so shorter than iPXE's 240-byte DHCP header; and a DHCPOFFER whose
/// options have no end marker and whose last option (a boot file) runs past the end of the
/// packet. Both offer 10.0.2.99 from 10.0.2.66, so a ROM that takes either asks for it.
///
/// They reach the guest after slirp's offer, which QEMU makes in the same call that puts the
/// DISCOVER on the hub. iPXE waits for ProxyDHCP offers before it requests, and takes the last
/// offer of the highest priority: so the short reply, if taken at all (as a BOOTP offer),
/// replaces slirp's. The offer carries iPXE's priority -1: read as far as it is well formed,
/// as it should be, it ranks below slirp's; a ROM that threw its options away would take it at
/// priority 0 as a BOOTP offer.
pub fn rogue_answers(discover: &[u8]) -> Option<[Vec<u8>; 2]> {
    let mut short = vec![0u8; BOOTP_HEADER];
    short[..4].copy_from_slice(&[2, 1, 6, 0]);
    short[4..8].copy_from_slice(discover.get(4..8)?);
    short[10] = 0x80;
    short[16..20].copy_from_slice(&ROGUE_OFFER.octets());
    short[20..24].copy_from_slice(&ROGUE_IP.octets());
    short[28..44].copy_from_slice(discover.get(28..44)?);
    let mut offer = short.clone();
    offer.extend(COOKIE);
    offer.extend([53, 1, 2]);
    offer.extend([54, 4]);
    offer.extend(ROGUE_IP.octets());
    offer.extend([175, 3, 1, 1, 0xff]);
    offer.extend([67, 255]);
    offer.extend(b"http://10.0.2.66/rogue.ipxe");
    Some([frame(&short), frame(&offer)])
}

/// A UDP datagram from the rogue's port 67 to the client's 68, as an Ethernet broadcast to
/// 255.255.255.255 with TTL 1. slirp sees every frame on the hub too: it drops a datagram
/// whose TTL runs out, and could not send a limited broadcast on from its host socket anyway.
fn frame(payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 1, 17, 0, 0];
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend(ROGUE_IP.octets());
    ip.extend([255; 4]);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut udp = [67u16, 68, udp_len as u16, 0]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect::<Vec<u8>>();
    udp.extend(payload);
    let mut pseudo = ip[12..20].to_vec();
    pseudo.extend([0, 17]);
    pseudo.extend((udp_len as u16).to_be_bytes());
    pseudo.extend(&udp);
    let sum = match checksum(&pseudo) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    let mut f = vec![0xff; 6];
    f.extend(ROGUE_MAC);
    f.extend([0x08, 0x00]);
    f.extend(ip);
    f.extend(udp);
    f
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What the rogue saw on the hub and what it sent.
#[derive(Debug, Default, Clone)]
pub struct RogueLog {
    /// The guest's DHCPDISCOVERs.
    pub discovers: usize,
    /// slirp's DHCPOFFERs, which every DISCOVER also gets.
    pub slirp_offers: usize,
    /// Frames sent back: two for each DISCOVER.
    pub sent: usize,
}

/// A rogue DHCP server on the guest's segment, answering each DHCPDISCOVER it sees with
/// [`rogue_answers`].
pub struct RogueDhcp {
    /// The socket QEMU sends the hub's frames to (`boot-test --lan-peer`).
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<RogueLog>>,
}

impl RogueDhcp {
    /// Listens on a free loopback port for at most `limit`.
    pub fn start(limit: Duration) -> RogueDhcp {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(POLL)).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let until = Instant::now() + limit;
        let thread = thread::spawn(move || answer_discovers(&socket, &flag, until));
        RogueDhcp {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the rogue and says what it did.
    pub fn finish(mut self) -> RogueLog {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().unwrap();
        thread.join().unwrap()
    }
}

impl Drop for RogueDhcp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer_discovers(socket: &UdpSocket, stop: &AtomicBool, until: Instant) -> RogueLog {
    let mut log = RogueLog::default();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        let Ok((n, qemu)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(udp) = Udp::in_frame(&buf[..n]) else {
            continue;
        };
        match udp.dhcp_type() {
            Some(1) if udp.dport == 67 && log.discovers < MOST_DISCOVERS => {
                log.discovers += 1;
                for answer in rogue_answers(udp.payload).into_iter().flatten() {
                    if socket.send_to(&answer, qemu).is_ok() {
                        log.sent += 1;
                    }
                }
            }
            Some(2) if udp.sport == 67 => log.slirp_offers += 1,
            _ => {}
        }
    }
    log
}

/// How a hostile response goes on after its bytes: the server closes, or holds the
/// connection open (up to [`HOLD`]) to see whether the ROM hangs up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Close,
    Hold,
}

/// The longest the server holds a connection: well past the moment a ROM that refuses the
/// response hangs up, well under the boot's time limit.
pub const HOLD: Duration = Duration::from_secs(20);

/// One path's hostile response.
pub struct Hostile {
    pub path: String,
    pub response: Vec<u8>,
    pub then: Then,
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Visit {
    pub path: String,
    /// The client closed the connection while the server held it.
    pub hung_up: bool,
}

/// An HTTP server on 127.0.0.1 with a hostile response for each of its paths (404 for any
/// other), one connection at a time, as iPXE fetches.
pub struct HostileHttp {
    pub port: u16,
    visits: Arc<Mutex<Vec<Visit>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl HostileHttp {
    /// Serves what `responses` makes for the server's port, for at most `limit`.
    pub fn start(limit: Duration, responses: impl FnOnce(u16) -> Vec<Hostile>) -> HostileHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let responses = responses(port);
        let visits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, flag) = (visits.clone(), stop.clone());
        let until = Instant::now() + limit;
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) && Instant::now() < until {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(v) = answer(stream, &responses, &flag) {
                            log.lock().unwrap().push(v);
                        }
                    }
                    Err(_) => thread::sleep(POLL),
                }
            }
        });
        HostileHttp {
            port,
            visits,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the server and returns every request it answered, in order.
    pub fn finish(mut self) -> Vec<Visit> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.visits.lock().unwrap().clone()
    }
}

impl Drop for HostileHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request, sends its path's response, then closes or holds.
fn answer(mut stream: TcpStream, responses: &[Hostile], stop: &AtomicBool) -> Option<Visit> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
        let n = stream.read(&mut buf).ok().filter(|&n| n > 0)?;
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
    let hostile = responses.iter().find(|h| h.path == path);
    let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    let bytes = hostile.map_or(not_found, |h| h.response.clone());
    let _ = stream.write_all(&bytes);
    let hung_up = hostile.is_some_and(|h| h.then == Then::Hold) && hung_up(&mut stream, stop);
    Some(Visit { path, hung_up })
}

/// Holds the connection until the client closes it (true) or [`HOLD`] runs out (false).
fn hung_up(stream: &mut TcpStream, stop: &AtomicBool) -> bool {
    let until = Instant::now() + HOLD;
    let _ = stream.set_read_timeout(Some(POLL));
    let mut buf = [0u8; 1024];
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A loopback port that was free a moment ago, for a server another process starts.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn the_rogues_answers_are_malformed_as_intended_and_nothing_else() {
    // A DISCOVER as iPXE sends it: xid, chaddr, cookie, message type 1, end.
    let mut discover = vec![0u8; BOOTP_HEADER];
    discover[..4].copy_from_slice(&[1, 1, 6, 0]);
    discover[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    discover[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    discover.extend(COOKIE);
    discover.extend([53, 1, 1, 255]);
    assert_eq!(dhcp_option(&discover, 53), Some(&[1u8][..]));
    let [short, offer] = rogue_answers(&discover).unwrap();
    for f in [&short, &offer] {
        let udp = Udp::in_frame(f).unwrap();
        assert_eq!((udp.src, udp.sport, udp.dport), (ROGUE_IP, 67, 68));
        assert_eq!(checksum(&f[14..34]), 0, "the IPv4 header checksum holds");
        assert_eq!(f[22], 1, "TTL 1");
        assert_eq!(udp.payload[4..8], discover[4..8], "the DISCOVER's xid");
        assert_eq!(udp.payload[16..20], ROGUE_OFFER.octets());
        assert_eq!(udp.payload[28..34], discover[28..34], "the guest's MAC");
    }
    assert_eq!(Udp::in_frame(&short).unwrap().payload.len(), BOOTP_HEADER);
    let offer = Udp::in_frame(&offer).unwrap().payload;
    let opts = &offer[BOOTP_HEADER + 4..];
    let tags: Vec<u8> = [0, 3, 9, 14].iter().map(|&i| opts[i]).collect();
    assert_eq!(tags, [53, 54, 175, 67], "{opts:?}");
    assert_eq!(
        (opts[15], opts.len() - 16),
        (255, 27),
        "the boot file claims 255 bytes, 27 follow, and the packet ends: no end marker"
    );
    assert_eq!(dhcp_option(offer, 53), Some(&[2u8][..]), "a DHCPOFFER");
    assert_eq!(
        dhcp_option(offer, 175),
        Some(&[1u8, 1, 0xff][..]),
        "priority -1"
    );
    assert_eq!(dhcp_option(offer, 67), None, "the boot file is malformed");
}
