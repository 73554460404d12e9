//! Where a project's inputs and outputs live. Tests point `--project` at a tree of their own.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
}

impl Project {
    /// `--project`, else the checkout this tool was built from.
    pub fn locate(flag: Option<&Path>) -> Project {
        let root = match flag {
            Some(p) => p.to_path_buf(),
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("xtask lives in the workspace")
                .to_path_buf(),
        };
        Project { root }
    }

    pub fn configs(&self) -> PathBuf {
        self.root.join("configs")
    }

    pub fn pin_file(&self) -> PathBuf {
        self.configs().join("ipxe.toml")
    }

    pub fn patches(&self) -> PathBuf {
        self.root.join("ipxe-patches")
    }

    pub fn dockerfile(&self) -> PathBuf {
        self.root.join("Dockerfile")
    }

    /// Default `--out` for a profile.
    pub fn roms(&self, profile: &str) -> PathBuf {
        self.root.join("roms").join(profile)
    }
}
