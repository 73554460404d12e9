//! Applies `ipxe-patches/` unified diffs strictly: every hunk must match at the line it names,
//! with no fuzz and no offset, or the build stops naming the file and hunk.

use std::{fs, path::Path};

use anyhow::{bail, Context, Result};

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
    header: String,
    old_start: usize,
    old: Vec<String>,
    new: Vec<String>,
    /// Whether the old/new sides end without a newline (`\ No newline at end of file`).
    old_no_eol: bool,
    new_no_eol: bool,
}

/// Applies one patch file to the tree at `root`.
pub fn apply(patch_file: &Path, root: &Path) -> Result<()> {
    let name = patch_file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_string();
    let text = fs::read_to_string(patch_file)
        .with_context(|| format!("cannot read patch {}", patch_file.display()))?;
    let files = parse(&text).with_context(|| format!("patch {name} is not a unified diff"))?;
    for fp in &files {
        apply_file(fp, root).with_context(|| format!("patch {name} does not apply"))?;
    }
    Ok(())
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

fn parse_hunk(lines: &[&str]) -> Result<(Hunk, usize)> {
    let header = lines[0].trim_end().to_string();
    let ranges = header
        .strip_prefix("@@ -")
        .and_then(|r| r.split_once(" @@"))
        .map(|(r, _)| r)
        .with_context(|| format!("bad hunk header '{header}'"))?;
    let (old_r, new_r) = ranges
        .split_once(" +")
        .with_context(|| format!("bad hunk header '{header}'"))?;
    let count = |r: &str| -> Result<(usize, usize)> {
        let (s, n) = r.split_once(',').unwrap_or((r, "1"));
        Ok((s.parse()?, n.parse()?))
    };
    let (old_start, old_len) =
        count(old_r).with_context(|| format!("bad hunk header '{header}'"))?;
    let (_, new_len) = count(new_r).with_context(|| format!("bad hunk header '{header}'"))?;
    let mut hunk = Hunk {
        header,
        old_start,
        old: vec![],
        new: vec![],
        old_no_eol: false,
        new_no_eol: false,
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
        match line.chars().next() {
            Some(' ') => {
                hunk.old.push(body.clone());
                hunk.new.push(body);
            }
            Some('\n') | None => {
                hunk.old.push(String::new());
                hunk.new.push(String::new());
            }
            Some('-') => hunk.old.push(body),
            Some('+') => hunk.new.push(body),
            Some('\\') => match last {
                '-' => hunk.old_no_eol = true,
                '+' => hunk.new_no_eol = true,
                _ => {
                    hunk.old_no_eol = true;
                    hunk.new_no_eol = true;
                }
            },
            _ => bail!(
                "hunk '{}' has a line that is not context, removal or addition: {line:?}",
                hunk.header
            ),
        }
        last = line.chars().next().unwrap_or(' ');
        i += 1;
        if hunk.old.len() > old_len || hunk.new.len() > new_len {
            bail!("hunk '{}' has more lines than its header says", hunk.header);
        }
    }
    Ok((hunk, i))
}

fn apply_file(fp: &FilePatch, root: &Path) -> Result<()> {
    let path = root.join(&fp.path);
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
    for (n, hunk) in fp.hunks.iter().enumerate() {
        let at = if hunk.old.is_empty() {
            hunk.old_start
        } else {
            hunk.old_start.saturating_sub(1)
        };
        let where_ = || format!("{} hunk {} ({})", fp.path, n + 1, hunk.header);
        if at < next || at + hunk.old.len() > old_lines.len() {
            bail!(
                "{}: its lines {}..{} are not in the file ({} lines)",
                where_(),
                at + 1,
                at + hunk.old.len(),
                old_lines.len()
            );
        }
        for (k, want) in hunk.old.iter().enumerate() {
            let got = old_lines[at + k];
            if got != want {
                bail!(
                    "{}: line {} should be\n  {want:?}\nbut is\n  {got:?}",
                    where_(),
                    at + k + 1
                );
            }
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
        return fs::remove_file(&path).with_context(|| format!("cannot delete {}", fp.path));
    }
    let mut text = out.join("\n");
    if !out.is_empty() && !ends_without_eol {
        text.push('\n');
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
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

    fn run(dir: &Path, patch: &str) -> Result<String> {
        let p = dir.join("0001-test.patch");
        fs::write(&p, patch).unwrap();
        apply(&p, dir)?;
        Ok(fs::read_to_string(dir.join("src/f.c")).unwrap_or_default())
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
}
