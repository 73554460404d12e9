//! A hostile TLS 1.2 server with no certificate at all, for the real-iPXE tests. It tries two
//! ways into a client that holds no cached session, and writes down what the client did, so a
//! test can tell a refusal from a compromise and show that the forgery itself is right.
//!
//! Only the few messages the attacks need are parsed, by hand; the cipher suite is
//! ECDHE-RSA-AES128-GCM-SHA256 (0xC02F), offered only where the client offered it.

use std::{
    io::{ErrorKind, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use aes_gcm::{aead::Aead, Aes128Gcm, KeyInit};
use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The suite both attacks pick: AES-128-GCM with SHA-256 for the PRF and transcript.
const SUITE: u16 = 0xc02f;
const TLS_1_2: [u8; 2] = [3, 3];
const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const FINISHED: u8 = 20;

/// The master secret of a client that never had a session: 48 zero bytes.
const ZERO_MASTER_SECRET: [u8; 48] = [0; 48];

/// The server stops listening by itself after this long, whoever holds it.
const LIFETIME: Duration = Duration::from_secs(300);
/// At most this many connections are answered; a boot makes one.
const MAX_CONNECTIONS: usize = 4;
/// One connection's bound, handshake and request together.
const CONNECTION_LIMIT: Duration = Duration::from_secs(120);
/// How often a blocked read or accept looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// How the server lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// ServerHello echoing the client's session ID, as if resuming it, then ChangeCipherSpec
    /// and a Finished computed from an all-zero master secret; a request the client then sends
    /// is answered with the script.
    EchoSessionId,
    /// ServerHello for a new session, then at once a plaintext Finished from the all-zero
    /// master secret: no certificate, no key exchange.
    PrematureFinished,
}

/// The server, on 127.0.0.1 in a thread of its own; stops on drop.
pub struct Forger {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Forger {
    /// Listens on a free port; `script` is the HTTP body served to a client that falls for it.
    pub fn start(attack: Attack, script: Vec<u8>) -> Forger {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let thread = thread::spawn(move || accept(listener, attack, &script, &log2, &stop2));
        Forger {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// What happened so far, one event a line.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Forger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn note(log: &Mutex<Vec<String>>, event: String) {
    if let Ok(mut l) = log.lock() {
        l.push(event);
    }
}

fn accept(
    listener: TcpListener,
    attack: Attack,
    script: &[u8],
    log: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let started = Instant::now();
    let mut served = 0;
    while served < MAX_CONNECTIONS && started.elapsed() < LIFETIME && !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, from)) => {
                served += 1;
                note(log, format!("connection from {from}"));
                // Whether it inherits the listener's mode is the platform's choice.
                if let Err(e) = stream.set_nonblocking(false) {
                    note(log, format!("connection ended: {e}"));
                    continue;
                }
                let mut conn = Conn {
                    stream,
                    deadline: Instant::now() + CONNECTION_LIMIT,
                    stop,
                };
                let ended = conn.serve(attack, script, log);
                note(
                    log,
                    match ended {
                        Ok(why) => why,
                        Err(e) => format!("connection ended: {e:#}"),
                    },
                );
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => {
                note(log, format!("accept failed: {e}"));
                return;
            }
        }
    }
}

/// One client's connection, bounded in time and stopped with the server.
struct Conn<'a> {
    stream: TcpStream,
    deadline: Instant,
    stop: &'a AtomicBool,
}

/// A record as it came: type, version, fragment.
struct Record {
    kind: u8,
    version: [u8; 2],
    fragment: Vec<u8>,
}

