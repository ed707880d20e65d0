//! Resilience patterns as deterministic, sans-IO state machines: rate limiting, retry with
//! backoff and jitter, circuit breaking, bulkheads, deadlines, adaptive client-side
//! throttling, fault injection and hedging.
//!
//! Fully deterministic, no I/O: every decision takes the current time as an argument and
//! returns what happened, plus (where it matters) the next instant of interest. Nothing
//! here reads a clock, sleeps, allocates or uses floating point, so the same code runs in
//! microcontroller firmware, in tokio services and in tests on a virtual clock, where a
//! one-hour outage takes no wall time.
//!
//! # Layers
//!
//! 1. **Decisions** take `now`: `limiter.acquire_at(n, now)`,
//!    `breaker.try_acquire_at(now)`, `retry.on_failure_at(now, hint)`. This is what the
//!    property tests, fuzzers and model checkers drive.
//! 2. **Clock-bound** forms read a [`Clock`] and call the decision: `limiter.acquire(n)`.
//! 3. **Adapters** (other crates) sleep, wait and compose over a runtime:
//!    `stanchion-std` for tokio and tower, `stanchion-embassy` for embassy.
//!
//! # Time
//!
//! [`Instant`] is a `u64` of nanoseconds since a clock's epoch; spans are
//! [`core::time::Duration`]. All arithmetic saturates or is checked. A clock that steps
//! backwards is treated as "no time passed", never as a reason to admit more.
//!
//! # Goals
//!
//! - No panic on any input: bad configuration is a [`ConfigError`] at construction;
//!   extreme times, counts and durations saturate.
//! - No allocation, no `std`, no floating point in decisions; builds for `thumbv6m`
//!   (no compare-and-swap), `thumbv7em` (no 64-bit atomics) and `riscv32imc`.
//! - Shareable by `&` across threads, tasks and interrupt handlers: one atomic word where
//!   the state fits, a short critical section of the caller's choosing otherwise (see
//!   [`sync`]).
//!
//! # Non-goals
//!
//! - Sleeping, waiting or spawning: that is the adapters' job.
//! - Reading a clock inside a decision.
//! - Distributed state: the Redis-backed limiter lives in `stanchion-std`.
//!
//! # Features
//!
//! | feature | what it does |
//! |---|---|
//! | `defmt` | derives `defmt::Format` for every public type |
//! | `critical-section` | firmware, any chip: every atomic stanchion uses is made safe to share with interrupt handlers through the `critical-section` crate (the binary links an implementation, such as `cortex-m/critical-section-single-core` or a HAL's multi-core one) |
//! | `single-core` | firmware on a single-core chip running privileged code only: atomics the chip lacks are emulated by masking interrupts directly (`portable-atomic/unsafe-assume-single-core`); faster than `critical-section`, unsound on several cores |
//! | `serde` | `Deserialize` and `Serialize` for every configuration type (`no_std`, no allocation), validated on the way in through the constructors (a bad value is an error naming the field and the allowed range), durations in a human form (`"250ms"`, `"1m30s"`): see [`config`] |
//!
//! No feature is on by default, and hosts need none.
//!
//! # Firmware: pick `critical-section` or `single-core`
//!
//! Every limiter that holds an [`Instant`] keeps it in a 64-bit atomic, and a grant is a
//! compare-and-swap. Microcontrollers lack some of these: a Cortex-M3/M4/M7 has no 64-bit
//! atomics, a Cortex-M0/M0+ or a `riscv32imc` has no compare-and-swap at all. Emulating them
//! must stay sound when an interrupt handler preempts thread mode in the middle of an
//! update, and the safe emulation depends on the chip, which a library cannot know. So a
//! bare-metal build (`target_os = "none"`) of a target without native 64-bit atomics that
//! enables neither feature fails to compile, with a message naming both:
//!
//! - **`critical-section`**: correct on any chip, single- or multi-core. Each emulated
//!   operation runs inside `critical_section::with`, so an interrupt handler never sees one
//!   half done and never waits for one. The default choice.
//! - **`single-core`**: only for a chip with one core whose code runs privileged (thread
//!   mode on Cortex-M is, unless an RTOS drops it). Each emulated operation masks
//!   interrupts inline (PRIMASK on Cortex-M), with no call into a `critical-section`
//!   implementation, and loads and stores up to 32 bits are plain instructions.
//!
//! The two are exclusive (`portable-atomic` refuses its `critical-section` and
//! `unsafe-assume-single-core` together). Without either, `portable-atomic`'s fallback for
//! 64-bit atomics on a chip with 32-bit compare-and-swap is a global spinlock: an interrupt
//! handler that touches one while thread mode holds the lock spins forever, which is why
//! stanchion refuses to build that way rather than hang under load. The firmware example
//! (`examples/firmware`) runs both set-ups under QEMU with a limiter hammered from thread
//! mode and an interrupt handler at once.
#![no_std]
// Core has no unsafe code. The one exception, in core's loom tests only, is the unsafe
// `RawMutex` implementation of the loom models' mutex (`sync::loom_mutex`), under an `allow`.
#![cfg_attr(not(all(test, loom)), forbid(unsafe_code))]
#![cfg_attr(all(test, loom), deny(unsafe_code))]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::float_arithmetic
    )
)]
#![cfg_attr(not(test), warn(clippy::expect_used))]

// A bare-metal build without a safe way to emulate the 64-bit atomics the target lacks
// (see "Firmware" above) fails here rather than hang under an interrupt.
#[cfg(all(
    target_os = "none",
    not(target_has_atomic = "64"),
    not(feature = "critical-section"),
    not(feature = "single-core"),
))]
compile_error!(
    "stanchion: this target has no native 64-bit atomics, so stanchion needs to know how to \
     emulate them safely against interrupt handlers: enable stanchion's (or stanchion-embassy's) \
     `critical-section` feature (any chip; the binary links a `critical-section` \
     implementation, such as `cortex-m/critical-section-single-core`), or its `single-core` \
     feature (single-core chips running privileged code only; faster). \
     Without either, portable-atomic's spinlock fallback deadlocks when an interrupt handler \
     preempts thread mode in a 64-bit update. See stanchion's crate docs, \"Firmware\"."
);

pub mod adaptive;
pub mod breaker;
pub mod bulkhead;
pub mod clock;
pub mod config;
pub mod deadline;
mod div;
pub mod error;
pub mod fallback;
pub mod fault;
pub mod hedge;
pub mod pipeline;
pub mod rate;
pub mod retry;
pub mod sync;
pub mod throttle;
pub mod time;

pub use clock::{Clock, ManualClock};
pub use deadline::Deadline;
pub use error::ConfigError;
pub use time::Instant;

/// The random generator core's backoffs, policies and breakers draw jitter from
/// ([`fastrand::Rng`]), re-exported so that an application seeds the same version core
/// uses without depending on `fastrand` itself.
pub use fastrand;

/// Proptest case count for core's property tests: `n` normally, a handful under Miri,
/// which interprets every step (roughly a thousand times slower) and checks for undefined
/// behaviour rather than for rare inputs; the full runs stay in `cargo test`.
#[cfg(test)]
pub(crate) const fn proptest_cases(n: u32) -> u32 {
    if cfg!(miri) { 4 } else { n }
}

// The README's example (what crates.io shows), run with the doc tests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
