//! Boot the ROMs in QEMU: configured by guestinfo alone (emulated GuestRPC), by DHCP, and by
//! an embedded static-IP script; each boot must fetch its script and report back, and each
//! fault case must end with iPXE's error, not hang.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    net::SocketAddr,
    path::PathBuf,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{
    boot::cases::{self, Case, Expect},
    boot::os,
    boot::qemu::{self, Boot, Guestinfo, Outcome, Server},
    cache::Cache,
    nic::Nic,
    ops::{build, How, DEFAULT_PROFILE},
    output::emit,
    project::Project,
    util::TempDir,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum BootPath {
    /// The release ROM, configured by QEMU's DHCP server
    Dhcp,
    /// A test build of the default profile with an embedded static-IP script
    Static,
    /// The release ROM, configured by guestinfo alone (emulated GuestRPC), no DHCP
    Guestinfo,
    /// Guestinfo cases that must end cleanly: no keys (falls back to DHCP), a 404 chain target,
    /// an unparseable net0.ip
    Faults,
    /// Linux from Debian's kernel and the tool's initrd, by guestinfo on each NIC (and by DHCP
    /// too, with the dhcp path); on the first, the scripts that must fail (imgfetch without
    /// imgfree, no initrd, another command line)
    Os,
}

/// What to boot, and how.
pub struct BootOptions {
    pub nics: Vec<&'static Nic>,
    /// ROM files to boot instead of building the release ROMs.
    pub roms: Vec<PathBuf>,
    /// QEMU device for a ROM whose PCI id is not a vSphere NIC's.
    pub device: Option<String>,
    /// Empty: every path, with `os` where the boot fixtures are in the cache; with `roms`, dhcp.
    pub paths: BTreeSet<BootPath>,
    /// The boot file QEMU's DHCP hands out instead of this server's script.
    pub bootfile: Option<String>,
    /// Guestinfo keys as `vmx --format json` prints them, instead of keys made for QEMU.
    pub keys: Option<PathBuf>,
    /// The HTTP server's port; 0 picks a free one.
    pub port: u16,
    /// A server of the user's (HTTPS, say) that serves `os_dir`: the OS boots fetch their
    /// scripts, kernel and initrd from this base URL instead of ours.
    pub os_url: Option<String>,
    /// Where to write the OS boots' files for that server.
    pub os_dir: Option<PathBuf>,
    pub timeout: Duration,
    pub accel: String,
    /// Keep each boot's pcap, screen and GuestRPC log here.
    pub keep: Option<PathBuf>,
    /// A UDP socket on this machine's loopback that every boot also puts on the guest's
    /// network: raw Ethernet frames both ways, e.g. for a rogue DHCP server under test.
    pub lan_peer: Option<SocketAddr>,
    pub how: How,
}

/// Where the boots run: the HTTP server the guests talk to, and the directory they write in.
struct Rig<'a> {
    project: &'a Project,
    cache: &'a Cache,
    opts: &'a BootOptions,
    server: Server,
    work: PathBuf,
    /// This server as the guest sees it.
    ours: String,
    bootfile: String,
    user_keys: Option<BTreeMap<String, String>>,
    paths: BTreeSet<BootPath>,
    /// Where the OS boots' files are, and this run's nonce.
    os: Option<(String, String)>,
    sh: Shell,
}

