//! Speed goals, measured in one run as ratios against plain `make -jN` of the same targets on
//! the same tree. Each build starts in a fresh scratch cache.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{
    builder::compile::{self, BuildTree, MakeJob},
    builder::profile::{self, Profile},
    builder::runtime::{self, Runtime, RuntimeChoice},
    builder::series,
    cache::Cache,
    nic::{self, RomFormat},
    ops::{build, How, DEFAULT_PROFILE},
    project::Project,
    source,
    source::pin::Pin,
    util::TempDir,
};

struct Row {
    what: &'static str,
    took: Duration,
    ratio: String,
    target: &'static str,
    ok: bool,
}

/// A speed goal: one measure against another, within a ratio.
struct Goal {
    what: &'static str,
    took: fn(&Sample) -> Duration,
    against: fn(&Sample) -> Duration,
    limit: f64,
    target: &'static str,
}

const GOALS: [Goal; 3] = [
    Goal {
        what: "cold build-rom (native)",
        took: |s| s.cold,
        against: |s| s.plain,
        limit: 1.10,
        target: "≤ 1.10 × plain make",
    },
    Goal {
        what: "config-only rebuild",
        took: |s| s.config,
        against: |s| s.cold,
        limit: 0.20,
        target: "≤ 0.20 × cold",
    },
    Goal {
        what: "first run (clean target dir, cached source, vmxnet3)",
        took: |s| s.first,
        against: |s| s.plain_one,
        limit: 1.3,
        target: "≤ 1.3 × plain make of that ROM",
    },
];

const DOCKER: Goal = Goal {
    what: "cold build-rom (Docker)",
    took: |s| s.docker.unwrap_or_default(),
    against: |s| s.cold,
    limit: 1.25,
    target: "≤ 1.25 × native",
};

/// One run of every measure, each side of a ratio taken minutes apart at most.
struct Sample {
    plain: Duration,
    cold: Duration,
    noop: Duration,
    config: Duration,
    first: Duration,
    plain_one: Duration,
    docker: Option<Duration>,
}

struct Setup<'a> {
    sh: Shell,
    project: &'a Project,
    cache: &'a Cache,
    pin: Pin,
    profile: Profile,
    nics: Vec<&'static nic::Nic>,
    targets: Vec<String>,
    jobs: usize,
}

/// What to time.
pub struct BenchOptions {
    pub nics: Vec<&'static nic::Nic>,
    /// Also time a cold build in the container (its image is built first, untimed).
    pub docker: bool,
    /// The container's base image, where the Dockerfile's cannot be pulled.
    pub base_image: Option<String>,
    pub runs: u32,
    pub jobs: usize,
}

/// Times every measure `runs` times and prints medians against the goals.
pub fn bench(project: &Project, cache: &Cache, args: &BenchOptions) -> Result<()> {
    let nics = args.nics.clone();
    let jobs = args.jobs;
    let setup = Setup {
        sh: Shell::new()?,
        project,
        cache,
        pin: Pin::load(&project.pin_file())?,
        profile: Profile::load(project, DEFAULT_PROFILE)?,
        targets: nics.iter().map(|n| n.make_target(RomFormat::Rom)).collect(),
        nics,
        jobs,
    };
    let mut samples = Vec::new();
    for i in 1..=args.runs {
        if args.runs > 1 {
            eprintln!("run {i} of {}", args.runs);
        }
        let plain = plain_make(&setup, &setup.targets)?;
        eprintln!("plain make -j{jobs}: {plain:.1?}");
        let (cold, noop, config) = tool_builds(&setup)?;
        eprintln!("cold build-rom: {cold:.1?}, no-op {noop:.1?}, config-only {config:.1?}");
        let (first, plain_one) = first_run(&setup)?;
        eprintln!("first run: {first:.1?} (plain make of one ROM: {plain_one:.1?})");
        let docker = if args.docker {
            let d = docker_build(&setup, &args.base_image)?;
            eprintln!("cold build-rom in Docker: {d:.1?}");
            Some(d)
        } else {
            None
        };
        samples.push(Sample {
            plain,
            cold,
            noop,
            config,
            first,
            plain_one,
            docker,
        });
    }
    print_table(&setup, &samples, args.runs);
    Ok(())
}

