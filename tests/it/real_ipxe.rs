//! The real thing: the pinned iPXE source from the tool's own cache, built natively and in
//! Docker. Skipped, saying how to enable them, where the cache does not hold the pinned source.

use std::{fs, path::PathBuf};

mod hostile_net;

use crate::support::*;
use xtask::{cache::Cache, check::romcheck, nic::Nic, record::Manifest, source, source::pin::Pin};

/// The default profile's design budget for every NIC (52 KiB), leaving room for embedded scripts.
const DEFAULT_PROFILE_BUDGET: u64 = 53_248;

/// A project with the repository's pin, profiles and Dockerfile, over the tool's real cache.
struct Real {
    project: tempfile::TempDir,
    cache: PathBuf,
}

impl Real {
    fn find() -> Option<Real> {
        let cache = Cache::locate(None).unwrap();
        let pin = Pin::load(&repo().join("configs/ipxe.toml")).unwrap();
        if source::cached(&pin, &cache).is_none() {
            if let Some(archive) = std::env::var_os("VSPHERE_IPXE_ARCHIVE") {
                source::import(&pin, &cache, &PathBuf::from(archive)).unwrap();
            } else {
                skip(&format!(
                    "iPXE {} is not in the cache {}; import it with \
                     `cargo xtask fetch --archive FILE` (or set VSPHERE_IPXE_ARCHIVE=FILE) to run the real-iPXE tests",
                    pin.version,
                    cache.root().display()
                ));
                return None;
            }
        }
        let project = tempfile::tempdir().unwrap();
        // A project like the repository, with the series whose upstream patches must be cached.
        xtask::project::Project::locate(None)
            .copy_inputs(project.path())
            .unwrap();
        let fetch = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--project")
            .arg(project.path())
            .arg("--cache-dir")
            .arg(cache.root())
            .args(["fetch", "--offline"])
            .output()
            .unwrap();
        let project_dir = xtask::project::Project {
            root: project.path().to_path_buf(),
        };
        let series = xtask::builder::series::resolve(&project_dir, &cache, &[]);
        if !fetch.status.success() || series.is_err() {
            skip(&format!(
                "the upstream patches of ipxe-patches/series.toml are not all in the cache {}; \
                 import each with `cargo xtask fetch --patch FILE` (FILE from git format-patch -1 <commit>) \
                 to run the real-iPXE tests",
                cache.root().display()
            ));
            return None;
        }
        Some(Real {
            project,
            cache: cache.root().to_path_buf(),
        })
    }

    /// The real binary against this project and the tool's real cache.
    fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("--project")
            .arg(self.project.path())
            .arg("--cache-dir")
            .arg(&self.cache);
        cmd
    }

    fn xtask(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().unwrap()
    }

    /// `build-rom --runtime native --out OUT` with the given NIC and profile flags.
    fn build_native(&self, args: &[&str], out: &std::path::Path) -> std::process::Output {
        let mut all = vec!["build-rom"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--runtime", "native", "--out", out.to_str().unwrap()]);
        self.xtask(&all)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.project.path().join(name)
    }
}

fn check_all(dir: &std::path::Path) -> Manifest {
    let manifest = Manifest::load(&dir.join("manifest.json")).unwrap();
    for (file, info) in &manifest.roms {
        let bytes = fs::read(dir.join(file)).unwrap();
        let nic = Nic::by_name(&info.nic).unwrap();
        let report = romcheck::check(&bytes, nic, nic.default_limit);
        assert!(report.ok(), "{file}: {:?}", report.problems);
        assert!(
            info.size <= DEFAULT_PROFILE_BUDGET,
            "{file} is {} bytes, over the default profile's {DEFAULT_PROFILE_BUDGET}",
            info.size
        );
        eprintln!(
            "{file} ({}): {} bytes, headroom {} under {}",
            info.nic, info.size, info.headroom, info.limit
        );
    }
    manifest
}

#[test]
fn native_and_docker_builds_of_every_nic_are_byte_identical() {
    let Some(real) = Real::find() else { return };
    let native = real.out("native");
    ok(&real.build_native(&["--nic", "all"], &native));
    let manifest = check_all(&native);
    assert_eq!(manifest.roms.len(), 3);
    let pin = Pin::load(&repo().join("configs/ipxe.toml")).unwrap();
    assert_eq!(
        manifest.source.commit, pin.commit,
        "the manifest names the pin"
    );

    let Some(base) = base_image() else { return };
    let docker = real.out("docker");
    ok(&real.xtask(&docker_build_args("all", &base, &docker)));
    check_all(&docker);
    assert_eq!(
        read_sums(&docker),
        read_sums(&native),
        "Docker and native ROMs differ"
    );
}

#[test]
fn mrom_and_vlance_targets_pass_their_checks() {
    let Some(real) = Real::find() else { return };
    let out = real.out("mrom");
    ok(&real.build_native(&["--nic", "e1000,e1000e,vlance", "--mrom"], &out));
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    let names: Vec<&str> = manifest.roms.keys().map(String::as_str).collect();
    assert_eq!(names, ["10222000.rom", "8086100f.mrom", "808610d3.mrom"]);
    let mrom = fs::read(out.join("8086100f.mrom")).unwrap();
    let images = romcheck::parse(&mrom).unwrap();
    assert_eq!(
        images.len(),
        2,
        "an .mrom is a loader image followed by the body"
    );
    assert!(romcheck::check(&mrom, Nic::by_name("e1000").unwrap(), 65_536).ok());
}

