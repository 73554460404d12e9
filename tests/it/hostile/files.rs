//! Hostile input, second round: the files the tool takes and the directories it writes. Every
//! run of the tool here is held to 20 s and 256 MiB of data (`bounded`), and every refusal
//! leaves the cache, `roms/`, `--out`, the configs and the victim files as they were.

use std::{
    fs,
    io::Write as _,
    path::Path,
    process::{Command, Output},
    time::Instant,
};

use super::{finish_tar, raw_entry, rom_image, snapshot, Scene};
use crate::support::*;
use xtask::nic::Nic;

/// What a hostile input may take: a run past either bound is a hole.
const BOUND_SECS: u64 = 20;
const BOUND_MIB: u64 = 256;

/// Runs `cmd` under a data limit of [`BOUND_MIB`] (so a hole aborts instead of taking the
/// machine) and a KILL after [`BOUND_SECS`]; asserts both held, and reports the child's peak
/// RSS (GNU time's %M) and its time.
#[track_caller]
fn bounded(label: &str, inner: Command) -> Output {
    let stats = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--data={}", BOUND_MIB << 20)).arg("--");
    let timed = Path::new("/usr/bin/time").is_file();
    if timed {
        cmd.args(["/usr/bin/time", "-f", "%M", "-o"])
            .arg(stats.path());
    }
    cmd.args(["timeout", "-s", "KILL", &BOUND_SECS.to_string()]);
    cmd.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(
        secs < BOUND_SECS as f64,
        "{label}: still running after {BOUND_SECS} s, killed\nstderr:\n{}",
        cut(&stderr(&out))
    );
    if !timed {
        skip("no /usr/bin/time (apt-get install time): peak memory not measured");
        return out;
    }
    let text = fs::read_to_string(stats.path()).unwrap();
    let kib: u64 = text
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(0);
    let line = format!("hostile {label}: peak RSS {} KiB, {secs:.2} s\n", kib);
    eprint!("{line}");
    ci_report(&line);
    assert!(
        kib < BOUND_MIB << 10,
        "{label}: peak RSS {kib} KiB, over {BOUND_MIB} MiB"
    );
    out
}

/// At most 2,000 characters of a long text, for assertion messages.
fn cut(s: &str) -> String {
    s.chars().take(2000).collect()
}

/// The tool against `p`, with these arguments.
fn tool(p: &Project, args: &[&str]) -> Command {
    let mut cmd = p.command();
    cmd.args(args);
    cmd
}

/// The tool with no project flags (inspect, vmx).
fn bare(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    for a in args {
        cmd.arg(a);
    }
    cmd
}

