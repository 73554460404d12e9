//! Hostile input, one test or more per hole once found: patches and archives that try to leave
//! their tree, values that try to become code in what we print, forged manifests, secrets in
//! URLs, and files that are not what they claim. Every refusal names the problem and leaves the
//! cache, `roms/` and the victim files as they were.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::support::{
    bounded,
    fake_vsphere::{FakeVsphere, Lies},
    *,
};
use proptest::{prelude::*, test_runner::TestRunner};
use unicode_normalization::UnicodeNormalization;
use xtask::{
    nic::Nic,
    vm::{
        network::Network,
        vmconfig::{self, Format, RenderContext, Request},
    },
};

/// The second round: the files the tool takes and the directories it writes.
mod files;

/// Every file below `dirs` (links as their target text) with its sha256: equal before and
/// after means nothing was written, removed or left behind.
fn snapshot(dirs: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(items) = fs::read_dir(dir) else { return };
        for item in items.flatten() {
            let path = item.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(path, format!("-> {}", target.display()));
            } else if meta.is_dir() {
                out.insert(path.clone(), "dir".into());
                walk(&path, out);
            } else {
                out.insert(path.clone(), xtask::util::sha256_file(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    for dir in dirs {
        walk(dir, &mut out);
    }
    out
}

/// A built project and a victim file outside it.
struct Scene {
    project: Project,
    outside: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let project = Project::new(&[]);
        project.import();
        ok(&project.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]));
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim"), "keep\n").unwrap();
        Scene { project, outside }
    }

    fn victim(&self) -> PathBuf {
        self.outside.path().join("victim")
    }

    fn watched(&self) -> Vec<PathBuf> {
        vec![
            self.project.cache(),
            self.project.path("roms"),
            self.outside.path().to_path_buf(),
        ]
    }
}

/// Item 1: patches from the corpus, as the project's own patch and imported as upstream fixes.
#[test]
fn a_patch_never_writes_or_deletes_outside_the_build_tree() {
    let scene = Scene::new();
    let p = &scene.project;
    for name in ["abs-path.patch", "dotdot.patch", "delete-abs.patch"] {
        let text = fs::read_to_string(repo().join("tests/it/hostile").join(name)).unwrap();
        let victim = scene.victim().display().to_string();
        let text = text.replace("@VICTIM@", victim.trim_start_matches('/'));
        fs::write(p.path("ipxe-patches").join(name), &text).unwrap();
        fs::write(
            p.path("ipxe-patches/series.toml"),
            format!("[[patch]]\nfile = \"{name}\"\nreason = \"hostile\"\n"),
        )
        .unwrap();
        let before = snapshot(&scene.watched());
        let out = p.xtask(&["build-rom", "--nic", "vmxnet3", "--runtime", "native"]);
        let err = fails_with(&out, "is refused: hunk 1 (@@ ");
        assert!(err.contains(&format!("patch {name}")), "{err}");
        assert!(
            err.contains("a patch may change files inside the iPXE tree only"),
            "{err}"
        );
        let imported = p.xtask(&[
            "fetch",
            "--patch",
            p.path("ipxe-patches").join(name).to_str().unwrap(),
        ]);
        fails_with(&imported, "it is refused: hunk 1");
        assert_eq!(
            snapshot(&scene.watched()),
            before,
            "{name} changed something"
        );
        assert_eq!(fs::read_to_string(scene.victim()).unwrap(), "keep\n");
    }
}

/// A raw tar entry; `tar::Builder` would refuse most of what these tests need.
fn raw_entry(tar: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, size: u64) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
}

fn finish_tar(mut tar: Vec<u8>) -> Vec<u8> {
    tar.extend_from_slice(&[0; 1024]);
    tar
}

/// Item 2: `d/up -> ..`, `d/up2 -> up/..`, ... each inside the tree on its own; together the
/// last one points outside. Refused by both importers, and nothing stays in the cache.
#[test]
fn a_chain_of_links_out_of_the_tree_is_refused_by_both_importers() {
    let scene = Scene::new();
    let p = &scene.project;
    let mut tar = Vec::new();
    raw_entry(&mut tar, "t/src/Makefile", tar::EntryType::Regular, "", 0);
    raw_entry(&mut tar, "t/d/up", tar::EntryType::Symlink, "..", 0);
    let mut prev = "up".to_string();
    for n in 2..=9 {
        let link = format!("{prev}/..");
        raw_entry(
            &mut tar,
            &format!("t/d/up{n}"),
            tar::EntryType::Symlink,
            &link,
            0,
        );
        prev = format!("up{n}");
    }
    raw_entry(&mut tar, "t/d/esc", tar::EntryType::Symlink, "up9/etc", 0);
    let file = scene.outside.path().join("links.tar");
    fs::write(&file, finish_tar(tar)).unwrap();
    let before = snapshot(&scene.watched());
    for cmd in [["pin", "--archive"], ["fetch", "--archive"]] {
        let mut args = vec![cmd[0], cmd[1], file.to_str().unwrap()];
        if cmd[0] == "pin" {
            args.extend(["--version", "v9"]);
        }
        let out = p.xtask(&args);
        fails_with(
            &out,
            "entry 't/d/esc' is a symlink to 'up9/etc', which points outside the tree",
        );
    }
    assert_eq!(snapshot(&scene.watched()), before);
}

