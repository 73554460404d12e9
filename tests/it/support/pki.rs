//! Throwaway certificate authorities made with the openssl command line.

use std::{fs, path::Path, process::Command};

use super::stderr;

pub fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// Writes `<name>-ca.pem`/`.key` and a server certificate `<name>.pem`/`.key` for `ip`,
/// signed by that CA, into `dir`.
pub fn lab_ca(dir: &Path, name: &str, ip: &str) {
    let ca = format!("{name}-ca");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={ip}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    let ext = format!("{name}.ext");
    fs::write(
        dir.join(&ext),
        format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// Writes a CA shaped like Let's Encrypt's E-series into `dir`: `<name>-ca.pem` (an ECDSA
/// P-384 root) and `<name>-int.pem`/`.key`, an intermediate with a P-384 key signed by the root
/// with ecdsa-with-SHA384. `<name>-up.pem` is the intermediate then the root: what a server
/// sends after its own certificate (the ROM holds only the root's fingerprint).
pub fn ecdsa_ca(dir: &Path, name: &str) {
    let (ca, int) = (format!("{name}-ca"), format!("{name}-int"));
    let p384 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
    ];
    let mut root = vec!["req", "-x509", "-sha384", "-days", "2"];
    root.extend(p384);
    let (subj, key, pem) = (
        format!("/CN={ca}"),
        format!("{ca}.key"),
        format!("{ca}.pem"),
    );
    root.extend(["-subj", &subj, "-keyout", &key, "-out", &pem]);
    openssl(dir, &root);
    let mut req = vec!["req"];
    req.extend(p384);
    let (isubj, ikey, icsr) = (
        format!("/CN={int}"),
        format!("{int}.key"),
        format!("{int}.csr"),
    );
    req.extend(["-subj", &isubj, "-keyout", &ikey, "-out", &icsr]);
    openssl(dir, &req);
    let ext = format!("{int}.ext");
    fs::write(
        dir.join(&ext),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n",
    )
    .unwrap();
    let ipem = format!("{int}.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha384",
            "-in",
            &icsr,
            "-CA",
            &pem,
            "-CAkey",
            &key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &ipem,
        ],
    );
    let up = [
        fs::read_to_string(dir.join(&ipem)).unwrap(),
        fs::read_to_string(dir.join(&pem)).unwrap(),
    ]
    .concat();
    fs::write(dir.join(format!("{name}-up.pem")), up).unwrap();
}

/// A P-256 server certificate `<name>.pem`/`.key` for `ip`, signed with ecdsa-with-SHA384 by
/// the intermediate of `ecdsa_ca(dir, ca)`.
pub fn ecdsa_leaf(dir: &Path, ca: &str, name: &str, ip: &str) {
    let (key, csr, ext, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
        format!("{name}.pem"),
    );
    let subj = format!("/CN={ip}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &subj,
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    fs::write(
        dir.join(&ext),
        format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    let (int_pem, int_key) = (format!("{ca}-int.pem"), format!("{ca}-int.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha384",
            "-in",
            &csr,
            "-CA",
            &int_pem,
            "-CAkey",
            &int_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ],
    );
}