const BUILD: &[&str] = &["build-rom", "--nic", "vmxnet3", "--runtime", "native"];

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// A file of `len` zero bytes that takes no disk (sparse).
fn sparse(path: &Path, len: u64) {
    fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Item 4: `--out` is replaced only when it holds nothing but what this tool wrote, as the
/// manifest in it lists: a vendor's ROM, a directory named like a ROM, a name a forged manifest
/// lists, a ROM changed since it was written. Nothing is removed, and no directory ever.
#[test]
fn build_rom_out_keeps_what_it_did_not_write() {
    let scene = Scene::new();
    let p = &scene.project;
    let ours = p.path("roms/vmware");
    let copy_ours = |to: &Path| {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(&ours).unwrap().flatten() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    };
    let vendor_dir = |to: &Path| {
        fs::create_dir_all(to.join("vendor.rom")).unwrap();
        fs::write(to.join("vendor.rom/README"), "the vendor's notes\n").unwrap();
    };
    let base = scene.outside.path();
    let a = base.join("a");
    fs::create_dir_all(&a).unwrap();
    fs::write(a.join("intel-boot-agent.rom"), "a vendor's ROM").unwrap();
    vendor_dir(&a);
    let b = base.join("b");
    copy_ours(&b);
    vendor_dir(&b);
    let c = base.join("c");
    copy_ours(&c);
    fs::write(c.join("intel-boot-agent.rom"), "a vendor's ROM").unwrap();
    let text = fs::read_to_string(c.join("manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut forged = m["roms"]["15ad07b0.rom"].clone();
    forged["sha256"] = xtask::util::sha256_hex(b"a vendor's ROM").into();
    m["roms"]["intel-boot-agent.rom"] = forged;
    fs::write(c.join("manifest.json"), m.to_string()).unwrap();
    let d = base.join("d");
    copy_ours(&d);
    fs::write(d.join("15ad07b0.rom"), "changed by hand").unwrap();
    let cases = [
        (&a, vec!["intel-boot-agent.rom", "vendor.rom (a directory)"]),
        (&b, vec!["vendor.rom (a directory)"]),
        (
            &c,
            vec!["intel-boot-agent.rom (not a ROM this tool builds)"],
        ),
        (
            &d,
            vec!["15ad07b0.rom (not the bytes manifest.json records)"],
        ),
    ];
    for (out, names) in cases {
        let mut watched = scene.watched();
        watched.push(p.path("configs"));
        let before = snapshot(&watched);
        let mut args = BUILD.to_vec();
        args.extend(["--out", out.to_str().unwrap()]);
        let run = bounded("build-rom --out (foreign files)", tool(p, &args));
        let err = fails_with(&run, "holds files this tool did not write");
        for name in names {
            assert!(err.contains(name), "wanted '{name}':\n{err}");
        }
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(snapshot(&watched), before, "{}", out.display());
    }
    // What it wrote it replaces, as often as asked.
    let fresh = base.join("fresh");
    for _ in 0..2 {
        let mut args = BUILD.to_vec();
        args.extend(["--out", fresh.to_str().unwrap()]);
        ok(&p.xtask(&args));
    }
    let left: Vec<_> = fs::read_dir(base)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "left beside --out: {left:?}");
}

/// `l0 -> .`, `l<i> -> l<i-1>/l<i-1>/l<i-1>`: each link is 3 times the one before it.
fn multiplying_links(n: usize) -> Vec<u8> {
    let mut tar = Vec::new();
    raw_entry(&mut tar, "t/src/Makefile", tar::EntryType::Regular, "", 0);
    raw_entry(&mut tar, "t/l0", tar::EntryType::Symlink, ".", 0);
    for i in 1..=n {
        let prev = format!("l{}", i - 1);
        let target = format!("{prev}/{prev}/{prev}");
        raw_entry(
            &mut tar,
            &format!("t/l{i}"),
            tar::EntryType::Symlink,
            &target,
            0,
        );
    }
    finish_tar(tar)
}

/// Item 5: links that multiply (3^30 steps to follow `l30` by recursion) are refused as Linux
/// refuses them, past 40 links, in bounded time; by both importers.
#[test]
fn links_that_multiply_are_refused_in_bounded_time() {
    let scene = Scene::new();
    let p = &scene.project;
    let file = scene.outside.path().join("links.tar");
    fs::write(&file, multiplying_links(30)).unwrap();
    let before = snapshot(&scene.watched());
    for cmd in ["fetch", "pin"] {
        let mut args = vec![cmd, "--archive", file.to_str().unwrap()];
        if cmd == "pin" {
            args.extend(["--version", "v9", "--runtime", "native"]);
        }
        let out = bounded(
            &format!("{cmd} --archive (multiplying links)"),
            tool(p, &args),
        );
        fails_with(&out, "which takes more than 40 links to resolve");
    }
    assert_eq!(snapshot(&scene.watched()), before);
}

/// One tar entry of `kind` whose data is `len` bytes of `fill`, streamed through gzip.
fn gz_with_metadata(path: &Path, kind: u8, len: u64, fill: u8) {
    let mut gz =
        flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast());
    let mut head = Vec::new();
    raw_entry(&mut head, "t/src/Makefile", tar::EntryType::Regular, "", 0);
    raw_entry(
        &mut head,
        "././@LongLink",
        tar::EntryType::new(kind),
        "",
        len,
    );
    gz.write_all(&head).unwrap();
    let chunk = vec![fill; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64);
        gz.write_all(&chunk[..n as usize]).unwrap();
        left -= n;
    }
    let pad = (512 - len % 512) % 512;
    gz.write_all(&vec![0; pad as usize]).unwrap();
    let mut tail = Vec::new();
    raw_entry(&mut tail, "t/x", tar::EntryType::Regular, "", 0);
    gz.write_all(&finish_tar(tail)).unwrap();
    gz.finish().unwrap();
}

