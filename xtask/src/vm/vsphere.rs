//! A small, typed client for the vSphere Web Services API (SOAP, vim25), which vCenter and
//! standalone ESXi hosts both serve: one function per call `deploy` makes.
//!
//! Connection settings follow govc: `GOVC_URL`, `GOVC_USERNAME`, `GOVC_PASSWORD`,
//! `GOVC_INSECURE`, `GOVC_TLS_CA_CERTS`. The password lives in [`Secret`], which never prints.

use std::{cell::RefCell, collections::BTreeMap, fmt, thread, time::Duration};

use anyhow::{bail, Context, Result};
use roxmltree::{Document, Node};
use url::Url;

use crate::{
    http::{self, Body, Request},
    input,
    vm::{http_url, server_text::Shown},
};

const VIM25: &str = "urn:vim25";
/// The API version we speak; later servers accept it.
const SOAP_ACTION: &str = "urn:vim25/6.5";
/// The most pages one property retrieval reads: vCenter hands out at least 100 objects a page,
/// and a vCenter holds at most 45,000 VMs. A server still sending tokens after that is lying.
const MAX_PAGES: usize = 500;
/// The most text one property retrieval keeps over all its pages (each is at most
/// [`http::MAX_REPLY`]), so that pages of 16 MiB cannot add up to gigabytes.
const MAX_RETRIEVED: usize = 64 << 20;
/// The longest password `--password-stdin` takes.
const MAX_PASSWORD: u64 = 4 << 10;
/// The most XML nodes one reply may have. roxmltree keeps about 80 bytes a node and reserves
/// room for one per `<` up front, so 16 MiB of `<a/>` would take over 300 MiB; a VM inventory
/// of 45,000 names is about 400,000 nodes.
const MAX_NODES: usize = 1_000_000;