#[test]
fn a_real_patch_changes_the_rom_and_a_stale_one_stops_the_build() {
    let Some(real) = Real::find() else { return };
    let patch = "--- a/src/config/branding.h\n+++ b/src/config/branding.h\n@@ -25,7 +25,7 @@\n  * \"iPXE\".\n  *\n  */\n-#define PRODUCT_NAME \"\"\n+#define PRODUCT_NAME \"vsphere-ipxe-rom test build\"\n #define PRODUCT_SHORT_NAME \"iPXE\"\n #define PRODUCT_URI \"https://ipxe.org\"\n \n";
    fs::write(
        real.project
            .path()
            .join("ipxe-patches/0001-product-name.patch"),
        patch,
    )
    .unwrap();
    let profile = real.project.path().join("configs/vmware.toml");
    let original = fs::read_to_string(&profile).unwrap();
    fs::write(
        &profile,
        format!("patches = [\"0001-product-name.patch\"]\n{original}"),
    )
    .unwrap();
    let patched = real.out("patched");
    ok(&real.build_native(&["--nic", "vmxnet3"], &patched));
    let manifest = Manifest::load(&patched.join("manifest.json")).unwrap();
    assert_eq!(
        manifest.patches.last().unwrap().name,
        "0001-product-name.patch",
        "the profile's own patches follow the series"
    );

    fs::write(&profile, &original).unwrap();
    let plain = real.out("plain");
    ok(&real.build_native(&["--nic", "vmxnet3"], &plain));
    assert_ne!(
        read_sums(&patched),
        read_sums(&plain),
        "the patch did not reach the ROM"
    );

    let stale = patch.replace(
        "-#define PRODUCT_NAME \"\"",
        "-#define PRODUCT_NAME \"old\"",
    );
    fs::write(
        real.project.path().join("ipxe-patches/0002-stale.patch"),
        stale,
    )
    .unwrap();
    fs::write(
        &profile,
        format!("patches = [\"0002-stale.patch\"]\n{original}"),
    )
    .unwrap();
    let err = fails_with(
        &real.build_native(&["--nic", "vmxnet3"], &plain),
        "patch 0002-stale.patch does not apply",
    );
    assert!(
        err.contains("src/config/branding.h hunk 1 (@@ -25,7 +25,7 @@): line 28 should be"),
        "{err}"
    );
}

#[test]
fn sizes_audit_and_budget_read_the_real_linked_image() {
    let Some(real) = Real::find() else { return };
    let out = real.xtask(&[
        "sizes",
        "--nic",
        "vmxnet3",
        "--runtime",
        "native",
        "--top",
        "500",
    ]);
    ok(&out);
    let text = stdout(&out);
    let listed = |obj: &str| {
        text.lines()
            .any(|l| l.split_whitespace().next() == Some(obj))
    };
    assert!(
        listed("guestinfo") && listed("http") && listed("vmxnet3"),
        "{text}"
    );
    assert!(
        !listed("https") && !listed("tls") && !listed("tftp"),
        "{text}"
    );
    assert!(text.contains("arch/x86/interface/vmware"), "{text}");

    fs::create_dir_all(real.project.path().join("roms")).unwrap();
    fs::copy(
        repo().join("roms/budget.toml"),
        real.project.path().join("roms/budget.toml"),
    )
    .unwrap();
    let check = real.xtask(&["check-size", "--runtime", "native"]);
    ok(&check);
    let budget = xtask::check::budget::Budget::load(&repo().join("roms/budget.toml")).unwrap();
    let want = format!(
        "vmware/vmxnet3: {} bytes",
        budget.0["vmware"]["vmxnet3"].size
    );
    assert!(stdout(&check).contains(&want), "{}", stdout(&check));
}

