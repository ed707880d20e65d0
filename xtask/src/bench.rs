//! `cargo xtask bench`: every criterion bench of `stanchion-benches`, then the size report.
//!
//! Short measurement flags by default so a run fits the shared 2-core machine; `--full`
//! uses criterion's defaults. Not part of `cargo xtask test`.

use crate::{Result, cargo, size, step};

/// Criterion flags for the default (short) run.
const SHORT: &[&str] = &["--warm-up-time", "1", "--measurement-time", "3"];

/// Run every bench of `stanchion-benches`, then `size`.
pub(crate) fn bench(full: bool) -> Result {
    let mut args = vec!["bench", "-p", "stanchion-benches", "--benches", "--"];
    if !full {
        args.extend_from_slice(SHORT);
    }
    step("criterion benches", cargo(&args))?;
    size(false)
}