impl Conn<'_> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.stream.set_read_timeout(Some(POLL))?;
        let mut got = 0;
        while got < buf.len() {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => bail!("the client closed the connection"),
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if self.stop.load(Ordering::SeqCst) {
                        bail!("the server was stopped while the client was silent");
                    }
                    if Instant::now() > self.deadline {
                        bail!(
                            "the client sent nothing more for the rest of the connection's {} s",
                            CONNECTION_LIMIT.as_secs()
                        );
                    }
                }
                Err(e) => return Err(e).context("cannot read from the client"),
            }
        }
        Ok(())
    }

    fn record(&mut self) -> Result<Record> {
        let mut header = [0u8; 5];
        self.read_exact(&mut header)?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut fragment = vec![0u8; len];
        self.read_exact(&mut fragment)?;
        Ok(Record {
            kind: header[0],
            version: [header[1], header[2]],
            fragment,
        })
    }

    /// The first handshake message, whole, across as many records as it takes.
    fn handshake_message(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        loop {
            if buf.len() >= 4 {
                let len = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
                if buf.len() >= 4 + len {
                    buf.truncate(4 + len);
                    return Ok(buf);
                }
            }
            let r = self.record()?;
            if r.kind != HANDSHAKE {
                bail!(
                    "the client sent record type {} before its ClientHello",
                    r.kind
                );
            }
            buf.extend(r.fragment);
        }
    }

    /// Plays the attack; returns how the connection ended.
    fn serve(&mut self, attack: Attack, script: &[u8], log: &Mutex<Vec<String>>) -> Result<String> {
        let hello_msg = self.handshake_message()?;
        let hello = ClientHello::parse(&hello_msg)?;
        note(log, hello.describe());
        if !hello.suites.contains(&SUITE) {
            bail!("the client did not offer suite {SUITE:#06x}; nothing to forge with");
        }
        let session_id: &[u8] = match attack {
            Attack::EchoSessionId if hello.session_id.is_empty() => {
                bail!("the client sent no session ID to echo")
            }
            Attack::EchoSessionId => &hello.session_id,
            Attack::PrematureFinished => &[],
        };
        let server_random: [u8; 32] =
            Sha256::digest([&hello.random[..], b"forged"].concat()).into();
        let server_hello = server_hello(&server_random, session_id);
        let mut transcript = [hello_msg.as_slice(), &server_hello].concat();
        let keys = Keys::derive(&ZERO_MASTER_SECRET, &server_random, &hello.random);
        let finished = finished_message(&ZERO_MASTER_SECRET, "server finished", &transcript);
        transcript.extend(&finished);
        let mut out = record(HANDSHAKE, &server_hello);
        match attack {
            Attack::EchoSessionId => {
                out.extend(record(CHANGE_CIPHER_SPEC, &[1]));
                out.extend(keys.server.seal(0, HANDSHAKE, &finished));
                note(
                    log,
                    "sent ServerHello echoing the client's session ID, ChangeCipherSpec and an \
                     encrypted Finished, all from an all-zero master secret"
                        .into(),
                );
            }
            Attack::PrematureFinished => {
                out.extend(record(HANDSHAKE, &finished));
                note(
                    log,
                    "sent ServerHello for a new session and at once a plaintext Finished from an \
                     all-zero master secret"
                        .into(),
                );
            }
        }
        self.stream.write_all(&out)?;
        let server_seq = match attack {
            Attack::EchoSessionId => 1,
            Attack::PrematureFinished => 0,
        };
        self.follow(&keys, transcript, server_seq, script, log)
    }

    /// Reads what the client does next: its ChangeCipherSpec, Finished, request and alerts,
    /// decrypted under the keys of the all-zero master secret where they can be.
    fn follow(
        &mut self,
        keys: &Keys,
        transcript: Vec<u8>,
        server_seq: u64,
        script: &[u8],
        log: &Mutex<Vec<String>>,
    ) -> Result<String> {
        let mut encrypted = false;
        let mut client_seq = 0u64;
        let mut request = Vec::new();
        loop {
            let r = self.record()?;
            if r.kind == CHANGE_CIPHER_SPEC {
                note(log, "client sent ChangeCipherSpec".into());
                encrypted = true;
                continue;
            }
            let plain = if encrypted {
                let opened = keys.client.open(client_seq, &r);
                client_seq += 1;
                match opened {
                    Some(p) => p,
                    None => {
                        return Ok(format!(
                            "client's record (type {}, {} bytes) does not decrypt under the \
                             all-zero master secret's keys",
                            r.kind,
                            r.fragment.len()
                        ))
                    }
                }
            } else {
                r.fragment
            };
            match r.kind {
                ALERT => return Ok(format!("client sent alert {}", alert(&plain))),
                HANDSHAKE if plain.first() == Some(&FINISHED) => {
                    let want =
                        finished_message(&ZERO_MASTER_SECRET, "client finished", &transcript);
                    if plain != want {
                        return Ok("client Finished does not verify".into());
                    }
                    note(log, "client Finished verified".into());
                }
                HANDSHAKE => note(
                    log,
                    format!("client sent handshake type {:?}", plain.first()),
                ),
                APPLICATION_DATA => {
                    request.extend(plain);
                    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&request[..end]);
                    note(
                        log,
                        format!("decrypted request: {}", head.lines().next().unwrap_or("")),
                    );
                    let mut response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        script.len()
                    )
                    .into_bytes();
                    response.extend(script);
                    self.stream.write_all(&keys.server.seal(
                        server_seq,
                        APPLICATION_DATA,
                        &response,
                    ))?;
                    note(log, format!("served the script ({} bytes)", script.len()));
                    // Let the client read it all before the connection goes.
                    let _ = self.record();
                    return Ok("closed after serving the script".into());
                }
                other => note(log, format!("client sent record type {other}")),
            }
        }
    }
}

