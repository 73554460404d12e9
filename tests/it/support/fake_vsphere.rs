//! A lying vSphere API server on loopback for the hostile tests: just enough of vim25 (service
//! content, login, container views, the property collector and the datastore's `/folder`) for
//! `deploy` to reach each hostile point, over plain HTTP.
//!
//! It is bounded: it reads at most 1 MiB of a request, answers at most 2,000 requests, gives up
//! on a peer silent for 10 s, streams a huge reply in 64 KiB pieces without ever holding it, and
//! stops when dropped.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

/// The session cookie the server hands out: it must never be printed.
pub const COOKIE: &str = "fake-session-5e7a1c";
const MAX_REQUEST: usize = 1 << 20;
const MAX_REQUESTS: usize = 2_000;
const IDLE: Duration = Duration::from_secs(10);

/// What the server lies about; `Lies::default()` is an honest server with one VM, `victim`,
/// whose ethernet0 is an e1000, and one datastore, `ds1`, in datacenter `dc1`.
#[derive(Clone)]
pub struct Lies {
    /// Answers this call (a SOAP method, or `GET` for the datastore file) with this many bytes,
    /// streamed without a Content-Length, so that only the reader can stop it.
    pub huge: Option<(&'static str, u64)>,
    /// Answers this SOAP method with a whole reply of this many empty elements, `<a/>`.
    pub nodes: Option<(&'static str, usize)>,
    /// Every page of the property collector's answer carries a continuation token.
    pub endless_tokens: bool,
    /// Each page of the property collector's answer has a VM with a name this long.
    pub page_padding: usize,
    /// Answers this SOAP method with a fault whose message is the request, headers and body.
    pub echo_fault: Option<&'static str>,
    pub power_state: String,
    pub firmware: String,
    pub vm_moref: String,
    pub extra_config: Vec<(String, String)>,
}

impl Default for Lies {
    fn default() -> Lies {
        Lies {
            huge: None,
            nodes: None,
            endless_tokens: false,
            page_padding: 0,
            echo_fault: None,
            power_state: "poweredOff".into(),
            firmware: "bios".into(),
            vm_moref: "vm-1".into(),
            extra_config: Vec::new(),
        }
    }
}

/// One request as it arrived: the SOAP method (or `GET <path>`) and its raw text.
#[derive(Clone, Debug)]
pub struct Seen {
    pub call: String,
    pub raw: String,
}

pub struct FakeVsphere {
    pub url: String,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeVsphere {
    /// On 127.0.0.1, at a free port.
    pub fn start(lies: Lies) -> FakeVsphere {
        FakeVsphere::start_on("127.0.0.1", lies)
    }

    /// On this loopback address (127.0.0.2 is loopback too on Linux), at a free port.
    pub fn start_on(ip: &str, lies: Lies) -> FakeVsphere {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (seen.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut count = 0;
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) || count >= MAX_REQUESTS {
                    return;
                }
                count += 1;
                if let Ok(s) = stream {
                    let _ = serve(s, &lies, &log, count);
                }
            }
        });
        FakeVsphere {
            url: format!("http://{addr}/sdk"),
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// `ip:port`, for URLs the tests build.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.call).collect()
    }
}

impl Drop for FakeVsphere {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then Content-Length bytes, at most 1 MiB) and answers it.
fn serve(mut s: TcpStream, lies: &Lies, log: &Mutex<Vec<Seen>>, n: usize) -> std::io::Result<()> {
    s.set_read_timeout(Some(IDLE))?;
    s.set_write_timeout(Some(IDLE))?;
    let raw = read_request(&mut s)?;
    let call = call_of(&raw);
    log.lock().unwrap().push(Seen {
        call: call.clone(),
        raw: raw.clone(),
    });
    if let Some((what, size)) = lies.huge {
        if call == what || (what == "GET" && call.starts_with("GET ")) {
            return stream_huge(&mut s, &call, size);
        }
    }
    let (status, body) = if let Some((_, n)) = lies.nodes.filter(|(c, _)| *c == call) {
        (
            "200 OK",
            envelope(
                &call,
                &format!("<returnval>{}</returnval>", "<a/>".repeat(n)),
            ),
        )
    } else if call.starts_with("GET ") {
        ("404 Not Found", "not found\n".to_string())
    } else if lies.echo_fault == Some(call.as_str()) {
        ("500 Internal Server Error", fault(&raw))
    } else {
        match answer(&call, &raw, lies, n) {
            Some(b) => ("200 OK", envelope(&call, &b)),
            None => ("500 Internal Server Error", fault("not implemented")),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Set-Cookie: vmware_soap_session=\"{COOKIE}\"; Path=/; HttpOnly\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())
}

fn read_request(s: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(end) = end {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len.min(MAX_REQUEST) {
                break;
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 || buf.len() > MAX_REQUEST {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The SOAP method the body calls (the first element in `soapenv:Body`), or `GET <path>`.
fn call_of(raw: &str) -> String {
    if let Some(rest) = raw.strip_prefix("GET ") {
        return format!("GET {}", rest.split_whitespace().next().unwrap_or(""));
    }
    raw.split_once("<soapenv:Body>")
        .and_then(|(_, b)| b.strip_prefix('<'))
        .map(|b| b.split([' ', '>', '/']).next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// `size` bytes of one SOAP reply that never ends: a value padded with `A`s.
fn stream_huge(s: &mut TcpStream, call: &str, size: u64) -> std::io::Result<()> {
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n")?;
    let head = if call.starts_with("GET ") {
        String::new()
    } else {
        envelope_open(call)
            + "<returnval><objects><obj type=\"VirtualMachine\">vm-1</obj>\
                                <propSet><name>name</name><val>"
    };
    s.write_all(head.as_bytes())?;
    let piece = vec![b'A'; 64 << 10];
    let mut sent = head.len() as u64;
    while sent < size {
        s.write_all(&piece)?;
        sent += piece.len() as u64;
    }
    Ok(())
}

fn envelope_open(call: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
         xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>\
         <{call}Response xmlns=\"urn:vim25\">"
    )
}

fn envelope(call: &str, inner: &str) -> String {
    format!(
        "{}{inner}</{call}Response></soapenv:Body></soapenv:Envelope>",
        envelope_open(call)
    )
}

/// A SOAP fault of type SystemError whose message is `text`.
fn fault(text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
         xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><soapenv:Fault>\
         <faultcode>ServerFaultCode</faultcode><faultstring>{}</faultstring><detail>\
         <SystemErrorFault xmlns=\"urn:vim25\" xsi:type=\"SystemError\"><reason>echo</reason>\
         </SystemErrorFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        xml(text)
    )
}

/// XML text; a CR as a character reference, so that the parser keeps it.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\r', "&#13;")
}

/// The body of the reply to `call`, or None for a method this server does not speak.
fn answer(call: &str, raw: &str, lies: &Lies, n: usize) -> Option<String> {
    Some(match call {
        "RetrieveServiceContent" => "<returnval><rootFolder type=\"Folder\">group-d1</rootFolder>\
             <propertyCollector type=\"PropertyCollector\">propertyCollector</propertyCollector>\
             <viewManager type=\"ViewManager\">ViewManager</viewManager>\
             <sessionManager type=\"SessionManager\">SessionManager</sessionManager></returnval>"
            .into(),
        "Login" => "<returnval><key>s</key><userName>u</userName></returnval>".into(),
        "CreateContainerView" => {
            let kind = between(raw, "<type>", "</type>")?;
            format!("<returnval type=\"ContainerView\">view-{kind}</returnval>")
        }
        "RetrievePropertiesEx" | "ContinueRetrievePropertiesEx" => {
            let token = if lies.endless_tokens {
                format!("<token>page-{n}</token>")
            } else {
                String::new()
            };
            let padding = if lies.page_padding > 0 {
                format!(
                    "<objects><obj type=\"VirtualMachine\">vm-2</obj><propSet><name>name</name>\
                     <val xsi:type=\"xsd:string\">{}</val></propSet></objects>",
                    "P".repeat(lies.page_padding)
                )
            } else {
                String::new()
            };
            format!(
                "<returnval>{}{padding}{token}</returnval>",
                objects(raw, lies)
            )
        }
        "DestroyView" | "Logout" => String::new(),
        _ => return None,
    })
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let (_, rest) = s.split_once(open)?;
    Some(rest.split_once(close)?.0)
}

/// The objects the property collector returns for what the request asks; a continued
/// retrieval gets the VMs again.
fn objects(raw: &str, lies: &Lies) -> String {
    let prop = |name: &str, val: &str| format!("<propSet><name>{name}</name>{val}</propSet>");
    let string = |v: &str| format!("<val xsi:type=\"xsd:string\">{}</val>", xml(v));
    let vm = xml(&lies.vm_moref);
    if raw.contains("<obj type=\"VirtualMachine\">") {
        let extra: String = lies
            .extra_config
            .iter()
            .map(|(k, v)| {
                format!(
                    "<OptionValue xsi:type=\"OptionValue\"><key>{}</key>\
                     <value xsi:type=\"xsd:string\">{}</value></OptionValue>",
                    xml(k),
                    xml(v)
                )
            })
            .collect();
        return format!(
            "<objects><obj type=\"VirtualMachine\">{vm}</obj>{}{}{}{}{}</objects>",
            prop("config.changeVersion", &string("1")),
            prop(
                "config.extraConfig",
                &format!("<val xsi:type=\"ArrayOfOptionValue\">{extra}</val>")
            ),
            prop("config.firmware", &string(&lies.firmware)),
            prop(
                "config.hardware.device",
                "<val xsi:type=\"ArrayOfVirtualDevice\"><VirtualDevice xsi:type=\"VirtualE1000\">\
                 <key>4000</key><unitNumber>7</unitNumber></VirtualDevice></val>"
            ),
            prop("runtime.powerState", &string(&lies.power_state)),
        );
    }
    if raw.contains("view-Datastore") {
        return format!(
            "<objects><obj type=\"Datastore\">datastore-1</obj>{}</objects>",
            prop("name", &string("ds1"))
        );
    }
    if raw.contains("view-Datacenter") {
        return format!(
            "<objects><obj type=\"Datacenter\">datacenter-1</obj>{}{}</objects>",
            prop("name", &string("dc1")),
            prop(
                "datastore",
                "<val xsi:type=\"ArrayOfManagedObjectReference\"><ManagedObjectReference \
                 type=\"Datastore\">datastore-1</ManagedObjectReference></val>"
            )
        );
    }
    format!(
        "<objects><obj type=\"VirtualMachine\">{vm}</obj>{}</objects>",
        prop("name", &string("victim"))
    )
}