/// Medians, and for each ratio the median of the runs' own ratios.
fn print_table(setup: &Setup, samples: &[Sample], runs: u32) {
    let med = |f: &dyn Fn(&Sample) -> Duration| median(samples.iter().map(f).collect());
    let med_ratio = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let goal = |g: &Goal| {
        let ratio = med_ratio(&|s| ratio_of((g.took)(s), (g.against)(s)));
        row(g.what, med(&g.took), ratio, g.target, ratio <= g.limit)
    };
    let mut rows = vec![goal(&GOALS[0])];
    let noop = med(&|s| s.noop);
    rows.push(Row {
        what: "no-op build-rom",
        took: noop,
        ratio: String::new(),
        target: "≤ 0.5 s",
        ok: noop <= Duration::from_millis(500),
    });
    rows.extend(GOALS[1..].iter().map(goal));
    if samples.iter().all(|s| s.docker.is_some()) {
        rows.push(goal(&DOCKER));
    }
    println!(
        "Measured on {} cores, {} ({}), plain make -j{} of {}: {:.1} s; of one ROM: {:.1} s{}",
        setup.jobs,
        setup.pin.version,
        setup.pin.short_commit(),
        setup.jobs,
        setup.targets.join(" "),
        med(&|s| s.plain).as_secs_f64(),
        med(&|s| s.plain_one).as_secs_f64(),
        if runs > 1 {
            format!(" (medians of {runs} runs)")
        } else {
            String::new()
        }
    );
    println!();
    println!("| measure | time | ratio | target | met |");
    println!("| --- | ---: | ---: | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.what,
            secs(r.took),
            r.ratio,
            r.target,
            if r.ok { "yes" } else { "**no**" }
        );
    }
}

/// A fresh scratch cache with the verified source, and a tree patched and rendered for the
/// profile.
fn rendered_tree(setup: &Setup, name: &str) -> Result<(TempDir, BuildTree)> {
    let (dir, scratch) = source::scratch_cache(&setup.pin, setup.cache)?;
    let src = source::cached(&setup.pin, &scratch).context("scratch cache has no source")?;
    let native = Runtime::Native {
        cross: runtime::native_cross(&setup.sh)?,
    };
    // The same patched tree the tool builds; plain make is then all that differs.
    let patches: Vec<_> = series::resolve(setup.project, &scratch, &setup.profile.file.patches)?
        .into_iter()
        .map(|(spec, _)| spec)
        .collect();
    let tree = compile::prepare_tree(&setup.sh, &scratch, &src, &patches, name, &native)?;
    setup
        .profile
        .render(&profile::overridable_headers(&tree.src())?)?
        .write(&tree.src())?;
    Ok((dir, tree))
}

/// Baseline: plain make on a fresh copy of the tree, the same config and variables.
fn plain_make(setup: &Setup, targets: &[String]) -> Result<Duration> {
    let (_dir, tree) = rendered_tree(setup, "bench-plain")?;
    time(|| make_plain(&setup.sh, &tree, &setup.pin, targets, setup.jobs))
}

/// A scratch project with the repository's inputs and a cache that shares only the verified
/// source.
fn scratch_project(setup: &Setup) -> Result<(TempDir, Project, Cache)> {
    let (dir, scratch) = source::scratch_cache(&setup.pin, setup.cache)?;
    let project = setup.project.copy_inputs(&dir.path().join("project"))?;
    Ok((dir, project, scratch))
}

fn tool_builds(setup: &Setup) -> Result<(Duration, Duration, Duration)> {
    let (_dir, project, cache) = scratch_project(setup)?;
    let native = How {
        runtime: RuntimeChoice::Native,
        base_image: None,
        jobs: setup.jobs,
    };
    let req = native.request(&project, &cache, DEFAULT_PROFILE, setup.nics.clone(), false);
    let sh = &setup.sh;
    let cold = time(|| build::build(sh, &req).map(drop))?;
    let noop = time(|| build::build(sh, &req).map(drop))?;
    let file = project.configs().join("vmware.toml");
    let before = fs::read_to_string(&file)?;
    // Put HTTP Digest authentication back: a config-only change no promise of the profile covers.
    let text = before.replace(", \"HTTP_AUTH_DIGEST\"", "");
    if text == before {
        anyhow::bail!("the bench's config change no longer applies to configs/vmware.toml");
    }
    fs::write(&file, text)?;
    let config = time(|| build::build(sh, &req).map(drop))?;
    Ok((cold, noop, config))
}

