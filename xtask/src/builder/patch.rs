//! Applies unified diffs with no fuzz: every line of a hunk's context must match. Our own
//! patches must also match at the line they name. Upstream fixes written against a later tree
//! may sit at another line: they apply there only when their context matches exactly at exactly
//! one place, and the offset is recorded.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::record::Offset;

/// Where a hunk may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// At the line the hunk names.
    Exact,
    /// Anywhere its old lines match exactly and uniquely (upstream fixes on an older tree).
    WholeHunkOffset,
}

/// One patch to apply, and how.
#[derive(Debug, Clone)]
pub struct PatchSpec {
    pub name: String,
    pub path: PathBuf,
    pub fit: Fit,
}

#[derive(Debug, PartialEq, Eq)]
struct FilePatch {
    /// Path relative to the tree root (the `b/` side, `-p1`).
    path: String,
    /// `--- /dev/null`: the file must not exist yet.
    create: bool,
    /// `+++ /dev/null`: the file is removed.
    delete: bool,
    hunks: Vec<Hunk>,
}

#[derive(Debug, PartialEq, Eq)]
struct Hunk {
    /// The `@@` line, escaped for the terminal: errors show it.
    header: String,
    old_start: usize,
    new_start: usize,
    old: Vec<String>,
    new: Vec<String>,
    /// Whether the old/new sides end without a newline (`\ No newline at end of file`).
    old_no_eol: bool,
    new_no_eol: bool,
    /// `@@ -A,B +C,D @@` and the hunk's lines as written: what the digest covers.
    canonical: String,
}

/// Applies one patch to the tree at `root`; returns the hunks that applied at an offset.
/// Every file is checked before any is written, so a patch that fails changes nothing.
pub fn apply(spec: &PatchSpec, root: &Path) -> Result<Vec<Offset>> {
    let name = &spec.name;
    let text = crate::input::read_text(&spec.path, crate::input::PATCH)
        .with_context(|| format!("cannot read patch {name}"))?;
    let files = parse(&text).with_context(|| format!("patch {name} is not a unified diff"))?;
    check_paths(&files).with_context(|| format!("patch {name} is refused"))?;
    let mut writes = Vec::new();
    let mut offsets = Vec::new();
    for fp in &files {
        let (write, mut moved) = patch_file(fp, root, spec.fit)
            .with_context(|| format!("patch {name} does not apply"))?;
        writes.push((fp, write));
        offsets.append(&mut moved);
    }
    for (fp, write) in writes {
        let path = inside(root, &fp.path).map_err(|why| outside(fp, &why))?;
        match write {
            None => fs::remove_file(&path).with_context(|| format!("cannot delete {}", fp.path))?,
            Some(text) => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?
            }
        }
    }
    Ok(offsets)
}

/// Whether the patch is already in the tree: its reverse applies exactly where the patch would.
pub fn already_applied(spec: &PatchSpec, root: &Path) -> Result<bool> {
    let text = crate::input::read_text(&spec.path, crate::input::PATCH)?;
    let files = parse(&text)?;
    Ok(files.iter().all(|fp| {
        let reversed = FilePatch {
            path: fp.path.clone(),
            create: fp.delete,
            delete: fp.create,
            hunks: fp
                .hunks
                .iter()
                .map(|h| Hunk {
                    header: h.header.clone(),
                    old_start: h.new_start,
                    new_start: h.old_start,
                    old: h.new.clone(),
                    new: h.old.clone(),
                    old_no_eol: h.new_no_eol,
                    new_no_eol: h.old_no_eol,
                    canonical: String::new(),
                })
                .collect(),
        };
        patch_file(&reversed, root, spec.fit).is_ok()
    }))
}

/// The patch's content digest, `sha256:<hex>`: over its file names and hunks only, so that
/// mail headers, the commit message, `index` lines and the signature do not count. The
/// canonical text is, for each file section in order, `--- OLD\n+++ NEW\n` (paths without the
/// `a/`/`b/` prefix, or `/dev/null`), then for each hunk `@@ -A,B +C,D @@\n` followed by its
/// lines exactly as they stand (context, removals, additions, `\ No newline` markers).
pub fn digest(text: &str) -> Result<String> {
    let files = parse(text).context("it is not a unified diff")?;
    check_paths(&files).context("it is refused")?;
    let mut canon = String::new();
    for fp in &files {
        let side = |absent: bool| {
            if absent {
                "/dev/null".to_string()
            } else {
                fp.path.clone()
            }
        };
        let _ = write!(canon, "--- {}\n+++ {}\n", side(fp.create), side(fp.delete));
        for h in &fp.hunks {
            canon.push_str(&h.canonical);
        }
    }
    Ok(format!(
        "sha256:{}",
        crate::util::sha256_hex(canon.as_bytes())
    ))
}

