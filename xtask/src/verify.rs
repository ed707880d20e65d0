//! The verification steps beyond the test suite: core's tests under Miri, and the
//! cargo-fuzz targets in `fuzz/`. `docs/verification.md` says what each covers.
//!
//! - `cargo xtask miri`: all of core's tests (unit, property, doc) under Miri.
//! - `cargo xtask fuzz --seconds N`: every fuzz target for N seconds.
//! - `cargo xtask test` runs [`miri_ci`] (a named subset, see [`MIRI_CI_SKIP`]) and
//!   [`fuzz_smoke`] (each target for [`FUZZ_SMOKE_SECONDS`]).
//!
//! Both need the nightly toolchain; what is missing of it (the toolchain, the `miri` and
//! `rust-src` components, `cargo-fuzz`) is installed on first use.

use std::path::PathBuf;
use std::process::Command;

use super::{Result, cargo, command, root, step};

/// Miri's flags. Isolation stays on (no host clock, files or entropy: the run is
/// deterministic, and Miri's own seeded generator feeds proptest). Proptest's failure
/// persistence would read the working directory, which isolation forbids, so it is
/// turned off; the per-test case counts drop to a handful under Miri
/// (`stanchion::proptest_cases`), and `PROPTEST_CASES` covers any test left at proptest's
/// default.
const MIRIFLAGS: &str = "-Zmiri-env-set=PROPTEST_DISABLE_FAILURE_PERSISTENCE=1 \
                         -Zmiri-env-set=PROPTEST_CASES=4";

/// Tests that `cargo xtask test` leaves to `cargo xtask miri` (substrings of test names,
/// as libtest's `--skip` takes them): core's property tests, which replay hundreds of
/// operations per case through a reference model and take minutes each under Miri. They
/// drive the same safe arithmetic that the host run checks with 256 cases or more, and
/// none uses threads or the shared-state code whose memory accesses are what Miri adds;
/// every other test (unit tests, the threaded tests, doc examples) stays in.
pub(crate) const MIRI_CI_SKIP: &[&str] = &[
    // proptest! blocks, by module or name
    "adaptive::properties::",
    "breaker::tests::model::",
    "breaker::window::time::model::",
    "breaker::window::count_up_to::model::",
    "breaker::window::time_up_to::model::",
    "breaker::tests::runtime_sized_windows::",
    "bulkhead::properties::",
    "deadline::tests::properties::",
    "rate::tests::token_bucket_equals_the_credit_model",
    "rate::tests::leaky_bucket_equals_a_queue_model",
    "rate::tests::fixed_window_equals_a_map_of_counts",
    "rate::tests::sliding_window_counter_equals_its_formula",
    "rate::tests::sliding_window_log_equals_a_list_of_grants",
    "rate::tests::keyed_equals_one_credit_model_per_key",
    "rate::tests::keyed_small_table_never_admits_more_than_the_quota",
    "rate::tests::extreme_inputs_never_panic",
    "rate::tests::token_bucket_backwards_clock_admits_no_more",
    "retry::policy::tests::never_sleeps_past_the_deadline",
];

/// Seconds each fuzz target runs in `cargo xtask test`.
pub(crate) const FUZZ_SMOKE_SECONDS: u64 = 10;

/// Longest input libFuzzer generates, in bytes: room for a few hundred operations.
const FUZZ_MAX_LEN: &str = "4096";

/// `cargo xtask miri`: every test of core under Miri.
pub(crate) fn miri_all() -> Result {
    miri(&[], "Miri: all of core's tests")
}

/// The Miri step of `cargo xtask test`: core's tests less [`MIRI_CI_SKIP`].
pub(crate) fn miri_ci() -> Result {
    miri(MIRI_CI_SKIP, "Miri: core's tests less the property tests")
}

fn miri(skip: &[&str], name: &str) -> Result {
    install_nightly(&["miri", "rust-src"])?;
    step(
        "Miri sysroot",
        nightly(&["miri", "setup"]).env("CARGO_TARGET_DIR", miri_target_dir()),
    )?;
    let mut test = nightly(&["miri", "test", "-p", "stanchion", "--locked"]);
    if !skip.is_empty() {
        // `--skip` goes to the unit-test harness only: doctests take no filter, and
        // `--lib`/`--doc` cannot be combined, so they run as a second step below.
        test.args(["--lib", "--"]);
        for pattern in skip {
            test.args(["--skip", pattern]);
        }
    }
    test.env("CARGO_TARGET_DIR", miri_target_dir())
        .env("MIRIFLAGS", MIRIFLAGS);
    step(name, test)?;
    if !skip.is_empty() {
        let mut doc = nightly(&["miri", "test", "-p", "stanchion", "--locked", "--doc"]);
        doc.env("CARGO_TARGET_DIR", miri_target_dir())
            .env("MIRIFLAGS", MIRIFLAGS);
        step("Miri: core's doc examples", doc)?;
    }
    Ok(())
}

