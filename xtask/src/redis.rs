//! The Redis step of `cargo xtask test`: the Redis-backed limiter (feature `redis` of
//! `stanchion-std`) linted, documented and tested against a real `redis-server`, which the
//! tests start on free loopback ports themselves.

use std::process::Command;

use super::{Result, cargo, command, step};

const REDIS_SERVER: &str = "redis-server";

/// Lints, documents and tests `stanchion-std` with feature `redis` (the workspace-wide
/// steps build it without): unit tests, the `redis_*` integration tests, and doctests.
pub(crate) fn test() -> Result {
    install_redis_server()?;
    step(
        "clippy with feature redis",
        cargo(&[
            "clippy",
            "-p",
            "stanchion-std",
            "--all-targets",
            "--features",
            "redis",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "doc with feature redis",
        cargo(&[
            "doc",
            "-p",
            "stanchion-std",
            "--no-deps",
            "--features",
            "redis",
            "--locked",
        ])
        .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    step(
        "redis tests against redis-server",
        cargo(&[
            "test",
            "-p",
            "stanchion-std",
            "--features",
            "redis",
            "--locked",
            "--lib",
            "--test",
            "redis_*",
        ]),
    )?;
    step(
        "redis doctests",
        cargo(&[
            "test",
            "-p",
            "stanchion-std",
            "--features",
            "redis",
            "--locked",
            "--doc",
            "redis",
        ]),
    )
}

/// Installs Debian's `redis-server` if it is missing and we are root; otherwise a missing
/// server is an error that names the package. Only the binary is used: the tests start
/// their own servers, so the system service is not needed.
fn install_redis_server() -> Result {
    if Command::new(REDIS_SERVER).arg("--version").output().is_ok() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !root {
        return Err(format!(
            "{REDIS_SERVER} is missing: install Debian's package redis-server \
             (apt-get install redis-server), or run as root to let xtask install it"
        ));
    }
    let mut update = command("apt-get", &["update"]);
    update.env("DEBIAN_FRONTEND", "noninteractive");
    step("apt-get update", update)?;
    let mut install = command("apt-get", &["install", "-y", "redis-server"]);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    step("apt-get install redis-server", install)
}
