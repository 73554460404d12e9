//! Shared pieces of the end-to-end tests: a tiny iPXE-shaped source tree, a project around it,
//! a loopback HTTP server, the builder's base image, and a runner for the real binary.

pub mod ansible;
pub mod bounded;
pub mod fake_vsphere;
pub mod hostile_net;
pub mod pki;
pub mod terraform;
pub mod tls_forge;
pub mod vcsim;

use std::{
    fs,
    io::{Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    thread,
};

use xtask::source::digest::{digest_dir, TreeDigest};

pub const FAKE_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The repository this test runs in.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Writes an iPXE-shaped tree: `src/Makefile` builds valid ROMs for `bin/<pciid>.rom` from the
/// rendered config, `core/main.c` and an embedded script.
pub fn write_fake_tree(root: &Path) {
    let src = root.join("src");
    for dir in ["config/local", "util", "core"] {
        fs::create_dir_all(src.join(dir)).unwrap();
    }
    fs::write(root.join("COPYING"), "GPL-2.0-or-later\n").unwrap();
    fs::write(src.join("Makefile"), include_str!("fake-ipxe.mk")).unwrap();
    fs::write(src.join("util/mkrom.c"), include_str!("mkrom.c")).unwrap();
    fs::write(
        src.join("core/main.c"),
        "int main ( void ) {\n\treturn 0;\n}\n",
    )
    .unwrap();
    fs::write(src.join("core/objs.c"), include_str!("objs.c")).unwrap();
    fs::write(src.join("config/config.c"), include_str!("config.c")).unwrap();
    fs::write(src.join("config/local/.gitignore"), "*\n").unwrap();
    for header in ["general", "settings", "sanboot", "console"] {
        // Like upstream, general.h turns protocols on before the local overrides are read.
        let defaults = if header == "general" {
            "#define DOWNLOAD_PROTO_HTTPS\n#define DOWNLOAD_PROTO_TFTP\n"
        } else {
            ""
        };
        let text = format!(
            "#ifndef CONFIG_{h}_H\n#define CONFIG_{h}_H\n{defaults}#include <config/local/{header}.h>\n#endif\n",
            h = header.to_uppercase()
        );
        fs::write(src.join(format!("config/{header}.h")), text).unwrap();
    }
}

/// A tar.gz of the fake tree under a `fake-ipxe/` prefix, like GitHub's archives.
pub fn fake_archive(dir: &Path) -> (PathBuf, TreeDigest) {
    let tree = dir.join("fake-tree");
    write_fake_tree(&tree);
    let digest = digest_dir(&tree).unwrap();
    let path = dir.join("fake-ipxe.tar.gz");
    write_tar_gz(&tree, "fake-ipxe", &path);
    (path, digest)
}

pub fn write_tar_gz(tree: &Path, prefix: &str, out: &Path) {
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(out).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(prefix, tree).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

/// A valid static address, gateway and DNS server, as `vmx` and `deploy` take them.
pub const ADDRESSES: &[&str] = &[
    "--ip",
    "10.0.0.11/24",
    "--gateway",
    "10.0.0.1",
    "--dns",
    "10.0.0.2",
];

/// A project directory like the repository, pinned to the fake source.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub archive: PathBuf,
    pub digest: TreeDigest,
}

impl Project {
    pub fn new(urls: &[String]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let (archive, digest) = fake_archive(dir.path());
        let p = Project {
            dir,
            archive,
            digest,
        };
        fs::create_dir_all(p.path("configs")).unwrap();
        fs::create_dir_all(p.path("ipxe-patches")).unwrap();
        p.write_pin(urls);
        fs::copy(
            repo().join("configs/vmware.toml"),
            p.path("configs/vmware.toml"),
        )
        .unwrap();
        fs::copy(repo().join("Dockerfile"), p.path("Dockerfile")).unwrap();
        fs::copy(
            repo().join("configs/toolchain.lock"),
            p.path("configs/toolchain.lock"),
        )
        .unwrap();
        // Locked .debs are named by sha256: the machine's cache of them is safe to share, and
        // saves every Docker test a download.
        let debs = xtask::cache::Cache::locate(None)
            .unwrap()
            .area("debs")
            .unwrap();
        fs::create_dir_all(p.cache()).unwrap();
        std::os::unix::fs::symlink(debs, p.cache().join("debs")).unwrap();
        p
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    pub fn write_pin(&self, urls: &[String]) {
        let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
        let pin = format!(
            "version = \"fake\"\ncommit = \"{FAKE_COMMIT}\"\ncommit_time = 1700000000\n\
             tree_digest = \"{}\"\nurls = [{}]\n",
            self.digest,
            urls.join(", ")
        );
        fs::write(self.path("configs/ipxe.toml"), pin).unwrap();
    }

    /// The real binary against this project and its own cache, for more arguments and env.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("--project")
            .arg(self.dir.path())
            .arg("--cache-dir")
            .arg(self.cache())
            .env_remove("VSPHERE_IPXE_ROM_BASE_IMAGE");
        cmd
    }

    /// Runs the real binary against this project and its own cache.
    pub fn xtask(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Imports the fake source so a test can go straight to building.
    pub fn import(&self) {
        let archive = self.archive.to_str().unwrap().to_string();
        ok(&self.xtask(&["fetch", "--archive", &archive]));
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "expected success\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

#[track_caller]
pub fn fails_with(o: &Output, want: &str) -> String {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success\nstdout:\n{}",
        stdout(o)
    );
    assert!(err.contains(want), "wanted '{want}' in stderr:\n{err}");
    err
}

/// Serves one body to every GET on 127.0.0.1 and counts requests.
pub struct HttpServer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl HttpServer {
    /// Serves `body` for any path; `url` names an archive on it.
    pub fn serve(body: Vec<u8>) -> HttpServer {
        let mut server = HttpServer::route(move |_| Some(body.clone()));
        server.url.push_str("/ipxe.tar.gz");
        server
    }

    /// Serves each path's body, and 404 for any other path.
    pub fn serve_map(files: std::collections::BTreeMap<String, Vec<u8>>) -> HttpServer {
        HttpServer::route(move |path| files.get(path).cloned())
    }

    fn route(answer: impl Fn(&str) -> Option<Vec<u8>> + Send + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                counter.fetch_add(1, Ordering::SeqCst);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = match answer(&path) {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"not found\n".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        HttpServer { url, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A loopback URL nothing listens on.
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ipxe.tar.gz", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Says why a test did not run. Written to stderr directly: libtest captures `eprintln!`, and a
/// skip must be seen on a passing run too.
///
/// Where real parts are required (`VSPHERE_IPXE_ROM_REQUIRE_REAL=1`, as in the GitHub workflow
/// and a release), a skip fails the test instead. Every skip is also appended to
/// `target/test-skips.txt`, which `.ci/run` counts at the end, so a green run with skips cannot
/// pass for a full one.
pub fn skip(why: &str) {
    if std::env::var("VSPHERE_IPXE_ROM_REQUIRE_REAL").as_deref() == Ok("1") {
        panic!("VSPHERE_IPXE_ROM_REQUIRE_REAL=1, but this test would skip: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIP: {why}");
    let log = repo().join("target/test-skips.txt");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let _ = writeln!(f, "{test}: {why}");
    }
}

/// Appends to target/ci-report.txt, which `.ci/run` prints at its end: figures from tests that
/// passed, whose own output the test harness keeps to itself.
pub fn ci_report(text: &str) {
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(repo().join("target/ci-report.txt"))
    {
        let _ = f.write_all(text.as_bytes());
    }
}

pub const TEST_BASE_IMAGE: &str = "vsphere-ipxe-rom-test-base:bookworm";

/// The builder's base image, made locally (debootstrap of Debian bookworm, docker import) since
/// no registry is reachable. None, with the reason printed, where Docker or debootstrap is missing.
pub fn base_image() -> Option<String> {
    let docker_up = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    if !docker_up.is_ok_and(|o| o.status.success()) {
        skip("Docker does not answer; start the daemon to run the container tests");
        return None;
    }
    let have = |img: &str| {
        Command::new("docker")
            .args(["image", "inspect", img])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let lock =
        fs::File::create(std::env::temp_dir().join("vsphere-ipxe-rom-test-base.lock")).unwrap();
    lock.lock().unwrap();
    if have(TEST_BASE_IMAGE) {
        return Some(TEST_BASE_IMAGE.into());
    }
    if !Command::new("which")
        .arg("debootstrap")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip(&format!(
            "no {TEST_BASE_IMAGE} and no debootstrap to make it (apt-get install debootstrap)"
        ));
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    let mirror =
        std::env::var("DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    eprintln!("making {TEST_BASE_IMAGE} with debootstrap from {mirror} (a minute or two)");
    let st = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(root.path())
        .arg(&mirror)
        .output()
        .unwrap();
    assert!(st.status.success(), "debootstrap failed:\n{}", stderr(&st));
    let archive = root.path().with_extension("tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .output()
        .unwrap();
    assert!(st.status.success(), "tar failed:\n{}", stderr(&st));
    let st = Command::new("docker")
        .args(["import"])
        .arg(&archive)
        .arg(TEST_BASE_IMAGE)
        .output()
        .unwrap();
    let _ = fs::remove_file(&archive);
    assert!(
        st.status.success(),
        "docker import failed:\n{}",
        stderr(&st)
    );
    Some(TEST_BASE_IMAGE.into())
}

pub fn read_sums(dir: &Path) -> String {
    fs::read_to_string(dir.join("SHA256SUMS")).unwrap()
}

/// A program of this name first in PATH that appends each call's arguments to a log, one call a
/// line, then runs the real program with the same arguments and standard input.
pub struct Shim {
    pub dir: tempfile::TempDir,
}

impl Shim {
    pub fn new(program: &str) -> Shim {
        let real = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{program} is on PATH"));
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}/calls\nexec {} \"$@\"\n",
            dir.path().display(),
            real.display()
        );
        let path = dir.path().join(program);
        fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        Shim { dir }
    }

    /// Every call so far, one a line.
    pub fn calls(&self) -> String {
        fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    /// PATH with the shim first.
    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

/// `build-rom` of `nic` in the builder container on `base`, into `out`.
pub fn docker_build_args<'a>(nic: &'a str, base: &'a str, out: &'a Path) -> [&'a str; 9] {
    [
        "build-rom",
        "--nic",
        nic,
        "--runtime",
        "docker",
        "--base-image",
        base,
        "--out",
        out.to_str().unwrap(),
    ]
}
