//! stanchion on embassy: a clock and async runners for firmware.
//!
//! `no_std`, no allocation, no `Send` bounds (embassy's executors are single-threaded).
//! The decisions live in [`stanchion`] (re-exported here); this crate reads time from
//! `embassy-time`, whose tick rate the firmware binary chooses, sleeps with its `Timer`
//! (always until an instant, rounded up to the next tick, so never early), and queues
//! tasks behind embassy-sync's blocking mutexes:
//!
//! | what | where |
//! |---|---|
//! | [`EmbassyClock`]: core's `Clock` on embassy-time's ticks | [`clock`](EmbassyClock) |
//! | [`retry()`], [`retry_with_hint`]: run, ask the policy, sleep, run again | [`mod@retry`] |
//! | [`timeout()`], [`timeout_at`]: bound a future by a span or a `Deadline` | [`mod@timeout`] |
//! | [`RateLimitQueue`]: wait for any rate limiter, in line (FIFO), bounded, with a deadline | [`rate`] |
//! | [`BulkheadQueue`]: wait for a bulkhead slot, in line (FIFO), bounded, with a deadline | [`mod@bulkhead`] |
//! | [`breaker::call`]: one breaker permit per call, held across the `.await` | [`breaker`] |
//! | [`Pipeline`]: all of them in core's order, returning core's `PipelineError` | [`pipeline`] |
//! | [`sleep()`], [`sleep_until`]: sleep on core's `Duration` and `Instant`, without 64-bit division | [`mod@sleep`] |
//! | [`fault::call`]: fault injection (an error, an outcome or latency in a share of calls, switched at run time); the pipeline's innermost position | [`fault`] |
//! | [`throttle::call`]: adaptive client-side throttling (not a pipeline position), refusing locally what the backend would reject | [`throttle`] |
//!
//! Every runner is a plain `async fn` or a `const`-constructible struct, so the shared
//! parts (queues, limiters, breakers) can be `static`s. Every configuration constructor is
//! a `const fn` returning a `Result`; [`const_config!`](stanchion::const_config) unwraps it at
//! compile time, so a bad constant fails the build and names the field:
//!
//! ```
//! use core::time::Duration;
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
//! use stanchion::const_config;
//! use stanchion::rate::{Quota, TokenBucket};
//! use stanchion::sync::CriticalSectionRawMutex;
//! use stanchion_embassy::RateLimitQueue;
//!
//! /// Three at once, then one every 100 ms; two tasks may wait in line.
//! static UPLINK: RateLimitQueue<CriticalSectionRawMutex, TokenBucket, 2> =
//!     RateLimitQueue::new(TokenBucket::new(const_config!(
//!         const_config!(Quota::per_period(Duration::from_millis(100))).with_burst(3)
//!     )));
//!
//! /// Opens after 5 failures in a row, for 10 s.
//! static SENSOR: CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex> =
//!     const_config!(CircuitBreaker::new(
//!         BreakerConfig::new().open_duration(Duration::from_secs(10)),
//!         const_config!(ConsecutiveWindow::new(5)),
//!     ));
//! # let _ = (&UPLINK, &SENSOR);
//! ```
//!
//! Host tests run the runners on embassy-time's mock driver (`tests/`), the firmware
//! example under QEMU.
//!
//! # Dependencies and features
//!
//! One dependency is enough: this crate re-exports [`stanchion`] and forwards its features.
//! It is built against **embassy-time 0.5** and **embassy-sync 0.8**: the firmware's own
//! embassy crates must be those versions (semver-compatible), so that the time driver and
//! tick rate the binary picks are the ones this crate reads. For example:
//!
//! ```toml
//! [dependencies]
//! stanchion-embassy = { version = "0.1", features = ["critical-section"] }
//! embassy-time = { version = "0.5", features = ["tick-hz-1_000"] }
//! cortex-m = { version = "0.7", features = ["critical-section-single-core"] }
//! ```
//!
//! | feature | what it does |
//! |---|---|
//! | `critical-section` | core's `critical-section`: every atomic stanchion uses is safe to share with interrupt handlers, on any chip, through the binary's `critical-section` implementation |
//! | `single-core` | core's `single-core`: atomics the chip lacks mask interrupts inline (`portable-atomic/unsafe-assume-single-core`); single-core chips running privileged code only |
//! | `defmt` | derives `defmt::Format` for every public type, core's included; the runners log their refusals and retries, and [`events`] has `defmt` listeners for a breaker and a bulkhead |
//!
//! # Firmware: which atomics feature to pick
//!
//! stanchion keeps state that fits one word in an atomic (a 64-bit one for anything that
//! holds an [`Instant`](stanchion::Instant), such as a token bucket's theoretical arrival
//! time), and shares larger state through [`Locked`](stanchion::sync::Locked). Most
//! microcontrollers lack some of these atomics, and emulating them must stay sound when an
//! interrupt handler preempts thread mode in the middle of an update. A library cannot
//! know the chip, so the firmware picks one of two features; a bare-metal build of a target
//! without native 64-bit atomics that picks neither fails to compile, naming both:
//!
//! | chip | pick | the binary also links |
//! |---|---|---|
//! | any: Cortex-M0/M0+ (`thumbv6m-none-eabi`), Cortex-M3/M4/M7 (`thumbv7m-none-eabi`, `thumbv7em-none-eabi[hf]`), `riscv32imc`, several cores (RP2040, RP2350) | `critical-section` | a `critical-section` implementation: `cortex-m/critical-section-single-core` on one core, the HAL's multi-core one otherwise |
//! | one core, privileged code (thread mode on Cortex-M, unless an RTOS drops it), where flash or cycles are tight | `single-core` | nothing more for the atomics |
//!
//! Why:
//!
//! - **`critical-section` is correct everywhere.** Every emulated atomic operation (every
//!   read-modify-write on `thumbv6m`, every 64-bit operation on `thumbv7m`/`thumbv7em`)
//!   runs inside `critical_section::with`: on one core it masks interrupts for the few
//!   instructions of the operation, so an interrupt handler never finds one half done.
//! - **`single-core` is faster** (`portable-atomic/unsafe-assume-single-core`):
//!   the masking is inline (PRIMASK), with no call into a `critical-section`
//!   implementation, and loads and stores up to 32 bits need none. It is sound only on one
//!   core running privileged code, hence `unsafe` in portable-atomic's name for it.
//! - **Neither is a hang, so it does not build.** `portable-atomic`'s default emulation of
//!   64-bit atomics on a chip with 32-bit compare-and-swap is a global *spinlock* (its own
//!   `critical-section` feature does not change that: it covers only chips without
//!   compare-and-swap). If an interrupt handler preempts thread mode while thread mode
//!   holds that lock and then touches a 64-bit atomic, it spins forever, since the code
//!   that would release the lock cannot run until the handler returns.
//! - **Larger shared state needs critical sections, not spinlocks**, for the same reason:
//!   share it as `Locked<CriticalSectionRawMutex, _>`, which masks interrupts for the few
//!   instructions of an update (embassy-sync's `CriticalSectionRawMutex` needs a
//!   `critical-section` implementation whichever feature you pick).
//! - **`critical-section` covers stanchion's atomics, not other crates'.** Another crate in
//!   the firmware that uses `portable_atomic::AtomicU64` itself still gets portable-atomic's
//!   spinlock on a Cortex-M3/M4/M7 (and its lock table, about 2 KiB of RAM). On a
//!   single-core chip, `single-core` covers every crate's `portable-atomic` atomics at once.
//! - The two features are exclusive: `portable-atomic` refuses its `critical-section` and
//!   `unsafe-assume-single-core` together.
//!
//! The firmware example (`examples/firmware`, `cargo xtask firmware`) runs every supported
//! set-up under QEMU: `critical-section` on a Cortex-M0 and on a Cortex-M3, `single-core`
//! on a Cortex-M3, each with one token bucket hammered from thread mode and an interrupt
//! handler at once.
//!
//! # Interrupt handlers: what to call from one
//!
//! An interrupt handler may call anything that never waits, on a `static` shared with
//! thread mode, once the atomics set-up above is chosen and every [`Locked`](stanchion::sync::Locked) or
//! [`RawMutex`](stanchion::sync::RawMutex) parameter is `CriticalSectionRawMutex`:
//!
//! | fine in an interrupt handler | not in an interrupt handler |
//! |---|---|
//! | rate limiters: `acquire_at`, `peek_at`, `remaining_at`, `reset`, `set_quota` (a [`SharedLimiter`](stanchion::rate::SharedLimiter) too, with `CriticalSectionRawMutex`); the clock-bound forms with [`EmbassyClock`] | [`RateLimitQueue::acquire`] (it awaits) |
//! | breakers: `try_acquire_at`, recording through the permit (`success`, `failure`, `ignored`, `record_at`), `state`, `metrics_at`, the manual transitions; the breaker's listener then runs in the handler | [`breaker::call`] and [`breaker::call_classified`] (they await the call) |
//! | bulkheads: `try_acquire` on [`BulkheadQueue::bulkhead`], dropping a permit (it wakes the front waiter) | [`BulkheadQueue::acquire`] |
//! | `Locked::with` with `CriticalSectionRawMutex` (keep the closure short: interrupts stay masked) | anything behind `NoopRawMutex` (one executor only; it is `!Sync`, so it cannot be a shared `static`) |
//! | a `RetryPolicy`'s decisions (`on_failure_at`, ...), on state the handler owns | [`retry()`], [`retry_with_hint`], [`timeout()`], [`timeout_at`], [`Pipeline`] (all async) |
//!
//! An interrupt handler does not wait in line: [`RateLimitQueue`] and [`BulkheadQueue`]
//! keep their arrival order among the tasks that await them, but a handler that calls the
//! limiter or the bulkhead directly takes what is there, ahead of the queue. A handler
//! that takes permits as fast as they come can starve the queued tasks (in a user's stress
//! test, thread mode got 2 permits of 20): give the handler a limiter of its own, or a
//! share of the quota ([`Quota::share`](stanchion::rate::Quota::share)), when both must
//! progress.
#![no_std]
#![deny(missing_docs)]

pub mod breaker;
pub mod bulkhead;
mod clock;
pub mod events;
pub mod fault;
mod fifo;
pub mod hedge;
pub mod pipeline;
pub mod rate;
pub mod retry;
pub mod sleep;
pub mod throttle;
pub mod timeout;

pub use breaker::BreakerError;
pub use bulkhead::{BulkheadQueue, QueuedPermit, SlotSignal};
pub use clock::EmbassyClock;
#[cfg(feature = "defmt")]
pub use events::{DefmtBreakerListener, DefmtBulkheadListener};
pub use pipeline::Pipeline;
pub use rate::RateLimitQueue;
pub use retry::{retry, retry_with_hint};
pub use sleep::{sleep, sleep_until};
pub use stanchion;
pub use stanchion::retry::RetryError;
pub use timeout::{Elapsed, Timeout, timeout, timeout_at};