fn parse(text: &str) -> Result<Vec<FilePatch>> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !(lines[i].starts_with("--- ")
            && lines.get(i + 1).is_some_and(|l| l.starts_with("+++ ")))
        {
            i += 1;
            continue;
        }
        let old = side_path(lines[i]);
        let new = side_path(lines[i + 1]);
        i += 2;
        let create = old.is_none();
        let delete = new.is_none();
        let Some(path) = new.or(old) else {
            bail!("a file section names /dev/null on both sides")
        };
        let mut hunks = Vec::new();
        while i < lines.len() && lines[i].starts_with("@@ ") {
            let (hunk, used) = parse_hunk(&lines[i..]).with_context(|| format!("in {path}"))?;
            hunks.push(hunk);
            i += used;
        }
        if hunks.is_empty() {
            bail!("{path} has no hunks");
        }
        files.push(FilePatch {
            path,
            create,
            delete,
            hunks,
        });
    }
    if files.is_empty() {
        bail!("it has no '--- a/...' / '+++ b/...' file sections");
    }
    Ok(files)
}

/// Every file section's path stays in the tree, as text (links are followed when applying).
fn check_paths(files: &[FilePatch]) -> Result<()> {
    for fp in files {
        check_relative(&fp.path).map_err(|why| outside(fp, &why))?;
    }
    Ok(())
}

fn outside(fp: &FilePatch, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "hunk 1 ({}) targets '{}': {why}; a patch may change files inside the iPXE tree only",
        fp.hunks[0].header,
        fp.path.escape_debug()
    )
}

/// Why a patch's target path (after `-p1`) could leave the tree: absolute, empty, or with a `.`,
/// `..` or empty component. Checked on the text, before any file is looked at.
fn check_relative(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.starts_with('/') {
        return Err("the path is absolute".into());
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(format!("the path has a control character {c:?}"));
    }
    match path.split('/').find(|p| matches!(*p, "" | "." | "..")) {
        Some("..") => Err("the path climbs out with '..'".into()),
        Some(_) => Err("the path has an empty or '.' component".into()),
        None => Ok(()),
    }
}

/// `root/rel`, once every part of it that exists has been followed: a link inside the tree may
/// point elsewhere in the tree, never out of it.
fn inside(root: &Path, rel: &str) -> Result<PathBuf, String> {
    check_relative(rel)?;
    let top = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve the tree {}: {e}", root.display()))?;
    let mut at = root.to_path_buf();
    for part in rel.split('/') {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Err(_) => break,
            Ok(m) if m.file_type().is_symlink() => match at.canonicalize() {
                Ok(real) if real.starts_with(&top) => {}
                Ok(real) => {
                    return Err(format!(
                        "it runs through the link {} to {}, outside the tree",
                        at.display(),
                        real.display()
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "it runs through the link {}, which leads nowhere inside the tree",
                        at.display()
                    ))
                }
            },
            Ok(_) => {}
        }
    }
    Ok(root.join(rel))
}

/// `--- a/src/x.c\t2024-...` to `src/x.c`; `/dev/null` to None.
fn side_path(line: &str) -> Option<String> {
    let raw = line[4..].trim_end_matches(['\n', '\r']);
    let raw = raw.split('\t').next().unwrap_or(raw);
    if raw == "/dev/null" {
        return None;
    }
    Some(
        raw.split_once('/')
            .map_or(raw, |(_, rest)| rest)
            .to_string(),
    )
}

