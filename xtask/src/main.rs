//! `cargo xtask`: the project's automation, in Rust.
//!
//! - `cargo xtask test`: every check CI runs (the README's second command).
//! - `cargo xtask cross`: only the cross-builds of core for the bare-metal targets.
//! - `cargo xtask firmware`: build the firmware example and the quick start, and run them
//!   under QEMU.
//! - `cargo xtask size`: the firmware's flash and RAM, each pattern's share of them, and
//!   the peer crates' beside them (`size.rs`); `--symbols FEATURES` says which symbols
//!   make up one row.
//! - `cargo xtask miri`, `cargo xtask fuzz --seconds N`: core under Miri, the fuzz targets.
//!
//! `test` runs every step; the others run one step (or a longer form of one) alone.

use std::borrow::BorrowMut;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod bench;
mod load;
mod msrv;
mod redis;
mod size;
mod tables;
mod verify;

use size::{Patterns, build_image, size};

/// The bare-metal targets core must build for. None has native 64-bit atomics
/// (`thumbv6m` and `riscv32imc` have no compare-and-swap at all, `thumbv7em` no 64-bit
/// atomics), so each builds only with one of core's two atomics set-ups
/// ([`ATOMICS_SETUPS`]), and [`cross`] checks that a build with neither fails to compile.
const CROSS_TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imc-unknown-none-elf",
];

/// Core's atomics set-ups for firmware, one of which a bare-metal build without native
/// 64-bit atomics must enable (core's crate docs, "Firmware").
const ATOMICS_SETUPS: &[&str] = &["critical-section", "single-core"];

/// What core's `compile_error!` says when a bare-metal build enables neither set-up: it must
/// name both features.
const MISSING_SETUP_ERROR: &[&str] = &[
    "stanchion: this target has no native 64-bit atomics",
    "`critical-section`",
    "`single-core`",
];

