//! Resilience patterns as deterministic, sans-IO state machines: rate limiting, retry with
//! backoff and jitter, circuit breaking, bulkheads and deadlines.
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
//! | `critical-section` | routes every atomic read-modify-write through `critical-section`, for targets without compare-and-swap (`thumbv6m`, `riscv32imc`); on single-core chips with 32-bit compare-and-swap but no 64-bit atomics (`thumbv7m`, `thumbv7em`) enable `portable-atomic/unsafe-assume-single-core` in the firmware instead (see `stanchion-embassy`'s docs for why: the default emulation there is a spinlock, which deadlocks against interrupt handlers) |
//!
//! No feature is on by default.
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

pub mod adaptive;
pub mod breaker;
pub mod bulkhead;
pub mod clock;
pub mod deadline;
pub mod error;
pub mod pipeline;
pub mod rate;
pub mod retry;
pub mod sync;
pub mod time;

pub use clock::{Clock, ManualClock};
pub use deadline::Deadline;
pub use error::ConfigError;
pub use time::Instant;

/// Proptest case count for core's property tests: `n` normally, a handful under Miri,
/// which interprets every step (roughly a thousand times slower) and checks for undefined
/// behaviour rather than for rare inputs; the full runs stay in `cargo test`.
#[cfg(test)]
pub(crate) const fn proptest_cases(n: u32) -> u32 {
    if cfg!(miri) { 4 } else { n }
}
