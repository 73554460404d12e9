//! The toolchain lock with fake .debs on a loopback mirror: fetched by sha256, refused on a
//! mismatch, imported offline, and staged into the image's build context exactly.
//! The real lock builds the published bytes in tests/real_ipxe.rs.

use std::{collections::BTreeMap, fs};

use crate::support::*;
use xtask::{builder::toolchain::Lock, cache::Cache, util::sha256_hex};

struct Fake {
    project: Project,
    debs: BTreeMap<String, Vec<u8>>,
}

/// A project whose lock names two fake .debs for this host's architecture and one for `all`,
/// with a private deb cache.
fn fake() -> Fake {
    let project = Project::new(&[]);
    project.import();
    fs::remove_file(project.cache().join("debs")).unwrap();
    let arch = xtask::builder::toolchain::host_arch();
    let mut debs = BTreeMap::new();
    let mut text = String::from(
        "base = \"test\"\nsnapshot = \"20260101T000000Z\"\nresolved_from = \"http://x\"\n",
    );
    for (name, a) in [("gcc-12", arch), ("make", arch), ("perl-modules", "all")] {
        let body = format!("!<arch>\nfake {name} for {a}\n").into_bytes();
        let pool = format!("pool/main/f/{name}/{name}_1.0_{a}.deb");
        text.push_str(&format!(
            "\n[[package]]\nname = \"{name}\"\nversion = \"1.0\"\narchitecture = \"{a}\"\n\
             sha256 = \"{}\"\nsize = {}\npool = \"{pool}\"\nurl = \"{}/{pool}\"\n",
            sha256_hex(&body),
            body.len(),
            dead_url()
        ));
        debs.insert(format!("/debian/{pool}"), body);
    }
    // A package of another architecture is never fetched or staged here.
    text.push_str(
        "\n[[package]]\nname = \"gcc-12\"\nversion = \"1.0\"\narchitecture = \"s390x\"\n\
         sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nsize = 1\n\
         pool = \"pool/main/g/gcc-12/gcc-12_1.0_s390x.deb\"\nurl = \"http://127.0.0.1:9/x\"\n",
    );
    fs::write(project.path("configs/toolchain.lock"), text).unwrap();
    Fake { project, debs }
}

fn cached(project: &Project) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(project.cache().join("debs"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".deb"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn locked_debs_are_fetched_by_hash_and_a_mismatch_never_enters_the_cache() {
    let f = fake();
    let mut served = f.debs.clone();
    let make = served
        .keys()
        .find(|k| k.contains("/make_"))
        .unwrap()
        .clone();
    served.insert(make.clone(), b"!<arch>\nsomething else\n".to_vec());
    let server = HttpServer::serve_map(served);
    let mirror = format!("{}/debian", server.url);
    let err = fails_with(
        &f.project.xtask(&["fetch", "--deb-mirror", &mirror]),
        "cannot fetch make 1.0",
    );
    assert!(err.contains("is not the locked"), "{err}");
    let want_make = sha256_hex(&f.debs[&make]);
    assert!(
        !cached(&f.project).contains(&format!("{want_make}.deb")),
        "a mismatching file never enters the cache"
    );

    let server = HttpServer::serve_map(f.debs.clone());
    let mirror = format!("{}/debian", server.url);
    let out = f.project.xtask(&["fetch", "--deb-mirror", &mirror]);
    ok(&out);
    // What came whole before the mismatch stayed (each file is checked); the rest comes now.
    assert!(
        stdout(&out).contains("1 cached, 2 downloaded"),
        "{}",
        stdout(&out)
    );
    let mut want: Vec<String> = f
        .debs
        .values()
        .map(|b| format!("{}.deb", sha256_hex(b)))
        .collect();
    want.sort();
    assert_eq!(cached(&f.project), want);
    let before = server.hits();
    ok(&f.project.xtask(&["fetch", "--deb-mirror", &mirror]));
    assert_eq!(
        server.hits(),
        before,
        "cached .debs are not downloaded again"
    );
}

#[test]
fn debs_import_offline_and_the_build_context_holds_exactly_the_locked_files() {
    let f = fake();
    let dir = tempfile::tempdir().unwrap();
    let (first, rest): (Vec<_>, Vec<_>) = f.debs.iter().enumerate().partition(|(i, _)| *i == 0);
    for (_, (path, body)) in &first {
        fs::write(dir.path().join(path.rsplit('/').next().unwrap()), body).unwrap();
    }
    // A stray file that no lock names is left alone.
    fs::write(dir.path().join("other_1.0_amd64.deb"), b"not locked").unwrap();
    let err = fails_with(
        &f.project
            .xtask(&["fetch", "--debs", dir.path().to_str().unwrap()]),
        "still missing 2",
    );
    eprintln!("{err}");
    for (_, (path, body)) in &rest {
        fs::write(dir.path().join(path.rsplit('/').next().unwrap()), body).unwrap();
    }
    let out = f
        .project
        .xtask(&["fetch", "--debs", dir.path().to_str().unwrap()]);
    ok(&out);
    assert!(
        stdout(&out).contains("imported 3 locked .deb(s)"),
        "{}",
        stdout(&out)
    );

    let lock = Lock::load(&f.project.path("configs/toolchain.lock")).unwrap();
    let cache = Cache::at(f.project.cache());
    let ctx = tempfile::tempdir().unwrap();
    xtask::builder::toolchain::stage(
        &lock,
        xtask::builder::toolchain::host_arch(),
        &cache,
        ctx.path(),
    )
    .unwrap();
    let mut staged: Vec<String> = fs::read_dir(ctx.path().join("debs"))
        .unwrap()
        .map(|e| sha256_hex(&fs::read(e.unwrap().path()).unwrap()))
        .collect();
    staged.sort();
    let mut locked: Vec<String> = f.debs.values().map(|b| sha256_hex(b)).collect();
    locked.sort();
    assert_eq!(
        staged, locked,
        "exactly the locked files of this architecture"
    );

    // A cache entry that no longer hashes to the lock is refused at staging.
    let gcc = lock.packages.iter().find(|p| p.name == "gcc-12").unwrap();
    fs::write(
        f.project.cache().join(format!("debs/{}.deb", gcc.sha256)),
        b"tampered",
    )
    .unwrap();
    let err = xtask::builder::toolchain::stage(
        &lock,
        xtask::builder::toolchain::host_arch(),
        &cache,
        ctx.path(),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not hash to the locked"),
        "{err:#}"
    );
}