/// What a fresh clone pays for its first ROM: cargo builds the tool in an empty target dir, then
/// `build-rom --nic vmxnet3` on a cached source; and plain make of that one ROM just before.
fn first_run(setup: &Setup) -> Result<(Duration, Duration)> {
    let nic = nic::Nic::by_name("vmxnet3")?;
    let plain = plain_make(setup, &[nic.make_target(RomFormat::Rom)])?;
    let (dir, project, cache) = scratch_project(setup)?;
    let project = &project.root;
    let target_dir = dir.path().join("target");
    let manifest = setup.project.root.join("Cargo.toml");
    let cache = cache.root();
    let sh = &setup.sh;
    let first = time(|| {
        let _t = sh.push_env("CARGO_TARGET_DIR", &target_dir);
        cmd!(
            sh,
            "cargo build --quiet --package xtask --manifest-path {manifest}"
        )
        .run()?;
        let xtask = target_dir.join("debug/xtask");
        cmd!(sh, "{xtask} --project {project} --cache-dir {cache} build-rom --nic vmxnet3 --runtime native")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()?;
        Ok(())
    })?;
    Ok((first, plain))
}

/// A cold build in the container; preparing the image is not timed.
fn docker_build(setup: &Setup, base_image: &Option<String>) -> Result<Duration> {
    let (_dir, scratch) = source::scratch_cache(&setup.pin, setup.cache)?;
    let docker = How {
        runtime: RuntimeChoice::Docker,
        base_image: base_image.clone(),
        jobs: setup.jobs,
    };
    let req = docker.request(
        setup.project,
        &scratch,
        DEFAULT_PROFILE,
        setup.nics.clone(),
        false,
    );
    let runtime = runtime::choose_building_image(
        &setup.sh,
        req.runtime,
        &req.project,
        &req.cache,
        req.base_image.as_deref(),
    )?;
    runtime::image_toolchain(&setup.sh, &req.cache, &runtime)?;
    time(|| build::build(&setup.sh, &req).map(drop))
}

/// What a person would type: make with the same variables, nothing around it.
fn make_plain(
    sh: &Shell,
    tree: &BuildTree,
    pin: &Pin,
    targets: &[String],
    jobs: usize,
) -> Result<()> {
    let src = tree.src();
    let native = Runtime::Native {
        cross: runtime::native_cross(sh)?,
    };
    let job = MakeJob {
        targets: targets.to_vec(),
        commit: pin.commit.clone(),
        source_date_epoch: pin.commit_time,
        jobs,
        inputs: Default::default(),
    };
    let vars = compile::byte_deciding_vars(&native, &src, &job)?;
    let _d = sh.push_dir(&src);
    let _e = sh.push_env("SOURCE_DATE_EPOCH", pin.commit_time.to_string());
    let jobs = format!("-j{jobs}");
    cmd!(sh, "make {jobs} {vars...} {targets...}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()?;
    Ok(())
}

fn time(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

fn row(what: &'static str, took: Duration, ratio: f64, target: &'static str, ok: bool) -> Row {
    Row {
        what,
        took,
        ratio: format!("{ratio:.2}"),
        target,
        ok,
    }
}

/// The middle value (the upper one of an even count).
fn median<T: PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.swap_remove(v.len() / 2)
}

fn ratio_of(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_durations_and_ratios() {
        let s = |n| Duration::from_secs(n);
        assert_eq!(median(vec![s(68), s(52), s(57)]), s(57));
        assert_eq!(median(vec![1.46, 1.20, 1.41]), 1.41);
        assert_eq!(median(vec![s(1)]), s(1));
    }
}
