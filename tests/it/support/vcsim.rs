//! A real vSphere API server for the deploy tests: govmomi's simulator (vcsim) from Debian's
//! golang-github-vmware-govmomi-dev, through our small main in tests/it/support/vcsim/, built once
//! in GOPATH mode into the target directory.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
};

use super::{pki, repo, skip};

const GOVMOMI: &str = "/usr/share/gocode/src/github.com/vmware/govmomi/simulator";
pub const USER: &str = "deployer";
pub const PASSWORD: &str = "pw-9f3c-never-printed";

/// A running simulator over TLS from its own CA; killed on drop.
pub struct Vcsim {
    child: Child,
    pub url: String,
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Vcsim {
    /// SIGTERM, so that the simulator removes its datastore directories; SIGKILL if it lingers.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static BUILD: Mutex<()> = Mutex::new(());

fn binary() -> Option<PathBuf> {
    if Command::new("go").arg("version").output().is_err() || !Path::new(GOVMOMI).is_dir() {
        skip(
            "go or govmomi's simulator is missing; apt-get install golang-go \
             golang-github-vmware-govmomi-dev to run the deploy tests against a vSphere API server",
        );
        return None;
    }
    let out = repo().join("target/vcsim/vcsim");
    let _guard = BUILD.lock().unwrap();
    let src = repo().join("tests/it/support/vcsim/main.go");
    let fresh = out.metadata().and_then(|m| m.modified()).ok()
        >= src.metadata().and_then(|m| m.modified()).ok();
    if !out.is_file() || !fresh {
        let built = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg("./tests/it/support/vcsim")
            .current_dir(repo())
            .env("GOPATH", "/usr/share/gocode")
            .env("GO111MODULE", "off")
            .env("GOCACHE", repo().join("target/vcsim/gocache"))
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "go build of the simulator failed: {}",
            String::from_utf8_lossy(&built.stderr)
        );
    }
    Some(out)
}

impl Vcsim {
    /// A session of the project's own SOAP client, as the test user.
    pub fn session(&self) -> xtask::vm::vsphere::Session {
        use xtask::vm::vsphere::{Credentials, Endpoint, Secret, Session};
        Session::login(
            &Endpoint {
                url: self.url.parse().unwrap(),
                insecure: false,
                ca_file: Some(self.ca.clone()),
            },
            &Credentials {
                username: USER.into(),
                password: Secret::new(PASSWORD.into()),
            },
        )
        .unwrap()
    }

    pub fn start() -> Option<Vcsim> {
        Vcsim::start_with(&[])
    }

    /// With extra flags for our main, such as `-machines N`.
    pub fn start_with(flags: &[&str]) -> Option<Vcsim> {
        let bin = binary()?;
        if !pki::have_openssl() {
            skip("openssl is missing; the deploy tests serve the API over TLS from a throwaway CA");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        pki::lab_ca(dir.path(), "vcsim", "127.0.0.1");
        let mut child = Command::new(bin)
            .arg("-tlscert")
            .arg(dir.path().join("vcsim.pem"))
            .arg("-tlskey")
            .arg(dir.path().join("vcsim.key"))
            .args(["-username", USER])
            .args(flags)
            .env("VCSIM_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("https://127.0.0.1:"),
            "vcsim printed {line:?}"
        );
        Some(Vcsim {
            child,
            url: line.trim().to_string(),
            ca: dir.path().join("vcsim-ca.pem"),
            _dir: dir,
        })
    }
}