/// Item 3: 600 MiB of zeros in about 600 KiB of gzip stops at the 512 MiB cap, in memory the
/// size of one buffer: the run is held to 256 MiB of heap, far less than the bomb.
#[test]
fn an_archive_bomb_stops_at_the_cap_without_taking_memory() {
    let scene = Scene::new();
    let p = &scene.project;
    let file = scene.outside.path().join("bomb.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(&file).unwrap(),
        flate2::Compression::fast(),
    );
    let mut head = Vec::new();
    raw_entry(&mut head, "t/src/Makefile", tar::EntryType::Regular, "", 0);
    let size: u64 = 600 << 20;
    raw_entry(&mut head, "t/big", tar::EntryType::Regular, "", size);
    gz.write_all(&head).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..600 {
        gz.write_all(&zeros).unwrap();
    }
    gz.write_all(&[0; 1024]).unwrap();
    gz.finish().unwrap();
    // A killed import leaves its scratch tree behind; the next import sweeps it.
    let stale = p.cache().join("source/.tmp-killed/tree/src");
    fs::create_dir_all(&stale).unwrap();
    fs::write(stale.join("Makefile"), "half").unwrap();

    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--data={}", 256 << 20)).arg("--");
    cmd.arg(env!("CARGO_BIN_EXE_xtask"))
        .arg("--project")
        .arg(p.dir.path())
        .arg("--cache-dir")
        .arg(p.cache())
        .args(["fetch", "--archive", file.to_str().unwrap()]);
    let out = cmd.output().unwrap();
    fails_with(
        &out,
        "the archive unpacks to more than 512 MiB (at entry 't/big')",
    );
    assert!(
        !p.cache().join("source/.tmp-killed").exists(),
        "the leftover was swept"
    );
    let left: Vec<_> = fs::read_dir(p.cache().join("source"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}

/// Item 6: a lone CR ends a line for gcc, so a `set` value could add `#include` or `#define`
/// lines; a trailing backslash would swallow the next line. Refused before anything is built.
#[test]
fn a_profile_value_cannot_become_preprocessor_lines() {
    let scene = Scene::new();
    let p = &scene.project;
    let profile = fs::read_to_string(p.path("configs/vmware.toml")).unwrap();
    for (value, want) in [
        (
            "1\\r#include \\\"/etc/hostname\\\"",
            "U+000D at character 2",
        ),
        ("1\\r#define DOWNLOAD_PROTO_HTTPS", "U+000D at character 2"),
        ("1 \\\\", "a backslash at character 3"),
    ] {
        let text = profile.replace(
            "define = [\"VMWARE_SETTINGS\"]",
            &format!("define = [\"VMWARE_SETTINGS\"]\nset = {{ FAKE_ROM_BLOCKS = \"{value}\" }}"),
        );
        fs::write(p.path("configs/evil.toml"), text).unwrap();
        let before = snapshot(&scene.watched());
        let out = p.xtask(&[
            "build-rom",
            "--nic",
            "vmxnet3",
            "--runtime",
            "native",
            "--profile",
            "evil",
        ]);
        let err = fails_with(&out, "set: FAKE_ROM_BLOCKS = ");
        assert!(err.contains(want), "wanted '{want}':\n{err}");
        assert!(err.contains("a value is one C constant"), "{err}");
        assert_eq!(snapshot(&scene.watched()), before);
    }
}

/// A minimal option ROM image: signature, PCIR with the NIC's id, the length in 512-byte units.
pub(crate) fn rom_image(nic: &Nic, len: usize) -> Vec<u8> {
    let mut rom = vec![0u8; len];
    rom[0] = 0x55;
    rom[1] = 0xaa;
    rom[2] = (len / 512).min(255) as u8;
    rom[0x18] = 0x1c;
    let p = 0x1c;
    rom[p..p + 4].copy_from_slice(b"PCIR");
    rom[p + 4..p + 6].copy_from_slice(&nic.vendor.to_le_bytes());
    rom[p + 6..p + 8].copy_from_slice(&nic.device.to_le_bytes());
    rom[p + 0x0a..p + 0x0c].copy_from_slice(&0x18u16.to_le_bytes());
    rom[p + 0x10..p + 0x12].copy_from_slice(&((len / 512) as u16).to_le_bytes());
    rom[p + 0x15] = 0x80;
    let sum = rom.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    rom[len - 1] = 0u8.wrapping_sub(sum);
    rom
}

/// Item 8: `vmx --rom` trusts the manifest beside the ROM only where it records the ROM's
/// sha256, and never past what VMware loads.
#[test]
fn a_forged_or_stale_manifest_is_not_believed() {
    let dir = tempfile::tempdir().unwrap();
    let nic = Nic::by_name("vmxnet3").unwrap();
    let rom = rom_image(nic, 128 << 10);
    let rom_file = dir.path().join("15ad07b0.rom");
    fs::write(&rom_file, &rom).unwrap();
    let manifest = |sha: &str| {
        let text = fs::read_to_string(repo().join("roms/vmware/manifest.json")).unwrap();
        let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
        let entry = &mut m["roms"]["15ad07b0.rom"];
        entry["sha256"] = sha.into();
        entry["size"] = (rom.len() as u64).into();
        entry["limit"] = 262_144u64.into();
        entry["https"] = true.into();
        fs::write(dir.path().join("manifest.json"), m.to_string()).unwrap();
    };
    let vmx = |chain: &str| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([
                "vmx",
                "--nic",
                "vmxnet3",
                "--rom-path",
                "/vmfs/volumes/ds/x.rom",
            ])
            .args(ADDRESSES)
            .args(["--chain", chain, "--rom", rom_file.to_str().unwrap()])
            .output()
            .unwrap()
    };
    manifest(&"0".repeat(64));
    fails_with(
        &vmx("http://b/x"),
        "the manifest is stale or belongs to another build",
    );
    manifest(&xtask::util::sha256_hex(&rom));
    fails_with(
        &vmx("http://b/x"),
        "is 131072 bytes, over the 65536-byte limit for vmxnet3 by 65536",
    );
}

/// Item 7: no part of the URL's user info reaches an error, and a password on the command line
/// is refused before any connection.
#[test]
fn a_password_never_reaches_an_error_or_the_command_line() {
    let rom = tempfile::tempdir().unwrap();
    let file = rom.path().join("8086100f.rom");
    fs::write(&file, rom_image(Nic::by_name("e1000").unwrap(), 4096)).unwrap();
    let deploy = |url_env: Option<&str>, extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["deploy", "--vm", "v", "--datastore", "ds", "--nic", "e1000"])
            .args(ADDRESSES)
            .args(["--chain", "http://b/x", "--rom", file.to_str().unwrap()])
            .args(extra)
            .env_remove("GOVC_URL")
            .env_remove("GOVC_PASSWORD")
            .env("GOVC_USERNAME", "u")
            .env("GOVC_TLS_CA_CERTS", "");
        if let Some(u) = url_env {
            cmd.env("GOVC_URL", u);
        }
        cmd.output().unwrap()
    };
    let dead = dead_url();
    let host = dead.trim_start_matches("http://").trim_end_matches('/');
    for url in [
        format!("admin:Secret://x@{host}"),
        "ftp://admin:Secret@vc".to_string(),
        "admin:Secret@".to_string(),
    ] {
        let out = deploy(Some(&url), &[]);
        assert!(!out.status.success());
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("Secret"), "the password was shown: {all}");
        assert!(
            !all.contains("a value is required"),
            "empty GOVC_TLS_CA_CERTS is unset: {all}"
        );
    }
    let out = deploy(None, &["--url", &format!("https://u:Secret@{host}/sdk")]);
    let err = fails_with(&out, "--url carries a password");
    assert!(!err.contains("Secret"), "{err}");
}

/// Item 9: the smaller holes.
#[test]
fn small_holes_are_closed() {
    let vmx = |extra: &[&str]| {
        let mut args = vec![
            "vmx",
            "--nic",
            "e1000",
            "--rom-path",
            "/vmfs/volumes/ds/r.rom",
            "--ip",
            "10.0.0.11/24",
            "--dns",
            "10.0.0.2",
            "--chain",
            "http://b/x",
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(&args)
            .output()
            .unwrap()
    };
    fails_with(
        &vmx(&["--gateway", "10.0.0.255"]),
        "--gateway 10.0.0.255 is not another host",
    );
    fails_with(
        &vmx(&["--gateway", "10.0.0.0"]),
        "--gateway 10.0.0.0 is not another host",
    );
    fails_with(
        &vmx(&["--gateway", "10.0.0.1", "--ethernet", "255"]),
        "--ethernet 255: a VM has ethernet0 to ethernet9",
    );

    let dir = tempfile::tempdir().unwrap();
    let inspect = |path: &Path| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("inspect")
            .arg(path)
            .output()
            .unwrap()
    };
    let short = dir.path().join("short.rom");
    fs::write(&short, [0x55, 0xaa, 0x10, 0x00]).unwrap();
    let out = inspect(&short);
    assert!(
        stdout(&out).contains("has the ROM signature but only 4 bytes"),
        "{}",
        stdout(&out)
    );
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fails_with(&inspect(&fifo), "is not a regular file");
    fails_with(&inspect(Path::new("/dev/zero")), "is not a regular file");
    let big = dir.path().join("big.rom");
    fs::File::create(&big).unwrap().set_len(17 << 20).unwrap();
    fails_with(&inspect(&big), "an option ROM is at most 16 MiB");

    let project = Project::new(&[]);
    let debs = dir.path().join("debs");
    fs::create_dir_all(debs.join("x.deb")).unwrap();
    let out = project.xtask(&["fetch", "--debs", debs.to_str().unwrap()]);
    fails_with(
        &out,
        "x.deb is not a file; the directory should hold the locked .deb files",
    );
}

/// Characters that break one format or another: quotes of every kind, interpolation and
/// template openers, escapes, YAML's line breaks, controls, separators and bidi controls.
const NASTY: &[char] = &[
    '\'',
    '"',
    '`',
    '\\',
    '$',
    '%',
    '{',
    '}',
    '#',
    '|',
    ':',
    '-',
    ' ',
    '\t',
    '\n',
    '\r',
    '\u{0}',
    '\u{7f}',
    '\u{85}',
    '\u{9f}',
    '\u{a0}',
    '\u{2018}',
    '\u{2019}',
    '\u{201a}',
    '\u{201b}',
    '\u{201c}',
    '\u{2028}',
    '\u{2029}',
    '\u{202e}',
    '\u{feff}',
    '\u{fffd}',
    'é',
    '\u{1f600}',
    '&',
    ';',
    '!',
    '*',
    '[',
    ']',
    ',',
    '?',
    '@',
    '~',
    'a',
    'Z',
    '0',
];

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(NASTY), 0..24)
            .prop_map(|v| v.into_iter().collect()),
        any::<String>(),
        "[ -~]{0,24}",
    ]
}

/// What each format's parser gives back for the keys and the VM name, by format.
struct Parsed {
    keys: BTreeMap<String, String>,
}

