//! Source archives come from downloads and users: no bytes may make the unpacker panic, and
//! whatever it accepts lies inside the directory it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fs;
use xtask::source::archive;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("archive-fuzz-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a.tar");
    fs::write(&file, data).unwrap();
    let tree = dir.join("tree");
    if archive::extract(&file, &tree).is_ok() {
        let top = tree.canonicalize().unwrap();
        for entry in walk(&tree) {
            if let Ok(real) = entry.canonicalize() {
                assert!(real.starts_with(&top), "{} leads outside the tree", entry.display());
            }
        }
    }
    let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.len() <= 2, "something was written beside the tree: {names:?}");
    fs::remove_dir_all(&dir).unwrap();
});

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
