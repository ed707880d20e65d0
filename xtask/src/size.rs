//! `cargo xtask size`: flash and RAM of the firmware example on [`SIZE_TARGET`], per
//! pattern, with the peer crates that build for the same target beside stanchion's rows.
//!
//! The size probe (`examples/firmware/src/bin/size_probe.rs`) is built once with no
//! feature (the baseline), once per pattern feature, once with every pattern (one
//! configuration of each: not the [`VARIANTS`]); then once per peer feature (`peer-*`: the
//! same pattern written with another crate, see [`PEERS`]) and once with every peer. A row is an image minus the baseline. The table goes to standard
//! output and to `<target>/bench-tables/firmware-size.md`; the QEMU checks' image gets a
//! second table, for context, in `firmware-size-checks.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{FIRMWARE_BIN, Result, add_missing_targets, firmware_cargo, firmware_dirs, step};

/// The target the size report is for: a Cortex-M4F, the commonest class of device.
const SIZE_TARGET: &str = "thumbv7em-none-eabihf";

/// Flash that all patterns together may add to the size probe's baseline: issue 17's
/// target, 8 KiB (reached: 8,188 bytes, from 16,364), so that nothing grows back. The
/// probe builds each pattern the way an application would, without the QEMU checks' own
/// code, so its "all patterns" row is what a user pays: `cargo xtask size --strict` and
/// `cargo xtask test` fail above it. Peers are not gated.
const PATTERN_FLASH_BUDGET: u32 = 32 * 256;

/// The firmware crate's size probe binary.
const SIZE_PROBE_BIN: &str = "size_probe";

/// The prefix of the firmware crate's peer features: not patterns, built only for the probe.
const PEER_PREFIX: &str = "peer-";

/// Pattern features that measure a second configuration of a pattern already in the probe
/// (a breaker with a consecutive-failures window beside the count window), or a pattern
/// reported beside the others (the adaptive throttle, fault injection, the pipeline with a
/// fallback, and hedging, issue 20): each
/// gets its row, beside its own peer if it has one, but neither it nor its peer is in the
/// "all patterns together" builds, which stay one configuration of each pattern, what one
/// application pays (and the figure the flash budget gates).
const VARIANTS: &[&str] = &[
    "breaker-consecutive",
    "throttle",
    "fault",
    "fallback",
    "hedge",
];

/// The prefix of the firmware crate's atomics set-up features (`cargo xtask firmware` runs
/// the Cortex-M3 image with each): not patterns; the probe's target gets its set-up from
/// the firmware's `Cargo.toml`.
const SETUP_PREFIX: &str = "atomics-";

/// The prefix of the firmware crate's logging features (`log-defmt`): not patterns.
const LOG_PREFIX: &str = "log-";

/// A peer crate: what an application would use instead of one stanchion pattern.
struct Peer {
    /// The stanchion pattern (feature) it stands beside.
    pattern: &'static str,
    /// What it is: crate, version, the type used.
    name: &'static str,
    /// Its feature of the firmware crate, or why it has none.
    build: PeerBuild,
}

impl Peer {
    /// The size probe's feature that builds it, if it builds.
    fn feature(&self) -> Option<&'static str> {
        match self.build {
            PeerBuild::Feature(f) | PeerBuild::ForScale(f) => Some(f),
            PeerBuild::DoesNotBuild(_) => None,
        }
    }
}