fn parse_hcl(text: &str, map: &str) -> Parsed {
    let value: serde_json::Value = hcl::eval::from_str(text, &hcl::eval::Context::new())
        .unwrap_or_else(|e| panic!("hcl-rs refused:\n{text}\n{e}"));
    Parsed {
        keys: serde_json::from_value(value[map].clone()).unwrap(),
    }
}

fn parse_yaml(text: &str) -> Parsed {
    let docs = yaml_rust2::YamlLoader::load_from_str(text)
        .unwrap_or_else(|e| panic!("YAML refused:\n{text}\n{e}"));
    let mut keys = BTreeMap::new();
    for item in docs[0]["advanced_settings"].as_vec().unwrap() {
        keys.insert(
            item["key"].as_str().unwrap().to_string(),
            item["value"].as_str().unwrap().to_string(),
        );
    }
    Parsed { keys }
}

/// What the property test makes: the keys it expects and each format's text.
struct Case {
    want: BTreeMap<String, String>,
    vm: String,
    rom: String,
    govc: String,
}

/// Every value the validation accepts comes back unchanged from each format's real parser;
/// every value it refuses names a character that is really there. bash runs all the govc
/// commands at the end, in one process.
#[test]
fn every_accepted_value_survives_every_format_and_its_parser() {
    let nic = Nic::by_name("vmxnet3").unwrap();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let cases = std::sync::Mutex::new(Vec::new());
    let strategy = (
        hostile_string(),
        hostile_string(),
        hostile_string(),
        hostile_string(),
    );
    runner
        .run(&strategy, |(scriptlet, vm, rom_path, rom)| {
            let net = Network::parse(
                "10.0.0.11/24",
                "10.0.0.1",
                "10.0.0.2",
                "http://boot.example/x",
                Some(&scriptlet),
            );
            let ctx = RenderContext::new(nic, 0, Some(vm.clone()), rom.clone());
            let (net, ctx) = match (net, ctx) {
                (Ok(n), Ok(c)) => (n, c),
                (n, c) => {
                    for err in [n.err(), c.err()].into_iter().flatten() {
                        let msg = format!("{err:#}");
                        let named = msg.contains("U+") || msg.contains("--scriptlet is empty");
                        prop_assert!(named, "{msg}");
                    }
                    return Ok(());
                }
            };
            let req = Request {
                nic,
                ethernet: 0,
                rom_path: format!("/vmfs/volumes/ds/{rom_path}"),
                network: net,
                rom: None,
                rom_has_https: false,
            };
            let Ok(want) = vmconfig::keys(&req) else {
                return Ok(());
            };
            let mut without_dev = want.clone();
            without_dev.remove("ethernet0.virtualDev");
            let render = |f| vmconfig::render(&want, f, &ctx);
            prop_assert_eq!(
                &parse_hcl(&render(Format::Terraform), "extra_config").keys,
                &without_dev
            );
            prop_assert_eq!(
                &parse_hcl(&render(Format::Packer), "configuration_parameters").keys,
                &without_dev
            );
            prop_assert_eq!(&parse_yaml(&render(Format::Ansible)).keys, &without_dev);
            let json: BTreeMap<String, String> =
                serde_json::from_str(&render(Format::Json)).unwrap();
            prop_assert_eq!(&json, &want);
            let govc = render(Format::Govc);
            cases.lock().unwrap().push(Case {
                want: want.clone(),
                vm,
                rom,
                govc,
            });
            Ok(())
        })
        .unwrap();
    let cases = cases.into_inner().unwrap();
    assert!(
        cases.len() > 100,
        "only {} cases were accepted",
        cases.len()
    );
    govc_through_bash(&cases);
}

/// Runs a script with bash from a file: one argument holds at most 128 KiB.
fn bash(script: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sh");
    fs::write(&file, script).unwrap();
    Command::new("bash")
        .arg(&file)
        .env("HOME", "/home-must-not-expand")
        .output()
        .unwrap()
}

/// Runs every case's govc commands in one bash, with a `govc` function that prints its
/// arguments NUL-separated, and compares them with the keys.
fn govc_through_bash(cases: &[Case]) {
    let mut script = String::from("govc() { printf '%s\\0' \"$@\"; printf '\\1'; }\n");
    for case in cases {
        script.push_str(&case.govc);
        script.push_str("printf '\\2'\n");
    }
    let out = bash(&script);
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let runs: Vec<&str> = text.split('\u{2}').collect();
    assert_eq!(runs.len(), cases.len() + 1);
    for (case, run) in cases.iter().zip(runs) {
        let calls: Vec<Vec<&str>> = run
            .split('\u{1}')
            .filter(|c| !c.is_empty())
            .map(|c| c.split_terminator('\0').collect())
            .collect();
        let upload = &calls[0];
        assert_eq!(upload[..4], ["datastore.upload", "-ds", "ds", "--"]);
        assert_eq!(upload[4], case.rom, "the local ROM path");
        let change = &calls[1];
        assert_eq!(change[..3], ["vm.change", "-vm", case.vm.as_str()]);
        let got: BTreeMap<String, String> = change[3..]
            .chunks(2)
            .map(|pair| {
                let (k, v) = pair[1].split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        assert_eq!(got, case.want);
    }
}

/// PowerShell closes a single-quoted string on U+2018-U+201B as on `'`: the README's example
/// must stay one string. (No PowerShell is packaged for this machine; `vm::quote`'s unit test
/// holds the quoting to PowerShell's tokenizer rule.)
#[test]
fn powercli_output_keeps_a_typographic_quote_inside_its_string() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "vmx",
            "--nic",
            "vmxnet3",
            "--rom-path",
            "/vmfs/volumes/ds/r.rom",
        ])
        .args(ADDRESSES)
        .args(["--chain", "http://b/x", "--format", "powercli"])
        .args(["--vm", "web’; Stop-Computer; ’"])
        .output()
        .unwrap();
    ok(&out);
    assert!(
        stdout(&out).contains(
            "$vm = @(Get-VM -Name ([WildcardPattern]::Escape('web’’; Stop-Computer; ’’')) \
             | Where-Object { $_.Name -ceq 'web’’; Stop-Computer; ’’' })\n"
        ),
        "{}",
        stdout(&out)
    );
}

/// Where a `terraform` binary is on PATH, `terraform console` evaluates the printed block to
/// the keys `--format json` gives, for a scriptlet that HCL would otherwise interpolate.
#[test]
fn terraform_console_reads_the_keys_vmx_prints() {
    let vmx = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([
                "vmx",
                "--nic",
                "e1000",
                "--rom-path",
                "/vmfs/volumes/data store/r ’.rom",
            ])
            .args(ADDRESSES)
            .args(["--chain", "http://b/x?a=1&b=%41", "--format", format])
            .args([
                "--scriptlet",
                "echo ${net0/ip} %{x} $${y} \\\" 'q' é && chain ${filename}",
            ])
            .output()
            .unwrap();
        ok(&out);
        stdout(&out)
    };
    let block = format!("locals {{\n{}}}\n", vmx("terraform"));
    let Some(got) = terraform_console(&block, "local.extra_config") else {
        return;
    };
    let mut want: BTreeMap<String, String> = serde_json::from_str(&vmx("json")).unwrap();
    want.remove("ethernet0.virtualDev");
    assert_eq!(
        serde_json::from_value::<BTreeMap<String, String>>(got).unwrap(),
        want
    );
}

/// `expr` as Terraform evaluates it in a module of `main_tf`, as JSON; None (with a SKIP)
/// where no `terraform` is on PATH.
fn terraform_console(main_tf: &str, expr: &str) -> Option<serde_json::Value> {
    crate::support::terraform::console(&[("main.tf", main_tf)], expr).map(|r| r.unwrap())
}