/// Item 5: a GNU long name or link (`L`, `K`) or a pax header (`x`, `g`) of 256 MiB is refused
/// at its header, in little memory, and the error is a line, not the name.
#[test]
fn metadata_entries_are_bounded_and_errors_stay_short() {
    let scene = Scene::new();
    let p = &scene.project;
    let big: u64 = 256 << 20;
    let before = snapshot(&scene.watched());
    for (kind, what) in [
        (b'L', "a GNU long name of 268435456 bytes"),
        (b'K', "a GNU long link of 268435456 bytes"),
        (b'x', "a pax header of 268435456 bytes"),
        (b'g', "a pax global header of 268435456 bytes"),
    ] {
        let file = scene.outside.path().join("meta.tar.gz");
        gz_with_metadata(&file, kind, big, b'a');
        let label = format!("fetch --archive ({} entry of 256 MiB)", kind as char);
        let out = bounded(
            &label,
            tool(p, &["fetch", "--archive", file.to_str().unwrap()]),
        );
        let err = fails_with(&out, what);
        assert!(err.len() < 1024, "{label}: {} bytes of error", err.len());
        fs::remove_file(&file).unwrap();
    }
    // A name within the cap is still cut where an error repeats it.
    let mut tar = Vec::new();
    raw_entry(&mut tar, "t/src/Makefile", tar::EntryType::Regular, "", 0);
    let name = format!("t/{}", "A".repeat(4000));
    raw_entry(
        &mut tar,
        "././@LongLink",
        tar::EntryType::GNULongName,
        "",
        4002,
    );
    let mut data = name.into_bytes();
    data.resize(4096, 0);
    tar.extend_from_slice(&data);
    raw_entry(&mut tar, "t/short", tar::EntryType::Fifo, "", 0);
    let file = scene.outside.path().join("longname.tar");
    fs::write(&file, finish_tar(tar)).unwrap();
    let out = bounded(
        "fetch --archive (a 4,000-byte name)",
        tool(p, &["fetch", "--archive", file.to_str().unwrap()]),
    );
    let err = fails_with(&out, "' is a named pipe");
    assert!(
        err.len() < 1024,
        "{} bytes of error:\n{}",
        err.len(),
        cut(&err)
    );
    fs::remove_file(&file).unwrap();
    assert_eq!(snapshot(&scene.watched()), before);
}

