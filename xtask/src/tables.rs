//! The generated tables of `BENCHMARKS.md` and the README.
//!
//! Whatever measures a number writes its table to `target/bench-tables/NAME.md` (the bench
//! binaries through `stanchion_benches::report`, the size and load steps from here); after
//! a run, [`splice`] puts each file between the lines `<!-- table:NAME -->` and
//! `<!-- /table:NAME -->` of the documents. `headline-*.md` files are rows of the
//! README's `headline` table, gathered here. A marker with no file from this run is left
//! as it was and named in the summary, so a stale table is never silent.

use std::fs;
use std::path::PathBuf;
use std::process::Stdio;

use super::{Result, cargo, command};

/// The documents whose tables are generated, relative to the workspace root.
pub(crate) const DOCUMENTS: &[&str] = &["BENCHMARKS.md", "README.md"];

/// The header of the README's headline table (its rows come from `headline-*.md`).
const HEADLINE_HEADER: &str = "| what | against | stanchion / peer |\n| --- | --- | --- |\n";

/// The workspace's target directory, from `cargo metadata`.
pub(crate) fn target_directory() -> Result<PathBuf> {
    let out = cargo(&["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo metadata: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed ({})", out.status));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    json.get("target_directory")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata printed no target_directory".to_owned())
}

/// `target/bench-tables/` (the workspace's `target/` if `cargo metadata` cannot tell).
pub(crate) fn dir() -> PathBuf {
    target_directory()
        .unwrap_or_else(|_| super::root().join("target"))
        .join("bench-tables")
}

/// Remove the tables of an earlier run, so that only this run's reach the documents.
pub(crate) fn clear() -> Result {
    match fs::remove_dir_all(dir()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", dir().display()))
        }
        _ => {
            fs::create_dir_all(dir()).map_err(|e| format!("cannot create {}: {e}", dir().display()))
        }
    }
}