/// A Python with PyYAML, the YAML parser Ansible uses: Debian's python3-yaml, else whatever
/// `python3` on PATH has.
fn python_with_yaml() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import yaml"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Each quoting function on its own, over any string at all (validation would refuse many of
/// them): hcl-rs, yaml-rust2, PyYAML and bash each read back exactly the string quoted.
#[test]
fn every_quoting_function_round_trips_any_string() {
    use xtask::vm::quote;
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let seen = std::sync::Mutex::new(Vec::new());
    runner
        .run(&hostile_string(), |s| {
            let hcl_text = format!("x = {}\n", quote::hcl(&s));
            let v: serde_json::Value =
                hcl::eval::from_str(&hcl_text, &hcl::eval::Context::new())
                    .map_err(|e| TestCaseError::fail(format!("hcl-rs: {e}\n{hcl_text}")))?;
            prop_assert_eq!(v["x"].as_str(), Some(s.as_str()), "{}", hcl_text);
            let yaml_text = format!("x: {}\n", quote::yaml(&s));
            let docs = yaml_rust2::YamlLoader::load_from_str(&yaml_text)
                .map_err(|e| TestCaseError::fail(format!("yaml-rust2: {e}\n{yaml_text}")))?;
            prop_assert_eq!(docs[0]["x"].as_str(), Some(s.as_str()), "{}", yaml_text);
            seen.lock().unwrap().push(s);
            Ok(())
        })
        .unwrap();
    let seen = seen.into_inner().unwrap();

    // bash: an argument cannot hold NUL, which validation refuses anyway.
    let words: Vec<&String> = seen.iter().filter(|s| !s.contains('\0')).collect();
    let mut script = String::new();
    for s in &words {
        script.push_str(&format!("printf '%s\\0' {}\n", quote::shell(s)));
    }
    let out = bash(&script);
    ok(&out);
    let got: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .split_terminator('\0')
        .collect();
    let want: Vec<&str> = words.iter().map(|s| s.as_str()).collect();
    assert!(got == want, "bash read other words");

    terraform_reads_back(&seen);
    let Some(py) = python_with_yaml() else {
        skip("no python3 with PyYAML (apt-get install python3-yaml); yaml-rust2 checked the YAML");
        return;
    };
    let doc: String = seen
        .iter()
        .map(|s| format!("- {}\n", quote::yaml(s)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("doc.yaml"), &doc).unwrap();
    fs::write(
        dir.path().join("want.json"),
        serde_json::to_string(&seen).unwrap(),
    )
    .unwrap();
    let check = "import json, sys, yaml\n\
        yaml.SafeLoader.add_constructor('!unsafe', lambda l, n: l.construct_scalar(n))\n\
        got = yaml.safe_load(open(sys.argv[1], encoding='utf-8'))\n\
        want = json.load(open(sys.argv[2], encoding='utf-8'))\n\
        bad = [(w, g) for w, g in zip(want, got) if w != g]\n\
        assert len(got) == len(want) and not bad, bad[:3]\n";
    let out = Command::new(py)
        .args(["-c", check])
        .arg(dir.path().join("doc.yaml"))
        .arg(dir.path().join("want.json"))
        .output()
        .unwrap();
    ok(&out);
}

/// Terraform's own HCL parser, stricter than hcl-rs (a raw newline ends a quoted string there):
/// one `terraform console` evaluates every quoted string.
fn terraform_reads_back(strings: &[String]) {
    // Terraform normalizes string literals to NFC; check_text refuses other text for that.
    let strings: Vec<String> = strings
        .iter()
        .filter(|s| s.nfc().eq(s.chars()))
        .cloned()
        .collect();
    let list: Vec<String> = strings.iter().map(|s| xtask::vm::quote::hcl(s)).collect();
    let main_tf = format!("locals {{\n  all = [\n{}\n  ]\n}}\n", list.join(",\n"));
    let Some(got) = terraform_console(&main_tf, "local.all") else {
        return;
    };
    let got: Vec<String> = serde_json::from_value(got).unwrap();
    assert_eq!(got.len(), strings.len());
    let wrong: Vec<_> = strings
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .take(3)
        .collect();
    assert!(wrong.is_empty(), "terraform read other strings: {wrong:?}");
}

/// Values that run `touch marker` on the control node where Ansible reads them as Jinja2: the
/// usual openers, and a `#jinja2:` header that changes the delimiters so that no `{{` is left.
pub(crate) fn template_payloads(marker: &Path) -> Vec<String> {
    let touch = format!("lookup(*\"pipe|touch {}\".split(\"|\"))", marker.display());
    vec![
        format!("#jinja2:variable_start_string:'[[',variable_end_string:']]',x:'[[ {touch} ]]'!"),
        format!("#jinja2:variable_start_string:'((',variable_end_string:'))',x:'(( {touch} ))'."),
        format!("{{{{ {touch} }}}}"),
        format!("{{% set x = {touch} %}}"),
        "{# a comment #} and a plain value with 'quotes' and \"more\"".to_string(),
    ]
}

/// A marker file no other run can have made.
pub(crate) fn marker(dir: &Path) -> PathBuf {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    dir.join(format!("PWNED-{}-{nanos}", std::process::id()))
}

/// Issue 33 item 1: Ansible reads every string we print as data, whatever it holds (a `{{`,
/// or a `#jinja2:` header that changes the delimiters). `ansible-playbook` copies what
/// `vmx --format ansible` prints for hostile `--scriptlet` and `--rom-path` values into a file
/// byte for byte, and runs nothing.
#[test]
fn ansible_reads_every_vmx_value_as_data() {
    let Some(bin) = crate::support::ansible::playbook() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = marker(dir.path());
    let vmx = |format: &str, payload: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["vmx", "--nic", "vmxnet3", "--format", format])
            .args(["--rom-path", payload, "--scriptlet", payload])
            .args(ADDRESSES)
            .args(["--chain", "http://b/x"])
            .output()
            .unwrap();
        ok(&out);
        stdout(&out)
    };
    let payloads = template_payloads(&marker);
    let mut tasks = String::new();
    for (i, payload) in payloads.iter().enumerate() {
        let settings: String = vmx("ansible", payload)
            .lines()
            .map(|l| format!("          {l}\n"))
            .collect();
        tasks.push_str(&format!(
            "    - name: case {i}\n      vars:\n        settings:\n{settings}\
             \x20     ansible.builtin.copy:\n        dest: {}\n        content: \"{{{{ \
             settings.advanced_settings | items2dict(key_name='key', value_name='value') | \
             to_json }}}}\"\n      ignore_errors: true\n",
            dir.path().join(format!("got-{i}.json")).display()
        ));
    }
    let playbook = dir.path().join("copy.yml");
    fs::write(
        &playbook,
        format!(
            "- hosts: localhost\n  gather_facts: false\n  vars:\n    \
             ansible_python_interpreter: \"{{{{ ansible_playbook_python }}}}\"\n  tasks:\n{tasks}"
        ),
    )
    .unwrap();
    let inventory = dir.path().join("inventory.yml");
    fs::write(
        &inventory,
        "all:\n  hosts:\n    localhost: {ansible_connection: local}\n",
    )
    .unwrap();
    crate::support::ansible::run_json(&bin, &playbook, &inventory);
    assert!(
        !marker.exists(),
        "a value ran a command on the control node"
    );
    for (i, payload) in payloads.iter().enumerate() {
        let mut want: BTreeMap<String, String> =
            serde_json::from_str(&vmx("json", payload)).unwrap();
        want.remove("ethernet0.virtualDev");
        let got = fs::read_to_string(dir.path().join(format!("got-{i}.json")))
            .unwrap_or_else(|e| panic!("case {i}, {payload}: Ansible wrote nothing ({e})"));
        let got: BTreeMap<String, String> = serde_json::from_str(&got).unwrap();
        assert_eq!(got, want, "case {i}: {payload}");
    }
}

/// `fleet` for a vmxnet3 ROM, with more arguments.
fn fleet(rom: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fleet", "--nic", "vmxnet3", "--rom"])
        .arg(rom)
        .args(extra)
        .output()
        .unwrap()
}

