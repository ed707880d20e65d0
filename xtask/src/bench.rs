//! `cargo xtask bench`: every criterion bench of `stanchion-benches` (the Redis bench too:
//! it installs `redis-server` like `cargo xtask test`), then the size report, then the load
//! benchmark of the `service` example (`--load`: that alone); each writes its tables, which
//! are then spliced into `BENCHMARKS.md` and the README (see `tables`).
//!
//! Short measurement flags by default so a run fits the shared 2-core machine; `--full`
//! uses criterion's defaults. Not part of `cargo xtask test`.

use crate::{Result, cargo, redis, size, step, tables};

/// Criterion flags for the default (short) run.
const SHORT: &[&str] = &["--warm-up-time", "1", "--measurement-time", "3"];

/// Run every bench of `stanchion-benches`, then `size`, then the service's load benchmark
/// (`load_only`: the load benchmark alone), then regenerate the tables.
pub(crate) fn bench(full: bool, load_only: bool) -> Result {
    if load_only {
        tables::clear()?;
        crate::load::load()?;
        return tables::splice(false);
    }
    redis::install_redis_server()?;
    tables::clear()?;
    tables::machine(if full {
        "criterion's defaults (`cargo xtask bench --full`), median estimate"
    } else {
        "warm-up 1 s, measurement 3 s (`cargo xtask bench`), median estimate"
    })?;
    let mut args = vec![
        "bench",
        "-p",
        "stanchion-benches",
        "--features",
        "redis",
        "--benches",
        "--",
    ];
    if !full {
        args.extend_from_slice(SHORT);
    }
    step("criterion benches", cargo(&args))?;
    size(false)?;
    // 40 to 50 s once the service is built (xtask/src/load.rs).
    crate::load::load()?;
    tables::splice(true)
}
