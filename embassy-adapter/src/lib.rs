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
//!
//! Every runner is a plain `async fn` or a `const`-constructible struct, so the shared
//! parts (queues, limiters, breakers) can be `static`s. Host tests run them on
//! embassy-time's mock driver (`tests/`), the firmware example under QEMU.
//!
//! # Firmware: the atomics features to enable, and why
//!
//! stanchion keeps state that fits one word in a `portable_atomic` atomic (a 64-bit one
//! for anything that holds an [`Instant`](stanchion::Instant), such as a token bucket's
//! theoretical arrival time), and shares larger state through
//! [`Locked`](stanchion::sync::Locked). Cortex-M chips lack some of these atomics and
//! `portable-atomic` emulates them; the emulation must stay sound when an interrupt handler
//! preempts thread mode in the middle of an update. A library cannot know the chip, so the
//! firmware binary chooses, in its `Cargo.toml`:
//!
//! | chip | lacks | the firmware enables |
//! |---|---|---|
//! | single core, no compare-and-swap: Cortex-M0/M0+ (`thumbv6m-none-eabi`), `riscv32imc` | every read-modify-write | `stanchion/critical-section` (it turns on `portable-atomic/critical-section`) and a `critical-section` implementation, such as `cortex-m/critical-section-single-core` |
//! | single core, 32-bit compare-and-swap: Cortex-M3/M4/M7 (`thumbv7m-none-eabi`, `thumbv7em-none-eabi[hf]`) | 64-bit atomics | `portable-atomic/unsafe-assume-single-core`, and *not* `stanchion/critical-section` (portable-atomic refuses the two together) |
//! | several cores, no compare-and-swap (RP2040) | every read-modify-write | `stanchion/critical-section`, with the HAL's multi-core `critical-section` implementation |
//! | several cores, 32-bit compare-and-swap (RP2350) | 64-bit atomics | `portable-atomic/unsafe-assume-privileged` |
//!
//! Why:
//!
//! - **`thumbv6m` has no compare-and-swap**, so no read-modify-write on any atomic: a grant
//!   (one compare-and-swap) can only be emulated, by masking interrupts around it. That is
//!   what `portable-atomic`'s `critical-section` feature does, through whatever
//!   `critical-section` implementation the binary links (on one core, interrupt masking).
//! - **`thumbv7em` has no 64-bit atomics.** There, `portable-atomic`'s default emulation
//!   is a global *spinlock*, and its `critical-section` feature does not change that (it
//!   applies only to targets without compare-and-swap). A spinlock deadlocks against an
//!   interrupt handler on one core: if the handler preempts thread mode while thread mode
//!   holds the lock and then updates a 64-bit atomic behind the same lock, it spins forever,
//!   since the code that would release the lock cannot run until the handler returns. The
//!   firmware example (`examples/firmware`) hangs exactly so without the feature.
//!   `unsafe-assume-single-core` makes each 64-bit operation mask interrupts for a few
//!   instructions instead. It is sound on a single core running privileged code (thread
//!   mode on Cortex-M is privileged unless an RTOS drops it); hence `unsafe` in its name.
//! - **Interrupt handlers sharing larger state need critical sections, not spinlocks**, for
//!   the same reason: share it as `Locked<CriticalSectionRawMutex, _>`, which masks
//!   interrupts for the few instructions of an update (embassy-sync's
//!   `CriticalSectionRawMutex` needs a `critical-section` implementation in any case).
//!
//! The firmware example runs both routes under QEMU: `critical-section` on a Cortex-M0 and
//! `unsafe-assume-single-core` on a Cortex-M3, with an interrupt handler and thread mode
//! updating the same state (`cargo xtask firmware`).
#![no_std]
#![deny(missing_docs)]

pub mod breaker;
pub mod bulkhead;
mod clock;
mod fifo;
pub mod pipeline;
pub mod rate;
pub mod retry;
pub mod timeout;

pub use breaker::BreakerError;
pub use bulkhead::{BulkheadQueue, QueuedPermit, SlotSignal};
pub use clock::EmbassyClock;
pub use pipeline::Pipeline;
pub use rate::RateLimitQueue;
pub use retry::{retry, retry_with_hint};
pub use stanchion;
pub use stanchion::retry::RetryError;
pub use timeout::{Elapsed, Timeout, timeout, timeout_at};