/// `vmx` for a vmxnet3 VM with good values, with more arguments (later flags win).
fn vmx_with(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["vmx", "--nic", "vmxnet3"];
    for (flag, value) in [
        ("--rom-path", "/vmfs/volumes/ds/r.rom"),
        ("--chain", "http://b/x"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .args(ADDRESSES)
        .args(extra)
        .output()
        .unwrap()
}

/// A refusal: the message, a non-zero exit, and nothing printed for another tool.
#[track_caller]
fn refused(out: &std::process::Output, want: &str) -> String {
    let err = fails_with(out, want);
    assert!(out.stdout.is_empty(), "printed on refusal: {}", stdout(out));
    err
}

/// Issue 33 item 8: `--group` is a plain inventory group name: Ansible reads `hosts:` as a
/// host pattern, so `all`, `*`, `web,db`, `~.*` or `!x` would reach other VMs than the group.
#[test]
fn fleet_takes_a_plain_group_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("15ad07b0.rom");
    fs::write(&rom, rom_image(Nic::by_name("vmxnet3").unwrap(), 4096)).unwrap();
    for group in [
        "all",
        "ungrouped",
        "*",
        "web*",
        "web,db",
        "web:db",
        "~.*",
        "!x",
        "web&db",
        "",
        "a b",
        "9web",
        "web[0]",
    ] {
        let err = refused(&fleet(&rom, &["--group", group]), "--group");
        assert!(
            err.contains("is not a plain inventory group name"),
            "{group}: {err}"
        );
    }
    let out = fleet(&rom, &["--group", "web_servers2"]);
    ok(&out);
    assert!(stdout(&out).contains("hosts: !unsafe \"web_servers2\"\n"));
}

/// Issue 33 item 9: a `--chain` URL carries no user info and has a well-formed host and port;
/// no error repeats a URL's password.
#[test]
fn a_chain_with_user_info_or_a_broken_authority_is_refused() {
    for (chain, want) in [
        (
            "http://user:secret@boot.example/x",
            "--chain has user info before its host",
        ),
        ("http://@/x", "--chain has user info before its host"),
        ("http://:80/x", "--chain has no host"),
        ("http://[::1/x", "--chain host '[::1' is not a host name"),
        (
            "http://boot.example:99999/x",
            "--chain has ':99999' after its host where a port (:1 to :65535) may go",
        ),
        ("http://boot.example:0/x", "':0' after its host"),
        ("ftp://user:secret@boot.example/x", "not ftp://"),
        ("user:secret@boot.example/x", "--chain is not a URL"),
    ] {
        let err = refused(&vmx_with(&["--chain", chain]), want);
        assert!(!err.contains("secret"), "the password was shown: {err}");
    }
    for chain in [
        "http://[fe80::1]:8080/x",
        "http://boot.example:65535/a?b=c#d",
        "http://10.0.0.1/x@y",
    ] {
        ok(&vmx_with(&["--chain", chain]));
    }
}

/// Issue 33 item 9: the invisible and bidirectional characters issue 33 names are refused
/// wherever control characters are, by position and code point.
#[test]
fn invisible_and_bidi_characters_are_refused_wherever_controls_are() {
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("15ad07b0.rom");
    fs::write(&rom, rom_image(Nic::by_name("vmxnet3").unwrap(), 4096)).unwrap();
    for c in [
        '\u{61c}',
        '\u{200b}',
        '\u{2060}',
        '\u{ad}',
        '\u{fff9}',
        '\u{e0041}',
    ] {
        let code = format!("U+{:04X}", c as u32);
        for (flag, value) in [
            ("--scriptlet", format!("chain{c} x")),
            ("--vm", format!("web{c}")),
            ("--rom-path", format!("/vmfs/volumes/ds/r{c}.rom")),
            ("--chain", format!("http://b/{c}x")),
        ] {
            let err = refused(&vmx_with(&[flag, &value, "--format", "govc"]), &code);
            assert!(err.contains(flag), "{err}");
        }
        let err = refused(&fleet(&rom, &["--group", &format!("web{c}")]), &code);
        assert!(err.contains("--group"), "{err}");
        let err = refused(
            &fleet(&rom, &["--scriptlet", &format!("chain{c} x")]),
            &code,
        );
        assert!(err.contains("--scriptlet"), "{err}");
    }
}

/// Issue 33 item 9: `fleet --rom` is checked as `vmx --rom` is: its path is printed into the
/// playbook and the Terraform.
#[test]
fn fleet_checks_its_rom_path_as_vmx_does() {
    let dir = tempfile::tempdir().unwrap();
    for (name, want) in [
        ("r\u{202e}.rom", "--rom has a bidirectional control, U+202E"),
        ("r\u{200b}.rom", "--rom has an invisible character, U+200B"),
    ] {
        let rom = dir.path().join(name);
        fs::write(&rom, rom_image(Nic::by_name("vmxnet3").unwrap(), 4096)).unwrap();
        refused(&vmx_with(&["--rom", rom.to_str().unwrap()]), want);
        for format in ["ansible", "terraform"] {
            refused(&fleet(&rom, &["--format", format]), want);
        }
    }
}

/// Go's flag package, as govc's commands parse their arguments (`flag.go`, `parseOne`): flags
/// until `--` or the first argument that is not one; a flag without `=` takes the next one.
/// Returns the flags and the positional arguments.
fn go_flags(args: &[&str]) -> (Vec<(String, String)>, Vec<String>) {
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let s = args[i];
        if s.len() < 2 || !s.starts_with('-') {
            break;
        }
        i += 1;
        if s == "--" {
            break;
        }
        let name = s.strip_prefix("--").unwrap_or(&s[1..]);
        match name.split_once('=') {
            Some((n, v)) => flags.push((n.to_string(), v.to_string())),
            None => {
                flags.push((name.to_string(), args.get(i).unwrap_or(&"").to_string()));
                i += 1;
            }
        }
    }
    let rest = args[i.min(args.len())..].iter().map(|a| a.to_string());
    (flags, rest.collect())
}

/// Issue 33 item 9: a local ROM or a datastore path that starts with `-` reaches govc as a
/// file, not as a flag.
#[test]
fn govc_reads_a_path_that_starts_with_a_dash_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("-ds=evil.rom"),
        rom_image(Nic::by_name("vmxnet3").unwrap(), 4096),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["vmx", "--nic", "vmxnet3", "--format", "govc"])
        .args([
            "--rom=-ds=evil.rom",
            "--rom-path",
            "/vmfs/volumes/ds/-x.rom",
        ])
        .args(ADDRESSES)
        .args(["--chain", "http://b/x"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    ok(&out);
    let script = format!(
        "govc() {{ printf '%s\\0' \"$@\"; printf '\\1'; }}\n{}",
        stdout(&out)
    );
    let run = bash(&script);
    ok(&run);
    let text = String::from_utf8(run.stdout).unwrap();
    let upload: Vec<&str> = text
        .split('\u{1}')
        .next()
        .unwrap()
        .split_terminator('\0')
        .collect();
    assert_eq!(upload[0], "datastore.upload");
    let (flags, files) = go_flags(&upload[1..]);
    assert_eq!(flags, [("ds".to_string(), "ds".to_string())], "{text:?}");
    assert_eq!(files, ["-ds=evil.rom", "-x.rom"], "{text:?}");
}

/// PowerShell's wildcard matching, as `Get-VM -Name` applies it (WildcardPattern, ignoring
/// case): `*`, `?`, `[abc]` and `[a-z]`, and a backtick before a character makes it literal.
fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    let eq = |a: char, b: char| a.to_lowercase().eq(b.to_lowercase());
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..])),
        Some(('?', rest)) => !name.is_empty() && wildcard_match(rest, &name[1..]),
        Some(('`', rest)) if !rest.is_empty() => {
            name.first().is_some_and(|&n| eq(n, rest[0])) && wildcard_match(&rest[1..], &name[1..])
        }
        Some(('[', rest)) if rest.contains(&']') => {
            let end = rest.iter().position(|&c| c == ']').unwrap();
            let set = &rest[..end];
            let Some(&n) = name.first() else { return false };
            let hit = (0..set.len()).any(|i| {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    (set[i]..=set[i + 2]).contains(&n)
                } else {
                    eq(set[i], n)
                }
            });
            hit && wildcard_match(&rest[end + 1..], &name[1..])
        }
        Some((&p, rest)) => {
            name.first().is_some_and(|&n| eq(n, p)) && wildcard_match(rest, &name[1..])
        }
    }
}

