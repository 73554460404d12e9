//! Patches come from upstream and from users: no text may make the parser or the applier
//! panic, and nothing may be written outside the tree it is applied to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::{fs, path::PathBuf};
use xtask::builder::patch::{self, Fit, PatchSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = patch::digest(text);
    let dir = std::env::temp_dir().join(format!("patch-fuzz-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("src/core")).unwrap();
    fs::write(tree.join("src/core/main.c"), "int main ( void ) {\n\treturn 0;\n}\n").unwrap();
    let file: PathBuf = dir.join("p.patch");
    fs::write(&file, text).unwrap();
    for fit in [Fit::Exact, Fit::WholeHunkOffset] {
        let spec = PatchSpec { name: "p.patch".into(), path: file.clone(), fit };
        let _ = patch::apply(&spec, &tree);
    }
    // Everything the patch wrote is below `tree`: `dir` holds nothing else.
    let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "something was written beside the tree: {names:?}");
    fs::remove_dir_all(&dir).unwrap();
});