/// Item 6: every file the tool takes is read one way: a FIFO or a device is refused before it
/// is opened for reading, and a file over its kind's cap before it is read.
#[test]
fn files_the_tool_takes_are_regular_and_capped() {
    let scene = Scene::new();
    let p = &scene.project;
    // Not watched: hashing a FIFO would block the snapshot, and 1 GiB would take long.
    let odd = tempfile::tempdir().unwrap();
    let fifo = odd.path().join("fifo");
    mkfifo(&fifo);
    let huge = |name: &str| {
        let f = odd.path().join(name);
        sparse(&f, 1 << 30);
        f
    };
    let rom = p.path("roms/vmware/15ad07b0.rom");
    let beside = odd.path().join("rom");
    fs::create_dir_all(&beside).unwrap();
    fs::copy(&rom, beside.join("15ad07b0.rom")).unwrap();
    sparse(&beside.join("manifest.json"), 1 << 30);
    fs::write(
        p.path("configs/bigembed.toml"),
        format!(
            "embed = \"../big.ipxe\"\n{}",
            fs::read_to_string(p.path("configs/vmware.toml")).unwrap()
        ),
    )
    .unwrap();
    sparse(&p.path("big.ipxe"), 1 << 30);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let f = |p: &Path| p.to_str().unwrap().to_string();
    // Each file flag given a FIFO, /dev/zero and 1 GiB: (command, flag, huge file, cap's words).
    let boot_test = [
        "boot-test",
        "--rom",
        rom.to_str().unwrap(),
        "--path",
        "dhcp",
    ];
    let flags: [(&[&str], &str, &str, &str); 4] = [
        (
            &boot_test,
            "--keys",
            "keys.json",
            "a keys file is at most 1 MiB",
        ),
        (&["fetch"], "--patch", "x.patch", "a patch is at most 8 MiB"),
        (
            &["fetch"],
            "--archive",
            "x.tar",
            "a source archive is at most 256 MiB",
        ),
        (
            &["verify", "--runtime", "native"],
            "--against",
            "SHA256SUMS",
            "a SHA256SUMS file is at most 1 MiB",
        ),
    ];
    let mut cases: Vec<(String, Vec<String>, &str)> = Vec::new();
    for (command, flag, name, cap) in flags {
        let not_regular = "is not a regular file";
        for (which, file, want) in [
            ("FIFO", f(&fifo), not_regular),
            ("/dev/zero", "/dev/zero".to_string(), not_regular),
            ("1 GiB", f(&huge(name)), cap),
        ] {
            let mut args = s(command);
            args.extend([flag.to_string(), file]);
            cases.push((format!("{} {flag} {which}", command[0]), args, want));
        }
    }
    let build = s(&[
        "build-rom",
        "--nic",
        "vmxnet3",
        "--runtime",
        "native",
        "--profile",
    ]);
    for (label, profile, want) in [
        (
            "--profile",
            f(&huge("huge.toml")),
            "a TOML file is at most 1 MiB",
        ),
        (
            "embed",
            "bigembed".to_string(),
            "a file a profile compiles in is at most 1 MiB",
        ),
    ] {
        let args = [build.clone(), vec![profile]].concat();
        cases.push((format!("build-rom {label} 1 GiB"), args, want));
    }
    let mut watched = scene.watched();
    watched.push(p.path("configs"));
    let before = snapshot(&watched);
    for (label, args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&bounded(&label, tool(p, &args)), want);
    }
    let vmx = bare(&[
        &"vmx",
        &"--nic",
        &"vmxnet3",
        &"--rom-path",
        &"/vmfs/volumes/ds/x.rom",
        &"--ip",
        &"10.0.0.11/24",
        &"--gateway",
        &"10.0.0.1",
        &"--dns",
        &"10.0.0.2",
        &"--chain",
        &"http://b/x",
        &"--rom",
        &beside.join("15ad07b0.rom"),
    ]);
    fails_with(
        &bounded("vmx --rom beside a 1 GiB manifest.json", vmx),
        "a manifest is at most 1 MiB",
    );
    assert_eq!(snapshot(&watched), before);

    // The pin itself, as a FIFO: every command reads it first.
    let q = Project::new(&[]);
    fs::remove_file(q.path("configs/ipxe.toml")).unwrap();
    mkfifo(&q.path("configs/ipxe.toml"));
    let out = bounded(
        "fetch with a FIFO for configs/ipxe.toml",
        tool(&q, &["fetch", "--offline"]),
    );
    fails_with(&out, "is not a regular file");
}

/// A copy of the default profile with `top` before its tables and `set` (a TOML inline table)
/// in [headers.settings].
fn evil_profile(p: &Project, top: &str, set: Option<&str>) {
    let mut text = fs::read_to_string(p.path("configs/vmware.toml")).unwrap();
    if let Some(set) = set {
        text = text.replace(
            "define = [\"VMWARE_SETTINGS\"]",
            &format!("define = [\"VMWARE_SETTINGS\"]\nset = {set}"),
        );
    }
    fs::write(p.path("configs/evil.toml"), format!("{top}\n{text}")).unwrap();
}

/// `../` enough times to climb from `dir` to `/`, then `to` (absolute).
fn climb(dir: &Path, to: &Path) -> String {
    let up = "../".repeat(dir.components().count());
    format!("{up}{}", to.display().to_string().trim_start_matches('/'))
}