/// Boots every case and prints a row for each; fails naming the boots that did not pass.
pub fn boot_test(project: &Project, cache: &Cache, opts: &BootOptions) -> Result<()> {
    // Read first: a refused file stops the run before a server or a build starts.
    let user_keys = opts.keys.as_deref().map(cases::load_keys).transpose()?;
    let paths = paths(project, cache, opts);
    check_options(opts, &paths)?;
    let server = Server::start(opts.port)?;
    let os = match paths.contains(&BootPath::Os) {
        true => Some(publish_os(project, cache, opts, &server)?),
        false => None,
    };
    let scratch = TempDir::new("vsphere-ipxe-rom-boot-")?;
    let ours = format!("http://{}:{}/", qemu::HOST_FROM_GUEST, server.port);
    let rig = Rig {
        project,
        cache,
        opts,
        work: opts.keep.clone().unwrap_or(scratch.path().to_path_buf()),
        bootfile: opts
            .bootfile
            .clone()
            .unwrap_or_else(|| format!("{ours}boot.ipxe")),
        ours,
        server,
        user_keys,
        paths,
        os,
        sh: Shell::new()?,
    };
    let boots = rig.cases()?;
    print_header();
    let mut sites = HashMap::new();
    let mut failed = Vec::new();
    for (i, case) in boots.iter().enumerate() {
        if !rig.boot(i, case, &mut sites)? {
            failed.push(format!("{} ({})", case.label, case.path));
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} boot(s) failed: {}",
            failed.len(),
            boots.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The table's header row; `Rig::boot` prints a row per boot under it.
fn print_header() {
    println!(
        "{:<22} {:<12} {:<7} {:<15} {:>8} {:>5} {:>5} {:>6} {:>9} {:>6} {:>6}",
        "rom",
        "path",
        "booted",
        "address",
        "first-req",
        "dhcp",
        "http",
        "rpc",
        "backdoor",
        "init",
        "MB/s"
    );
}

/// Refuses options that cannot go together, before anything starts.
fn check_options(opts: &BootOptions, paths: &BTreeSet<BootPath>) -> Result<()> {
    if !opts.roms.is_empty() && paths.contains(&BootPath::Static) {
        bail!("--path static boots a test build of its own and cannot boot a --rom; leave it out");
    }
    if let Some(peer) = opts
        .lan_peer
        .filter(|p| !p.ip().is_loopback() || p.is_ipv6())
    {
        bail!(
            "--lan-peer {peer} is not an IPv4 loopback address: the guest's frames go only to \
             this machine (127.0.0.1:PORT)"
        );
    }
    Ok(())
}

/// The paths asked for, or the defaults: every path, with `os` where its fixtures are cached.
fn paths(project: &Project, cache: &Cache, opts: &BootOptions) -> BTreeSet<BootPath> {
    if !opts.paths.is_empty() {
        return opts.paths.clone();
    }
    if !opts.roms.is_empty() {
        return [BootPath::Dhcp].into();
    }
    let mut all: BTreeSet<BootPath> = [
        BootPath::Dhcp,
        BootPath::Static,
        BootPath::Guestinfo,
        BootPath::Faults,
    ]
    .into();
    match os::prepare_check(project, cache) {
        Ok(()) => {
            all.insert(BootPath::Os);
        }
        Err(e) => println!("not booting Linux (--path os): {e:#}"),
    }
    all
}

/// Makes the kernel, initrd and scripts for the OS boots, serves them (and writes them to
/// `--os-dir`); returns their base URL and this run's nonce.
fn publish_os(
    project: &Project,
    cache: &Cache,
    opts: &BootOptions,
    server: &Server,
) -> Result<(String, String)> {
    let fixtures = os::prepare(project, cache)?;
    let nonce = os::nonce();
    let ours = format!("http://{}:{}/os/", qemu::HOST_FROM_GUEST, server.port);
    let base = match (&opts.os_url, &opts.os_dir) {
        (Some(url), Some(_)) => {
            let plain = url.starts_with("http://") || url.starts_with("https://");
            if !plain || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!(
                    "--os-url {url:?} is not an http:// or https:// URL without spaces: it goes \
                     into an iPXE script as it is"
                );
            }
            format!("{}/", url.trim_end_matches('/'))
        }
        (None, None) => ours,
        _ => bail!("--os-url and --os-dir go together: the server at the URL serves the directory"),
    };
    let mut files = vec![
        ("vmlinuz".to_string(), fixtures.kernel),
        ("initrd.gz".to_string(), fixtures.initrd),
    ];
    for (name, kind, _) in cases::OS_SCRIPTS {
        files.push((
            name.to_string(),
            os::script(&base, &nonce, *kind).into_bytes(),
        ));
    }
    for (name, bytes) in files {
        if let Some(dir) = &opts.os_dir {
            fs::create_dir_all(dir)?;
            fs::write(dir.join(&name), &bytes)
                .with_context(|| format!("cannot write {}", dir.join(&name).display()))?;
        }
        server.publish(&format!("/os/{name}"), bytes);
    }
    Ok((base, nonce))
}

impl Rig<'_> {
    /// The ROMs to boot: the release build of the default profile, or the files given.
    fn roms(&self) -> Result<Vec<(String, PathBuf, String)>> {
        let mut roms = Vec::new();
        if self.opts.roms.is_empty() {
            let req = self.opts.how.request(
                self.project,
                self.cache,
                DEFAULT_PROFILE,
                self.opts.nics.clone(),
                false,
            );
            let release = build::build(&self.sh, &req)?;
            let dir = self.work.join("release");
            emit::write(&dir, &release.files(), &release.manifest)?;
            for rom in &release.roms {
                let label = format!("{}/{}", release.manifest.profile.name, rom.nic.name);
                roms.push((label, dir.join(&rom.file_name), rom.nic.qemu_device.into()));
            }
        } else {
            for rom in &self.opts.roms {
                let label = rom.file_name().unwrap_or_default().to_string_lossy();
                let device = cases::device_for(rom, self.opts.device.as_deref())?;
                roms.push((label.into_owned(), rom.clone(), device));
            }
        }
        Ok(roms)
    }

    /// The guestinfo keys for a ROM: the user's, or keys made for QEMU's network.
    fn keys_for(&self, rom: &std::path::Path) -> Result<BTreeMap<String, String>> {
        match &self.user_keys {
            Some(k) => Ok(k.clone()),
            None => {
                let chain = format!("{}boot.ipxe", self.ours);
                cases::qemu_keys(rom, cases::device_nic(rom)?, &chain)
            }
        }
    }

    /// Linux on each ROM, by guestinfo (and DHCP, with that path); on the first, the scripts
    /// that must fail.
    fn os_cases(&self, roms: &[(String, PathBuf, String)]) -> Result<Vec<Case>> {
        let Some((base, nonce)) = &self.os else {
            return Ok(Vec::new());
        };
        let http = if base.starts_with(&self.ours) { 3 } else { 0 };
        let mut boots = Vec::new();
        for (i, (label, rom, device)) in roms.iter().enumerate() {
            let keys = self.keys_for(rom)?;
            for (name, _, fails) in cases::OS_SCRIPTS {
                let script = format!("{base}{name}");
                let path = name.trim_end_matches(".ipxe");
                match fails {
                    None => {
                        boots.push(Case::linux(
                            label,
                            path,
                            rom,
                            device,
                            Some(&keys),
                            script.clone(),
                            nonce,
                            http,
                        ));
                        if self.paths.contains(&BootPath::Dhcp) {
                            boots.push(Case::linux(
                                label, "os-dhcp", rom, device, None, script, nonce, http,
                            ));
                        }
                    }
                    Some(reason) if i == 0 => boots.push(
                        Case::linux(label, path, rom, device, Some(&keys), script, nonce, 0)
                            .failing_because(reason),
                    ),
                    Some(_) => {}
                }
            }
        }
        Ok(boots)
    }

    fn cases(&self) -> Result<Vec<Case>> {
        let paths = &self.paths;
        let roms = self.roms()?;
        let mut boots = Vec::new();
        let dhcp_http = if self.opts.bootfile.is_some() { 1 } else { 2 };
        for (label, rom, device) in &roms {
            if paths.contains(&BootPath::Dhcp) {
                boots.push(Case::dhcp(label, rom, device, &self.bootfile, dhcp_http));
            }
            if paths.contains(&BootPath::Guestinfo) {
                let keys = self.keys_for(rom)?;
                boots.push(Case::guestinfo(label, rom, device, keys, &self.ours));
            }
        }
        if paths.contains(&BootPath::Static) {
            boots.extend(self.static_cases()?);
        }
        if paths.contains(&BootPath::Faults) {
            let (label, rom, device) = roms.first().context("no ROM to boot")?;
            let base = self.keys_for(rom)?;
            boots.extend(cases::fault_cases(
                label,
                rom,
                device,
                &base,
                &self.bootfile,
                &self.ours,
            ));
        }
        boots.extend(self.os_cases(&roms)?);
        Ok(boots)
    }

    /// A test build of the default profile with an embedded static-IP script.
    fn static_cases(&self) -> Result<Vec<Case>> {
        let configs = self.project.configs();
        let profile = cases::static_profile(self.cache, &configs, self.server.port)?;
        let req = self.opts.how.request(
            self.project,
            self.cache,
            profile.to_str().unwrap_or_default(),
            self.opts.nics.clone(),
            false,
        );
        let built = build::build(&self.sh, &req)?;
        let dir = qemu::workdir(&self.work, "static")?;
        let mut boots = Vec::new();
        for rom in &built.roms {
            let path = dir.join(&rom.file_name);
            fs::write(&path, &rom.bytes)?;
            let label = format!("vmware/{}", rom.nic.name);
            boots.push(Case::static_ip(&label, &path, rom.nic.qemu_device));
        }
        Ok(boots)
    }

    /// Boots one case, prints its row, and says whether it passed.
    fn boot(
        &self,
        i: usize,
        case: &Case,
        sites: &mut HashMap<PathBuf, BTreeSet<u64>>,
    ) -> Result<bool> {
        let opts = self.opts;
        let dir = qemu::workdir(&self.work, &format!("boot-{i}-{}", case.path))?;
        if case.keys.is_some() && !sites.contains_key(&case.rom) {
            let found = qemu::find_backdoor_sites(
                &case.rom,
                &case.device,
                &dir,
                &opts.accel,
                opts.timeout,
            )?;
            sites.insert(case.rom.clone(), found);
        }
        let attempt = || {
            qemu::run(
                &Boot {
                    rom: &case.rom,
                    device: &case.device,
                    bootfile: case.bootfile.clone(),
                    workdir: &dir,
                    timeout: opts.timeout,
                    accel: &opts.accel,
                    guestinfo: case.keys.as_ref().map(|keys| Guestinfo {
                        keys,
                        sites: &sites[&case.rom],
                    }),
                    lan_peer: opts.lan_peer,
                },
                &self.server,
            )
        };
        let mut outcome = attempt()?;
        // Under heavy load SeaBIOS has been seen to skip the option ROM; a ROM that never reaches
        // the network gets one more try, and the table says so.
        let mut note = "";
        if outcome.first_request.is_none() && case.expects_requests() {
            outcome = attempt()?;
            note = " (second try)";
        }
        if opts.keep.is_some() {
            cases::keep(&dir, case, &outcome)?;
        }
        print_row(case, &outcome, note);
        Ok(report(case, &outcome))
    }
}

