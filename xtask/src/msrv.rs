//! The minimum supported Rust version: the `rust-version` the workspace declares, checked
//! by building the published crates with that toolchain (rustup installs it, with the
//! firmware target, the first time).

use crate::{Result, command, step};

/// The firmware target the embassy adapter is built for with the declared toolchain.
const MSRV_FIRMWARE_TARGET: &str = "thumbv7em-none-eabihf";

/// Builds `stanchion` (with its `serde` feature), `stanchion-embassy` (on the host, and for
/// a Cortex-M4 with its `defmt` events) and `stanchion-std` with every feature, with the
/// declared toolchain.
/// A dependency raising its own minimum shows up here, not in a user's build.
pub(crate) fn msrv() -> Result {
    let version = declared_rust_version()?;
    step(
        &format!("rustup toolchain install {version} (the declared rust-version)"),
        command(
            "rustup",
            &[
                "toolchain",
                "install",
                &version,
                "--profile",
                "minimal",
                "--target",
                MSRV_FIRMWARE_TARGET,
            ],
        ),
    )?;
    let builds: [&[&str]; 3] = [
        &[
            "-p",
            "stanchion",
            "-p",
            "stanchion-embassy",
            "--features",
            "stanchion/serde",
        ],
        &["-p", "stanchion-std", "--all-features"],
        &[
            "-p",
            "stanchion-embassy",
            "--target",
            MSRV_FIRMWARE_TARGET,
            "--features",
            "single-core,defmt",
        ],
    ];
    for args in builds {
        let mut build = command(
            "rustup",
            &[&["run", &version, "cargo", "build", "--locked"], args].concat(),
        );
        // Its own target directory: another compiler's artefacts would be rebuilt anyway.
        build.env("CARGO_TARGET_DIR", "target/msrv");
        step(&format!("Rust {version}: build {}", args.join(" ")), build)?;
    }
    Ok(())
}

/// The `rust-version` of the root manifest's `[workspace.package]`.
fn declared_rust_version() -> Result<String> {
    let manifest = std::fs::read_to_string("Cargo.toml")
        .map_err(|e| format!("cannot read the root Cargo.toml: {e}"))?;
    manifest
        .lines()
        .find_map(|line| {
            let value = line.trim().strip_prefix("rust-version")?.trim();
            Some(
                value
                    .strip_prefix('=')?
                    .trim()
                    .trim_matches('"')
                    .to_string(),
            )
        })
        .ok_or_else(|| "the root Cargo.toml declares no rust-version".to_string())
}