/// Item 7: a profile's files are named relative to it and stay inside the project, through any
/// link; its patches are files of ipxe-patches/. Nothing of the victim reaches a ROM.
#[test]
fn a_profile_names_no_file_outside_the_project() {
    let scene = Scene::new();
    let p = &scene.project;
    let victim = scene.victim();
    let v = victim.display().to_string();
    let x_patch = scene.outside.path().join("x.patch");
    fs::write(
        &x_patch,
        "--- a/src/core/main.c\n+++ b/src/core/main.c\n@@ -1,3 +1,3 @@\n int main ( void ) {\n-\treturn 0;\n+\treturn 1;\n }\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&victim, p.path("configs/inlink.ipxe")).unwrap();
    std::os::unix::fs::symlink(scene.outside.path(), p.path("configs/outdir")).unwrap();
    let up = climb(&p.path("configs"), &victim);
    let up_patch = climb(&p.path("ipxe-patches"), &x_patch);
    let rule = "a profile's files are relative to its directory and stay inside the project";
    let cases = [
        (
            format!("embed = {v:?}"),
            "embed: '",
            "is an absolute path",
            rule,
        ),
        (
            format!("embed = {up:?}"),
            "embed: '../",
            "leads outside the project",
            rule,
        ),
        (
            format!("trust = [{v:?}]"),
            "trust: '",
            "is an absolute path",
            rule,
        ),
        (
            format!("certs = [{up:?}]"),
            "certs: '",
            "leads outside the project",
            rule,
        ),
        (
            "embed = \"inlink.ipxe\"".into(),
            "embed: 'inlink.ipxe'",
            "through a link",
            rule,
        ),
        (
            "embed = \"outdir/victim\"".into(),
            "embed: 'outdir/victim'",
            "through a link",
            rule,
        ),
        (
            format!("patches = [{up_patch:?}]"),
            "patches: '../",
            "is not a file name",
            "patches are files in ipxe-patches/, named without a path",
        ),
    ];
    for (top, field, why, rule) in cases {
        evil_profile(p, &top, None);
        let mut watched = scene.watched();
        watched.push(p.path("configs"));
        let before = snapshot(&watched);
        let mut args = BUILD.to_vec();
        args.extend(["--profile", "evil"]);
        let out = bounded(&format!("build-rom ({top})"), tool(p, &args));
        let err = fails_with(&out, field);
        for want in [why, rule] {
            assert!(err.contains(want), "{top}: wanted '{want}':\n{err}");
        }
        assert_eq!(snapshot(&watched), before, "{top}");
    }
}

/// Item 7: a `set` value is one C constant: an integer, a string with safe escapes, or a macro
/// name in capitals. Statement expressions, `asm` and `.incbin` are not constants.
#[test]
fn a_set_value_is_an_integer_a_string_or_a_macro_name() {
    let scene = Scene::new();
    let p = &scene.project;
    let rule = "a value is one C constant";
    for (value, want) in [
        (
            r#"'({ __asm__ (".incbin \"/etc/hostname\""); 20; })'"#,
            "'(' at character 1",
        ),
        ("\"20 + 1\"", "'+' at character 4"),
        ("\"__FILE__\"", "'__FILE__' is not a macro name in capitals"),
        ("\"sizeof(x)\"", "'sizeof' is not a macro name in capitals"),
        ("\"0x\"", "'0x' is not an integer"),
    ] {
        evil_profile(p, "", Some(&format!("{{ FAKE_VALUE = {value} }}")));
        let mut watched = scene.watched();
        watched.push(p.path("configs"));
        let before = snapshot(&watched);
        let mut args = BUILD.to_vec();
        args.extend(["--profile", "evil"]);
        let out = bounded("build-rom (set value)", tool(p, &args));
        let err = fails_with(&out, "set: FAKE_VALUE = ");
        for w in [want, rule] {
            assert!(err.contains(w), "{value}: wanted '{w}':\n{err}");
        }
        assert_eq!(snapshot(&watched), before, "{value}");
    }
    let good = r#"{ FAKE_ROM_BLOCKS = "40", FAKE_HEX = "0x28UL", FAKE_NEG = "-1",
        FAKE_NAME = "\"vSphere iPXE\\n\"", FAKE_MIN = "TLS_VERSION_TLS_1_2" }"#;
    evil_profile(p, "", Some(&good.replace('\n', "")));
    let mut args = BUILD.to_vec();
    let out = p.path("good");
    args.extend(["--profile", "evil", "--out", out.to_str().unwrap()]);
    ok(&p.xtask(&args));
}

/// Item 9: a hunk header with line numbers no file has is refused, not a panic (it overflowed
/// an add in debug builds and wrapped in release ones).
#[test]
fn a_hunk_header_past_any_file_is_refused() {
    let scene = Scene::new();
    let p = &scene.project;
    let patch = "--- a/src/core/main.c\n+++ b/src/core/main.c\n\
                 @@ -18446744073709551615,2 +1,2 @@\n-a\n-b\n+c\n+d\n";
    fs::write(p.path("ipxe-patches/huge.patch"), patch).unwrap();
    fs::write(
        p.path("ipxe-patches/series.toml"),
        "[[patch]]\nfile = \"huge.patch\"\nreason = \"hostile\"\n",
    )
    .unwrap();
    let before = snapshot(&scene.watched());
    let want = "names line 18446744073709551615; no file has that many lines";
    let out = bounded("build-rom (hunk at usize::MAX)", tool(p, BUILD));
    let err = fails_with(&out, want);
    assert!(!err.contains("panicked"), "{err}");
    let file = p.path("ipxe-patches/huge.patch");
    let out = bounded(
        "fetch --patch (hunk at usize::MAX)",
        tool(p, &["fetch", "--patch", file.to_str().unwrap()]),
    );
    fails_with(&out, want);
    assert_eq!(snapshot(&scene.watched()), before);
}

