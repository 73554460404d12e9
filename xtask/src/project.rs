//! Where a project's inputs and outputs live. Tests point `--project` at a tree of their own.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

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

    /// A project at `to` with this one's inputs: `configs/`, `ipxe-patches/` and the
    /// Dockerfile, so that it builds what this one builds (bench and the real-iPXE tests).
    pub fn copy_inputs(&self, to: &Path) -> Result<Project> {
        for dir in ["configs", "ipxe-patches"] {
            let (from, into) = (self.root.join(dir), to.join(dir));
            fs::create_dir_all(&into)
                .with_context(|| format!("cannot create {}", into.display()))?;
            for item in
                fs::read_dir(&from).with_context(|| format!("cannot list {}", from.display()))?
            {
                let item = item?;
                if item.file_type()?.is_file() {
                    fs::copy(item.path(), into.join(item.file_name()))
                        .with_context(|| format!("cannot copy {}", item.path().display()))?;
                }
            }
        }
        fs::copy(self.dockerfile(), to.join("Dockerfile"))
            .with_context(|| format!("cannot copy {}", self.dockerfile().display()))?;
        Ok(Project {
            root: to.to_path_buf(),
        })
    }

    /// Every profile's size budget.
    pub fn budget_file(&self) -> PathBuf {
        self.root.join("roms/budget.toml")
    }

    /// Default `--out` for a profile.
    pub fn roms(&self, profile: &str) -> PathBuf {
        self.root.join("roms").join(profile)
    }
}