/// The VMs the printed `$vm = ...` line selects from `inventory`, read as PowerShell would:
/// a single-quoted string, `[WildcardPattern]::Escape(...)` (a backtick before each of
/// `` *?[]` ``), and a `Where-Object { $_.Name -ceq '...' }` filter.
fn powercli_selects(line: &str, inventory: &[&str]) -> Vec<String> {
    let unquote = |s: &str| -> (String, usize) {
        let mut out = String::new();
        let chars: Vec<char> = s.chars().collect();
        assert_eq!(chars[0], '\'', "{s}");
        let mut i = 1;
        while i < chars.len() {
            if chars[i] == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    out.push('\'');
                    i += 2;
                    continue;
                }
                let used: usize = chars[..=i].iter().map(|c| c.len_utf8()).sum();
                return (out, used);
            }
            out.push(chars[i]);
            i += 1;
        }
        panic!("unclosed string in {s}");
    };
    let rest = line.strip_prefix("$vm = ").expect(line);
    let rest = rest
        .trim_start_matches("@(")
        .trim_start_matches("Get-VM -Name ");
    let (pattern, rest) = match rest.strip_prefix("([WildcardPattern]::Escape(") {
        Some(r) => {
            let (lit, used) = unquote(r);
            let escaped: String = lit
                .chars()
                .flat_map(|c| ("*?[]`".contains(c).then_some('`')).into_iter().chain([c]))
                .collect();
            (escaped, &r[used..])
        }
        None => {
            let (lit, used) = unquote(rest);
            (lit, &rest[used..])
        }
    };
    let pattern: Vec<char> = pattern.chars().collect();
    let mut picked: Vec<String> = inventory
        .iter()
        .filter(|n| wildcard_match(&pattern, &n.chars().collect::<Vec<_>>()))
        .map(|n| n.to_string())
        .collect();
    if let Some(at) = rest.find("Where-Object { $_.Name -ceq ") {
        let (exact, _) = unquote(&rest[at + "Where-Object { $_.Name -ceq ".len()..]);
        picked.retain(|n| *n == exact);
    }
    picked
}

/// Issue 33 item 9: `Get-VM -Name` reads `*`, `?` and `[...]` as wildcards and ignores case,
/// so the printed PowerCLI must select the VM named and no other, and stop unless exactly one
/// VM has that name. (No PowerShell is packaged for Debian: a model of its wildcards reads it.)
#[test]
fn powercli_selects_only_the_vm_named() {
    let inventory = [
        "web*", "web1", "webX", "WEB*", "web[1]", "web1]", "w?b", "wab", "web`1", "a'b*", "a'bc",
    ];
    for name in ["web*", "web[1]", "w?b", "web`1", "a'b*"] {
        let out = vmx_with(&["--format", "powercli", "--vm", name]);
        ok(&out);
        let text = stdout(&out);
        let line = text.lines().find(|l| l.starts_with("$vm = ")).unwrap();
        assert_eq!(powercli_selects(line, &inventory), [name], "{line}");
        assert!(
            text.contains("if (@($vm).Count -ne 1) { throw "),
            "the script stops unless one VM has the name:\n{text}"
        );
    }
}

/// The value of `key` in the Terraform's `locals { ipxe_extra_config = { for ... : name => {
/// ... } } }`, as hcl-rs evaluates it (a key whose value is not per VM).
fn tf_fixed_value(text: &str, key: &str) -> Option<String> {
    use hcl::eval::Evaluate;
    let body: hcl::Body = hcl::from_str(text).unwrap_or_else(|e| panic!("hcl-rs: {e}\n{text}"));
    let ctx = hcl::eval::Context::new();
    let locals = body.blocks().find(|b| b.identifier() == "locals")?;
    let attr = locals.body().attributes().next()?;
    let hcl::Expression::ForExpr(f) = attr.expr() else {
        panic!("not a for expression: {}", attr.expr());
    };
    let hcl::Expression::Object(object) = &f.value_expr else {
        panic!("not an object: {}", f.value_expr);
    };
    object.iter().find_map(|(k, v)| {
        let hcl::ObjectKey::Expression(k) = k else {
            return None;
        };
        (k.evaluate(&ctx).ok()?.as_str()? == key).then(|| {
            let v = v.evaluate(&ctx).unwrap();
            v.as_str().unwrap().to_string()
        })
    })
}

/// Issue 33: fleet's outputs under the property test vmx's have. For any scriptlet and ROM
/// path the validation takes, yaml-rust2 and PyYAML read the playbook's scriptlet and ROM source
/// back exactly, each tagged `!unsafe`, and hcl-rs reads the Terraform's.
#[test]
fn every_fleet_output_survives_its_parser() {
    use xtask::vm::{
        deployment::Rom,
        fleet::{self, Fleet},
    };
    let nic = Nic::by_name("vmxnet3").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("15ad07b0.rom");
    fs::write(&file, rom_image(nic, 4096)).unwrap();
    let rom = Rom::load(&file, nic).unwrap();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let accepted = std::sync::Mutex::new(Vec::new());
    runner
        .run(&(hostile_string(), hostile_string()), |(scriptlet, src)| {
            let f = |format| {
                let src = Path::new(&src);
                let f = Fleet {
                    nic,
                    ethernet: 0,
                    rom: &rom,
                    rom_src: src,
                    scriptlet: Some(scriptlet.clone()),
                    group: "ipxe".into(),
                };
                fleet::render(&f, format)
            };
            let (Ok(playbook), Ok(tf)) = (f(fleet::Format::Ansible), f(fleet::Format::Terraform))
            else {
                return Ok(());
            };
            let yaml = xtask::vm::quote::yaml;
            prop_assert!(
                playbook.contains(&format!("value: {}\n", yaml(&scriptlet)))
                    && playbook.contains(&format!("ipxe_rom_src: {}\n", yaml(&src)))
                    && yaml(&scriptlet).starts_with("!unsafe \""),
                "{}",
                playbook
            );
            let docs = yaml_rust2::YamlLoader::load_from_str(&playbook)
                .map_err(|e| TestCaseError::fail(format!("yaml-rust2: {e}\n{playbook}")))?;
            let play = &docs[0][0];
            prop_assert_eq!(play["vars"]["ipxe_rom_src"].as_str(), Some(src.as_str()));
            let set = play["tasks"]
                .as_vec()
                .unwrap()
                .iter()
                .find_map(|t| t["community.vmware.vmware_guest"]["advanced_settings"].as_vec())
                .unwrap();
            let got = set
                .iter()
                .find(|s| s["key"].as_str() == Some("guestinfo.ipxe.scriptlet"))
                .and_then(|s| s["value"].as_str());
            prop_assert_eq!(got, Some(scriptlet.as_str()));
            let tf_got = tf_fixed_value(&tf, "guestinfo.ipxe.scriptlet");
            prop_assert_eq!(tf_got.as_deref(), Some(scriptlet.as_str()));
            accepted.lock().unwrap().push((playbook, scriptlet, src));
            Ok(())
        })
        .unwrap();
    let accepted = accepted.into_inner().unwrap();
    assert!(accepted.len() > 50, "only {} accepted", accepted.len());
    let Some(py) = python_with_yaml() else {
        skip(
            "no python3 with PyYAML (apt-get install python3-yaml); yaml-rust2 read the playbooks",
        );
        return;
    };
    let mut want = Vec::new();
    for (i, (playbook, scriptlet, src)) in accepted.iter().enumerate() {
        fs::write(dir.path().join(format!("{i}.yml")), playbook).unwrap();
        want.push([scriptlet, src]);
    }
    fs::write(
        dir.path().join("want.json"),
        serde_json::to_string(&want).unwrap(),
    )
    .unwrap();
    let check = "import json, sys, yaml\n\
        tags = []\n\
        def unsafe(loader, node):\n    tags.append(node.value)\n    return loader.construct_scalar(node)\n\
        yaml.SafeLoader.add_constructor('!unsafe', unsafe)\n\
        want = json.load(open(sys.argv[2], encoding='utf-8'))\n\
        for i, (scriptlet, src) in enumerate(want):\n\
        \x20   tags.clear()\n\
        \x20   play = yaml.safe_load(open(f'{sys.argv[1]}/{i}.yml', encoding='utf-8'))[0]\n\
        \x20   assert play['vars']['ipxe_rom_src'] == src, (i, src)\n\
        \x20   task = [t for t in play['tasks'] if 'community.vmware.vmware_guest' in t][0]\n\
        \x20   s = task['community.vmware.vmware_guest']['advanced_settings']\n\
        \x20   got = [x['value'] for x in s if x['key'] == 'guestinfo.ipxe.scriptlet']\n\
        \x20   assert got == [scriptlet], (i, got, scriptlet)\n\
        \x20   assert scriptlet in tags and src in tags, (i, 'not tagged !unsafe')\n";
    let out = Command::new(py)
        .args(["-c", check])
        .arg(dir.path())
        .arg(dir.path().join("want.json"))
        .output()
        .unwrap();
    ok(&out);
}