#[derive(Parser)]
#[command(about = "stanchion's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run every check: fmt, clippy, docs, host tests, loom, Miri (a subset), fuzzing (a
    /// smoke run), cross-builds, firmware.
    Test,
    /// Cross-build core (and the embassy adapter) for the bare-metal targets.
    Cross,
    /// Model-check core's lock-free code with loom, without CI's preemption bound.
    Loom,
    /// Build the published crates with the declared `rust-version` (installs it).
    Msrv,
    /// Build the firmware example and run it under QEMU on a Cortex-M3, a Cortex-M0 and a
    /// 32-bit RISC-V core; then the firmware quick start, on the Cortex-M3.
    Firmware,
    /// Report the firmware's flash and RAM on thumbv7em, and each pattern's share.
    Size {
        /// Fail if the patterns together exceed their flash budget (`PATTERN_FLASH_BUDGET`).
        #[arg(long)]
        strict: bool,
        /// Then splice the firmware tables into BENCHMARKS.md (the README's headline
        /// table is gathered only by a whole `cargo xtask bench` run).
        #[arg(long, conflicts_with = "symbols")]
        splice: bool,
        /// Instead of the table: what the size probe built with these firmware features
        /// (one, or several separated by commas, e.g. `breaker` or `peer-governor`) adds
        /// over the baseline, symbol by symbol.
        #[arg(long, value_name = "FEATURES", conflicts_with = "strict")]
        symbols: Option<String>,
    },
    /// Run all of core's tests under Miri (nightly; installs the component if missing).
    Miri,
    /// Run every cargo-fuzz target in `fuzz/` for the given time (installs cargo-fuzz).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Run every criterion bench (short flags; `--full` for criterion's defaults) and `size`.
    Bench {
        /// Use criterion's default warm-up and measurement times.
        #[arg(long)]
        full: bool,
        /// Run only the load benchmark of the `service` example (wrk on loopback), which
        /// a plain `bench` runs last.
        #[arg(long)]
        load: bool,
        /// Measure nothing: splice the tables of the last run (`target/bench-tables/`)
        /// into `BENCHMARKS.md` and the README again, e.g. after editing their prose.
        #[arg(long, conflicts_with_all = ["full", "load"])]
        splice: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Test => test(),
        Task::Cross => cross(),
        Task::Loom => loom(None),
        Task::Msrv => msrv::msrv(),
        Task::Firmware => firmware(),
        Task::Size {
            strict,
            symbols,
            splice,
        } => match symbols {
            Some(features) => size::symbols(&features),
            None => size(strict).and_then(|()| {
                if splice {
                    tables::splice(false)
                } else {
                    Ok(())
                }
            }),
        },
        Task::Miri => verify::miri_all(),
        Task::Fuzz { seconds } => verify::fuzz(seconds),
        Task::Bench { full, load, splice } => {
            if splice {
                tables::splice(true)
            } else {
                bench::bench(full, load)
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn test() -> Result {
    let started = Instant::now();
    step("fmt", cargo(&["fmt", "--all", "--check"]))?;
    step(
        "clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "doc",
        cargo(&["doc", "--workspace", "--no-deps", "--locked"]).env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    step("host tests", cargo(&["test", "--workspace", "--locked"]))?;
    // Core's tests once more in the breaker's form for targets without native 64-bit
    // atomics (its state word and deadline inside the locked state), which hosts otherwise
    // never compile (only firmware's QEMU checks would run it).
    step(
        "core tests, the breaker's locked form (--cfg stanchion_breaker_locked)",
        cargo(&["test", "-p", "stanchion", "--lib", "--locked"])
            .env("RUSTFLAGS", "--cfg stanchion_breaker_locked")
            .env("CARGO_TARGET_DIR", "target/locked"),
    )?;
    // Core's `serde` feature is off in the workspace runs above (nothing in the workspace
    // enables it): lint and test it here (its round trips and error texts are in
    // `core/src/config/`).
    let core_serde = ["-p", "stanchion", "--features", "serde", "--locked"];
    step(
        "core with serde: clippy",
        cargo(
            &[
                &["clippy", "--all-targets"],
                &core_serde[..],
                &["--", "-D", "warnings"],
            ]
            .concat(),
        ),
    )?;
    step(
        "core with serde: tests",
        cargo(&[&["test"], &core_serde[..]].concat()),
    )?;
    // The std adapter's optional features (tower layers, HTTP/axum helpers, quanta) are
    // off in the workspace runs above: lint, document and test them here.
    let std_all = ["-p", "stanchion-std", "--all-features", "--locked"];
    step(
        "std adapter, all features: clippy",
        cargo(
            &[
                &["clippy", "--all-targets"],
                &std_all[..],
                &["--", "-D", "warnings"],
            ]
            .concat(),
        ),
    )?;
    step(
        "std adapter, all features: doc",
        cargo(&[&["doc", "--no-deps"], &std_all[..]].concat()).env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // All features include `redis`, whose tests start their own `redis-server`.
    redis::install_redis_server()?;
    step(
        "std adapter, all features: tests (Redis ones against a real redis-server and a real Redis Cluster)",
        cargo(&[&["test"], &std_all[..]].concat()),
    )?;
    step(
        "service example with --redis-url: two instances share quotas through redis-server",
        cargo(&[
            "test",
            "-p",
            "stanchion-examples",
            "--features",
            "redis",
            "--test",
            "service_redis",
        ]),
    )?;
    // The published crates package, and build from their packages, as crates.io would
    // take them. One command for the three: cargo packages `stanchion` first and resolves
    // the adapters' dependency on it from a local registry holding that package (not from
    // crates.io), so the adapters are verified too and need no `--no-verify`. `--offline`:
    // every other dependency comes from the cache that the steps above filled, so the step
    // needs no network and leaves the crates.io index alone. `--allow-dirty`: a working
    // tree with uncommitted changes (a developer's, or files the steps above wrote)
    // packages as it is; CI's clean clone has none.
    forget_extracted_packages()?;
    step(
        "cargo package: stanchion, stanchion-std, stanchion-embassy",
        cargo(&[
            "package",
            "-p",
            "stanchion",
            "-p",
            "stanchion-std",
            "-p",
            "stanchion-embassy",
            "--locked",
            "--offline",
            "--allow-dirty",
            "--target-dir",
            PACKAGE_TARGET_DIR,
        ]),
    )?;
    msrv::msrv()?;
    loom(Some(LOOM_CI_PREEMPTIONS))?;
    verify::miri_ci()?;
    verify::fuzz_smoke()?;
    cross()?;
    firmware()?;
    // Fails if the patterns exceed their flash budget (see `PATTERN_FLASH_BUDGET`).
    size(true)?;
    println!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

fn cross() -> Result {
    add_missing_targets(CROSS_TARGETS)?;
    step(
        "core's critical-section 64-bit atomic, on the host",
        cargo(&[
            "test",
            "-p",
            "stanchion",
            "--lib",
            "--locked",
            "--features",
            "critical-section",
            "cs_atomic",
        ]),
    )?;
    for target in CROSS_TARGETS {
        expect_build_failure(
            &format!("core for {target} with no atomics set-up fails, naming both"),
            cargo(&["build", "-p", "stanchion", "--target", target, "--locked"]),
            MISSING_SETUP_ERROR,
        )?;
        for setup in ATOMICS_SETUPS {
            let with_defmt = format!("{setup},defmt");
            // `serde` must stay `no_std` and allocation-free (issue 21).
            let with_serde = format!("{setup},serde");
            for features in [*setup, with_defmt.as_str(), with_serde.as_str()] {
                step(
                    &format!("core for {target} [{features}]"),
                    cargo(&[
                        "build",
                        "-p",
                        "stanchion",
                        "--target",
                        target,
                        "--locked",
                        "--features",
                        features,
                    ]),
                )?;
            }
            for features in [*setup, with_defmt.as_str()] {
                step(
                    &format!("embassy adapter for {target} [{features}]"),
                    cargo(&[
                        "build",
                        "-p",
                        "stanchion-embassy",
                        "--target",
                        target,
                        "--locked",
                        "--features",
                        features,
                    ]),
                )?;
            }
        }
    }
    Ok(())
}

/// Where `cargo package` builds the packages it verifies: a folder of its own, emptied
/// before each run (see [`forget_extracted_packages`]).
const PACKAGE_TARGET_DIR: &str = "target/package-verify";

/// Removes what an earlier `cargo package` left that a later one would wrongly reuse. To
/// verify the adapters, it extracts the `stanchion` it just packaged into
/// `$CARGO_HOME/registry/src/<local registry>/stanchion-<version>` and builds it as a
/// registry crate; on a later run it keeps both the extracted folder and the build when the
/// version is unchanged (registry crates are assumed never to change), so the adapters
/// would be verified against an earlier run's `stanchion`. So: the extracted folders named
/// after our crates, and [`PACKAGE_TARGET_DIR`].
fn forget_extracted_packages() -> Result {
    match std::fs::remove_dir_all(PACKAGE_TARGET_DIR) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {PACKAGE_TARGET_DIR}: {e}")),
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let Ok(registries) = std::fs::read_dir(home.join("registry").join("src")) else {
        return Ok(()); // nothing extracted yet
    };
    for registry in registries.flatten() {
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for extracted in crates.flatten() {
            let name = extracted.file_name();
            let name = name.to_string_lossy();
            let ours = ["stanchion-", "stanchion-std-", "stanchion-embassy-"]
                .iter()
                .any(|prefix| {
                    name.strip_prefix(prefix)
                        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
                });
            if ours {
                std::fs::remove_dir_all(extracted.path())
                    .map_err(|e| format!("cannot remove {}: {e}", extracted.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Runs a build that must fail, and fails unless it does and its error output contains
/// every string in `expected`.
fn expect_build_failure(name: &str, mut command: Command, expected: &[&str]) -> Result {
    println!("xtask: ==> {name}");
    let started = Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return Err(format!("{name}: the build succeeded"));
    }
    if let Some(missing) = expected.iter().find(|e| !stderr.contains(**e)) {
        eprintln!("{stderr}");
        return Err(format!(
            "{name}: the build failed without saying {missing:?}"
        ));
    }
    println!("xtask: <== {name} ok ({:.1?})", started.elapsed());
    Ok(())
}

/// Preemptions per loom execution in CI: bounds the run to a few minutes while still
/// covering every interleaving with that many forced context switches.
const LOOM_CI_PREEMPTIONS: u32 = 3;

/// Runs core's loom models: every test named `loom_*`, compiled with `--cfg loom` (so
/// `stanchion::sync` resolves to loom's atomics) into a target directory of its own.
fn loom(max_preemptions: Option<u32>) -> Result {
    let mut command = cargo(&[
        "test",
        "-p",
        "stanchion",
        "--lib",
        "--release",
        "--locked",
        "--",
        "loom_",
    ]);
    command
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", "target/loom");
    if let Some(n) = max_preemptions {
        command.env("LOOM_MAX_PREEMPTIONS", n.to_string());
    }
    step("loom models of core", command)
}

/// The firmware images `cargo xtask firmware` runs: (target, QEMU `-cpu`, QEMU `-machine`,
/// QEMU). `examples/firmware/.cargo/config.toml` has the same command lines as cargo runners.
const FIRMWARE_MACHINES: &[(&str, &str, &str, Qemu)] = &[
    ("thumbv7m-none-eabi", "cortex-m3", "lm3s6965evb", QEMU_ARM),
    ("thumbv6m-none-eabi", "cortex-m0", "microbit", QEMU_ARM),
    ("riscv32imc-unknown-none-elf", "rv32", "virt", QEMU_RISCV32),
];

/// A QEMU program, the Debian package that installs it, and the arguments it needs for a
/// bare image beside `-cpu`, `-machine` and `-kernel`.
type Qemu = (&'static str, &'static str, &'static [&'static str]);
const QEMU_ARM: Qemu = ("qemu-system-arm", "qemu-system-arm", &[]);
/// `-bios none`: no firmware (OpenSBI) before the image; QEMU loads it into the `virt`
/// machine's DRAM and starts it at 0x8000_0000 in machine mode.
const QEMU_RISCV32: Qemu = (
    "qemu-system-riscv32",
    "qemu-system-misc",
    &["-bios", "none"],
);

/// The atomics set-ups (firmware features, one run each) a firmware target runs in; a
/// target not listed runs once, in the set-up the firmware's `Cargo.toml` gives it.
const FIRMWARE_SETUPS: &[(&str, &[&str])] = &[(
    "thumbv7m-none-eabi",
    &["atomics-critical-section,log-defmt", "atomics-single-core"],
)];

/// The atomics set-ups `target` runs in: its features, or one run with none.
fn firmware_setups(target: &str) -> &'static [&'static str] {
    FIRMWARE_SETUPS
        .iter()
        .find(|(t, _)| *t == target)
        .map_or(&[""], |(_, setups)| setups)
}

/// QEMU's clock: virtual time counted in instructions (2^4 ns each, about 62 MHz, near
/// the lm3s6965's 50 MHz), and no waiting while the CPU sleeps. Each run is then the same
/// whatever the host's load (the checks' timings cannot be upset by a busy CI machine), and
/// the timer interrupt lands at an exact instruction, anywhere inside a block (by default
/// QEMU takes interrupts only between its translation blocks, so an interrupt seldom lands
/// inside a short read-modify-write, and a check of sharing with an interrupt handler
/// passes by luck). Keep in step with the runners in the firmware's `.cargo/config.toml`.
const QEMU_CLOCK: [&str; 2] = ["-icount", "shift=4,sleep=off"];

/// How long one firmware image may run under QEMU (it needs well under a second).
const FIRMWARE_TIME_BOUND: Duration = Duration::from_secs(60);

/// Lints the firmware crate (it is outside the workspace, so the workspace's fmt and clippy
/// steps miss it), builds it with every pattern and runs it under QEMU on each machine;
/// fails if an image reports a failed check, exits with failure, or outlives its time bound.
/// Then the same for the quick start ([`firmware_quickstart`]).
fn firmware() -> Result {
    for (.., (qemu, package, _)) in FIRMWARE_MACHINES {
        ensure_debian_package(qemu, package)?;
    }
    let targets: Vec<&str> = FIRMWARE_MACHINES.iter().map(|(t, ..)| *t).collect();
    add_missing_targets(&targets)?;
    step("firmware fmt", firmware_cargo(&["fmt", "--check"]))?;
    let target_dir = firmware_dirs().1;
    for (target, ..) in FIRMWARE_MACHINES {
        for setup in firmware_setups(target) {
            step(
                &format!("firmware clippy for {target} [{setup}]"),
                firmware_cargo(&[
                    "clippy",
                    "--release",
                    "--locked",
                    "--target",
                    target,
                    "--target-dir",
                    &target_dir.to_string_lossy(),
                    "--features",
                    setup,
                    "--",
                    "-D",
                    "warnings",
                ]),
            )?;
        }
    }
    let runs = FIRMWARE_MACHINES.iter().flat_map(|machine| {
        firmware_setups(machine.0)
            .iter()
            .map(move |setup| (machine, *setup))
    });
    for ((target, cpu, machine, (qemu, _, extra)), setup) in runs {
        let patterns = if setup.is_empty() {
            Patterns::Default
        } else {
            Patterns::DefaultAnd(setup)
        };
        let elf = build_firmware(target, &patterns)?;
        let setup_label = if setup.is_empty() {
            "atomics set-up from Cargo.toml"
        } else {
            setup
        };
        let name = format!("firmware on {machine} ({target}) [{setup_label}]");
        println!("xtask: ==> {name}");
        let started = Instant::now();
        let qemu = qemu_command(qemu, cpu, machine, extra, &elf);
        let (status, output) =
            run_with_time_bound(qemu, FIRMWARE_TIME_BOUND).map_err(|e| format!("{name}: {e}"))?;
        match firmware_summary(&output) {
            Some((passed, 0)) if status.success() && passed > 0 => {
                println!("xtask: <== {name} ok ({:.1?})", started.elapsed());
            }
            summary => {
                return Err(format!(
                    "{name} failed ({status}; summary {summary:?}, expected N passed, 0 failed)"
                ));
            }
        }
    }
    firmware_quickstart()
}

/// The firmware quick start (`examples/firmware-quickstart`): the crate a new project starts
/// from. It is written for the Cortex-M3 alone.
const QUICKSTART: (&str, &str) = ("firmware-quickstart", "thumbv7m-none-eabi");

/// Lints the quick start, builds it and runs it under QEMU as the checks image is run on the
/// same machine (same clock, same time bound); fails unless it exits with success.
fn firmware_quickstart() -> Result {
    let (crate_name, target) = QUICKSTART;
    let Some(&(_, cpu, machine, (qemu, _, extra))) =
        FIRMWARE_MACHINES.iter().find(|(t, ..)| *t == target)
    else {
        return Err(format!(
            "the quick start's target {target} is not in FIRMWARE_MACHINES"
        ));
    };
    let dir = root().join("examples").join(crate_name);
    let target_dir = firmware_dirs().1;
    let target_dir_arg = target_dir.to_string_lossy();
    let in_dir = |args: &[&str]| {
        let mut command = firmware_cargo(args);
        command.current_dir(&dir);
        command
    };
    let build = [
        "--release",
        "--locked",
        "--target",
        target,
        "--target-dir",
        &target_dir_arg,
    ];
    step("firmware quick start fmt", in_dir(&["fmt", "--check"]))?;
    let clippy = [&["clippy"][..], &build, &["--", "-D", "warnings"]].concat();
    step("firmware quick start clippy", in_dir(&clippy))?;
    step(
        "build firmware quick start",
        in_dir(&[&["build"][..], &build].concat()),
    )?;
    let elf = target_dir.join(target).join("release").join(crate_name);
    let name = format!("firmware quick start on {machine} ({target})");
    println!("xtask: ==> {name}");
    let started = Instant::now();
    let qemu = qemu_command(qemu, cpu, machine, extra, &elf);
    let (status, _) =
        run_with_time_bound(qemu, FIRMWARE_TIME_BOUND).map_err(|e| format!("{name}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "{name} failed ({status}; expected a successful exit)"
        ));
    }
    println!("xtask: <== {name} ok ({:.1?})", started.elapsed());
    Ok(())
}

/// The QEMU command line that boots `elf` on `machine` with `cpu`: the instruction-counted
/// clock ([`QEMU_CLOCK`]), no display, semihosting for the image's output and exit, and
/// the machine's `extra` arguments.
fn qemu_command(qemu: &str, cpu: &str, machine: &str, extra: &[&str], elf: &Path) -> Command {
    let mut command = command(
        qemu,
        &[
            QEMU_CLOCK[0],
            QEMU_CLOCK[1],
            "-cpu",
            cpu,
            "-machine",
            machine,
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
        ],
    );
    command.args(extra).arg("-kernel").arg(elf);
    command
}

/// Makes sure `binary` runs, installing Debian's `package` with apt when it is missing and
/// we are root; otherwise a missing binary is an error that names the package.
pub(crate) fn ensure_debian_package(binary: &str, package: &str) -> Result {
    if Command::new(binary).arg("--version").output().is_ok() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !root {
        return Err(format!(
            "{binary} is missing: install Debian's package {package} \
             (apt-get install {package}), or run as root to let xtask install it"
        ));
    }
    let mut update = command("apt-get", &["update"]);
    update.env("DEBIAN_FRONTEND", "noninteractive");
    step("apt-get update", update)?;
    let mut install = command("apt-get", &["install", "-y", package]);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    step(&format!("apt-get install {package}"), install)
}

/// Runs `command`, echoing its standard output line by line, and kills it once `bound` has
/// passed. Returns its exit status and output.
fn run_with_time_bound(
    mut command: Command,
    bound: Duration,
) -> Result<(std::process::ExitStatus, Vec<String>)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let stdout = child.stdout.take().ok_or("no standard output")?;
    let echo = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(std::io::Result::ok)
            .inspect(|line| println!("    {line}"))
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + bound;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                // Killing closes the pipe, which ends the echo thread.
                let _ = child.kill();
                let _ = child.wait();
                let _ = echo.join();
                return Err(format!("timed out after {bound:?}"));
            }
            Err(e) => return Err(format!("cannot wait: {e}")),
        }
    };
    let output = echo.join().map_err(|_| "the output reader panicked")?;
    Ok((status, output))
}

/// `(passed, failed)` from the firmware's closing line, `firmware: N passed, N failed`.
fn firmware_summary(output: &[String]) -> Option<(u32, u32)> {
    output.iter().rev().find_map(|line| {
        let counts = line.strip_prefix("firmware: ")?;
        let (passed, failed) = counts.split_once(" passed, ")?;
        Some((
            passed.parse().ok()?,
            failed.strip_suffix(" failed")?.parse().ok()?,
        ))
    })
}

/// The firmware crate's QEMU checks binary (the size probe is `size::SIZE_PROBE_BIN`).
const FIRMWARE_BIN: &str = "stanchion-firmware";

/// The workspace's root folder (xtask's parent).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The firmware crate's folder, and the target directory its builds go to (inside the
/// workspace's, so that `cargo` finds the ELF at a known path).
fn firmware_dirs() -> (PathBuf, PathBuf) {
    let root = root();
    (
        root.join("examples").join("firmware"),
        root.join("target").join("firmware"),
    )
}

/// Builds the firmware's QEMU checks (release) for `target` with the given patterns;
/// returns the ELF.
fn build_firmware(target: &str, patterns: &Patterns<'_>) -> Result<PathBuf> {
    build_image(target, FIRMWARE_BIN, patterns)
}

/// `cargo` with `args`, run in the firmware crate's folder: its own `.cargo/config.toml`
/// (runners, `-Tlink.x`) applies only from there. RUSTFLAGS from the environment would
/// replace that file's linker-script flag, so they are dropped.
fn firmware_cargo(args: &[&str]) -> Command {
    let mut command = cargo(args);
    command
        .current_dir(firmware_dirs().0)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    command
}

/// Adds the rustup targets in `targets` that are not installed yet.
fn add_missing_targets(targets: &[&str]) -> Result {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    let installed = String::from_utf8_lossy(&out.stdout);
    for target in targets {
        if !installed.lines().any(|t| t == *target) {
            step(
                &format!("rustup target add {target}"),
                command("rustup", &["target", "add", target]),
            )?;
        }
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Command {
    command(
        &std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        args,
    )
}

pub(crate) fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Runs one named step, echoing it and its duration; fails with the step's name.
fn step(name: &str, mut command: impl BorrowMut<Command>) -> Result {
    println!("xtask: ==> {name}");
    let started = Instant::now();
    let status = command
        .borrow_mut()
        .status()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    if status.success() {
        println!("xtask: <== {name} ok ({:.1?})", started.elapsed());
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}