impl Hunk {
    /// One line of the hunk: context, removal, addition, or a `\ No newline` marker for the
    /// line before it (`last` is that line's first character).
    fn take(&mut self, line: &str, body: String, last: char) -> Result<()> {
        match line.chars().next() {
            Some(' ') => {
                self.old.push(body.clone());
                self.new.push(body);
            }
            Some('\n') | None => {
                self.old.push(String::new());
                self.new.push(String::new());
            }
            Some('-') => self.old.push(body),
            Some('+') => self.new.push(body),
            Some('\\') => match last {
                '-' => self.old_no_eol = true,
                '+' => self.new_no_eol = true,
                _ => {
                    self.old_no_eol = true;
                    self.new_no_eol = true;
                }
            },
            _ => bail!(
                "hunk '{}' has a line that is not context, removal or addition: {line:?}",
                self.header
            ),
        }
        Ok(())
    }
}

/// The most lines a hunk may name or span: far past any source file, and far from the sums of
/// line numbers overflowing.
const MAX_LINES: usize = 10_000_000;

/// `@@ -A,B +C,D @@` to ((A, B), (C, D)); a missing count is 1.
fn ranges(header: &str) -> Result<((usize, usize), (usize, usize))> {
    let ranges = header
        .strip_prefix("@@ -")
        .and_then(|r| r.split_once(" @@"))
        .map(|(r, _)| r)
        .context("no '@@ -A,B +C,D @@'")?;
    let (old_r, new_r) = ranges.split_once(" +").context("no '+C,D' range")?;
    let count = |r: &str| -> Result<(usize, usize)> {
        let (s, n) = r.split_once(',').unwrap_or((r, "1"));
        let (s, n): (usize, usize) = (s.parse()?, n.parse()?);
        if s > MAX_LINES {
            bail!("it names line {s}; no file has that many lines (at most {MAX_LINES} here)");
        }
        if n > MAX_LINES {
            bail!("it spans {n} lines; no file has that many (at most {MAX_LINES} here)");
        }
        Ok((s, n))
    };
    Ok((count(old_r)?, count(new_r)?))
}

fn parse_hunk(lines: &[&str]) -> Result<(Hunk, usize)> {
    let raw = lines[0].trim_end();
    // Shown in errors only: escaped once here.
    let header = crate::util::shown(raw);
    let ((old_start, old_len), (new_start, new_len)) =
        ranges(raw).with_context(|| format!("bad hunk header '{header}'"))?;
    let mut hunk = Hunk {
        header,
        old_start,
        new_start,
        old: vec![],
        new: vec![],
        old_no_eol: false,
        new_no_eol: false,
        canonical: format!("@@ -{old_start},{old_len} +{new_start},{new_len} @@\n"),
    };
    let mut i = 1;
    let mut last = ' ';
    while hunk.old.len() < old_len
        || hunk.new.len() < new_len
        || lines.get(i).is_some_and(|l| l.starts_with('\\'))
    {
        let Some(line) = lines.get(i) else {
            bail!("hunk '{}' ends early", hunk.header)
        };
        let body = line
            .get(1..)
            .unwrap_or("")
            .trim_end_matches('\n')
            .to_string();
        hunk.canonical.push_str(line.trim_end_matches('\n'));
        hunk.canonical.push('\n');
        hunk.take(line, body, last)?;
        last = line.chars().next().unwrap_or(' ');
        i += 1;
        if hunk.old.len() > old_len || hunk.new.len() > new_len {
            bail!("hunk '{}' has more lines than its header says", hunk.header);
        }
    }
    Ok((hunk, i))
}

