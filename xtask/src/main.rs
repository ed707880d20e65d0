//! `cargo xtask`: the project's automation, in Rust.
//!
//! - `cargo xtask test`: every check CI runs (the README's second command).
//! - `cargo xtask cross`: only the cross-builds of core for the bare-metal targets.

use std::borrow::BorrowMut;
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};

/// The bare-metal targets core must build for, and the features each needs.
///
/// `thumbv6m` has no compare-and-swap: atomics go through `critical-section`.
/// `thumbv7em` has no 64-bit atomics. `riscv32imc` has no atomics extension at all.
const CROSS_TARGETS: &[(&str, &str)] = &[
    ("thumbv6m-none-eabi", "critical-section"),
    ("thumbv7em-none-eabihf", ""),
    ("riscv32imc-unknown-none-elf", "critical-section"),
];

#[derive(Parser)]
#[command(about = "stanchion's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run every check: fmt, clippy, docs, host tests, cross-builds.
    Test,
    /// Cross-build core (and the embassy adapter) for the bare-metal targets.
    Cross,
    /// Model-check core's lock-free code with loom, without CI's preemption bound.
    Loom,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Test => test(),
        Task::Cross => cross(),
        Task::Loom => loom(None),
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
    loom(Some(LOOM_CI_PREEMPTIONS))?;
    cross()?;
    println!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

fn cross() -> Result {
    let installed = installed_targets()?;
    for (target, features) in CROSS_TARGETS {
        if !installed.iter().any(|t| t == target) {
            step(
                &format!("rustup target add {target}"),
                command("rustup", &["target", "add", target]),
            )?;
        }
        let with_defmt = if features.is_empty() {
            "defmt".to_string()
        } else {
            format!("{features},defmt")
        };
        for features in [*features, with_defmt.as_str()] {
            let mut args = vec!["build", "-p", "stanchion", "--target", target, "--locked"];
            if !features.is_empty() {
                args.extend(["--features", features]);
            }
            step(&format!("core for {target} [{features}]"), cargo(&args))?;
        }
        step(
            &format!("embassy adapter for {target}"),
            cargo(&[
                "build",
                "-p",
                "stanchion-embassy",
                "--target",
                target,
                "--locked",
                "--features",
                "stanchion/critical-section",
            ]),
        )?;
    }
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

fn installed_targets() -> Result<Vec<String>> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

fn cargo(args: &[&str]) -> Command {
    command(
        &std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        args,
    )
}

fn command(program: &str, args: &[&str]) -> Command {
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
