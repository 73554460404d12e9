//! `cargo xtask sizes`: what the ROM is made of, largest first, so a user sees what to cut next.

use std::collections::BTreeMap;

use anyhow::Result;
use xshell::Shell;
use xtask::{check::audit, ops::build};

use crate::{cmd::BuildArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    build: BuildArgs,
    /// How many objects to list
    #[arg(long, default_value_t = 25)]
    top: usize,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let sh = Shell::new()?;
    let req = args.build.request(ctx)?;
    let outcome = build::build(&sh, &req)?;
    let pin = xtask::source::pin::Pin::load(&ctx.project.pin_file())?;
    let src = xtask::source::tree_dir(&ctx.cache, &pin.tree_digest).join("src");
    for rom in &outcome.roms {
        let sizes = &rom.linked.sizes;
        let total: u64 = sizes.values().sum();
        let groups = audit::object_groups(&src, sizes.keys().cloned());
        println!(
            "{} ({}): {} bytes in the ROM (compressed), {} bytes of code and data in {} objects",
            rom.file_name,
            rom.nic.name,
            rom.report.size,
            total,
            sizes.len()
        );
        let mut by_group: BTreeMap<&str, u64> = BTreeMap::new();
        for (object, bytes) in sizes {
            *by_group.entry(groups[object].as_str()).or_default() += bytes;
        }
        println!(
            "  {:<28} {:>8} {:>6}",
            "group (source directory)", "bytes", "share"
        );
        for (group, bytes) in largest_first(&by_group) {
            println!(
                "  {group:<28} {bytes:>8} {:>5.1}%",
                100.0 * bytes as f64 / total.max(1) as f64
            );
        }
        println!("  {:<28} {:>8}  group", "object", "bytes");
        for (object, bytes) in largest_first(sizes).into_iter().take(args.top) {
            println!("  {object:<28} {bytes:>8}  {}", groups[object.as_str()]);
        }
    }
    Ok(())
}

fn largest_first<K: Ord + Clone>(map: &BTreeMap<K, u64>) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}