fn have(tool: &str, arg: &str) -> bool {
    std::process::Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `boot-test`'s table: one map of column name to value per row, plus the lines under rows.
fn boot_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .find(|l| l.starts_with("rom "))
        .expect("a table header")
        .split_whitespace()
        .collect();
    lines
        .filter(|l| !l.starts_with(' '))
        .map(|l| {
            header
                .iter()
                .zip(l.split_whitespace())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The keys `vmx --format json` prints for a ROM on QEMU's user network, with `extra` flags.
fn vmx_json(real: &Real, nic: &str, rom: &std::path::Path, chain: &str, extra: &[&str]) -> String {
    let rom_path = format!(
        "/vmfs/volumes/datastore1/vsphere-ipxe-rom/{}",
        rom.file_name().unwrap().to_string_lossy()
    );
    let mut args = vec![
        "vmx",
        "--nic",
        nic,
        "--rom",
        rom.to_str().unwrap(),
        "--rom-path",
        &rom_path,
        "--ip",
        "10.0.2.15/24",
        "--gateway",
        "10.0.2.2",
        "--dns",
        "10.0.2.3",
        "--chain",
        chain,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = real.xtask(&args);
    ok(&out);
    stdout(&out)
}

/// What the ROM asked over the emulated GuestRPC channel, from the kept log.
fn assert_read_every_key(log: &std::path::Path) {
    let log = fs::read_to_string(log).unwrap();
    for key in [
        "scriptlet",
        "filename",
        "net0.ip",
        "net0.netmask",
        "net0.gateway",
        "dns",
    ] {
        assert!(
            log.lines()
                .any(|l| l == format!("info-get guestinfo.ipxe.{key}")),
            "the ROM never asked for guestinfo.ipxe.{key}"
        );
    }
}

/// `boot-test` of the release ROMs for `nics` on `paths`, built natively, keeping every boot in
/// `kept`; its table, once every boot passed.
fn boot_release(real: &Real, nics: &str, paths: &str, kept: &std::path::Path) -> String {
    let out = real.xtask(&[
        "boot-test",
        "--nic",
        nics,
        "--path",
        paths,
        "--runtime",
        "native",
        "--keep",
        kept.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    eprintln!("{text}");
    ok(&out);
    text
}

/// A listener on boot-test's old fixed port that never answers: a boot that talked to it would
/// hang. None where the port is taken already (which proves the same).
fn squat_old_port() -> Option<std::net::TcpListener> {
    std::net::TcpListener::bind(("127.0.0.1", 18080)).ok()
}

#[test]
fn the_release_roms_boot_by_dhcp_by_embedded_script_and_by_guestinfo() {
    let Some(real) = Real::find() else { return };
    if !have("qemu-system-x86_64", "--version") {
        skip("qemu-system-x86_64 is missing; apt-get install qemu-system-x86 to boot the ROMs");
        return;
    }
    let _squatter = squat_old_port();
    let kept = real.out("boots");
    let text = boot_release(
        &real,
        "vmxnet3,e1000,e1000e,vlance",
        "dhcp,static,guestinfo,faults",
        &kept,
    );
    let rows = boot_rows(&text);
    // Four NICs on three paths, then the three guestinfo faults on the first.
    assert_eq!(rows.len(), 4 * 3 + 3, "{text}");
    for row in &rows {
        let dhcp: u32 = row["dhcp"].parse().unwrap();
        match row["path"].as_str() {
            "dhcp" | "no-keys" => {
                assert_eq!(row["booted"], "yes", "{text}");
                assert!(dhcp > 0, "{text}");
            }
            "static" | "guestinfo" => {
                assert_eq!(row["booted"], "yes", "{text}");
                assert_eq!(row["address"], "10.0.2.15", "{text}");
                assert_eq!(
                    dhcp, 0,
                    "a static-IP boot must send no DHCP packet:\n{text}"
                );
            }
            "chain-404" | "bad-ip" => {
                assert_eq!(row["booted"], "no", "{text}");
                assert_eq!(dhcp, 0, "{text}");
            }
            other => panic!("unexpected path {other}"),
        }
        if row["path"] == "guestinfo" {
            assert!(row["rpc"].parse::<u32>().unwrap() > 6, "{text}");
        }
    }
    assert!(text.contains("Not found (https://ipxe.org/"), "{text}");
    assert!(
        text.contains("Network unreachable (https://ipxe.org/"),
        "{text}"
    );

    // Each guestinfo boot read exactly what `vmx --format json` prints for its ROM.
    let release = kept.join("release");
    let manifest = Manifest::load(&release.join("manifest.json")).unwrap();
    assert_eq!(manifest.roms.len(), 4);
    for dir in fs::read_dir(&kept).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.to_string_lossy().ends_with("-guestinfo") {
            continue;
        }
        let keys = fs::read_to_string(dir.join("keys.json")).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&keys).unwrap();
        let nic = parsed["ethernet0.virtualDev"].as_str().unwrap();
        let file = Nic::by_name(nic)
            .unwrap()
            .file_name(xtask::nic::RomFormat::Rom);
        // The port boot-test picked; never the old fixed one, which a squatter holds.
        let chain = parsed["guestinfo.ipxe.filename"].as_str().unwrap();
        assert!(chain.starts_with("http://10.0.2.2:"), "{chain}");
        assert!(!chain.contains(":18080/"), "{chain}");
        let want = vmx_json(&real, nic, &release.join(&file), chain, &[]);
        assert_eq!(keys, want, "boot-test's keys for {nic} differ from vmx's");
        assert_read_every_key(&dir.join("guestrpc.log"));
    }
}

/// Whether the Linux kernel and busybox of configs/boot-fixtures.lock are cached; says SKIP
/// with the command that fetches them otherwise.
fn have_os_fixtures(real: &Real) -> bool {
    let project = xtask::project::Project {
        root: real.project.path().to_path_buf(),
    };
    let cache = Cache::at(real.cache.clone());
    match xtask::boot::os::prepare_check(&project, &cache) {
        Ok(()) => true,
        Err(e) => {
            skip(&format!("not booting Linux: {e:#}"));
            false
        }
    }
}

/// Puts a boot table in the CI report, so a CI log shows the rows of boots that passed.
fn record_table(text: &str) {
    let table: String = text
        .lines()
        .skip_while(|l| !l.starts_with("rom "))
        .map(|l| format!("{l}\n"))
        .collect();
    ci_report(&table);
}

/// The rows of an OS boot table: each NIC's `os` (guestinfo) boot, and its `os-dhcp` one where
/// `dhcp`, reached init with the right values; the cases that must fail did, each naming its
/// reason. Rows of other paths are left to their own checks.
fn assert_linux_booted(text: &str, nics: usize, dhcp: bool) {
    record_table(text);
    let rows: Vec<_> = boot_rows(text)
        .into_iter()
        .filter(|r| r["path"].starts_with("os"))
        .collect();
    assert_eq!(rows.len(), nics * (1 + usize::from(dhcp)) + 3, "{text}");
    for row in &rows {
        match row["path"].as_str() {
            "os" | "os-dhcp" => {
                assert_eq!(
                    (row["booted"].as_str(), row["address"].as_str()),
                    ("yes", "10.0.2.15"),
                    "{text}"
                );
                let init: f64 = row["init"].trim_end_matches('s').parse().unwrap();
                let rate: f64 = row["MB/s"].parse().unwrap();
                assert!(init > 0.0 && rate > 0.0, "{text}");
                if row["path"] == "os" {
                    assert_eq!(row["dhcp"], "0", "a guestinfo boot sends no DHCP:\n{text}");
                }
            }
            "os-imgfetch" | "os-no-initrd" | "os-cmdline" => {}
            other => panic!("unexpected path {other}:\n{text}"),
        }
    }
    for reason in [
        "Initramfs unpacking failed: invalid magic",
        "Kernel panic - not syncing: VFS: Unable to mount root fs",
        "init's command line hashes to",
    ] {
        assert!(
            text.contains("ended as it should: ") && text.contains(reason),
            "the failing cases name why ({reason}):\n{text}"
        );
    }
}

#[test]
fn the_release_roms_boot_linux_from_guestinfo_on_every_nic() {
    let Some(real) = Real::find() else { return };
    if !have("qemu-system-x86_64", "--version") {
        skip("qemu-system-x86_64 is missing; apt-get install qemu-system-x86 to boot Linux");
        return;
    }
    if !have_os_fixtures(&real) {
        return;
    }
    let kept = real.out("os-boots");
    let text = boot_release(&real, "vmxnet3,e1000,e1000e", "os,dhcp", &kept);
    assert_linux_booted(&text, 3, true);
    // Linux saw the guestinfo values on its command line, as vmx's keys set them.
    for dir in fs::read_dir(&kept).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.to_string_lossy().ends_with("-os") {
            continue;
        }
        let serial = fs::read_to_string(dir.join("serial.log")).unwrap();
        let keys: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("keys.json")).unwrap()).unwrap();
        assert!(
            keys["guestinfo.ipxe.filename"]
                .as_str()
                .unwrap()
                .ends_with("/os/os.ipxe"),
            "{keys}"
        );
        let report = xtask::boot::os::Report::find(&serial).expect("init reported");
        assert_eq!(
            [report.ip, report.gateway, report.dns],
            ["10.0.2.15", "10.0.2.2", "10.0.2.3"].map(String::from)
        );
        assert!(serial.contains("Linux version 6.1.0-"), "{serial}");
        assert_read_every_key(&dir.join("guestrpc.log"));
    }
}

/// A running `openssl s_server -WWW`, stopped on drop.
struct TlsServer(std::process::Child);

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the scripts the TLS servers hand out report to: boot-test listens there.
const HTTPS_REPORT_PORT: u16 = 18095;

/// `openssl s_server -WWW` on 127.0.0.1:`port` serving `dir/www`, with the certificate
/// `<cert>.pem`, the chain file `chain` after it, and any further `openssl s_server` flags.
fn serve_tls(
    dir: &std::path::Path,
    cert: &str,
    chain: &str,
    port: u16,
    extra: &[&str],
) -> TlsServer {
    let child = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-WWW",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "-cert",
            &format!("../{cert}.pem"),
            "-key",
            &format!("../{cert}.key"),
        ])
        .args(["-cert_chain", &format!("../{chain}")])
        .args(extra)
        .current_dir(dir.join("www"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    TlsServer(child)
}

/// `boot-test` of one ROM from guestinfo, with the keys `vmx --format json` prints for it and
/// `chain` as the chain target, listening on `HTTPS_REPORT_PORT` for the script's report; the
/// boot-test output, and whether it passed.
fn boot_from_guestinfo(
    real: &Real,
    nic: &str,
    rom: &std::path::Path,
    chain: &str,
    keep: &std::path::Path,
) -> (String, bool) {
    let keys = keep.with_extension("json");
    fs::write(&keys, vmx_json(real, nic, rom, chain, &[])).unwrap();
    // Every caller's script reports to the one fixed port, and the HTTPS tests run in parallel:
    // one boot at a time holds it.
    static REPORT_PORT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _port = REPORT_PORT.lock().unwrap_or_else(|e| e.into_inner());
    let run = boot_test_guestinfo(real, rom, &keys, HTTPS_REPORT_PORT, 60, keep);
    let text = stdout(&run);
    eprintln!("{text}");
    (text, run.status.success())
}

/// `boot-test` of `rom` from guestinfo with the keys in `keys`, listening on `port` for the
/// script's report for at most `timeout` seconds, the boot's files kept in `keep`.
fn boot_test_guestinfo(
    real: &Real,
    rom: &std::path::Path,
    keys: &std::path::Path,
    port: u16,
    timeout: u32,
    keep: &std::path::Path,
) -> std::process::Output {
    real.xtask(&[
        "boot-test",
        "--rom",
        rom.to_str().unwrap(),
        "--path",
        "guestinfo",
        "--keys",
        keys.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--timeout",
        &timeout.to_string(),
        "--keep",
        keep.to_str().unwrap(),
    ])
}

/// The vmware-https ROMs for `nics`, built natively to trust two throwaway roots made in `dir`:
/// an ECDSA P-384 CA shaped like Let's Encrypt's E-series (`ec-ca`) and an RSA one (`rsa-ca`,
/// with a leaf `rsa` for 10.0.2.2); their directory and manifest.
fn lab_https_roms(real: &Real, dir: &std::path::Path, nics: &str) -> (PathBuf, Manifest) {
    crate::support::pki::ecdsa_ca(dir, "ec");
    crate::support::pki::lab_ca(dir, "rsa", "10.0.2.2");
    let configs = real.project.path().join("configs");
    fs::copy(dir.join("ec-ca.pem"), configs.join("lab-ec-ca.pem")).unwrap();
    fs::copy(dir.join("rsa-ca.pem"), configs.join("lab-rsa-ca.pem")).unwrap();
    let profile = fs::read_to_string(repo().join("configs/vmware-https.toml")).unwrap();
    fs::write(
        configs.join("vmware-https.toml"),
        format!("trust = [\"lab-ec-ca.pem\", \"lab-rsa-ca.pem\"]\n{profile}"),
    )
    .unwrap();
    let out = real.out("https");
    ok(&real.build_native(&["--nic", nics, "--profile", "vmware-https"], &out));
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    let inputs: Vec<&str> = manifest
        .profile
        .inputs
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(
        inputs,
        ["lab-ec-ca.pem", "lab-rsa-ca.pem"],
        "the trusted roots are in the manifest"
    );
    for (file, info) in &manifest.roms {
        assert!(info.https, "{file} must link HTTPS");
        assert!(info.size <= 65_536, "{file} is {} bytes", info.size);
        eprintln!("{file}: {} bytes, headroom {}", info.size, info.headroom);
    }
    (out, manifest)
}

#[test]
fn the_https_profile_boots_from_ecdsa_and_rsa_servers_and_refuses_the_rest() {
    let Some(real) = Real::find() else { return };
    for (tool, arg) in [("qemu-system-x86_64", "--version"), ("openssl", "version")] {
        if !have(tool, arg) {
            skip(&format!("{tool} is missing; the HTTPS boot test needs it"));
            return;
        }
    }
    // Two trusted roots: an ECDSA P-384 CA shaped like Let's Encrypt's E-series, and an RSA
    // one. A third, untrusted ECDSA CA; a leaf of the trusted CA for another address.
    let tls = tempfile::tempdir().unwrap();
    let dir = tls.path();
    fs::create_dir(dir.join("www")).unwrap();
    let (out, manifest) = lab_https_roms(&real, dir, "all,vlance");
    crate::support::pki::ecdsa_leaf(dir, "ec", "ec-leaf", "10.0.2.2");
    crate::support::pki::ecdsa_leaf(dir, "ec", "ec-elsewhere", "10.0.2.99");
    crate::support::pki::ecdsa_ca(dir, "rogue");
    crate::support::pki::ecdsa_leaf(dir, "rogue", "rogue-leaf", "10.0.2.2");
    fs::write(
        dir.join("www/boot.ipxe"),
        xtask::boot::qemu::boot_script(HTTPS_REPORT_PORT),
    )
    .unwrap();

    // Every NIC's ROM, from guestinfo, boots from the ECDSA server and from the RSA one. Each
    // server sends its chain up to the root: the ROM holds only the roots' fingerprints.
    let _ec = serve_tls(dir, "ec-leaf", "ec-up.pem", 18543, &[]);
    let _rsa = serve_tls(dir, "rsa", "rsa-ca.pem", 18544, &[]);
    for (file, info) in &manifest.roms {
        for (server, port) in [("ecdsa", 18543), ("rsa", 18544)] {
            let chain = format!("https://10.0.2.2:{port}/boot.ipxe");
            let keep = real.out(&format!("gi-{server}-{file}"));
            let (text, passed) =
                boot_from_guestinfo(&real, &info.nic, &out.join(file), &chain, &keep);
            assert!(passed, "{file} from the {server} server:\n{text}");
            let row = &boot_rows(&text)[0];
            assert_eq!(
                (
                    row["booted"].as_str(),
                    row["address"].as_str(),
                    row["dhcp"].as_str()
                ),
                ("yes", "10.0.2.15", "0"),
                "{text}"
            );
            assert_read_every_key(&keep.join("boot-0-guestinfo/guestrpc.log"));
        }
    }

    // Refused, each with iPXE's error on the screen: a chain to an untrusted root, a leaf for
    // another address, and a server that offers only suites this profile dropped (plain RSA key
    // exchange and AES-CBC).
    let _rogue = serve_tls(dir, "rogue-leaf", "rogue-up.pem", 18545, &[]);
    let _elsewhere = serve_tls(dir, "ec-elsewhere", "ec-up.pem", 18546, &[]);
    let _old = serve_tls(
        dir,
        "rsa",
        "rsa-ca.pem",
        18547,
        &["-no_tls1_3", "-cipher", "AES128-SHA256"],
    );
    let vmxnet3 = out.join("15ad07b0.rom");
    // iPXE's codes (the screen may wrap them): 0216eb3c, no trusted root; 0216ea3c, a
    // certificate for another name; 410de13c, the server's handshake-failure alert.
    let denied = "Permission denied (https://ipxe.org/";
    for (why, port, error) in [
        ("untrusted root", 18545, [denied, "0216eb3c"]),
        ("wrong address", 18546, [denied, "0216ea3c"]),
        (
            "dropped suites",
            18547,
            ["Operation not permitted (https://ipxe.org/", "de13c"],
        ),
    ] {
        let chain = format!("https://10.0.2.2:{port}/boot.ipxe");
        let keep = real.out(&format!("refused-{port}"));
        let (text, passed) = boot_from_guestinfo(&real, "vmxnet3", &vmxnet3, &chain, &keep);
        assert!(!passed, "a server with {why} must be refused:\n{text}");
        assert!(text.contains("it never reported back"), "{why}:\n{text}");
        for part in error {
            assert!(
                text.contains(part),
                "{why}: iPXE's error is on the screen:\n{text}"
            );
        }
    }

    // Linux over TLS: the kernel and initrd from the ECDSA server, on every vSphere NIC's ROM.
    if have_os_fixtures(&real) {
        let mut args = vec![
            "boot-test".to_string(),
            "--path".into(),
            "os".into(),
            "--os-url".into(),
            "https://10.0.2.2:18543/".into(),
            "--os-dir".into(),
            dir.join("www").to_str().unwrap().into(),
        ];
        for (file, info) in &manifest.roms {
            if info.nic != "vlance" {
                args.extend(["--rom".into(), out.join(file).to_str().unwrap().into()]);
            }
        }
        let run = real.command().args(&args).output().unwrap();
        let text = stdout(&run);
        eprintln!("{text}");
        ok(&run);
        assert_linux_booted(&text, 3, false);
    }

    // vmx takes https:// for this ROM, and refuses it for the default one.
    let vmx = |rom: &std::path::Path| {
        let mut args = vec![
            "vmx",
            "--nic",
            "vmxnet3",
            "--rom-path",
            "/vmfs/volumes/ds/x.rom",
        ];
        args.extend_from_slice(ADDRESSES);
        args.extend(["--chain", "https://boot.example/boot.ipxe"]);
        args.extend(["--rom", rom.to_str().unwrap()]);
        real.xtask(&args)
    };
    ok(&vmx(&vmxnet3));
    let plain = real.out("plain");
    ok(&real.build_native(&["--nic", "vmxnet3"], &plain));
    fails_with(
        &vmx(&plain.join("15ad07b0.rom")),
        "HTTPS is cut from this ROM",
    );
}

/// iPXE's error when tls.c refuses a server Finished (EINVAL_FINISHED, "Invalid Server Finished
/// record"): what upstream master (0ab2277c4) shows for both forgeries, its key schedule holding
/// no secret bound to a validated server.
const FINISHED_REFUSED: &str = "Invalid argument (https://ipxe.org/1c0de702)";

/// Why a boot against a hostile TLS server was not a clean refusal: the ROM must not run the
/// forged script or send the forger a request it can read, and must end by giving up (not by
/// boot-test's time limit) with `FINISHED_REFUSED` on screen. An empty list is a refusal.
fn refusal_problems(
    passed: bool,
    text: &str,
    forger: &[String],
    error: Option<&str>,
) -> Vec<String> {
    use xtask::boot::qemu::Ending;
    let mut problems = Vec::new();
    for event in forger {
        if event.starts_with("decrypted request") || event.starts_with("served the script") {
            problems.push(format!("the forger {event}"));
        }
    }
    if passed {
        problems.push("the ROM ran the forged script, which reported back".to_string());
    } else if !text.contains(&format!(
        "it never reported back ({})",
        Ending::GaveUp.describe()
    )) {
        let ended = [Ending::TimedOut, Ending::PoweredOff]
            .into_iter()
            .find(|e| text.contains(&format!("({})", e.describe())));
        problems.push(format!(
            "the boot did not end by the ROM giving up: {}",
            ended.map_or("see its output", |e| e.describe())
        ));
    }
    match error {
        Some(e) if e.ends_with(FINISHED_REFUSED) => {}
        Some(e) => problems.push(format!("iPXE's last error is not {FINISHED_REFUSED}: {e}")),
        None => problems.push("no iPXE error is on the screen".into()),
    }
    problems
}

/// A hostile server with no certificate, against every vSphere NIC's ROM from guestinfo:
/// a ServerHello that echoes the ROM's session ID (its client random, as no session is cached)
/// then a Finished from an all-zero master secret; and a ServerHello followed at once by a
/// plaintext Finished. The ROM must refuse both (see `refusal_problems`). Every boot is run and
/// judged before the test fails, naming each that was not refused, with what the forger saw.
#[test]
fn the_https_profile_refuses_a_forged_session_and_a_premature_finished() {
    use crate::support::tls_forge::{Attack, Forger};
    let Some(real) = Real::find() else { return };
    for (tool, arg) in [("qemu-system-x86_64", "--version"), ("openssl", "version")] {
        if !have(tool, arg) {
            skip(&format!(
                "{tool} is missing; the hostile TLS boot test needs it"
            ));
            return;
        }
    }
    let tls = tempfile::tempdir().unwrap();
    let (out, manifest) = lab_https_roms(&real, tls.path(), "all");
    let script = xtask::boot::qemu::boot_script(HTTPS_REPORT_PORT).into_bytes();
    let (mut summary, mut failures) = (Vec::new(), Vec::new());
    for (file, info) in &manifest.roms {
        for attack in [Attack::EchoSessionId, Attack::PrematureFinished] {
            let forger = Forger::start(attack, script.clone());
            let chain = format!("https://10.0.2.2:{}/boot.ipxe", forger.port);
            let keep = real.out(&format!("forged-{attack:?}-{file}"));
            let started = std::time::Instant::now();
            let (text, passed) =
                boot_from_guestinfo(&real, &info.nic, &out.join(file), &chain, &keep);
            let took = started.elapsed().as_secs_f64();
            let log = forger.log();
            drop(forger);
            let screen =
                fs::read_to_string(keep.join("boot-0-guestinfo/screen.txt")).unwrap_or_default();
            let error = xtask::boot::qemu::ipxe_error(&screen);
            let problems = refusal_problems(passed, &text, &log, error.as_deref());
            let verdict = if problems.is_empty() {
                "refused"
            } else {
                "NOT REFUSED"
            };
            summary.push(format!(
                "{} {attack:?}: {verdict} in {took:.1} s (boot-test and its calibration boot); \
                 iPXE: {}; forger: {}",
                info.nic,
                error.as_deref().unwrap_or("-"),
                log.join(" / ")
            ));
            if !problems.is_empty() {
                failures.push(format!(
                    "{} against {attack:?}: {}\nforger: {log:#?}\n{text}",
                    info.nic,
                    problems.join("; ")
                ));
            }
        }
    }
    let summary = summary.join("\n");
    eprintln!("{summary}");
    assert!(
        failures.is_empty(),
        "{} of {} boots were not refused:\n{summary}\n\n{}",
        failures.len(),
        manifest.roms.len() * 2,
        failures.join("\n\n")
    );
    ci_report(&format!("hostile TLS servers:\n{summary}\n"));
}

#[test]
fn an_incremental_build_matches_a_from_scratch_rebuild() {
    let Some(real) = Real::find() else { return };
    // A change of its own, new on every run (an embedded script with a fresh comment), so the
    // output cache cannot answer and make rebuilds in the shared, long-used build tree.
    let profile = real.project.path().join("configs/vmware.toml");
    let text = fs::read_to_string(&profile).unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    fs::write(
        real.project.path().join("configs/incremental.ipxe"),
        format!("#!ipxe\n# incremental test {stamp}\nautoboot\n"),
    )
    .unwrap();
    let changed = format!("embed = \"incremental.ipxe\"\n{text}");
    assert_ne!(changed, text);
    fs::write(&profile, changed).unwrap();
    let out = real.out("incremental");
    let built = real.build_native(&["--nic", "all"], &out);
    ok(&built);
    assert!(
        !stdout(&built).contains("from the output cache"),
        "make must have run: {}",
        stdout(&built)
    );
    let sums = out.join("SHA256SUMS");
    assert_ne!(
        read_sums(&out),
        read_sums(&repo().join("roms/vmware")),
        "the change reached the ROMs"
    );
    let run = real.xtask(&[
        "verify",
        "--runtime",
        "native",
        "--against",
        sums.to_str().unwrap(),
    ]);
    ok(&run);
    assert!(
        stdout(&run).contains("all 3 ROM(s) rebuilt to the published bytes"),
        "{}",
        stdout(&run)
    );
}

#[test]
fn the_series_applies_in_order_on_the_pin() {
    let Some(real) = Real::find() else { return };
    let out = real.out("series");
    ok(&real.build_native(&["--nic", "vmxnet3", "--profile", "vmware-https"], &out));
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    let applied: Vec<(&str, Vec<i64>)> = manifest
        .patches
        .iter()
        .map(|p| (p.name.as_str(), p.offsets.iter().map(|o| o.lines).collect()))
        .collect();
    // The pin is upstream master: every upstream fix up to it is in the source, and the series
    // holds only ours (ipxe-patches/upstream.toml decides each later upstream commit).
    assert_eq!(
        applied,
        [(
            "0001-build-rebuild-rootcert-when-a-trusted-certificate-changes.patch",
            vec![]
        )],
        "the series, in order, with the offsets GNU patch -F0 also finds"
    );
}

#[test]
fn the_locked_toolchain_rebuilds_the_published_bytes_with_no_network() {
    let Some(real) = Real::find() else { return };
    let Some(base) = base_image() else { return };
    if !have("unshare", "--version") {
        skip("unshare (util-linux) is missing; the no-network build needs it");
        return;
    }
    // A mirror that has moved on: it serves a newer libc6-dev and no longer the locked one.
    let lock =
        xtask::builder::toolchain::Lock::load(&repo().join("configs/toolchain.lock")).unwrap();
    let libc = lock
        .packages
        .iter()
        .find(|p| p.name == "libc6-dev")
        .unwrap();
    let newer = libc.pool.replace(&libc.version, "2.36-9+deb12u99");
    let moved = HttpServer::serve_map([(format!("/debian/{newer}"), b"newer".to_vec())].into());
    let mirror = format!("{}/debian", moved.url);
    let fetch = real.xtask(&["fetch", "--deb-mirror", &mirror]);
    if !fetch.status.success() {
        skip(&format!(
            "the locked .debs are not all in the cache, and the moved-on mirror cannot serve \
             them; run cargo xtask fetch (or fetch --debs DIR) first:\n{}",
            stderr(&fetch)
        ));
        return;
    }
    assert!(
        stdout(&fetch).contains(" 0 downloaded"),
        "{}",
        stdout(&fetch)
    );
    assert_eq!(moved.hits(), 0, "cached .debs need no mirror");

    // A label of its own right after FROM: every later layer (the dpkg install among them) is
    // built again, from the cache alone, with this process cut off from every network.
    let dockerfile = real.project.path().join("Dockerfile");
    let text = fs::read_to_string(&dockerfile).unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let marked = text.replacen(
        "FROM ${BASE}\n",
        &format!("FROM ${{BASE}}\nLABEL vsphere-ipxe-rom.test=\"no-network {stamp}\"\n"),
        1,
    );
    assert_ne!(marked, text);
    fs::write(&dockerfile, marked).unwrap();
    let out = real.out("locked");
    let xtask = real.command();
    let build = std::process::Command::new("unshare")
        .args(["--net", "--"])
        .arg(xtask.get_program())
        .args(xtask.get_args())
        .args(docker_build_args("all", &base, &out))
        .output()
        .unwrap();
    fs::write(&dockerfile, text).unwrap();
    ok(&build);
    assert_eq!(
        read_sums(&out),
        read_sums(&repo().join("roms/vmware")),
        "the locked toolchain builds the published bytes"
    );
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    let digest =
        xtask::builder::toolchain::Lock::digest(&repo().join("configs/toolchain.lock")).unwrap();
    assert_eq!(
        manifest.runtime.toolchain_lock.as_deref(),
        Some(digest.as_str())
    );
    let label = std::process::Command::new("docker")
        .args(["image", "inspect", "--format"])
        .arg("{{index .Config.Labels \"vsphere-ipxe-rom.toolchain-lock\"}}")
        .arg(manifest.runtime.image.as_deref().unwrap())
        .output()
        .unwrap();
    assert_eq!(stdout(&label).trim(), digest, "the image names its lock");
    assert!(
        stderr(&build).contains("building the builder image"),
        "the image was built in this run: {}",
        stderr(&build)
    );
    // This image and its /usr volume were for this test only.
    let image = manifest.runtime.image.unwrap();
    let volumes = std::process::Command::new("docker")
        .args(["volume", "ls", "--quiet", "--filter"])
        .arg(format!(
            "label=vsphere-ipxe-rom.usr-of={}",
            image.trim_start_matches("sha256:")
        ))
        .output()
        .unwrap();
    let _ = std::process::Command::new("docker")
        .args(["rmi", "--force", &image])
        .output();
    for v in stdout(&volumes).split_whitespace() {
        let _ = std::process::Command::new("docker")
            .args(["volume", "rm", v])
            .output();
    }
}

/// The README's main command on a fresh clone: the tracked record of `roms/vmware` (from a
/// container build) stays byte for byte, so `git status` shows only the new, untracked ROM.
#[test]
fn the_first_build_on_a_clone_leaves_the_tracked_record_alone() {
    let Some(real) = Real::find() else { return };
    let out = real.out("roms/vmware");
    fs::create_dir_all(&out).unwrap();
    let tracked: Vec<(&str, Vec<u8>)> = ["SHA256SUMS", "manifest.json"]
        .into_iter()
        .map(|f| (f, fs::read(repo().join("roms/vmware").join(f)).unwrap()))
        .collect();
    for (file, bytes) in &tracked {
        fs::write(out.join(file), bytes).unwrap();
    }
    let run = real.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]);
    ok(&run);
    for (file, bytes) in &tracked {
        assert!(
            fs::read(out.join(file)).unwrap() == *bytes,
            "{file} was rewritten:\n{}",
            stdout(&run)
        );
    }
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["15ad07b0.rom", "SHA256SUMS", "manifest.json"]);
}

