//! `cargo xtask bench`: speed goals, measured in one run as ratios against plain `make -jN` of the
//! same targets on the same tree. Each build starts in a fresh scratch cache.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};
use xtask::{
    builder::compile::{self, BuildTree, MakeJob, Runtime},
    builder::pipeline::{self, RuntimeChoice},
    builder::profile::{self, Profile},
    nic::{self, RomFormat},
    project::Project,
    source,
    source::pin::Pin,
};

use crate::{cmd::build_rom::RuntimeArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// NICs to build
    #[arg(long, default_value = "all", value_delimiter = ',')]
    nic: Vec<String>,
    /// Also time a cold Docker build against the cold native one (the image is built first, untimed)
    #[arg(long)]
    docker: bool,
    #[command(flatten)]
    how: RuntimeArgs,
}

struct Row {
    what: &'static str,
    took: Duration,
    ratio: String,
    target: &'static str,
    ok: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let sh = Shell::new()?;
    let nics = nic::select(&args.nic)?;
    let pin = Pin::load(&ctx.project.pin_file())?;
    let profile = Profile::load(&ctx.project.configs(), "vmware")?;
    let jobs = args
        .how
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let targets: Vec<String> = nics.iter().map(|n| n.make_target(RomFormat::Rom)).collect();
    let mut rows = Vec::new();

    // Baseline: plain make on a fresh copy of the tree, the same config and variables.
    let (dir, scratch) = source::scratch_cache(&pin, &ctx.cache)?;
    let src = source::cached(&pin, &scratch).context("scratch cache has no source")?;
    let native = Runtime::Native {
        cross: compile::native_cross(&sh)?,
    };
    let tree = compile::prepare_tree(&sh, &scratch, &src, &[], "bench-plain", &native)?;
    profile
        .render(&profile::overridable_headers(&tree.src())?)?
        .write(&tree.src())?;
    let plain = time(|| make_plain(&sh, &tree, &pin, &targets, jobs))?;
    eprintln!("plain make -j{jobs}: {plain:.1?}");
    drop(tree);
    drop(dir);

    // The tool, cold, then unchanged, then after a config-only change: one scratch project.
    let (dir, scratch) = source::scratch_cache(&pin, &ctx.cache)?;
    let project = dir.path().join("project");
    fs::create_dir_all(project.join("configs"))?;
    fs::copy(ctx.project.pin_file(), project.join("configs/ipxe.toml"))?;
    fs::copy(&profile.path, project.join("configs/vmware.toml"))?;
    fs::copy(ctx.project.dockerfile(), project.join("Dockerfile"))?;
    let bench_ctx = Ctx {
        project: Project {
            root: project.clone(),
        },
        cache: scratch,
    };
    let native_args = RuntimeArgs {
        runtime: RuntimeChoice::Native,
        base_image: None,
        jobs: Some(jobs),
    };
    let req = native_args.request(&bench_ctx, "vmware", nics.clone(), false);
    let cold = time(|| pipeline::build(&sh, &req).map(drop))?;
    eprintln!("cold build-rom: {cold:.1?}");
    rows.push(row(
        "cold build-rom (native)",
        cold,
        ratio(cold, plain),
        "≤ 1.10 × plain make",
        ratio_of(cold, plain) <= 1.10,
    ));
    let noop = time(|| pipeline::build(&sh, &req).map(drop))?;
    rows.push(row(
        "no-op build-rom",
        noop,
        "".into(),
        "≤ 0.5 s",
        noop <= Duration::from_millis(500),
    ));
    let before = fs::read_to_string(project.join("configs/vmware.toml"))?;
    // Put HTTP Digest authentication back: a config-only change no promise of the profile covers.
    let text = before.replace(", \"HTTP_AUTH_DIGEST\"", "");
    if text == before {
        anyhow::bail!("the bench's config change no longer applies to configs/vmware.toml");
    }
    fs::write(project.join("configs/vmware.toml"), text)?;
    let config = time(|| pipeline::build(&sh, &req).map(drop))?;
    rows.push(row(
        "config-only rebuild",
        config,
        ratio(config, cold),
        "≤ 0.20 × cold",
        ratio_of(config, cold) <= 0.20,
    ));
    drop(dir);