/// How a peer is measured.
enum PeerBuild {
    /// The size probe's feature that builds it.
    Feature(&'static str),
    /// The size probe's feature that builds it, shown for scale without a ratio: not a
    /// replacement for the pattern but a part that a peer may need.
    ForScale(&'static str),
    /// It does not build for [`SIZE_TARGET`] without std: why.
    DoesNotBuild(&'static str),
}

/// Every peer, in the order of the firmware crate's patterns. Those with a feature are
/// built; the others are listed with the reason they cannot be. Checked against the
/// firmware crate's features by [`size`], so a renamed feature fails loudly.
const PEERS: &[Peer] = &[
    Peer {
        pattern: "deadline",
        name: "embassy-time 0.5 alone (`Instant` arithmetic, `Timer::at`)",
        build: PeerBuild::Feature("peer-embassy-time-deadline"),
    },
    Peer {
        pattern: "rate-limit",
        name: "governor 0.7 `RateLimiter::direct_with_clock`, waited for by hand; its RAM \
               includes the 256-byte heap that linking `alloc` requires (its direct limiter \
               never allocates, so no allocator code remains)",
        build: PeerBuild::Feature("peer-governor"),
    },
    Peer {
        pattern: "rate-limit",
        name: "for scale: a heap that is used (embedded-alloc 0.7 `LlffHeap`, 256 bytes, one \
               `Box`), alone",
        build: PeerBuild::ForScale("peer-heap"),
    },
    Peer {
        pattern: "rate-limit",
        name: "governor 0.8 to 0.10",
        build: PeerBuild::DoesNotBuild(
            "depends on `web-time`, which re-exports `std::time` off the web",
        ),
    },
    Peer {
        pattern: "rate-limit",
        name: "ratelimit 2.0 (no_std)",
        build: PeerBuild::DoesNotBuild(
            "uses `core::sync::atomic::AtomicU64`: no 64-bit atomics on Cortex-M",
        ),
    },
    Peer {
        pattern: "retry",
        name: "backon 1.6 (`embassy-sleep`), exponential with jitter",
        build: PeerBuild::Feature("peer-backon"),
    },
    Peer {
        pattern: "breaker",
        name: "reliakit-circuit 1.1 `RollingBreaker<32>` in a critical-section `Mutex`",
        build: PeerBuild::Feature("peer-reliakit-circuit"),
    },
    Peer {
        pattern: "breaker",
        name: "failsafe 1.3, recloser 1.4",
        build: PeerBuild::DoesNotBuild("std only (threads, `std::time`, `parking_lot`)"),
    },
    Peer {
        pattern: "breaker-consecutive",
        name: "reliakit-circuit 1.1 `CircuitBreaker`: opens after N failures in a row, one \
               success in half-open closes; in a critical-section `Mutex`",
        build: PeerBuild::Feature("peer-reliakit-circuit-consecutive"),
    },
    Peer {
        pattern: "bulkhead",
        name: "embassy-sync 0.8 `FairSemaphore<_, 2>` under `with_deadline`",
        build: PeerBuild::Feature("peer-embassy-sync-semaphore"),
    },
    Peer {
        pattern: "timeout",
        name: "embassy-time 0.5 `with_timeout`",
        build: PeerBuild::Feature("peer-embassy-time-timeout"),
    },
    Peer {
        pattern: "pipeline",
        name: "the peers above composed by hand, same layer order",
        build: PeerBuild::Feature("peer-pipeline"),
    },
];

/// Which of the firmware's features a build enables.
pub(crate) enum Patterns<'a> {
    /// None: the baseline (executor, time driver, startup; the checks' image adds
    /// semihosting and the clock checks).
    None,
    /// Exactly these (one feature, or several separated by commas).
    Only(&'a str),
    /// The default set: every pattern.
    Default,
    /// The default set and these features (an atomics set-up).
    DefaultAnd(&'a str),
}

/// Builds the size probe with no pattern, each pattern, every pattern, and each peer and
/// every peer; prints the table of stanchion's rows with the peers beside them and writes
/// it to `firmware-size.md` in the bench tables' folder; then the same for the QEMU checks'
/// image (stanchion only, for context: a pattern's cost there includes its check's own code
/// and messages). Fails when `strict` and all patterns add more flash than
/// [`PATTERN_FLASH_BUDGET`]; peers are never gated.
pub(crate) fn size(strict: bool) -> Result {
    add_missing_targets(&[SIZE_TARGET])?;
    let (patterns, peer_features) = firmware_features()?;
    for peer in PEERS {
        if !patterns.iter().any(|p| p == peer.pattern) {
            return Err(format!(
                "size: PEERS names the pattern `{}`, which the firmware crate lacks",
                peer.pattern
            ));
        }
        if let Some(feature) = peer.feature()
            && !peer_features.iter().any(|f| f == feature)
        {
            return Err(format!(
                "size: PEERS names the feature `{feature}`, which the firmware crate lacks"
            ));
        }
    }
    let peers: Vec<&str> = PEERS.iter().filter_map(Peer::feature).collect();
    step(
        "firmware clippy: the size probe with every peer",
        firmware_cargo(&[
            "clippy",
            "--release",
            "--locked",
            "--target",
            SIZE_TARGET,
            "--target-dir",
            &firmware_dirs().1.to_string_lossy(),
            "--bin",
            SIZE_PROBE_BIN,
            "--features",
            &peers.join(","),
            "--",
            "-D",
            "warnings",
        ]),
    )?;

    let probe = measure(SIZE_PROBE_BIN, &patterns)?;
    let mut peer_sizes = Vec::new();
    for feature in &peers {
        let sizes = elf_sizes(&build_image(
            SIZE_TARGET,
            SIZE_PROBE_BIN,
            &Patterns::Only(feature),
        )?)?;
        peer_sizes.push((*feature, sizes));
    }
    let peers_together: Vec<&str> = PEERS
        .iter()
        .filter(|p| !VARIANTS.contains(&p.pattern))
        .filter_map(Peer::feature)
        .collect();
    let all_peers = elf_sizes(&build_image(
        SIZE_TARGET,
        SIZE_PROBE_BIN,
        &Patterns::Only(&peers_together.join(",")),
    )?)?;
    let table = peer_table(&probe, &peer_sizes, all_peers);
    println!(
        "xtask: size probe on {SIZE_TARGET}: what each pattern costs an application (gated), and its peers"
    );
    println!(
        "xtask: release, opt-level \"s\", fat LTO; bytes over the baseline; flash = text + rodata + data, RAM = data + bss"
    );
    print!("{table}");
    write_table("firmware-size", &table)?;
    write_table("headline-firmware", &headline_row(&probe, all_peers))?;

    let checks = measure(FIRMWARE_BIN, &patterns)?;
    let checks_table = checks_table(&checks);
    println!(
        "xtask: QEMU checks image on {SIZE_TARGET}: each pattern with its check (context only)"
    );
    print!("{checks_table}");
    write_table("firmware-size-checks", &checks_table)?;

    let probe_flash = probe.all.flash().saturating_sub(probe.baseline.flash());
    if probe_flash > PATTERN_FLASH_BUDGET {
        let message = format!(
            "all patterns together add {probe_flash} bytes of flash to the size probe, over \
             the budget of {PATTERN_FLASH_BUDGET}"
        );
        if strict {
            return Err(message);
        }
        println!("xtask: OVER BUDGET (`cargo xtask size --strict` fails): {message}");
    } else {
        println!(
            "xtask: all patterns add {probe_flash} bytes of flash to the size probe, within \
             the budget of {PATTERN_FLASH_BUDGET}"
        );
    }
    Ok(())
}

/// One binary's sizes: the baseline, each pattern alone, and every pattern.
struct Measured {
    baseline: Sizes,
    patterns: Vec<(String, Sizes)>,
    all: Sizes,
}

/// Builds `bin` with no pattern, each pattern alone and every pattern but the
/// [`VARIANTS`].
fn measure(bin: &str, patterns: &[String]) -> Result<Measured> {
    let baseline = elf_sizes(&build_image(SIZE_TARGET, bin, &Patterns::None)?)?;
    let mut each = Vec::new();
    for pattern in patterns {
        let sizes = elf_sizes(&build_image(SIZE_TARGET, bin, &Patterns::Only(pattern))?)?;
        each.push((pattern.clone(), sizes));
    }
    let together: Vec<&str> = patterns
        .iter()
        .map(String::as_str)
        .filter(|p| !VARIANTS.contains(p))
        .collect();
    let all = elf_sizes(&build_image(
        SIZE_TARGET,
        bin,
        &Patterns::Only(&together.join(",")),
    )?)?;
    Ok(Measured {
        baseline,
        patterns: each,
        all,
    })
}

/// `+N` bytes of `sizes` over `base`, flash and RAM.
fn deltas(sizes: Sizes, base: Sizes) -> (i64, i64) {
    (
        i64::from(sizes.flash()) - i64::from(base.flash()),
        i64::from(sizes.ram()) - i64::from(base.ram()),
    )
}

/// Peer flash over stanchion flash, as `0.52x`.
fn ratio(peer: i64, ours: i64) -> String {
    if ours <= 0 {
        return String::new();
    }
    format!("{:.2}x", peer as f64 / ours as f64)
}

/// The markdown table: one row per pattern and peer (a pattern with several peers gets one
/// row per peer, its own cells left empty after the first), the baseline, and the totals.
fn peer_table(probe: &Measured, peers: &[(&str, Sizes)], all_peers: Sizes) -> String {
    let base = probe.baseline;
    let mut out = String::new();
    out.push_str(
        "| pattern | stanchion flash | stanchion RAM | peer | peer flash | peer RAM | flash, peer / stanchion |\n\
         |---|---:|---:|---|---:|---:|---:|\n",
    );
    let _ = writeln!(
        out,
        "| baseline (executor, time driver, startup), absolute | {} | {} | same baseline | {} | {} | |",
        base.flash(),
        base.ram(),
        base.flash(),
        base.ram()
    );
    for (pattern, sizes) in &probe.patterns {
        let (flash, ram) = deltas(*sizes, base);
        let mut first = true;
        for peer in PEERS.iter().filter(|p| p.pattern == pattern) {
            let ours = if first {
                format!("| `{pattern}` | +{flash} | +{ram} ")
            } else {
                "| | | ".to_string()
            };
            first = false;
            let theirs = match peer.build {
                PeerBuild::Feature(feature) | PeerBuild::ForScale(feature) => {
                    match peers.iter().find(|(f, _)| *f == feature) {
                        Some((_, peer_sizes)) => {
                            let (pf, pr) = deltas(*peer_sizes, base);
                            let ratio = match peer.build {
                                PeerBuild::Feature(_) => ratio(pf, flash),
                                _ => String::new(),
                            };
                            format!("| {} | +{pf} | +{pr} | {ratio} |", peer.name)
                        }
                        None => format!("| {} | not built | | |", peer.name),
                    }
                }
                PeerBuild::DoesNotBuild(why) => {
                    format!("| {} | does not build: {why} | | |", peer.name)
                }
            };
            let _ = writeln!(out, "{ours}{theirs}");
        }
        if first {
            let _ = writeln!(out, "| `{pattern}` | +{flash} | +{ram} | none | | | |");
        }
    }
    let (flash, ram) = deltas(probe.all, base);
    let (pf, pr) = deltas(all_peers, base);
    let _ = writeln!(
        out,
        "| **all patterns together** (one breaker: the count window) | **+{flash}** | +{ram} | every peer that builds, together (one breaker) | +{pf} | +{pr} | {} |",
        ratio(pf, flash)
    );
    out
}

/// The QEMU checks' image: stanchion only, for context.
/// The README's headline row: all patterns' flash against every peer that builds.
fn headline_row(probe: &Measured, all_peers: Sizes) -> String {
    let (ours, _) = deltas(probe.all, probe.baseline);
    let (theirs, _) = deltas(all_peers, probe.baseline);
    let verdict = if ours <= theirs { "ahead" } else { "behind" };
    format!(
        "| firmware flash, all patterns together (thumbv7em; lower is better) | every peer that builds for the target, together | {} ({verdict}) |\n",
        ratio(ours, theirs)
    )
}

fn checks_table(checks: &Measured) -> String {
    let base = checks.baseline;
    let mut out = String::new();
    out.push_str("| checks image | flash | RAM |\n|---|---:|---:|\n");
    let _ = writeln!(
        out,
        "| baseline: executor, time driver, semihosting, clock and shared-state checks, absolute | {} | {} |",
        base.flash(),
        base.ram()
    );
    for (pattern, sizes) in &checks.patterns {
        let (flash, ram) = deltas(*sizes, base);
        let _ = writeln!(out, "| + `{pattern}` | +{flash} | +{ram} |");
    }
    let (flash, ram) = deltas(checks.all, base);
    let _ = writeln!(out, "| all patterns together | +{flash} | +{ram} |");
    out
}

/// Writes `table` to `<target>/bench-tables/<name>.md`, which `cargo xtask bench` pastes
/// between `BENCHMARKS.md`'s `<!-- table:<name> -->` markers.
fn write_table(name: &str, table: &str) -> Result {
    crate::tables::write(name, table)?;
    println!("xtask: wrote table {name}");
    Ok(())
}

/// Builds the firmware crate's binary `bin` (release) for `target` with the given
/// features; returns the ELF.
pub(crate) fn build_image(target: &str, bin: &str, patterns: &Patterns<'_>) -> Result<PathBuf> {
    let target_dir = firmware_dirs().1;
    let target_dir_arg = target_dir.to_string_lossy();
    let mut args = vec![
        "build",
        "--release",
        "--locked",
        "--target",
        target,
        "--target-dir",
        &target_dir_arg,
        "--bin",
        bin,
    ];
    let label = match patterns {
        Patterns::None => {
            args.push("--no-default-features");
            "no pattern".to_string()
        }
        Patterns::Only(features) => {
            args.extend(["--no-default-features", "--features", features]);
            format!("only {features}")
        }
        Patterns::Default => "every pattern".to_string(),
        Patterns::DefaultAnd(features) => {
            args.extend(["--features", features]);
            format!("every pattern, {features}")
        }
    };
    step(
        &format!("build firmware `{bin}` for {target} ({label})"),
        firmware_cargo(&args),
    )?;
    Ok(target_dir.join(target).join("release").join(bin))
}

/// The features of the firmware crate: the names in its `[features]` table, less
/// `default`, the atomics set-ups (`atomics-*`) and logging (`log-*`), split into patterns and peers
/// (`peer-*`).
fn firmware_features() -> Result<(Vec<String>, Vec<String>)> {
    let manifest_path = firmware_dirs().0.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
    let mut in_features = false;
    let (mut patterns, mut peers) = (Vec::new(), Vec::new());
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
        } else if in_features
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
            && name.trim() != "default"
        {
            let name = name.trim().to_string();
            if name.starts_with(PEER_PREFIX) {
                peers.push(name);
            } else if !name.starts_with(SETUP_PREFIX) && !name.starts_with(LOG_PREFIX) {
                patterns.push(name);
            }
        }
    }
    Ok((patterns, peers))
}

/// Bytes of an image's allocated sections, by kind.
#[derive(Clone, Copy, Debug, Default)]
struct Sizes {
    /// Executable code.
    text: u32,
    /// Read-only data, including the vector table.
    rodata: u32,
    /// Initialised writable data: in RAM, with its initial values in flash.
    data: u32,
    /// Zero-initialised (or uninitialised) RAM.
    bss: u32,
}

impl Sizes {
    fn flash(self) -> u32 {
        self.text + self.rodata + self.data
    }

    fn ram(self) -> u32 {
        self.data + self.bss
    }
}

/// Reads the section headers of a 32-bit little-endian ELF file (what every Arm
/// bare-metal target produces) and sums the allocated sections by kind, as `size -A` would.
fn elf_sizes(path: &Path) -> Result<Sizes> {
    const SHT_NOBITS: u32 = 8;
    const SHF_WRITE: u32 = 0x1;
    const SHF_ALLOC: u32 = 0x2;
    const SHF_EXECINSTR: u32 = 0x4;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let bad = || format!("{} is not a 32-bit little-endian ELF file", path.display());
    let u16_at = |at: usize| -> Result<u32> {
        let b = bytes.get(at..at.saturating_add(2)).ok_or_else(bad)?;
        Ok(u32::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u32_at = |at: usize| -> Result<u32> {
        let b = bytes.get(at..at.saturating_add(4)).ok_or_else(bad)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    // e_ident: magic, ELFCLASS32 (1), ELFDATA2LSB (1).
    if bytes.get(..6) != Some(b"\x7fELF\x01\x01".as_slice()) {
        return Err(bad());
    }
    let (section_headers, entry_size, count) = (u32_at(0x20)?, u16_at(0x2e)?, u16_at(0x30)?);
    let mut sizes = Sizes::default();
    for i in 0..count {
        let header = (section_headers as usize).saturating_add((i * entry_size) as usize);
        let (kind, flags, size) = (
            u32_at(header + 4)?,
            u32_at(header + 8)?,
            u32_at(header + 20)?,
        );
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        let bucket = if flags & SHF_EXECINSTR != 0 {
            &mut sizes.text
        } else if kind == SHT_NOBITS {
            &mut sizes.bss
        } else if flags & SHF_WRITE != 0 {
            &mut sizes.data
        } else {
            &mut sizes.rodata
        };
        *bucket += size;
    }
    Ok(sizes)
}

/// `cargo xtask size --symbols FEATURES`: builds the size probe with no pattern and with
/// `features`, and prints what the second adds over the first, symbol by symbol (as `nm`
/// sees them: code that the optimiser inlined is counted in the function it went into,
/// often the executor's `TaskStorage<F>::poll`), largest first, then the total beside the
/// row's flash from the section sizes. What the symbols do not account for (alignment
/// padding, unsized symbols) is printed as the rest, so every byte of the row is somewhere.
pub(crate) fn symbols(features: &str) -> Result {
    add_missing_targets(&[SIZE_TARGET])?;
    crate::ensure_debian_package("nm", "binutils")?;
    let baseline = build_image(SIZE_TARGET, SIZE_PROBE_BIN, &Patterns::None)?;
    let baseline_symbols = symbol_sizes(&baseline)?;
    let baseline_sizes = elf_sizes(&baseline)?;
    let image = build_image(SIZE_TARGET, SIZE_PROBE_BIN, &Patterns::Only(features))?;
    let image_symbols = symbol_sizes(&image)?;
    let (flash, ram) = deltas(elf_sizes(&image)?, baseline_sizes);

    let mut rows: Vec<(i64, char, &str)> = Vec::new();
    for ((kind, name), size) in &image_symbols {
        let before = baseline_symbols
            .get(&(*kind, name.clone()))
            .copied()
            .unwrap_or(0);
        if *size != before {
            rows.push((*size - before, *kind, name));
        }
    }
    for ((kind, name), size) in &baseline_symbols {
        if !image_symbols.contains_key(&(*kind, name.clone())) {
            rows.push((-*size, *kind, name));
        }
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(b.2)));
    println!("xtask: what `{features}` adds to the size probe on {SIZE_TARGET}, by symbol");
    println!("| bytes | kind | symbol |\n|---:|---|---|");
    let (mut in_flash, mut in_ram) = (0i64, 0i64);
    for (delta, kind, name) in &rows {
        println!("| {delta:+} | {} | `{name}` |", kind_name(*kind));
        match kind.to_ascii_lowercase() {
            't' | 'r' => in_flash += delta,
            'd' => {
                in_flash += delta;
                in_ram += delta;
            }
            'b' => in_ram += delta,
            _ => {}
        }
    }
    println!(
        "xtask: flash {flash:+} ({in_flash:+} in the symbols above, {:+} in padding and \
         unsized symbols); RAM {ram:+} ({in_ram:+} in symbols)",
        flash - in_flash
    );
    Ok(())
}

/// `nm`'s one-letter symbol kind, in words.
fn kind_name(kind: char) -> &'static str {
    match kind.to_ascii_lowercase() {
        't' => "code",
        'r' => "read-only data",
        'd' => "data (flash and RAM)",
        'b' => "zeroed RAM",
        _ => "other",
    }
}

/// The sized symbols of an ELF file, by kind and demangled name,
/// summed over symbols that share a name: `nm --print-size --demangle`.
fn symbol_sizes(path: &Path) -> Result<std::collections::BTreeMap<(char, String), i64>> {
    let out = crate::command("nm", &["--print-size", "--size-sort", "--demangle"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run nm: {e}"))?;
    if !out.status.success() {
        return Err(format!("nm {} failed ({})", path.display(), out.status));
    }
    let mut sizes = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // address, size, kind, name (the name may hold spaces: `<T as Trait>::f`).
        let mut fields = line.splitn(4, ' ');
        let (Some(_), Some(size), Some(kind), Some(name)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(size), Some(kind)) = (i64::from_str_radix(size, 16), kind.chars().next()) else {
            continue;
        };
        *sizes
            .entry((kind.to_ascii_lowercase(), name.to_string()))
            .or_insert(0) += size;
    }
    Ok(sizes)
}