/// The file's new text (None: delete it) and the hunks that moved; writes nothing.
fn patch_file(fp: &FilePatch, root: &Path, fit: Fit) -> Result<(Option<String>, Vec<Offset>)> {
    let path = inside(root, &fp.path).map_err(|why| outside(fp, &why))?;
    let original = if fp.create {
        if path.exists() {
            bail!("{} would be created, but it already exists", fp.path);
        }
        String::new()
    } else {
        fs::read_to_string(&path)
            .with_context(|| format!("{}: no such file in the iPXE tree", fp.path))?
    };
    let had_eol = original.is_empty() || original.ends_with('\n');
    let old_lines: Vec<&str> = original
        .split_inclusive('\n')
        .map(|l| l.strip_suffix('\n').unwrap_or(l))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut next = 0usize;
    let mut ends_without_eol = !had_eol;
    let mut offsets = Vec::new();
    for (n, hunk) in fp.hunks.iter().enumerate() {
        let named = if hunk.old.is_empty() {
            hunk.old_start
        } else {
            hunk.old_start.saturating_sub(1)
        };
        let at = locate(&old_lines, hunk, named, next, fit).map_err(|why| {
            anyhow::anyhow!("{} hunk {} ({}): {why}", fp.path, n + 1, hunk.header)
        })?;
        if at != named {
            offsets.push(Offset {
                file: fp.path.clone(),
                hunk: n + 1,
                lines: at as i64 - named as i64,
            });
        }
        out.extend(old_lines[next..at].iter().map(|s| s.to_string()));
        out.extend(hunk.new.iter().cloned());
        next = at + hunk.old.len();
        if next == old_lines.len() {
            ends_without_eol = hunk.new_no_eol;
        }
    }
    out.extend(old_lines[next..].iter().map(|s| s.to_string()));
    if fp.delete {
        if !out.is_empty() {
            bail!(
                "{} should be deleted, but the patch leaves lines in it",
                fp.path
            );
        }
        return Ok((None, offsets));
    }
    let mut text = out.join("\n");
    if !out.is_empty() && !ends_without_eol {
        text.push('\n');
    }
    Ok((Some(text), offsets))
}