/// An alert's level and description, named where it is one a refusing client sends.
fn alert(plain: &[u8]) -> String {
    let [level, what] = plain else {
        return format!("of {} bytes", plain.len());
    };
    let name = match what {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        47 => "illegal_parameter",
        51 => "decrypt_error",
        80 => "internal_error",
        _ => "another",
    };
    format!("{name} ({level}.{what})")
}

/// What a ClientHello carries that the attacks use.
struct ClientHello {
    random: [u8; 32],
    session_id: Vec<u8>,
    suites: Vec<u16>,
}

impl ClientHello {
    /// Parses a whole handshake message (type, 24-bit length, body).
    fn parse(msg: &[u8]) -> Result<ClientHello> {
        if msg.first() != Some(&CLIENT_HELLO) {
            bail!("the client's first handshake message is not a ClientHello");
        }
        let body = &msg[4..];
        let short = || anyhow::anyhow!("the ClientHello is cut short");
        let random: [u8; 32] = body.get(2..34).ok_or_else(short)?.try_into()?;
        let sid_len = usize::from(*body.get(34).ok_or_else(short)?);
        let session_id = body.get(35..35 + sid_len).ok_or_else(short)?.to_vec();
        let at = 35 + sid_len;
        let suites_len = usize::from(u16::from_be_bytes(
            body.get(at..at + 2).ok_or_else(short)?.try_into()?,
        ));
        let suites = body
            .get(at + 2..at + 2 + suites_len)
            .ok_or_else(short)?
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        Ok(ClientHello {
            random,
            session_id,
            suites,
        })
    }

    fn describe(&self) -> String {
        let sid = match self.session_id.as_slice() {
            [] => "no session ID".to_string(),
            s if s == self.random => format!("a {}-byte session ID equal to its random", s.len()),
            s => format!("a {}-byte session ID", s.len()),
        };
        format!(
            "ClientHello with {sid}, {} offer {SUITE:#06x}",
            if self.suites.contains(&SUITE) {
                "does"
            } else {
                "does not"
            }
        )
    }
}

/// A ServerHello handshake message: TLS 1.2, the suite, no compression, no extensions (so no
/// extended master secret, which would not match the client's empty session).
fn server_hello(random: &[u8; 32], session_id: &[u8]) -> Vec<u8> {
    let mut body = TLS_1_2.to_vec();
    body.extend(random);
    body.push(session_id.len() as u8);
    body.extend(session_id);
    body.extend(SUITE.to_be_bytes());
    body.push(0);
    handshake(SERVER_HELLO, &body)
}

fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = (body.len() as u32).to_be_bytes();
    [&[kind, len[1], len[2], len[3]][..], body].concat()
}

/// A Finished handshake message: PRF(master, label, SHA-256(transcript)), 12 bytes.
fn finished_message(master: &[u8], label: &str, transcript: &[u8]) -> Vec<u8> {
    let verify = prf(master, label, &Sha256::digest(transcript), 12);
    handshake(FINISHED, &verify)
}

fn record(kind: u8, fragment: &[u8]) -> Vec<u8> {
    let len = (fragment.len() as u16).to_be_bytes();
    [
        &[kind, TLS_1_2[0], TLS_1_2[1], len[0], len[1]][..],
        fragment,
    ]
    .concat()
}