/// Issue 33: `deploy` against a lying vSphere server (`support::fake_vsphere`) and against
/// hostile connection settings. Every run is held to `support::bounded`'s memory and time caps.
const PASSWORD: &str = "pw&9f3c<never>printed";
/// A piece of the password that any encoding of it (raw, XML-escaped, echoed) keeps.
const PASSWORD_MARK: &str = "9f3c";
/// A piece of the fake server's session cookie.
const COOKIE_MARK: &str = "5e7a1c";

/// An e1000 ROM file to deploy; the directory goes with it.
fn e1000_rom() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("8086100f.rom");
    fs::write(&file, rom_image(Nic::by_name("e1000").unwrap(), 4096)).unwrap();
    (dir, file)
}

/// A dry-run `deploy` of `rom` to VM `victim` on datastore `ds1`, govc's environment pointing
/// at `govc_url`, the password only in GOVC_PASSWORD.
fn hostile_deploy(rom: &Path, govc_url: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["deploy", "--vm", "victim", "--datastore", "ds1"])
        .args(["--nic", "e1000", "--dry-run"])
        .args(ADDRESSES)
        .args(["--chain", "http://b/x", "--rom"])
        .arg(rom)
        .args(extra)
        .env("GOVC_URL", govc_url)
        .env("GOVC_USERNAME", "deployer")
        .env("GOVC_PASSWORD", PASSWORD)
        .env_remove("GOVC_INSECURE")
        .env_remove("GOVC_TLS_CA_CERTS");
    cmd
}

/// Neither the password nor the session cookie in anything the run printed.
#[track_caller]
fn no_secret(what: &str, m: &bounded::Measured) {
    let all = format!("{}{}", stdout(&m.out), stderr(&m.out));
    assert!(
        !all.contains(PASSWORD_MARK),
        "{what}: the password was shown:\n{all}"
    );
    assert!(
        !all.contains(COOKIE_MARK),
        "{what}: the cookie was shown:\n{all}"
    );
}

/// Item 2: an `@` in the path is not user info. Before, `--url http://A/x@B` and
/// `GOVC_URL=http://A/sdk@B` logged in at B; now the password goes to A, the host both WHATWG
/// and Go's net/url (so govc) read there, or nowhere.
#[test]
fn credentials_go_only_to_the_host_the_url_names() {
    let (_dir, rom) = e1000_rom();
    let mut figures = bounded::Figures::default();
    let victim = FakeVsphere::start(Lies::default());
    // 127.0.0.2 is loopback too; nothing listens on its port 80.
    let url = format!("http://127.0.0.2/x@{}", victim.authority());
    let m = bounded::run(
        hostile_deploy(&rom, "http://127.0.0.1:9/sdk", &["--url", &url]),
        Stdio::null(),
    );
    figures.add(&url, &m);
    fails_with(
        &m.out,
        "cannot reach the vSphere API at http://127.0.0.2/x@",
    );
    no_secret(&url, &m);
    assert_eq!(
        victim.calls(),
        Vec::<String>::new(),
        "{url} reached the victim"
    );

    let named = FakeVsphere::start_on("127.0.0.2", Lies::default());
    let url = format!("http://{}/sdk@{}", named.authority(), victim.authority());
    let m = bounded::run(hostile_deploy(&rom, &url, &[]), Stdio::null());
    figures.add(&url, &m);
    ok(&m.out);
    no_secret(&url, &m);
    assert_eq!(
        victim.calls(),
        Vec::<String>::new(),
        "{url} reached the victim"
    );
    let login = named.seen().into_iter().find(|s| s.call == "Login");
    assert!(
        login.is_some_and(|s| s.raw.contains(PASSWORD_MARK)),
        "{url}: the named host got no login: {:?}",
        named.calls()
    );
    figures.report("credentials_go_only_to_the_host_the_url_names");
}

/// Item 2: a URL that parsers read differently, or that names no http(s) host, is refused
/// before any connection, with the problem and the fix; the host it might have meant (the
/// victim) sees nothing.
#[test]
fn an_ambiguous_url_is_refused_before_any_connection() {
    let (_dir, rom) = e1000_rom();
    let mut figures = bounded::Figures::default();
    let victim = FakeVsphere::start(Lies::default());
    let (v, port) = (
        victim.authority(),
        victim.authority().split(':').nth(1).unwrap().to_string(),
    );
    let cases: Vec<(bool, String, &str)> = vec![
        (
            true,
            format!("http://deployer@{v}/sdk"),
            "--url carries a user name",
        ),
        (
            false,
            format!("http://127.0.0.2\\@{v}/sdk"),
            "GOVC_URL has a backslash",
        ),
        (
            false,
            format!("http://127.1:{port}/sdk"),
            "GOVC_URL names the host '127.1'",
        ),
        (
            false,
            format!("http://0x7f.0.0.1:{port}/sdk"),
            "host '0x7f.0.0.1'",
        ),
        (
            false,
            format!("http://2130706433:{port}/sdk"),
            "host '2130706433'",
        ),
        (false, format!("http:///{v}/sdk"), "GOVC_URL has no host"),
        // These would have asked the DNS server before the fix; now nothing leaves the machine.
        (
            false,
            format!("http://127.0.0.1.:{port}/sdk"),
            "host '127.0.0.1.'",
        ),
        (
            false,
            format!("http://%31%32%37.0.0.1:{port}/sdk"),
            "host '%31%32%37.0.0.1'",
        ),
        (
            false,
            format!("http://127.0.0.\t1:{port}/sdk"),
            "GOVC_URL has a control character or space, U+0009",
        ),
        (
            false,
            format!("ftp+x://{v}/sdk"),
            "GOVC_URL has '://' after something that is not a scheme",
        ),
        (
            false,
            format!("ftp://{v}/sdk"),
            "GOVC_URL scheme 'ftp' is not http or https",
        ),
        (
            false,
            "file:///etc/passwd".into(),
            "GOVC_URL scheme 'file' is not http or https",
        ),
    ];
    for (flag, url, want) in &cases {
        let cmd = if *flag {
            hostile_deploy(&rom, "http://127.0.0.1:9/sdk", &["--url", url])
        } else {
            hostile_deploy(&rom, url, &[])
        };
        let m = bounded::run(cmd, Stdio::null());
        figures.add(url, &m);
        let err = fails_with(&m.out, want);
        assert!(
            ["give", "pass", "write", "remove", "begin"]
                .iter()
                .any(|fix| err.contains(fix)),
            "{url}: no fix named:\n{err}"
        );
        no_secret(url, &m);
        assert_eq!(
            victim.calls(),
            Vec::<String>::new(),
            "{url} reached the victim"
        );
    }
    // The victim is there: its own URL, written plainly, reaches it.
    let m = bounded::run(hostile_deploy(&rom, &victim.url, &[]), Stdio::null());
    figures.add(&victim.url, &m);
    ok(&m.out);
    assert!(victim.calls().contains(&"Login".to_string()));
    figures.report("an_ambiguous_url_is_refused_before_any_connection");
}