    rows.push(first_run(&sh, ctx, &pin, &profile, jobs)?);

    if args.docker {
        let (dir, scratch) = source::scratch_cache(&pin, &ctx.cache)?;
        let docker_ctx = Ctx {
            project: ctx.project.clone(),
            cache: scratch,
        };
        let docker_args = RuntimeArgs {
            runtime: RuntimeChoice::Docker,
            base_image: args.how.base_image.clone(),
            jobs: Some(jobs),
        };
        let req = docker_args.request(&docker_ctx, "vmware", nics.clone(), false);
        // Image preparation is not timed: building it, and asking it once for its toolchain.
        let runtime = pipeline::resolve_runtime(&sh, &req)?;
        pipeline::image_toolchain(&sh, &req.cache, &runtime)?;
        let docker = time(|| pipeline::build(&sh, &req).map(drop))?;
        rows.push(row(
            "cold build-rom (Docker)",
            docker,
            ratio(docker, cold),
            "≤ 1.25 × native",
            ratio_of(docker, cold) <= 1.25,
        ));
        drop(dir);
    }

    println!(
        "Measured on {} cores, {} ({}), plain make -j{jobs} of {}: {:.1} s",
        jobs,
        pin.version,
        pin.short_commit(),
        targets.join(" "),
        plain.as_secs_f64()
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
    Ok(())
}

/// What a person would type: make with the same variables, nothing around it.
/// What a fresh clone pays for its first ROM: cargo builds the tool in an empty target dir, then
/// `build-rom --nic vmxnet3` on a cached source; against plain make of that one ROM.
fn first_run(sh: &Shell, ctx: &Ctx, pin: &Pin, profile: &Profile, jobs: usize) -> Result<Row> {
    let nic = nic::Nic::by_name("vmxnet3")?;
    let target = vec![nic.make_target(RomFormat::Rom)];
    let (dir, scratch) = source::scratch_cache(pin, &ctx.cache)?;
    let src = source::cached(pin, &scratch).context("scratch cache has no source")?;
    let native = Runtime::Native {
        cross: compile::native_cross(sh)?,
    };
    let tree = compile::prepare_tree(sh, &scratch, &src, &[], "bench-first", &native)?;
    profile
        .render(&profile::overridable_headers(&tree.src())?)?
        .write(&tree.src())?;
    let plain = time(|| make_plain(sh, &tree, pin, &target, jobs))?;
    drop(tree);
    drop(dir);

    let (dir, scratch) = source::scratch_cache(pin, &ctx.cache)?;
    let project = dir.path().join("project");
    fs::create_dir_all(project.join("configs"))?;
    fs::copy(ctx.project.pin_file(), project.join("configs/ipxe.toml"))?;
    fs::copy(&profile.path, project.join("configs/vmware.toml"))?;
    let target_dir = dir.path().join("target");
    let manifest = ctx.project.root.join("Cargo.toml");
    let cache = scratch.root();
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
    eprintln!("first run: {first:.1?} (plain make of one ROM: {plain:.1?})");
    drop(dir);
    Ok(row(
        "first run (clean target dir, cached source, vmxnet3)",
        first,
        ratio(first, plain),
        "≤ 1.3 × plain make of that ROM",
        ratio_of(first, plain) <= 1.3,
    ))
}

fn make_plain(
    sh: &Shell,
    tree: &BuildTree,
    pin: &Pin,
    targets: &[String],
    jobs: usize,
) -> Result<()> {
    let src = tree.src();
    let native = Runtime::Native {
        cross: compile::native_cross(sh)?,
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

fn row(what: &'static str, took: Duration, ratio: String, target: &'static str, ok: bool) -> Row {
    Row {
        what,
        took,
        ratio,
        target,
        ok,
    }
}

fn ratio_of(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", ratio_of(a, b))
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