/// Item 9: pin writes only a pin every later command reads: a version that is a safe printable
/// token and a commit of hex digits, checked before anything is imported or written.
#[test]
fn pin_writes_only_a_pin_it_can_read_back() {
    let scene = Scene::new();
    let p = &scene.project;
    let archive = p.archive.to_str().unwrap();
    let g40 = "g".repeat(40);
    let cases = [
        (
            vec!["--version", "v\u{7f}"],
            "--version 'v\\u{7f}' is not a release name",
        ),
        (
            vec!["--version", "v 2"],
            "--version 'v 2' is not a release name",
        ),
        (vec!["--version", ""], "--version '' is not a release name"),
        (
            vec!["--version", "v9", "--commit", &g40],
            "is not a commit id: 7 to 40 hex digits",
        ),
    ];
    let mut watched = scene.watched();
    watched.push(p.path("configs"));
    for (extra, want) in cases {
        let before = snapshot(&watched);
        let mut args = vec!["pin", "--archive", archive, "--runtime", "native"];
        if !extra.contains(&"--commit") {
            args.extend(["--commit", FAKE_COMMIT]);
        }
        args.extend(extra);
        let out = bounded("pin (bad version or commit)", tool(p, &args));
        fails_with(&out, want);
        assert_eq!(snapshot(&watched), before, "{args:?}");
    }
}

/// No byte of `text` is a terminal control, a bidi control or an invisible format character.
#[track_caller]
fn assert_inert(text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| {
            (c.is_control() && *c != '\n')
                || matches!(*c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}')
        })
        .collect();
    assert!(
        bad.is_empty(),
        "raw {bad:?} printed:\n{}",
        text.escape_debug()
    );
}

/// Item 9: names from an archive and the files given to inspect reach the terminal escaped:
/// an OSC title, a screen clear and a right-to-left override are shown, not obeyed.
#[test]
fn names_from_archives_and_inspect_reach_the_terminal_escaped() {
    let scene = Scene::new();
    let p = &scene.project;
    for (name, kind) in [
        ("t/\u{1b}]0;owned\u{7}\u{1b}[2J", tar::EntryType::Fifo),
        ("t/\u{202e}gnp.exe", tar::EntryType::Char),
    ] {
        let mut tar = Vec::new();
        raw_entry(&mut tar, "t/src/Makefile", tar::EntryType::Regular, "", 0);
        raw_entry(&mut tar, name, kind, "", 0);
        let file = scene.outside.path().join("names.tar");
        fs::write(&file, finish_tar(tar)).unwrap();
        let out = bounded(
            "fetch --archive (control characters in a name)",
            tool(p, &["fetch", "--archive", file.to_str().unwrap()]),
        );
        let err = fails_with(&out, "entry 't/\\u{");
        assert_inert(&err);
        fs::remove_file(&file).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("e1000 \u{1b}]0;owned\u{7}\u{202e}mor.rom");
    fs::write(&good, rom_image(Nic::by_name("e1000").unwrap(), 4096)).unwrap();
    let bad = dir.path().join("bad\u{1b}[2J\u{200b}.rom");
    fs::write(&bad, b"not a rom").unwrap();
    let out = bounded(
        "inspect (control characters in names)",
        bare(&[&"inspect", &good, &bad]),
    );
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("\\u{1b}]0;owned\\u{7}\\u{202e}mor.rom"),
        "{}",
        stdout(&out)
    );
    assert_inert(&stdout(&out));
    assert_inert(&stderr(&out));
    let fifo = dir.path().join("fifo\u{1b}[2J");
    mkfifo(&fifo);
    let out = bounded(
        "inspect (a FIFO with an escape in its name)",
        bare(&[&"inspect", &fifo]),
    );
    fails_with(&out, "is not a regular file");
    assert_inert(&stderr(&out));
}