/// Item 3: a 600 MiB reply, SOAP or the datastore file, sent without a Content-Length so that
/// curl cannot refuse it up front, stops at the 16 MiB cap; a reply under the cap made of
/// empty elements, which roxmltree would keep at some 80 bytes each, stops at 1,000,000 nodes.
#[test]
fn a_huge_reply_from_vsphere_stops_at_the_cap() {
    let (_dir, rom) = e1000_rom();
    let mut figures = bounded::Figures::default();
    let huge = |what| Lies {
        huge: Some((what, 600 << 20)),
        ..Lies::default()
    };
    let nodes = |n| Lies {
        nodes: Some(("RetrievePropertiesEx", n)),
        ..Lies::default()
    };
    let cases = [
        (
            "600 MiB SOAP reply",
            huge("RetrievePropertiesEx"),
            "over the 16 MiB cap",
        ),
        ("600 MiB datastore file", huge("GET"), "over the 16 MiB cap"),
        (
            "15 MiB of <a/>",
            nodes(15 << 18),
            "more than 1000000 XML nodes",
        ),
        (
            "1.5 million <a/>",
            nodes(1_500_000),
            "more than 1000000 XML nodes",
        ),
    ];
    for (what, lies, want) in cases {
        let server = FakeVsphere::start(lies);
        let m = bounded::run(hostile_deploy(&rom, &server.url, &[]), Stdio::null());
        figures.add(what, &m);
        fails_with(&m.out, want);
        no_secret(what, &m);
    }
    figures.report("a_huge_reply_from_vsphere_stops_at_the_cap");
}

/// Item 3: a property collector that always hands back a continuation token is read for at
/// most 500 pages; pages of 15 MiB stop when they add up to 64 MiB.
#[test]
fn endless_continuation_tokens_stop_at_the_page_limit() {
    let (_dir, rom) = e1000_rom();
    let mut figures = bounded::Figures::default();
    let cases = [
        (
            0,
            "sent 500 pages for one question, and a token for more",
            500,
        ),
        (15 << 20, "sent more than 64 MiB for one question", 5),
    ];
    for (padding, want, most) in cases {
        let server = FakeVsphere::start(Lies {
            endless_tokens: true,
            page_padding: padding,
            ..Lies::default()
        });
        let what = format!("endless tokens, pages of {padding} more bytes");
        let m = bounded::run(hostile_deploy(&rom, &server.url, &[]), Stdio::null());
        figures.add(&what, &m);
        fails_with(&m.out, want);
        let pages = server
            .calls()
            .iter()
            .filter(|c| c.contains("RetrieveProperties"))
            .count();
        assert!(pages <= most, "{what}: {pages} pages read");
    }
    figures.report("endless_continuation_tokens_stop_at_the_page_limit");
}

/// Item 3: what the server says of the VM reaches the plan escaped: no line of it can be
/// forged, no terminal control or bidi character gets through.
#[test]
fn server_text_cannot_forge_lines_in_the_plan() {
    let (_dir, rom) = e1000_rom();
    let mut figures = bounded::Figures::default();
    // XML 1.0 carries no C0 control but tab, LF and CR; C1 (CSI is U+009B), DEL, bidi and
    // invisible characters it does.
    let hostile = "\n\r\t\u{7f}\u{85}\u{9b}2J\u{202e}\u{2066}\u{200b}\u{feff}\u{2028}\u{ad}";
    let server = FakeVsphere::start(Lies {
        power_state: "poweredOff\nset       firmware = bios  (was efi, FAKE LINE)".into(),
        firmware: format!("bios\u{202e}FAKE{hostile}"),
        vm_moref: "vm-1\r\nvsphere   FAKE".into(),
        extra_config: vec![
            (
                "guestinfo.ipxe.net0.ip".into(),
                format!("10.0.0.9{hostile}FAKE"),
            ),
            (
                "guestinfo.ipxe.dns".into(),
                "1.1.1.1\u{9b}2J\u{85}FAKE".into(),
            ),
        ],
        ..Lies::default()
    });
    let m = bounded::run(hostile_deploy(&rom, &server.url, &[]), Stdio::null());
    figures.add("hostile VM values", &m);
    ok(&m.out);
    let text = stdout(&m.out);
    let labels = [
        "dry run:",
        "vsphere ",
        "vm ",
        "rom ",
        "upload ",
        "set ",
        "unchanged ",
        "note ",
        "power on ",
    ];
    for line in text.lines() {
        assert!(
            labels.iter().any(|l| line.starts_with(l)),
            "a forged line: {line:?}\n{text}"
        );
        let bad: Vec<char> = line
            .chars()
            .filter(|c| c.is_control() || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}'))
            .collect();
        assert!(bad.is_empty(), "{bad:?} printed raw in {line:?}");
    }
    assert!(!text.contains("\nset       firmware"), "{text}");
    assert_eq!(
        text.matches("FAKE").count(),
        5,
        "each lie shown once, escaped:\n{text}"
    );
    figures.report("server_text_cannot_forge_lines_in_the_plan");
}

/// Item 3: a fault whose message echoes the request (the Login's password, the session
/// cookie) is printed with both redacted.
#[test]
fn a_fault_that_echoes_the_request_shows_no_secret() {
    let (_dir, rom) = e1000_rom();
    let mut figures = bounded::Figures::default();
    for (call, want) in [
        ("Login", "cannot log in"),
        ("RetrievePropertiesEx", "RetrievePropertiesEx"),
    ] {
        let server = FakeVsphere::start(Lies {
            echo_fault: Some(call),
            ..Lies::default()
        });
        let m = bounded::run(hostile_deploy(&rom, &server.url, &[]), Stdio::null());
        figures.add(call, &m);
        let err = fails_with(&m.out, want);
        // The echo is shown, so this test would see a secret in it.
        assert!(
            err.contains("vmware_soap_session="),
            "{call}: the echo was not shown:\n{err}"
        );
        no_secret(call, &m);
        let raw = server
            .seen()
            .into_iter()
            .find(|s| s.call == call)
            .unwrap()
            .raw;
        assert!(
            raw.contains(COOKIE_MARK),
            "{call} carried the cookie, which the echo repeats"
        );
    }
    figures.report("a_fault_that_echoes_the_request_shows_no_secret");
}

/// Item 6: 200 MiB on standard input for `--password-stdin` is refused at 4 KiB, before any
/// connection.
#[test]
fn a_password_on_stdin_over_the_cap_is_refused() {
    let (dir, rom) = e1000_rom();
    let mut figures = bounded::Figures::default();
    let server = FakeVsphere::start(Lies::default());
    let big = dir.path().join("password");
    fs::File::create(&big).unwrap().set_len(200 << 20).unwrap();
    let m = bounded::run(
        hostile_deploy(&rom, &server.url, &["--password-stdin"]),
        Stdio::from(fs::File::open(&big).unwrap()),
    );
    figures.add("200 MiB password", &m);
    fails_with(&m.out, "the password on standard input is over 4 KiB");
    assert_eq!(server.calls(), Vec::<String>::new());
    figures.report("a_password_on_stdin_over_the_cap_is_refused");
}

/// Item 6: a CA file that is a FIFO (would block) or /dev/zero (would fill memory), by flag or
/// GOVC_TLS_CA_CERTS, or a file over 1 MiB, is refused before any connection.
#[test]
fn a_ca_file_that_is_not_a_small_regular_file_is_refused() {
    let (dir, rom) = e1000_rom();
    let mut figures = bounded::Figures::default();
    let server = FakeVsphere::start(Lies::default());
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = dir.path().join("big.pem");
    let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    pem.resize(2 << 20, b'A');
    fs::write(&big, pem).unwrap();
    let (fifo, big) = (fifo.to_str().unwrap(), big.to_str().unwrap());
    let cases = [
        (Some(fifo), None, "is not a regular file"),
        (Some("/dev/zero"), None, "is not a regular file"),
        (None, Some("/dev/zero"), "is not a regular file"),
        (Some(big), None, "a CA file is at most 1 MiB"),
    ];
    for (flag, env, want) in cases {
        let mut cmd = match flag {
            Some(f) => hostile_deploy(&rom, &server.url, &["--ca-file", f]),
            None => hostile_deploy(&rom, &server.url, &[]),
        };
        if let Some(e) = env {
            cmd.env("GOVC_TLS_CA_CERTS", e);
        }
        let what = format!("CA file {}", flag.or(env).unwrap());
        let m = bounded::run(cmd, Stdio::null());
        figures.add(&what, &m);
        fails_with(&m.out, want);
        assert_eq!(server.calls(), Vec::<String>::new(), "{what}");
    }
    figures.report("a_ca_file_that_is_not_a_small_regular_file_is_refused");
}
