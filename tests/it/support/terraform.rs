//! `terraform console`, where a `terraform` binary is on PATH: the consumer of the Terraform we
//! print evaluates it offline (no provider is needed for variables and locals).

use std::{fs, io::Write as _, process::Command};

use super::{ok, skip, stderr, stdout};

/// `expr` as Terraform evaluates it in a module of these files, as JSON; Err with Terraform's
/// message where it refuses them; None (with a SKIP) where no `terraform` is on PATH.
pub fn console(files: &[(&str, &str)], expr: &str) -> Option<Result<serde_json::Value, String>> {
    if Command::new("terraform").arg("version").output().is_err() {
        skip("terraform is not on PATH; hcl-rs still parses every Terraform output");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let mut console = Command::new("terraform")
        .args(["console", "-no-color"])
        .current_dir(dir.path())
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Base64, so that console's own way of printing a string does not matter.
    let line = format!("base64encode(jsonencode({expr}))\n");
    console
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let out = console.wait_with_output().unwrap();
    // Console goes on after a variable's validation fails, and exits 0: its errors tell.
    if !out.status.success() || stderr(&out).contains("Error: ") {
        return Some(Err(format!("{}{}", stdout(&out), stderr(&out))));
    }
    let b64 = stdout(&out).trim().trim_matches('"').to_string();
    let mut decode = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    decode
        .stdin
        .take()
        .unwrap()
        .write_all(b64.as_bytes())
        .unwrap();
    let json = decode.wait_with_output().unwrap();
    ok(&json);
    Some(Ok(serde_json::from_slice(&json.stdout).unwrap()))
}