/// Where a hunk applies: at the line it names, or, for an upstream fix, at the one other place
/// its old lines match exactly; else why not.
fn locate(
    lines: &[&str],
    hunk: &Hunk,
    named: usize,
    next: usize,
    fit: Fit,
) -> Result<usize, String> {
    let mismatch = match place(lines, hunk, named, next) {
        Ok(at) => return Ok(at),
        Err(mismatch) if fit == Fit::Exact || hunk.old.is_empty() => return Err(mismatch),
        Err(mismatch) => mismatch,
    };
    let found: Vec<usize> = (next..=lines.len().saturating_sub(hunk.old.len()))
        .filter(|&at| matches_at(lines, hunk, at))
        .collect();
    match found.as_slice() {
        [at] => Ok(*at),
        [] => Err(format!(
            "{mismatch}; its context is nowhere else in the file either"
        )),
        many => Err(format!(
            "its context matches at {} places (lines {}), so the offset is ambiguous; refresh \
             the patch against this tree",
            many.len(),
            many.iter()
                .map(|a| (a + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The hunk at the line it names, or why not.
fn place(lines: &[&str], hunk: &Hunk, at: usize, next: usize) -> Result<usize, String> {
    if at < next || at + hunk.old.len() > lines.len() {
        return Err(format!(
            "its lines {}..{} are not in the file ({} lines)",
            at + 1,
            at + hunk.old.len(),
            lines.len()
        ));
    }
    for (k, want) in hunk.old.iter().enumerate() {
        let got = lines[at + k];
        if got != want {
            return Err(format!(
                "line {} should be\n  {want:?}\nbut is\n  {got:?}",
                at + k + 1
            ));
        }
    }
    Ok(at)
}

fn matches_at(lines: &[&str], hunk: &Hunk, at: usize) -> bool {
    at + hunk.old.len() <= lines.len() && hunk.old.iter().zip(&lines[at..]).all(|(w, g)| w == g)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "one\ntwo\nthree\nfour\nfive\nsix\nseven\n";

    fn tree(content: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/f.c"), content).unwrap();
        dir
    }

    fn spec(dir: &Path, patch: &str, fit: Fit) -> PatchSpec {
        let path = dir.join("0001-test.patch");
        fs::write(&path, patch).unwrap();
        PatchSpec {
            name: "0001-test.patch".into(),
            path,
            fit,
        }
    }

    fn run(dir: &Path, patch: &str) -> Result<String> {
        apply(&spec(dir, patch, Fit::Exact), dir)?;
        Ok(fs::read_to_string(dir.join("src/f.c")).unwrap_or_default())
    }

    #[test]
    fn an_upstream_hunk_applies_at_its_one_exact_match_and_the_offset_is_recorded() {
        let dir = tree(&format!("zero\nzero\n{FILE}"));
        let patch = "--- a/src/f.c\n+++ b/src/f.c\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";
        let offsets = apply(&spec(dir.path(), patch, Fit::WholeHunkOffset), dir.path()).unwrap();
        assert_eq!(
            offsets,
            [Offset {
                file: "src/f.c".into(),
                hunk: 1,
                lines: 2
            }]
        );
        assert!(fs::read_to_string(dir.path().join("src/f.c"))
            .unwrap()
            .contains("\nTWO\n"));
        let s = spec(dir.path(), patch, Fit::WholeHunkOffset);
        assert!(already_applied(&s, dir.path()).unwrap());
    }

    #[test]
    fn an_offset_is_refused_where_the_context_is_ambiguous_or_changed() {
        let dir = tree(&format!("x\n{FILE}{FILE}"));
        let patch = "--- a/src/f.c\n+++ b/src/f.c\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";
        let err = format!(
            "{:#}",
            apply(&spec(dir.path(), patch, Fit::WholeHunkOffset), dir.path()).unwrap_err()
        );
        assert!(err.contains("matches at 2 places (lines 2, 9)"), "{err}");
        let patch = "--- a/src/f.c\n+++ b/src/f.c\n@@ -1,3 +1,3 @@\n one\n-deux\n+TWO\n three\n";
        let err = format!(
            "{:#}",
            apply(&spec(dir.path(), patch, Fit::WholeHunkOffset), dir.path()).unwrap_err()
        );
        assert!(err.contains("nowhere else in the file either"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("src/f.c")).unwrap(),
            format!("x\n{FILE}{FILE}"),
            "a refused patch changes nothing"
        );
    }

    #[test]
    fn the_digest_covers_hunks_and_names_not_mail_headers() {
        let body = "--- a/src/f.c\n+++ b/src/f.c\n@@ -1,3 +1,3 @@ fn\n one\n-two\n+TWO\n three\n";
        let mail = format!(
            "From 36c25549c Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH] x\n\n\
             ---\n src/f.c | 2 +-\n\ndiff --git a/src/f.c b/src/f.c\nindex 1111111..2222222 100644\n{body}-- \n2.47.3\n\n"
        );
        let other = mail
            .replace("From: A", "From: B")
            .replace("index 1111111", "index 3333333")
            .replace("2.47.3", "2.39.5");
        assert_eq!(digest(&mail).unwrap(), digest(&other).unwrap());
        assert_eq!(digest(&mail).unwrap(), digest(body).unwrap());
        assert_ne!(
            digest(&mail).unwrap(),
            digest(&mail.replace("+TWO", "+Two")).unwrap()
        );
        assert_ne!(
            digest(&mail).unwrap(),
            digest(&mail.replace("src/f.c", "src/g.c")).unwrap()
        );
    }

    #[test]
    fn applies_hunks_exactly() {
        let dir = tree(FILE);
        let patch = "diff --git a/src/f.c b/src/f.c\n--- a/src/f.c\n+++ b/src/f.c\n\
                     @@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n\
                     @@ -5,3 +5,4 @@\n five\n six\n+six and a half\n seven\n";
        assert_eq!(
            run(dir.path(), patch).unwrap(),
            "one\nTWO\nthree\nfour\nfive\nsix\nsix and a half\nseven\n"
        );
    }

    #[test]
    fn refuses_offset_or_changed_context_naming_file_and_hunk() {
        let dir = tree(&format!("zero\n{FILE}"));
        let patch = "--- a/src/f.c\n+++ b/src/f.c\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";
        let err = format!("{:#}", run(dir.path(), patch).unwrap_err());
        assert!(
            err.contains("patch 0001-test.patch does not apply"),
            "{err}"
        );
        assert!(
            err.contains("src/f.c hunk 1 (@@ -1,3 +1,3 @@): line 1 should be"),
            "{err}"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("src/f.c")).unwrap(),
            format!("zero\n{FILE}")
        );
    }

    #[test]
    fn creates_and_deletes_files() {
        let dir = tree(FILE);
        let patch = "--- /dev/null\n+++ b/src/new.h\n@@ -0,0 +1,2 @@\n+#define A\n+#define B\n";
        run(dir.path(), patch).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("src/new.h")).unwrap(),
            "#define A\n#define B\n"
        );
        let patch = "--- a/src/new.h\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-#define A\n-#define B\n";
        run(dir.path(), patch).unwrap();
        assert!(!dir.path().join("src/new.h").exists());
    }

    #[test]
    fn keeps_missing_final_newline() {
        let dir = tree("a\nb");
        let patch = "--- a/src/f.c\n+++ b/src/f.c\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n";
        assert_eq!(run(dir.path(), patch).unwrap(), "a\nc");
    }

    /// Line numbers no file has are refused at the header: `-18446744073709551615,2` once
    /// overflowed an add while the hunk was placed.
    #[test]
    fn line_numbers_past_any_file_are_refused() {
        let dir = tree(FILE);
        for (header, want) in [
            (
                "@@ -18446744073709551615,2 +1,2 @@",
                "names line 18446744073709551615",
            ),
            (
                "@@ -1,2 +18446744073709551615,2 @@",
                "names line 18446744073709551615",
            ),
            (
                "@@ -1,18446744073709551615 +1,2 @@",
                "spans 18446744073709551615 lines",
            ),
            ("@@ -99999999999999999999,2 +1,2 @@", "bad hunk header"),
        ] {
            let patch = format!("--- a/src/f.c\n+++ b/src/f.c\n{header}\n-one\n-two\n+1\n+2\n");
            for fit in [Fit::Exact, Fit::WholeHunkOffset] {
                let err = format!(
                    "{:#}",
                    apply(&spec(dir.path(), &patch, fit), dir.path()).unwrap_err()
                );
                assert!(err.contains(want), "{header}: {err}");
            }
            assert!(digest(&patch).is_err());
        }
    }

    #[test]
    fn refuses_non_patches_and_missing_files() {
        let dir = tree(FILE);
        let err = format!("{:#}", run(dir.path(), "just some text\n").unwrap_err());
        assert!(err.contains("is not a unified diff"), "{err}");
        let patch = "--- a/src/gone.c\n+++ b/src/gone.c\n@@ -1 +1 @@\n-x\n+y\n";
        let err = format!("{:#}", run(dir.path(), patch).unwrap_err());
        assert!(
            err.contains("src/gone.c: no such file in the iPXE tree"),
            "{err}"
        );
    }

    #[test]
    fn targets_outside_the_tree_are_refused_and_nothing_is_written() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "keep\n").unwrap();
        let v = victim.display().to_string();
        let cases = [
            (
                format!("--- a/x\n+++ b/{v}\n@@ -0,0 +1 @@\n+pwned\n"),
                "the path is absolute",
            ),
            (
                format!(
                    "--- /dev/null\n+++ b/../../{}\n@@ -0,0 +1 @@\n+pwned\n",
                    v.trim_start_matches('/')
                ),
                "climbs out with '..'",
            ),
            (
                format!("--- a/{v}\n+++ /dev/null\n@@ -1 +0,0 @@\n-keep\n"),
                "the path is absolute",
            ),
            (
                "--- a/src/./f.c\n+++ b/src/./f.c\n@@ -1 +1 @@\n-one\n+1\n".to_string(),
                "empty or '.' component",
            ),
        ];
        for (patch, want) in cases {
            let dir = tree(FILE);
            let err = format!("{:#}", run(dir.path(), &patch).unwrap_err());
            assert!(err.contains("patch 0001-test.patch is refused"), "{err}");
            assert!(err.contains("hunk 1 (@@ "), "{err}");
            assert!(err.contains(want), "wanted '{want}', got '{err}'");
            assert!(digest(&patch).is_err(), "import refuses it too");
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep\n");
    }

    #[test]
    fn links_are_followed_only_while_they_stay_inside() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("f.c"), FILE).unwrap();
        let dir = tree(FILE);
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("src", dir.path().join("in")).unwrap();
        let edit = |p: &str| format!("--- a/{p}\n+++ b/{p}\n@@ -1 +1 @@\n-one\n+ONE\n");
        let err = format!("{:#}", run(dir.path(), &edit("out/f.c")).unwrap_err());
        assert!(err.contains("runs through the link"), "{err}");
        assert!(err.contains("outside the tree"), "{err}");
        assert_eq!(
            fs::read_to_string(outside.path().join("f.c")).unwrap(),
            FILE
        );
        run(dir.path(), &edit("in/f.c")).unwrap();
        assert!(fs::read_to_string(dir.path().join("src/f.c"))
            .unwrap()
            .starts_with("ONE\n"));
    }
}