/// `cargo xtask fuzz --seconds N`: builds every fuzz target (optimised, with debug
/// assertions, so that an arithmetic overflow panics), then runs each for `seconds`; fails on the first crash (libFuzzer leaves the input in
/// `fuzz/artifacts/<target>/`, and `cargo +nightly fuzz fmt <target> <file>` prints it).
pub(crate) fn fuzz(seconds: u64) -> Result {
    install_nightly(&[])?;
    install_cargo_fuzz()?;
    step(
        "build fuzz targets",
        in_fuzz_dir(nightly(&["fuzz", "build", "-O", "-a"])),
    )?;
    let time = format!("-max_total_time={seconds}");
    let max_len = format!("-max_len={FUZZ_MAX_LEN}");
    for target in fuzz_targets()? {
        step(
            &format!("fuzz {target} for {seconds} s"),
            in_fuzz_dir(nightly(&[
                "fuzz", "run", "-O", "-a", &target, "--", &time, &max_len,
            ])),
        )?;
    }
    Ok(())
}

/// The fuzz step of `cargo xtask test`: the fuzz crate's formatting (it is outside the
/// workspace, so the workspace's fmt step misses it), then each target for
/// [`FUZZ_SMOKE_SECONDS`].
pub(crate) fn fuzz_smoke() -> Result {
    step("fuzz fmt", in_fuzz_dir(cargo(&["fmt", "--check"])))?;
    fuzz(FUZZ_SMOKE_SECONDS)
}

/// The fuzz targets: the `[[bin]]` names of `fuzz/Cargo.toml`.
fn fuzz_targets() -> Result<Vec<String>> {
    let manifest_path = fuzz_dir().join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
    let mut in_bin = false;
    let mut targets = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin
            && let Some(("name", value)) = line.split_once('=').map(|(k, v)| (k.trim(), v))
        {
            targets.push(value.trim().trim_matches('"').to_string());
        }
    }
    if targets.is_empty() {
        return Err(format!("no [[bin]] targets in {}", manifest_path.display()));
    }
    Ok(targets)
}

/// Installs the nightly toolchain (minimal profile) if it is missing, and `components`.
fn install_nightly(components: &[&str]) -> Result {
    let have_nightly = rustup(&["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !have_nightly {
        step(
            "rustup toolchain install nightly",
            rustup(&["toolchain", "install", "nightly", "--profile", "minimal"]),
        )?;
    }
    if components.is_empty() {
        return Ok(());
    }
    let installed = rustup(&["+nightly", "component", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    let installed = String::from_utf8_lossy(&installed.stdout);
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|c| !installed.lines().any(|line| line.starts_with(c)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut args = vec!["+nightly", "component", "add"];
    args.extend(&missing);
    step(
        &format!("rustup +nightly component add {}", missing.join(" ")),
        rustup(&args),
    )
}

/// Installs `cargo-fuzz` from crates.io (built from source) if `cargo fuzz` is missing.
fn install_cargo_fuzz() -> Result {
    let have = nightly(&["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if have {
        return Ok(());
    }
    step(
        "cargo install cargo-fuzz",
        nightly(&["install", "cargo-fuzz", "--locked"]),
    )
}

/// `cargo +nightly` through rustup's proxy (the `CARGO` that runs xtask is the stable
/// toolchain's own binary, which takes no `+toolchain`), with the caller's toolchain
/// choice and flags removed from the environment.
fn nightly(args: &[&str]) -> Command {
    let mut c = command("cargo", &["+nightly"]);
    c.args(args)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    c
}

fn rustup(args: &[&str]) -> Command {
    let mut c = command("rustup", args);
    c.env_remove("RUSTUP_TOOLCHAIN");
    c
}

fn in_fuzz_dir(mut c: Command) -> Command {
    c.current_dir(fuzz_dir());
    c
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

/// Miri's own target directory: its artefacts never mix with the host build's.
fn miri_target_dir() -> PathBuf {
    root().join("target").join("miri")
}