/// The TLS 1.2 PRF with SHA-256 (RFC 5246, section 5): P_SHA256(secret, label + seed).
pub fn prf(secret: &[u8], label: &str, seed: &[u8], len: usize) -> Vec<u8> {
    let hmac = |parts: &[&[u8]]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().to_vec()
    };
    let seed = [label.as_bytes(), seed].concat();
    let mut out = Vec::new();
    let mut a = hmac(&[&seed]);
    while out.len() < len {
        out.extend(hmac(&[&a, &seed]));
        a = hmac(&[&a]);
    }
    out.truncate(len);
    out
}

/// The record keys of AES-128-GCM: no MAC keys, a 4-byte implicit IV each way.
struct Keys {
    client: Direction,
    server: Direction,
}

impl Keys {
    /// key_block = PRF(master, "key expansion", server_random + client_random): the client's
    /// key, the server's, then their IVs.
    fn derive(master: &[u8], server_random: &[u8; 32], client_random: &[u8; 32]) -> Keys {
        let block = prf(
            master,
            "key expansion",
            &[&server_random[..], client_random].concat(),
            40,
        );
        let direction = |key: &[u8], iv: &[u8]| Direction {
            aead: Aes128Gcm::new_from_slice(key).unwrap(),
            iv: iv.try_into().unwrap(),
        };
        Keys {
            client: direction(&block[..16], &block[32..36]),
            server: direction(&block[16..32], &block[36..40]),
        }
    }
}

/// One side's key and implicit IV.
struct Direction {
    aead: Aes128Gcm,
    iv: [u8; 4],
}

impl Direction {
    /// A record: the sequence number as the 8-byte explicit nonce, then the ciphertext and tag;
    /// AAD = seq_num || type || version || plaintext length.
    fn seal(&self, seq: u64, kind: u8, plaintext: &[u8]) -> Vec<u8> {
        let explicit = seq.to_be_bytes();
        let payload = aes_gcm::aead::Payload {
            msg: plaintext,
            aad: &aad(seq, kind, TLS_1_2, plaintext.len()),
        };
        let sealed = self.aead.encrypt(&self.nonce(&explicit), payload).unwrap();
        record(kind, &[&explicit[..], &sealed].concat())
    }

    /// A record's plaintext, or None where it does not authenticate.
    fn open(&self, seq: u64, r: &Record) -> Option<Vec<u8>> {
        let (explicit, sealed) = r.fragment.split_at_checked(8)?;
        let len = sealed.len().checked_sub(16)?;
        let payload = aes_gcm::aead::Payload {
            msg: sealed,
            aad: &aad(seq, r.kind, r.version, len),
        };
        self.aead.decrypt(&self.nonce(explicit), payload).ok()
    }

    fn nonce(&self, explicit: &[u8]) -> aes_gcm::aead::Nonce<Aes128Gcm> {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.iv);
        n[4..].copy_from_slice(explicit);
        n.into()
    }
}

