//! `cargo xtask bench`: every criterion bench of `stanchion-benches`, then the size report,
//! then the load benchmark of the `service` example (`--load`: that alone).
//!
//! Short measurement flags by default so a run fits the shared 2-core machine; `--full`
//! uses criterion's defaults. Not part of `cargo xtask test`.

use crate::{Result, cargo, size, step};

/// Criterion flags for the default (short) run.
const SHORT: &[&str] = &["--warm-up-time", "1", "--measurement-time", "3"];

/// Run every bench of `stanchion-benches`, then `size`, then the service's load benchmark
/// (`load_only`: the load benchmark alone).
pub(crate) fn bench(full: bool, load_only: bool) -> Result {
    if load_only {
        return crate::load::load();
    }
    let mut args = vec!["bench", "-p", "stanchion-benches", "--benches", "--"];
    if !full {
        args.extend_from_slice(SHORT);
    }
    step("criterion benches", cargo(&args))?;
    size(false)?;
    // 40 to 50 s once the service is built (xtask/src/load.rs).
    crate::load::load()
}
