//! The operations the commands call: one per file, each taking plain options (never clap's
//! types) and running the stages below it. Operations print their progress, as cargo's do;
//! `cmd/` parses flags, calls one operation or a few in turn, and prints what they return.

pub mod bench;
pub mod boot;
pub mod build;
pub mod check_size;
pub mod deploy;
pub mod fetch;
pub mod pin;
pub mod release;
pub mod upstream;
pub mod verify;

use crate::{builder::runtime::RuntimeChoice, cache::Cache, nic::Nic, project::Project};

/// The profile a command builds when none is named.
pub const DEFAULT_PROFILE: &str = "vmware";

/// How to build, whatever is built: the runtime, the builder image's base and make's jobs.
#[derive(Debug, Clone)]
pub struct How {
    pub runtime: RuntimeChoice,
    /// Replaces the Dockerfile's pinned base image.
    pub base_image: Option<String>,
    pub jobs: usize,
}

impl How {
    /// make's jobs when none are asked for: one per core.
    pub fn default_jobs() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// A build of `nics` in `profile`, this way.
    pub fn request(
        &self,
        project: &Project,
        cache: &Cache,
        profile: &str,
        nics: Vec<&'static Nic>,
        mrom: bool,
    ) -> build::Request {
        build::Request {
            project: project.clone(),
            cache: cache.clone(),
            profile: profile.to_string(),
            nics,
            mrom,
            runtime: self.runtime,
            base_image: self.base_image.clone(),
            jobs: self.jobs,
        }
    }
}