fn aad(seq: u64, kind: u8, version: [u8; 2], len: usize) -> Vec<u8> {
    let mut aad = seq.to_be_bytes().to_vec();
    aad.extend([kind, version[0], version[1]]);
    aad.extend((len as u16).to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Both vectors agree with `openssl kdf ... TLS1-PRF` (OpenSSL 3): the published SHA-256
    /// one, and a Finished from the all-zero master secret over an empty transcript.
    #[test]
    fn the_prf_matches_openssl() {
        let out = prf(
            &hex("9bbe436ba940f017b17652849a71db35"),
            "test label",
            &hex("a0ba9f936cda311827a6f796ffd5198c"),
            100,
        );
        assert_eq!(
            out,
            hex(
                "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9\
                 c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789ba\
                 a48082d122ee42c5a72e5a5110fff70187347b66"
            )
        );
        let verify = prf(
            &ZERO_MASTER_SECRET,
            "server finished",
            &Sha256::digest(b""),
            12,
        );
        assert_eq!(verify, hex("a33b9cc92745bcf6c796af7f"));
    }

    /// A ClientHello like iPXE v2.0.0's without a cached session: its random as session ID.
    fn hello(random: &[u8; 32]) -> Vec<u8> {
        let mut body = TLS_1_2.to_vec();
        body.extend(random);
        body.push(32);
        body.extend(random);
        body.extend(4u16.to_be_bytes());
        body.extend(0xc02bu16.to_be_bytes());
        body.extend(SUITE.to_be_bytes());
        body.extend([1, 0]);
        handshake(CLIENT_HELLO, &body)
    }

    fn connect(port: u16, hello: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&record(HANDSHAKE, hello)).unwrap();
        s
    }

    fn reader<'a>(s: &TcpStream, stop: &'a AtomicBool) -> Conn<'a> {
        Conn {
            stream: s.try_clone().unwrap(),
            deadline: Instant::now() + Duration::from_secs(30),
            stop,
        }
    }

    /// A client that falls for the echo as v2.0.0 does gets the script, and the log says each
    /// step; the same primitives on both sides, so this proves the plumbing, and the v2.0.0 ROM
    /// in real_ipxe.rs proves the cryptography.
    #[test]
    fn a_client_that_resumes_from_zeros_is_served_the_script() {
        let forger = Forger::start(Attack::EchoSessionId, b"#!ipxe\necho forged\n".to_vec());
        let random = [7u8; 32];
        let hello = hello(&random);
        let mut s = connect(forger.port, &hello);
        let stop = AtomicBool::new(false);
        let mut conn = reader(&s, &stop);
        let sh = conn.record().unwrap();
        assert_eq!(
            (sh.kind, &sh.fragment[38..71]),
            (HANDSHAKE, &[&[32u8][..], &random].concat()[..])
        );
        assert_eq!(conn.record().unwrap().kind, CHANGE_CIPHER_SPEC);
        let keys = Keys::derive(
            &ZERO_MASTER_SECRET,
            sh.fragment[6..38].try_into().unwrap(),
            &random,
        );
        let mut transcript = [hello, sh.fragment].concat();
        let finished = keys.server.open(0, &conn.record().unwrap()).unwrap();
        assert_eq!(
            finished,
            finished_message(&ZERO_MASTER_SECRET, "server finished", &transcript)
        );
        transcript.extend(finished);
        let mine = finished_message(&ZERO_MASTER_SECRET, "client finished", &transcript);
        let get = b"GET /boot.ipxe HTTP/1.1\r\nHost: 10.0.2.2\r\n\r\n";
        let out = [
            record(CHANGE_CIPHER_SPEC, &[1]),
            keys.client.seal(0, HANDSHAKE, &mine),
            keys.client.seal(1, APPLICATION_DATA, get),
        ];
        s.write_all(&out.concat()).unwrap();
        let response = keys.server.open(1, &conn.record().unwrap()).unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(response.ends_with(b"\r\n\r\n#!ipxe\necho forged\n"));
        drop((s, conn));
        let started = Instant::now();
        while !forger.log().last().is_some_and(|l| l.starts_with("closed")) {
            assert!(started.elapsed() < CONNECTION_LIMIT, "{:?}", forger.log());
            thread::sleep(POLL);
        }
        let log = forger.log();
        assert_eq!(
            log[1..],
            [
                "ClientHello with a 32-byte session ID equal to its random, does offer 0xc02f",
                "sent ServerHello echoing the client's session ID, ChangeCipherSpec and an \
                 encrypted Finished, all from an all-zero master secret",
                "client sent ChangeCipherSpec",
                "client Finished verified",
                "decrypted request: GET /boot.ipxe HTTP/1.1",
                "served the script (19 bytes)",
                "closed after serving the script",
            ]
        );
    }

    /// The premature Finished verifies over ClientHello and ServerHello from zeros; the server
    /// stops on drop though the client stays connected and silent.
    #[test]
    fn the_premature_finished_verifies_from_zeros_and_drop_stops_the_server() {
        let forger = Forger::start(Attack::PrematureFinished, Vec::new());
        let random = [9u8; 32];
        let hello = hello(&random);
        let s = connect(forger.port, &hello);
        let stop = AtomicBool::new(false);
        let mut conn = reader(&s, &stop);
        let sh = conn.record().unwrap();
        assert_eq!(sh.fragment[38], 0, "a new session: no session ID");
        let finished = conn.record().unwrap();
        assert_eq!(finished.kind, HANDSHAKE);
        let transcript = [hello, sh.fragment].concat();
        assert_eq!(
            finished.fragment,
            finished_message(&ZERO_MASTER_SECRET, "server finished", &transcript)
        );
        let started = Instant::now();
        drop(forger);
        assert!(
            started.elapsed() < CONNECTION_LIMIT,
            "drop waited for the client"
        );
    }
}