/// Prints why a boot failed, or how a fault case ended as it should; true if it passed.
fn report(case: &Case, outcome: &Outcome) -> bool {
    let problems = cases::judge(case, outcome);
    if problems.is_empty() {
        match &case.expect {
            Expect::Fail { .. } => println!(
                "  ended as it should: {}: {}",
                outcome.ended.describe(),
                outcome.ipxe_error().unwrap_or_default()
            ),
            Expect::Linux {
                fails_because: Some(_),
                want,
                dhcp,
            } => println!(
                "  ended as it should: {}",
                cases::linux_problems(want, *dhcp, outcome).join("; ")
            ),
            _ => {}
        }
    }
    if !problems.is_empty() {
        println!(
            "  {}; last screen:\n{}",
            problems.join("; "),
            indent(&outcome.screen)
        );
    }
    problems.is_empty()
}

fn print_row(case: &Case, outcome: &Outcome, note: &str) {
    let first = outcome
        .first_request
        .map_or("-".to_string(), |d| format!("{:.1}s", d.as_secs_f64()));
    let (rpc, calls) = outcome
        .backdoor
        .as_ref()
        .map_or(("-".into(), "-".into()), |b| {
            (b.commands.len().to_string(), b.calls.to_string())
        });
    let address = case.address(outcome);
    let linux = matches!(case.expect, Expect::Linux { .. });
    let init = outcome
        .serial_report
        .filter(|_| linux)
        .map_or("-".to_string(), |d| format!("{:.1}s", d.as_secs_f64()));
    let rate = outcome
        .largest_download
        .filter(|&(bytes, secs)| linux && bytes > 1 << 20 && secs > 0.0)
        .map_or("-".to_string(), |(bytes, secs)| {
            format!("{:.2}", bytes as f64 / secs / 1e6)
        });
    println!(
        "{:<22} {:<12} {:<7} {:<15} {:>8} {:>5} {:>5} {:>6} {:>9} {:>6} {:>6}{note}",
        case.label,
        case.path,
        if address.is_some() { "yes" } else { "no" },
        address.as_deref().unwrap_or("-"),
        first,
        outcome.dhcp_packets,
        outcome.http_requests,
        rpc,
        calls,
        init,
        rate
    );
}

fn indent(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("    | {l}"))
        .collect();
    if lines.is_empty() {
        "    (blank)".into()
    } else {
        lines.join("\n")
    }
}