/// Write one table (markdown) as `NAME.md`.
pub(crate) fn write(name: &str, markdown: &str) -> Result {
    let path = dir().join(format!("{name}.md"));
    fs::create_dir_all(dir())
        .and_then(|()| fs::write(&path, markdown))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The `machine` table: what the numbers were measured on, and how.
pub(crate) fn machine(mode: &str) -> Result {
    let output = |program: &str, args: &[&str]| {
        command(program, args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let cpu = output("lscpu", &[])
        .lines()
        .find_map(|l| l.strip_prefix("Model name:").map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let rows = [
        ("CPU", cpu),
        ("CPUs", output("nproc", &[])),
        ("toolchain", output("rustc", &["--version"])),
        ("date (UTC)", output("date", &["-u", "+%Y-%m-%d %H:%M"])),
        ("load average at the start (1 min)", load),
        ("criterion times", mode.to_string()),
    ];
    let mut table = String::from("| | |\n| --- | --- |\n");
    for (what, value) in rows {
        table.push_str(&format!("| {what} | {value} |\n"));
    }
    write("machine", &table)
}

/// Splice every table of this run into the documents; `whole_run`: every bench ran, so
/// the README's headline table is gathered from their rows too (a partial run would
/// leave it with only some of them).
pub(crate) fn splice(whole_run: bool) -> Result {
    let root = super::root();
    if whole_run {
        gather_headline()?;
    }
    let mut used = Vec::new();
    let mut stale = Vec::new();
    for doc in DOCUMENTS {
        let path = root.join(doc);
        let text = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let spliced = splice_text(&text, |name| {
            fs::read_to_string(dir().join(format!("{name}.md"))).ok()
        });
        used.extend(spliced.replaced.iter().cloned());
        stale.extend(spliced.stale.iter().map(|n| format!("{doc}: {n}")));
        if spliced.text != text {
            fs::write(&path, &spliced.text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    let unplaced: Vec<String> = fragments()
        .into_iter()
        .filter(|n| !n.starts_with("headline-") && !used.contains(n))
        .collect();
    println!("xtask: tables regenerated: {}", used.join(", "));
    if !stale.is_empty() {
        println!(
            "xtask: tables NOT measured in this run (left as they were): {}",
            stale.join(", ")
        );
    }
    if !unplaced.is_empty() {
        println!(
            "xtask: tables with no marker in any document: {}",
            unplaced.join(", ")
        );
    }
    Ok(())
}

fn fragments() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".md").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// The order of the headline rows: what a user pays for the whole first, then each
/// family; rows of a bench not listed here come last, by name.
const HEADLINE_ORDER: &[&str] = &[
    "pipeline", "load", "stdrun", "tower", "rate", "retry", "breaker", "bulkhead", "redis",
    "firmware",
];

fn gather_headline() -> Result {
    let mut names: Vec<String> = fragments()
        .into_iter()
        .filter(|n| n.starts_with("headline-"))
        .collect();
    let rank = |n: &str| {
        HEADLINE_ORDER
            .iter()
            .position(|o| n.strip_prefix("headline-") == Some(*o))
            .unwrap_or(HEADLINE_ORDER.len())
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    let rows: String = names
        .iter()
        .filter_map(|n| fs::read_to_string(dir().join(format!("{n}.md"))).ok())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    write("headline", &format!("{HEADLINE_HEADER}{rows}"))
}

/// A document after splicing: its text, the tables replaced and those left stale.
#[derive(Debug, PartialEq)]
struct Spliced {
    text: String,
    replaced: Vec<String>,
    stale: Vec<String>,
}

/// Replace the lines between each `<!-- table:NAME -->` and `<!-- /table:NAME -->` with
/// `table(NAME)`, if it has one; markers without an end are left alone.
fn splice_text(text: &str, table: impl Fn(&str) -> Option<String>) -> Spliced {
    let mut out = String::with_capacity(text.len());
    let (mut replaced, mut stale) = (Vec::new(), Vec::new());
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        let Some(name) = marker(line, "<!-- table:") else {
            continue;
        };
        let end = format!("<!-- /table:{name} -->");
        let body: Vec<&str> = {
            let rest: Vec<&str> = lines.clone().collect();
            match rest.iter().position(|l| l.trim() == end) {
                Some(n) => rest[..n].to_vec(),
                None => continue,
            }
        };
        match table(name) {
            Some(new) => {
                out.push_str(&new);
                if !new.ends_with('\n') {
                    out.push('\n');
                }
                replaced.push(name.to_string());
            }
            None => {
                body.iter().for_each(|l| out.push_str(l));
                stale.push(name.to_string());
            }
        }
        for _ in 0..body.len() {
            lines.next();
        }
    }
    Spliced {
        text: out,
        replaced,
        stale,
    }
}

fn marker<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.trim()
        .strip_prefix(prefix)?
        .strip_suffix(" -->")
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "intro\n<!-- table:a -->\n| old |\n<!-- /table:a -->\nmiddle\n<!-- table:b -->\n| b old |\n<!-- /table:b -->\nend\n";

    #[test]
    fn replaces_between_markers_and_keeps_the_rest() {
        let s = splice_text(DOC, |n| {
            (n == "a").then(|| "| new |\n| --- |\n".to_string())
        });
        assert_eq!(
            s.text,
            "intro\n<!-- table:a -->\n| new |\n| --- |\n<!-- /table:a -->\nmiddle\n<!-- table:b -->\n| b old |\n<!-- /table:b -->\nend\n"
        );
        assert_eq!(s.replaced, vec!["a"]);
        assert_eq!(s.stale, vec!["b"]);
    }

    #[test]
    fn splicing_twice_is_stable_and_an_unclosed_marker_is_left_alone() {
        let once = splice_text(DOC, |_| Some("| t |".to_string())).text;
        assert_eq!(splice_text(&once, |_| Some("| t |".to_string())).text, once);
        let unclosed = "<!-- table:x -->\n| keep |\n";
        assert_eq!(
            splice_text(unclosed, |_| Some("| no |\n".into())).text,
            unclosed
        );
    }
}