/// What `upstream` watches, from the real link maps and dependency files: each ROM names the
/// sources of what it links and their headers, its own driver and profile, and no EFI code.
#[test]
fn each_real_rom_names_the_sources_and_headers_it_links() {
    let Some(real) = Real::find() else { return };
    let project = xtask::project::Project {
        root: real.project.path().to_path_buf(),
    };
    let cache = Cache::locate(Some(&real.cache)).unwrap();
    let how = xtask::ops::How {
        runtime: xtask::builder::runtime::RuntimeChoice::Native,
        base_image: None,
        jobs: xtask::ops::How::default_jobs(),
    };
    let sh = xshell::Shell::new().unwrap();
    let drivers = [
        ("vmxnet3", "src/drivers/net/vmxnet3.c"),
        ("e1000", "src/drivers/net/intel.c"),
        ("e1000e", "src/drivers/net/intel.c"),
        ("vlance", "src/drivers/net/pcnet32.c"),
    ];
    for profile in ["vmware", "vmware-https"] {
        let nics = xtask::nic::NICS.iter().collect();
        let req = how.request(&project, &cache, profile, nics, false);
        let outcome = xtask::ops::build::build(&sh, &req).unwrap();
        for rom in &outcome.roms {
            let (label, linked) = (format!("{profile}/{}", rom.nic.name), &rom.linked);
            assert!(
                linked.unsourced.is_empty(),
                "{label}: {:?}",
                linked.unsourced
            );
            let driver = drivers.iter().find(|(n, _)| *n == rom.nic.name).unwrap().1;
            for file in [
                driver,
                "src/core/settings.c",
                "src/net/tcp/httpcore.c",
                "src/include/ipxe/tcp.h",
                "src/config/general.h",
                "src/arch/x86/prefix/pciromprefix.S",
            ] {
                assert!(linked.sources.contains(file), "{label} lacks {file}");
            }
            let tls = linked.sources.contains("src/net/tls.c");
            assert_eq!(tls, profile == "vmware-https", "{label}: tls.c");
            let efi: Vec<_> = linked
                .sources
                .iter()
                .filter(|f| f.starts_with("src/interface/efi/"))
                .collect();
            assert!(efi.is_empty(), "{label} links EFI code: {efi:?}");
            eprintln!("{label}: {} files", linked.sources.len());
        }
    }
}