/// A password: never shown by `Debug` or `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// A password from a stream (`--password-stdin`), without its line end, refused over 4 KiB
    /// before it is all read: a stream of 200 MiB took 1.2 GB of memory on its way to Login.
    pub fn read(r: impl std::io::Read) -> Result<Secret> {
        let Some(bytes) = input::read_capped(r, MAX_PASSWORD)
            .context("cannot read the password from standard input")?
        else {
            bail!(
                "the password on standard input is over {} KiB; write only the password there",
                MAX_PASSWORD >> 10
            );
        };
        let text =
            String::from_utf8(bytes).context("the password on standard input is not UTF-8")?;
        Ok(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `https://host/sdk`, with no credentials in it (see [`parse_url`]).
    pub url: Url,
    pub insecure: bool,
    /// PEM file of the CA(s) to trust instead of the public roots (vCenter's VMCA, say).
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// A managed object reference: `<_this type="VirtualMachine">vm-42</_this>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoRef {
    pub kind: String,
    pub value: String,
}

/// What `deploy` needs to know of a VM.
#[derive(Debug, Clone)]
pub struct Vm {
    pub moref: MoRef,
    pub name: String,
    /// `poweredOn`, `poweredOff` or `suspended`.
    pub power_state: String,
    /// `bios` or `efi`.
    pub firmware: String,
    /// The API type of each virtual NIC (`VirtualVmxnet3`, ...) by its `ethernetN` number.
    pub nics: BTreeMap<u8, String>,
    pub extra_config: BTreeMap<String, String>,
    /// `config.changeVersion`: a reconfiguration that carries it is refused once someone else
    /// has changed the VM.
    pub change_version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Datastore {
    pub name: String,
    /// The datacenter's name, as `/folder` URLs take it (`dcPath`).
    pub datacenter: String,
}

/// The API types of virtual NICs, as `config.hardware.device` names them.
const NIC_TYPES: &[&str] = &[
    "VirtualE1000",
    "VirtualE1000e",
    "VirtualPCNet32",
    "VirtualVmxnet",
    "VirtualVmxnet2",
    "VirtualVmxnet3",
    "VirtualVmxnet3Vrdma",
    "VirtualSriovEthernetCard",
];

/// A logged-in session. Dropping it does not log out; call [`Session::logout`].
pub struct Session {
    client: http::Client,
    url: Url,
    /// `vmware_soap_session=...`, set by the first reply that carries it.
    cookie: RefCell<String>,
    /// How server text is printed: with the password and the cookie redacted.
    shown: RefCell<Shown>,
    content: ServiceContent,
}

#[derive(Debug, Clone)]
struct ServiceContent {
    root_folder: MoRef,
    property_collector: MoRef,
    view_manager: MoRef,
    session_manager: MoRef,
}

/// A SOAP fault: the fault's type (`InvalidLogin`, ...) and its message, both as
/// [`Shown::text`] makes them fit to print.
#[derive(Debug, Default)]
pub struct Fault {
    pub kind: String,
    pub message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for Fault {}

impl Session {
    /// Connects and logs in.
    pub fn login(endpoint: &Endpoint, creds: &Credentials) -> Result<Session> {
        let session = Session::connect(endpoint)?;
        session.shown.borrow_mut().add(creds.password.expose());
        let body = format!(
            "<userName>{}</userName><password>{}</password>",
            escape(&creds.username),
            escape(creds.password.expose())
        );
        let sm = session.content.session_manager.clone();
        match session.call("Login", &sm, &body) {
            Ok(_) => Ok(session),
            Err(e) if fault_kind(&e) == Some("InvalidLogin") => bail!(
                "vSphere at {} refused the login of user '{}': check GOVC_USERNAME and GOVC_PASSWORD",
                endpoint.url,
                crate::util::escape_for_terminal(&creds.username)
            ),
            Err(e) => Err(e.context(format!("cannot log in to {}", endpoint.url))),
        }
    }

    /// Reads the service content: where the managers are.
    fn connect(endpoint: &Endpoint) -> Result<Session> {
        if let Some(path) = &endpoint.ca_file {
            let pem = input::read(path, input::CA_FILE)?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                bail!("the CA file {} holds no PEM certificate", path.display());
            }
        }
        let client = http::Client::new(
            http::Trust {
                ca_file: endpoint.ca_file.clone(),
                insecure: endpoint.insecure,
            },
            Duration::from_secs(120),
        );
        let mut session = Session {
            client,
            url: endpoint.url.clone(),
            cookie: RefCell::new(String::new()),
            shown: RefCell::new(Shown::default()),
            content: ServiceContent {
                root_folder: moref("Folder", ""),
                property_collector: moref("PropertyCollector", ""),
                view_manager: moref("ViewManager", ""),
                session_manager: moref("SessionManager", ""),
            },
        };
        let reply = session
            .call(
                "RetrieveServiceContent",
                &moref("ServiceInstance", "ServiceInstance"),
                "",
            )
            .with_context(|| {
                format!(
                    "cannot reach the vSphere API at {}; if it uses a private CA, pass --ca-file \
                     (GOVC_TLS_CA_CERTS), or --insecure (GOVC_INSECURE=1) to skip verification",
                    endpoint.url
                )
            })?;
        let doc = xml(&reply)?;
        let rv = returnval(&doc)?;
        session.content = ServiceContent {
            root_folder: child_moref(rv, "rootFolder")?,
            property_collector: child_moref(rv, "propertyCollector")?,
            view_manager: child_moref(rv, "viewManager")?,
            session_manager: child_moref(rv, "sessionManager")?,
        };
        Ok(session)
    }

    /// How to print what this server sends: the password and the session cookie redacted,
    /// then escaped.
    pub fn shown(&self) -> Shown {
        self.shown.borrow().clone()
    }

    /// Names the server sent, fit to print.
    fn shown_all(&self, names: &[String]) -> Vec<String> {
        let shown = self.shown.borrow();
        names.iter().map(|n| shown.text(n)).collect()
    }

    pub fn logout(self) -> Result<()> {
        let sm = self.content.session_manager.clone();
        self.call("Logout", &sm, "").map(|_| ())
    }

    /// Every object of one type in the inventory, with the given properties.
    fn inventory(&self, kind: &str, paths: &[&str]) -> Result<Vec<(MoRef, Props)>> {
        let body = format!(
            "<container type=\"Folder\">{}</container><type>{kind}</type><recursive>true</recursive>",
            escape(&self.content.root_folder.value)
        );
        let reply = self.call("CreateContainerView", &self.content.view_manager, &body)?;
        let view = {
            let doc = xml(&reply)?;
            node_moref(returnval(&doc)?)?
        };
        let object_set = format!(
            "<objectSet><obj type=\"ContainerView\">{}</obj><skip>true</skip>\
             <selectSet xsi:type=\"TraversalSpec\"><name>view</name><type>ContainerView</type>\
             <path>view</path><skip>false</skip></selectSet></objectSet>",
            escape(&view.value)
        );
        let found = self.retrieve(kind, paths, &object_set);
        let _ = self.call("DestroyView", &view, "");
        found
    }

    /// The given properties of one object.
    fn properties(&self, obj: &MoRef, paths: &[&str]) -> Result<Props> {
        let object_set = format!(
            "<objectSet><obj type=\"{}\">{}</obj><skip>false</skip></objectSet>",
            escape(&obj.kind),
            escape(&obj.value)
        );
        self.retrieve(&obj.kind, paths, &object_set)?
            .into_iter()
            .next()
            .map(|(_, p)| p)
            .with_context(|| {
                let shown = self.shown.borrow();
                format!(
                    "{} {} has gone",
                    shown.text(&obj.kind),
                    shown.text(&obj.value)
                )
            })
    }

    fn retrieve(
        &self,
        kind: &str,
        paths: &[&str],
        object_set: &str,
    ) -> Result<Vec<(MoRef, Props)>> {
        let path_set: String = paths
            .iter()
            .map(|p| format!("<pathSet>{p}</pathSet>"))
            .collect();
        let body = format!(
            "<specSet><propSet><type>{kind}</type><all>false</all>{path_set}</propSet>{object_set}</specSet><options/>"
        );
        let pc = self.content.property_collector.clone();
        let mut reply = self.call("RetrievePropertiesEx", &pc, &body)?;
        let (mut out, mut kept) = (Vec::new(), 0);
        for page in 1.. {
            kept += reply.len();
            if kept > MAX_RETRIEVED {
                bail!(
                    "the vSphere property collector sent more than {} MiB for one question; is \
                     this a vSphere server?",
                    MAX_RETRIEVED >> 20
                );
            }
            let doc = xml(&reply)?;
            let Some(rv) = doc
                .descendants()
                .find(|n| n.has_tag_name((VIM25, "returnval")))
            else {
                return Ok(out);
            };
            for obj in rv.children().filter(|n| n.has_tag_name((VIM25, "objects"))) {
                out.push((child_moref(obj, "obj")?, object_props(obj)));
            }
            let Some(token) = child_text(rv, "token") else {
                return Ok(out);
            };
            if page == MAX_PAGES {
                break;
            }
            let token = format!("<token>{}</token>", escape(&token));
            reply = self.call("ContinueRetrievePropertiesEx", &pc, &token)?;
        }
        bail!(
            "the vSphere property collector sent {MAX_PAGES} pages for one question, and a token \
             for more; is this a vSphere server?"
        )
    }

    /// Finds a VM by name; the error lists close names.
    pub fn find_vm(&self, name: &str) -> Result<Vm> {
        let all = self.inventory("VirtualMachine", &["name"])?;
        let names: Vec<String> = all.iter().filter_map(|(_, p)| p.text("name")).collect();
        let Some((moref, _)) = all
            .iter()
            .find(|(_, p)| p.text("name").as_deref() == Some(name))
        else {
            bail!("{}", not_found("VM", name, &self.shown_all(&names), "--vm"));
        };
        let p = self.properties(
            moref,
            &[
                "config.changeVersion",
                "config.extraConfig",
                "config.firmware",
                "config.hardware.device",
                "runtime.powerState",
            ],
        )?;
        Ok(Vm {
            moref: moref.clone(),
            name: name.to_string(),
            power_state: p.text("runtime.powerState").unwrap_or_default(),
            firmware: p.text("config.firmware").unwrap_or_else(|| "bios".into()),
            nics: p.with("config.hardware.device", adapters)?,
            extra_config: p.with("config.extraConfig", option_values)?,
            change_version: p.text("config.changeVersion").filter(|v| !v.is_empty()),
        })
    }

    /// Finds a datastore by name, and the datacenter that holds it.
    pub fn find_datastore(&self, name: &str) -> Result<Datastore> {
        let stores = self.inventory("Datastore", &["name"])?;
        let names: Vec<String> = stores.iter().filter_map(|(_, p)| p.text("name")).collect();
        let Some((ds, _)) = stores
            .iter()
            .find(|(_, p)| p.text("name").as_deref() == Some(name))
        else {
            let names = self.shown_all(&names);
            bail!("{}", not_found("datastore", name, &names, "--datastore"));
        };
        for (_, dc) in self.inventory("Datacenter", &["name", "datastore"])? {
            let holds = dc.with("datastore", |n| {
                Ok(n.descendants()
                    .filter(|c| c.has_tag_name((VIM25, "ManagedObjectReference")))
                    .any(|c| c.text() == Some(ds.value.as_str())))
            })?;
            if holds {
                return Ok(Datastore {
                    name: name.to_string(),
                    datacenter: dc.text("name").unwrap_or_default(),
                });
            }
        }
        bail!("datastore '{name}' belongs to no datacenter this user can see")
    }

    /// A file on a datastore, or None where there is none.
    pub fn download(&self, ds: &Datastore, path: &str) -> Result<Option<Vec<u8>>> {
        let url = folder_url(&self.url, ds, path);
        let cookie = self.cookie.borrow().clone();
        let resp = self
            .client
            .send(&Request {
                method: "GET",
                url: &url,
                headers: vec![("Cookie", &cookie)],
                body: Body::None,
            })
            .with_context(|| format!("cannot read [{}] {path}", ds.name))?;
        match resp.status {
            200 => Ok(Some(resp.body)),
            404 => Ok(None),
            s => bail!("reading [{}] {path} answered HTTP {s}", ds.name),
        }
    }

    /// Writes a file to a datastore over the `/folder` HTTP interface. The bytes go through a
    /// private copy, so what is uploaded is exactly what was hashed.
    pub fn upload(&self, ds: &Datastore, path: &str, bytes: &[u8]) -> Result<()> {
        let url = folder_url(&self.url, ds, path);
        let dir = crate::util::TempDir::new("vsphere-ipxe-rom-upload-")?;
        let copy = dir.path().join("rom");
        std::fs::write(&copy, bytes)?;
        let cookie = self.cookie.borrow().clone();
        let resp = self
            .client
            .send(&Request {
                method: "PUT",
                url: &url,
                headers: vec![
                    ("Cookie", &cookie),
                    ("Content-Type", "application/octet-stream"),
                ],
                body: Body::File(&copy),
            })
            .with_context(|| format!("cannot upload to [{}] {path}", ds.name))?;
        match resp.status {
            200 | 201 | 204 => Ok(()),
            s => bail!(
                "uploading to [{}] {path} answered HTTP {s}: the user needs Datastore.FileManagement there",
                ds.name
            ),
        }
    }

    /// One ReconfigVM_Task that sets these extraConfig keys (and the firmware, if given). It
    /// carries the `changeVersion` the VM had when read, so that vSphere refuses it if someone
    /// else has changed the VM since.
    pub fn reconfigure(
        &self,
        vm: &Vm,
        extra: &BTreeMap<String, String>,
        firmware: Option<&str>,
    ) -> Result<MoRef> {
        let mut spec = String::new();
        // The WSDL's sequence puts changeVersion first.
        if let Some(v) = &vm.change_version {
            spec.push_str(&format!("<changeVersion>{}</changeVersion>", escape(v)));
        }
        for (k, v) in extra {
            spec.push_str(&format!(
                "<extraConfig xsi:type=\"OptionValue\"><key>{}</key><value xsi:type=\"xsd:string\">{}</value></extraConfig>",
                escape(k),
                escape(v)
            ));
        }
        // The WSDL's sequence puts firmware after extraConfig.
        if let Some(f) = firmware {
            spec.push_str(&format!("<firmware>{}</firmware>", escape(f)));
        }
        let reply = self.call(
            "ReconfigVM_Task",
            &vm.moref,
            &format!("<spec>{spec}</spec>"),
        )?;
        let doc = xml(&reply)?;
        node_moref(returnval(&doc)?)
    }

    pub fn power_on(&self, vm: &Vm) -> Result<MoRef> {
        let reply = self.call("PowerOnVM_Task", &vm.moref, "")?;
        let doc = xml(&reply)?;
        node_moref(returnval(&doc)?)
    }

    /// Waits for a task to succeed; its error, if it fails.
    pub fn wait(&self, task: &MoRef, timeout: Duration) -> Result<()> {
        let started = std::time::Instant::now();
        loop {
            let p = self.properties(task, &["info.state", "info.error"])?;
            match p.text("info.state").as_deref() {
                Some("success") => return Ok(()),
                Some("error") => {
                    let fault = p.with("info.error", |n| Ok(self.task_fault(n)))?;
                    let task = self.shown.borrow().text(&task.value);
                    return Err(
                        anyhow::Error::new(fault).context(format!("vSphere task {task} failed"))
                    );
                }
                _ if started.elapsed() > timeout => bail!(
                    "vSphere task {} did not finish within {} s; look at it in the vSphere client",
                    self.shown.borrow().text(&task.value),
                    timeout.as_secs()
                ),
                _ => thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// A LocalizedMethodFault: the fault's type on its `fault`, and a message.
    fn task_fault(&self, n: Node) -> Fault {
        let kind = n
            .children()
            .find(|c| c.tag_name().name() == "fault")
            .and_then(|f| f.attributes().find(|a| a.name() == "type"))
            .map(|a| a.value().rsplit(':').next().unwrap_or_default().to_string());
        let shown = self.shown.borrow();
        Fault {
            kind: shown.text(&kind.unwrap_or_default()),
            message: shown
                .text(&child_text(n, "localizedMessage").unwrap_or_else(|| "no message".into())),
        }
    }

    fn call(&self, method: &str, this: &MoRef, body: &str) -> Result<String> {
        let envelope = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>\
             <{method} xmlns=\"{VIM25}\"><_this type=\"{}\">{}</_this>{body}</{method}>\
             </soapenv:Body></soapenv:Envelope>",
            escape(&this.kind),
            escape(&this.value)
        );
        let cookie = self.cookie.borrow().clone();
        let mut headers = vec![
            ("Content-Type", "text/xml; charset=utf-8"),
            ("SOAPAction", SOAP_ACTION),
        ];
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        let resp = self.client.send(&Request {
            method: "POST",
            url: self.url.as_str(),
            headers,
            body: Body::Text(&envelope),
        })?;
        let status = resp.status;
        if let Some(c) = resp
            .header_values("set-cookie")
            .find(|v| v.starts_with("vmware_soap_session="))
        {
            let cookie = c.split(';').next().unwrap_or_default().to_string();
            let value = cookie.trim_start_matches("vmware_soap_session=");
            self.shown.borrow_mut().add(value.trim_matches('"'));
            *self.cookie.borrow_mut() = cookie;
        }
        let text = resp.text()?;
        if status == 200 {
            return Ok(text);
        }
        Err(self.fault(method, status, &text))
    }

    /// The SOAP fault of a reply that is not HTTP 200, fit to print.
    fn fault(&self, method: &str, status: u16, text: &str) -> anyhow::Error {
        let Ok(doc) = xml(text) else {
            return anyhow::anyhow!("{method} answered HTTP {status} with no SOAP body");
        };
        let Some(fault) = doc.descendants().find(|n| n.tag_name().name() == "Fault") else {
            return anyhow::anyhow!("{method} answered HTTP {status} with no SOAP fault");
        };
        let message = fault
            .children()
            .find(|n| n.tag_name().name() == "faultstring")
            .and_then(|n| n.text())
            .unwrap_or("no message");
        let kind = fault
            .descendants()
            .find(|n| n.tag_name().name() == "detail")
            .and_then(|d| d.children().find(Node::is_element))
            .map(|n| {
                let name = n.tag_name().name();
                name.strip_suffix("Fault").unwrap_or(name)
            })
            .unwrap_or_default();
        let shown = self.shown.borrow();
        Fault {
            kind: shown.text(kind),
            message: shown.text(message),
        }
        .into()
    }
}

/// Properties by path, each kept as the XML of its `<val>`.
#[derive(Debug, Default)]
struct Props(BTreeMap<String, String>);

impl Props {
    fn text(&self, path: &str) -> Option<String> {
        let doc = xml(self.0.get(path)?).ok()?;
        Some(doc.root_element().text().unwrap_or_default().to_string())
    }

    fn with<T: Default>(&self, path: &str, f: impl Fn(Node) -> Result<T>) -> Result<T> {
        match self.0.get(path) {
            Some(text) => f(xml(text)?.root_element()),
            None => Ok(T::default()),
        }
    }
}

/// An `<objects>`'s properties, by path.
fn object_props(obj: Node) -> Props {
    let mut props = Props::default();
    for p in obj
        .children()
        .filter(|n| n.has_tag_name((VIM25, "propSet")))
    {
        let name = child_text(p, "name").unwrap_or_default();
        if let Some(val) = p.children().find(|n| n.has_tag_name((VIM25, "val"))) {
            props.0.insert(name, val_xml(val));
        }
    }
    props
}

/// A `<val>` re-serialised on its own, with the namespaces it needs declared.
fn val_xml(val: Node) -> String {
    let range = val.range();
    let raw = &val.document().input_text()[range];
    // Re-root the element so it parses alone: declare the namespaces the SOAP body had.
    raw.replacen(
        "<val",
        "<val xmlns=\"urn:vim25\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"",
        1,
    )
}

/// Each virtual NIC's type by its `ethernetN` number. A NIC sits on the virtual PCI bus at
/// unit number 7 + N: govmomi, VMware's Go SDK, names devices this way
/// (`object.VirtualDeviceList.Name`: `ethernet-N` with N = UnitNumber - 7, "7 == PCI offset"
/// in its simulator). The device key is 4000 + N when vSphere assigns it, but the vim25
/// reference says keys "may be recycled" once a device is removed, so it is used only where
/// a NIC has no unit number. Sorting by key instead would make a VM's lone ethernet1, after
/// ethernet0 was removed, its ethernet0.
fn adapters(val: Node) -> Result<BTreeMap<u8, String>> {
    Ok(val
        .children()
        .filter(Node::is_element)
        .filter_map(|d| {
            let kind = d
                .attributes()
                .find(|a| a.name() == "type")
                .map(|a| a.value().rsplit(':').next().unwrap_or_default().to_string())?;
            if !NIC_TYPES.contains(&kind.as_str()) {
                return None;
            }
            let unit: Option<u64> = child_text(d, "unitNumber").and_then(|u| u.parse().ok());
            let key: Option<u64> = child_text(d, "key").and_then(|k| k.parse().ok());
            let n = match (unit, key) {
                (Some(u), _) => u.checked_sub(7)?,
                (None, Some(k)) => k.checked_sub(4000)?,
                (None, None) => return None,
            };
            Some((u8::try_from(n).ok()?, kind))
        })
        .collect())
}

/// extraConfig as a map; where a key repeats, the last value is the one in force.
fn option_values(val: Node) -> Result<BTreeMap<String, String>> {
    Ok(val
        .children()
        .filter(Node::is_element)
        .filter_map(|o| {
            Some((
                child_text(o, "key")?,
                child_text(o, "value").unwrap_or_default(),
            ))
        })
        .collect())
}

/// What a vSphere URL looks like, for errors.
const EXAMPLE_URL: &str = "https://vcenter.example/sdk";

/// `https://host/sdk` from what govc accepts (`host`, `https://host`, `https://user:pw@host/sdk`),
/// read by [`http_url::parse`], which refuses what parsers read differently. Returns the URL
/// without user info and without a trailing `/` (`/sdk` where it has no path), and the user
/// and password it held. `what` names it in errors (`--url`, `GOVC_URL`).
pub fn parse_url(raw: &str, what: &str) -> Result<(Url, Option<String>, Option<Secret>)> {
    // govc (`soap.ParseURL`) puts `https://` before a URL that no `\w+://` starts; a `://`
    // after anything else (`admin:pw://x@vc`, `ftp+x://vc`) would then end the host early.
    let full = match raw.split_once("://") {
        Some((s, _)) if http_url::is_scheme(s) => raw.to_string(),
        Some(_) => bail!(
            "{what} has '://' after something that is not a scheme: begin it with https:// (or \
             http://), and write ':' and '/' in a user name or password as %3A and %2F"
        ),
        None => format!("https://{raw}"),
    };
    let mut url = http_url::parse(&full, what, EXAMPLE_URL)?;
    if url.query().is_some() || url.fragment().is_some() {
        bail!("{what} has a ?query or #fragment, which the vSphere API takes none of: give e.g. {EXAMPLE_URL}");
    }
    let decode = |s: &str| crate::util::percent_decode(s);
    let user = Some(decode(url.username())).filter(|u| !u.is_empty());
    let password = url
        .password()
        .map(decode)
        .filter(|p| !p.is_empty())
        .map(Secret::new);
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(if path.is_empty() { "/sdk" } else { &path });
    // Neither fails on an http(s) URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, user, password))
}

fn folder_url(sdk: &Url, ds: &Datastore, path: &str) -> String {
    // The URL has no query or fragment (parse_url refuses them): it ends with its path.
    let base = sdk.as_str().trim_end_matches("/sdk");
    let path: String = path
        .split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/");
    format!(
        "{base}/folder/{path}?dcPath={}&dsName={}",
        percent_encode(&ds.datacenter),
        percent_encode(&ds.name)
    )
}

fn not_found(what: &str, name: &str, names: &[String], flag: &str) -> String {
    let lower = name.to_lowercase();
    let mut close: Vec<&String> = names
        .iter()
        .filter(|n| {
            let n = n.to_lowercase();
            n.contains(&lower) || lower.contains(&n) || edit_distance(&n, &lower) <= 3
        })
        .collect();
    close.sort();
    close.truncate(5);
    if close.is_empty() {
        format!("no {what} named '{name}' is visible to this user; check {flag}")
    } else {
        let list: Vec<String> = close.iter().map(|n| format!("'{n}'")).collect();
        format!(
            "no {what} named '{name}'; did you mean {}? Pass it with {flag}",
            list.join(", ")
        )
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn moref(kind: &str, value: &str) -> MoRef {
    MoRef {
        kind: kind.into(),
        value: value.into(),
    }
}

/// A reply as XML, with at most [`MAX_NODES`] nodes: counted before parsing too, as roxmltree
/// reserves room for a node per `<` and an attribute per `=`. Its errors are escaped, as they
/// may quote the reply.
fn xml(text: &str) -> Result<Document<'_>> {
    let too_many = || {
        anyhow::anyhow!(
            "the vSphere API answered with more than {MAX_NODES} XML nodes; is this a vSphere server?"
        )
    };
    let count = |b: u8| text.bytes().filter(|c| *c == b).count();
    // An element is two `<` (open and close tags), a node of its own and one of text.
    if count(b'<') > 2 * MAX_NODES || count(b'=') > MAX_NODES {
        return Err(too_many());
    }
    let opt = roxmltree::ParsingOptions {
        nodes_limit: MAX_NODES as u32,
        ..roxmltree::ParsingOptions::default()
    };
    Document::parse_with_options(text, opt).map_err(|e| match e {
        roxmltree::Error::NodesLimitReached => too_many(),
        e => anyhow::anyhow!(
            "the vSphere API answered with XML that does not parse: {}",
            crate::util::escape_for_terminal(&e.to_string())
        ),
    })
}

fn returnval<'a>(doc: &'a Document) -> Result<Node<'a, 'a>> {
    doc.descendants()
        .find(|n| n.has_tag_name((VIM25, "returnval")))
        .context("the vSphere API answered without a returnval")
}

fn node_moref(n: Node) -> Result<MoRef> {
    Ok(MoRef {
        kind: n
            .attribute("type")
            .context("a managed object reference without a type")?
            .to_string(),
        value: n.text().unwrap_or_default().to_string(),
    })
}

fn child_moref(n: Node, name: &str) -> Result<MoRef> {
    node_moref(
        n.children()
            .find(|c| c.has_tag_name((VIM25, name)))
            .with_context(|| format!("the vSphere API answered without {name}"))?,
    )
}

fn child_text(n: Node, name: &str) -> Option<String> {
    n.children()
        .find(|c| c.tag_name().name() == name)
        .map(|c| c.text().unwrap_or_default().to_string())
}

fn fault_kind(e: &anyhow::Error) -> Option<&str> {
    e.downcast_ref::<Fault>().map(|f| f.kind.as_str())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The datastore path a VMX file option takes for a file on a named datastore.
pub fn vmfs_path(ds: &str, path: &str) -> String {
    format!("/vmfs/volumes/{ds}/{}", path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_govc_takes_them() {
        let parse = |raw| parse_url(raw, "GOVC_URL");
        let (url, user, pw) = parse("vc.example").unwrap();
        assert_eq!(
            (url.as_str(), user, pw.is_none()),
            ("https://vc.example/sdk", None, true)
        );
        let (url, user, pw) =
            parse("https://admin%40vsphere.local:p%3Ass@vc.example:8443/").unwrap();
        assert_eq!(url.as_str(), "https://vc.example:8443/sdk");
        assert_eq!(user.as_deref(), Some("admin@vsphere.local"));
        assert_eq!(pw.unwrap().expose(), "p:ss");
        // An `@` in the path is not user info: the host is the one before it.
        let (url, user, _) = parse("http://vc.example/sdk@127.0.0.1:18650").unwrap();
        assert_eq!(url.as_str(), "http://vc.example/sdk@127.0.0.1:18650");
        assert_eq!(user, None);
        assert!(parse("ftp://x").is_err());
        assert!(format!("{:#}", parse("https://vc/sdk?x=1").unwrap_err()).contains("?query"));
        // `://` after no scheme is refused; a password spells it %3A%2F%2F.
        for bad in [
            "admin:Secret://x@vc",
            "admin:Secret@",
            "ftp+x://admin:Secret@",
        ] {
            let err = format!("{:#}", parse(bad).unwrap_err());
            assert!(!err.contains("Secret"), "{err}");
        }
        let (_, user, pw) = parse("admin:Secret%3A%2F%2Fx@vc").unwrap();
        assert_eq!(
            (user.as_deref(), pw.unwrap().expose()),
            (Some("admin"), "Secret://x")
        );
        assert_eq!(
            format!("{:?}", Secret::new("hunter2".into())),
            "Secret(***)"
        );
    }

    #[test]
    fn folder_urls_are_encoded() {
        let ds = Datastore {
            name: "data store 1".into(),
            datacenter: "DC/0".into(),
        };
        assert_eq!(
            folder_url(
                &Url::parse("https://h/sdk").unwrap(),
                &ds,
                "vsphere-ipxe-rom/ab/15ad07b0.rom"
            ),
            "https://h/folder/vsphere-ipxe-rom/ab/15ad07b0.rom?dcPath=DC%2F0&dsName=data%20store%201"
        );
    }

    #[test]
    fn close_names() {
        let names = vec!["web-01".to_string(), "web-02".into(), "db-01".into()];
        assert!(not_found("VM", "web-1", &names, "--vm").contains("'web-01', 'web-02'"));
        assert!(not_found("VM", "zzz", &names, "--vm").contains("no VM named 'zzz' is visible"));
    }

    #[test]
    fn reads_devices_and_extra_config_from_property_xml() {
        let xml = r#"<val xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="ArrayOfVirtualDevice">
            <VirtualDevice xsi:type="VirtualIDEController"><key>200</key></VirtualDevice>
            <VirtualDevice xsi:type="VirtualVmxnet3"><key>4002</key><unitNumber>8</unitNumber></VirtualDevice>
            <VirtualDevice xsi:type="VirtualE1000"><key>4003</key></VirtualDevice></val>"#;
        let doc = Document::parse(xml).unwrap();
        // ethernet1 by its PCI unit, although its key is not 4001; ethernet3 by key alone.
        let nics = adapters(doc.root_element()).unwrap();
        assert_eq!(
            nics.into_iter().collect::<Vec<_>>(),
            [(1, "VirtualVmxnet3".into()), (3, "VirtualE1000".into())]
        );
        let xml = r#"<val xmlns="urn:vim25"><OptionValue><key>a</key><value>1</value></OptionValue><OptionValue><key>a</key><value>2</value></OptionValue></val>"#;
        let doc = Document::parse(xml).unwrap();
        assert_eq!(option_values(doc.root_element()).unwrap()["a"], "2");
    }
}
