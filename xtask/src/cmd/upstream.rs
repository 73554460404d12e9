//! `cargo xtask upstream`: every upstream commit after the pin that touches a file linked into a
//! ROM, marked taken, declined or untriaged; fails while any is untriaged. Run before a release.

use std::path::PathBuf;

use anyhow::Result;
use xtask::ops::upstream::{self, Decision, Listed, Triage};

use crate::{cmd::RuntimeArgs, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// A clone of upstream iPXE (https://github.com/ipxe/ipxe), fetched lately
    #[arg(long, value_name = "DIR")]
    ipxe_repo: PathBuf,
    /// Upstream as far as this commit or branch [default: origin/master, else master, else HEAD]
    #[arg(long)]
    rev: Option<String>,
    /// Print JSON instead of one line per commit
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    how: RuntimeArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let options = upstream::UpstreamOptions {
        repo: args.ipxe_repo,
        rev: args.rev,
    };
    let triage = upstream::triage(&ctx.project, &ctx.cache, &args.how.how(), &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&triage)?);
    } else {
        print(&triage);
    }
    triage.verdict()
}

fn print(t: &Triage) {
    println!(
        "{} commits after {} ({}) up to {} ({}); {} touch the {} files linked into {} ROMs",
        t.after_pin,
        t.pin.name,
        &t.pin.commit[..12],
        t.rev.name,
        &t.rev.commit[..12],
        t.commits.len(),
        t.linked_files,
        t.roms.len()
    );
    for c in &t.commits {
        println!("{}", line(c, &t.roms));
    }
    println!(
        "{} listed: {} taken, {} declined, {} untriaged",
        t.commits.len(),
        t.count(|d| matches!(d, Decision::Taken(_))),
        t.count(|d| matches!(d, Decision::Declined(_))),
        t.count(|d| *d == Decision::Untriaged)
    );
    if !t.unsourced.is_empty() {
        let names: Vec<&str> = t.unsourced.iter().map(String::as_str).collect();
        eprintln!(
            "note: no dependency file names the sources of linked objects {}; commits that \
             touch only those are not listed",
            names.join(", ")
        );
    }
    for note in &t.unlisted {
        eprintln!("note: {note}");
    }
}

/// `<id>  <decision>  <subject>  (<files>)[: <reason>]`, a file's ROMs in brackets where not all.
fn line(c: &Listed, all: &[String]) -> String {
    let files: Vec<String> = c
        .files
        .iter()
        .map(|f| match f.scope(all) {
            Some(scope) => format!("{} [{scope}]", f.path),
            None => f.path.clone(),
        })
        .collect();
    let (decision, reason) = match &c.decision {
        Decision::Taken(why) => ("taken", format!(": in the series: {why}")),
        Decision::Declined(why) => ("declined", format!(": {why}")),
        Decision::Untriaged => ("untriaged", String::new()),
    };
    format!(
        "{}  {decision:<9}  {}  ({}){reason}",
        &c.commit[..12],
        c.subject,
        files.join(", ")
    )
}
