//! The circuit breaker: stops calling a dependency that is failing, and probes it again
//! after a while.
//!
//! # What it does
//!
//! [`CircuitBreaker::try_acquire_at`] answers, at `now`, whether a call may go ahead. It
//! returns a [`Permit`], on which the caller records the call's outcome
//! ([`success`](Permit::success), [`failure`](Permit::failure) or
//! [`ignored`](Permit::ignored), with the call's duration), or a [`Rejected`] saying which
//! state rejected it and, when known, how long to wait.
//!
//! - **Closed**: calls pass and outcomes go into a [`window`]. Once it holds at least
//!   `minimum_calls` (clamped to a count window's size), the breaker opens when the failure
//!   rate is at or above its threshold, or the slow-call rate is at or above its threshold
//!   (both inclusive). A call is slow when its duration is strictly above
//!   `slow_call_duration`.
//! - **Open**: calls are rejected with `retry_after` = the time until the first instant
//!   strictly after the open duration. The first acquire after that moves the breaker to
//!   half-open (lazily: nothing happens without a caller). The open duration is fixed
//!   ([`FixedOpenDuration`]) or drawn from any [`Backoff`](crate::retry::Backoff) at each
//!   consecutive opening, reset when the breaker closes.
//! - **Half-open**: exactly `permitted_calls_in_half_open` permits are issued, reserved
//!   atomically; a permit dropped without an outcome or recorded as ignored gives its
//!   slot back. Once `min(minimum_calls, permitted_calls_in_half_open)` outcomes are in,
//!   the same thresholds over those probes decide: open again or close. An optional
//!   maximum wait sends a breaker that has not decided in time to open (or closed).
//! - **Manual states**: [forced-open](State::ForcedOpen) rejects everything,
//!   [disabled](State::Disabled) lets everything through and records nothing,
//!   [metrics-only](State::MetricsOnly) records and reports thresholds (once per kind) but
//!   never opens; [`open_for_at`](CircuitBreaker::open_for_at) and
//!   [`open_until_at`](CircuitBreaker::open_until_at) open for a given time;
//!   [`reset_at`](CircuitBreaker::reset_at) starts afresh. An illegal transition (closed
//!   or metrics-only to half-open, metrics-only to open, as in resilience4j's table) is an
//!   [`IllegalTransition`] error.
//! - A permit belongs to the *period* (the stretch between two transitions) that issued
//!   it: the outcome of a call admitted before a trip does not count as a half-open probe,
//!   and releasing a probe permit of an earlier half-open period frees no slot in a later
//!   one. Outcomes count only in the period that admitted the call, in every state.
//! - Events (each real transition exactly once, rejections, thresholds exceeded, resets)
//!   go to a [`BreakerListener`]; [`metrics_at`](CircuitBreaker::metrics_at) returns a
//!   [`BreakerMetrics`] snapshot.
//!
//! # When to choose it
//!
//! In front of a dependency whose failures are correlated (a service that is down stays
//! down for a while), so that callers fail fast instead of queueing on timeouts, and the
//! dependency gets room to recover. Pick the window: [`CountWindow`](window::CountWindow)
//! (the last N calls; the usual choice), [`TimeWindow`](window::TimeWindow) (the last T of
//! time, for bursty traffic), [`ConsecutiveWindow`](window::ConsecutiveWindow) (N failures
//! in a row, for low traffic). The count and time windows take their size when compiling;
//! when it comes from configuration read at start, use
//! [`CountWindowUpTo`](window::CountWindowUpTo) or
//! [`TimeWindowUpTo`](window::TimeWindowUpTo) instead: a capacity fixed when compiling, a
//! size up to it given to `new`, the same decisions (see [`window`]). For load shedding
//! without a notion of failure, use a rate limiter or a bulkhead instead.
//!
//! # Example
//!
//! ```
//! use core::time::Duration;
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker, State, window::CountWindow};
//! use stanchion::sync::CriticalSectionRawMutex;
//! use stanchion::Instant;
//!
//! const CONFIG: BreakerConfig = BreakerConfig::new()
//!     .failure_rate_threshold(50)
//!     .minimum_calls(4)
//!     .permitted_calls_in_half_open(1)
//!     .open_duration(Duration::from_secs(10));
//! let breaker: CircuitBreaker<CountWindow<4>, CriticalSectionRawMutex> =
//!     CircuitBreaker::new(CONFIG, CountWindow::new()?)?;
//!
//! let ms = Duration::from_millis;
//! for ok in [true, false, true, false] {
//!     let permit = breaker.try_acquire_at(Instant::ZERO)?;
//!     if ok { permit.success(ms(5)) } else { permit.failure(ms(5)) }
//! }
//! // 2 of 4 failed: 50 % reaches the threshold.
//! assert_eq!(breaker.state(), State::Open);
//! let rejected = breaker.try_acquire_at(Instant::from_secs(1)).unwrap_err();
//! assert_eq!(rejected.retry_after, Some(Duration::from_nanos(9_005_000_001)));
//!
//! // Strictly after the open duration, one probe goes through and decides.
//! let probe = breaker.try_acquire_at(Instant::from_secs(11))?;
//! assert_eq!(breaker.state(), State::HalfOpen);
//! assert!(breaker.try_acquire_at(Instant::from_secs(11)).is_err()); // one slot only
//! probe.success(ms(5));
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A breaker is a `const` away from a `static` in firmware:
//!
//! ```
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
//! use stanchion::const_config;
//! use stanchion::sync::CriticalSectionRawMutex;
//!
//! static BREAKER: CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex> =
//!     const_config!(CircuitBreaker::new(
//!         BreakerConfig::new(),
//!         const_config!(ConsecutiveWindow::new(5)),
//!     ));
//! assert!(BREAKER.try_acquire_at(stanchion::Instant::ZERO).is_ok());
//! ```
//!
//! # Cost
//!
//! State: three `u64`s (state word, deadline, rejection count: atomics; on targets
//! without native 64-bit atomics, fields of the locked state), a fourth in the locked
//! state (the rejection count when the current state was entered), the configuration
//! (48 bytes), the window (see [`window`]), the backoff, a random generator (8 bytes), the
//! lock of kind `M`, and `S` stripes of 64 bytes each (256 bytes by default on targets
//! with an operating system; none on bare metal).
//!
//! - Acquire in closed, disabled, metrics-only: one atomic load; nothing written.
//! - Acquire in open: two or three atomic loads and a comparison while rejecting (plus the
//!   relaxed increment of the rejection count); the critical section once, to move to
//!   half-open.
//! - Acquire in half-open: one compare-and-swap per probe slot.
//! - Outcome: one critical section holding the window update and the threshold check
//!   (O(1) for every window; a time window also steps over the buckets that time has
//!   moved past, at most `B`); a transition adds two atomic stores. Calls that are not
//!   slow mostly skip it, in closed and metrics-only, on targets with native 64-bit
//!   atomics:
//!   - with a [`ConsecutiveWindow`](window::ConsecutiveWindow), while no slow streak
//!     runs, the failure streak is kept in the state word (the *streak* bit): a success
//!     is one atomic load (no streak running) or one compare-and-swap (ending one), a
//!     failure one compare-and-swap, but the failure that reaches the streak length,
//!     which takes the critical section and opens;
//!   - with a [`CountWindow`](window::CountWindow) or [`TimeWindow`](window::TimeWindow)
//!     holding `minimum_calls` (and, for a time window, within its latest bucket), a
//!     success is one compare-and-swap (the *batch* bit): without an operating system it
//!     is counted in the state word; with one, in one of four counters on
//!     cache lines of their own, so that threads on different cores do not pass one line
//!     back and forth ([`DEFAULT_STRIPES`], the breaker's `S` parameter); failures take
//!     the critical section, which decides whether to open;
//!   - a custom window may say that a success changes nothing (the *quiet* bit: one
//!     atomic load).
//!
//!   The next critical section takes what the word holds back into the window first, so
//!   outcomes count once each and in order. Ignored outcomes and dropped permits take no
//!   lock (one compare-and-swap in half-open, nothing otherwise).
//!
//! Measured against failsafe and recloser in `BENCHMARKS.md`: a closed call (acquire and
//! record) with a consecutive window costs a few nanoseconds on one thread.
//!
//! On targets without 64-bit atomics (`thumbv6m`, `thumbv7em`, `riscv32imc`) the atomics
//! go through `portable-atomic`'s fallback (a critical section, with the
//! `critical-section` feature). There a compare-and-swap on the word costs about what the
//! breaker's own critical section costs, so the state word and the deadline live in the
//! locked state as plain fields: an acquire is one critical section in every state, an
//! outcome another (a dropped or ignored half-open permit too), and none of the lock-free
//! paths above (streak, batch, quiet, stripes) is compiled in: the firmware pays only for
//! the code it runs, and each operation masks interrupts once rather than once per
//! atomic. Nor, with the listener `()`, are events
//! collected or the rates they report computed ([`BreakerListener::listens`]).
//!
//! # Where it comes from
//!
//! Michael Nygard's *Release It!* (2007) named the pattern; the states, windows, rate
//! thresholds, slow calls, half-open permits, maximum wait and manual states follow
//! resilience4j's `CircuitBreaker`, whose behaviour is the reference where DESIGN.md is
//! silent. Choices made after resilience4j, documented where they apply: a reset is
//! reported as the transition to closed (unless already closed), then the reset;
//! metrics-only reports each threshold once per period; half-open is reachable by hand
//! only from open, forced-open and disabled, and open not from metrics-only
//! (resilience4j's transition table); open keeps the window counts (or the half-open
//! probes) that opened it, forced-open and disabled report an empty window; a call is
//! slow strictly above the slow-call duration and thresholds are inclusive. Choices of
//! our own: thresholds are whole percents and the rates reported (metrics, listener) are
//! basis points, all in integer arithmetic; the maximum wait and the open-to-half-open
//! move are lazy (checked on the next acquire or outcome, no timer); outcomes of a call
//! admitted in an earlier period are dropped; manual opening with
//! [`CircuitBreaker::transition_at`] draws from the backoff like an automatic one, while
//! `open_for_at`/`open_until_at` do not; [`CircuitBreaker::from_parts`] refuses a
//! configured open duration, which its backoff would override.

mod circuit_breaker;
mod config;
mod error;
mod listener;
mod metrics;
mod state;
pub mod window;

#[cfg(test)]
mod tests;

pub use circuit_breaker::{CircuitBreaker, DEFAULT_STRIPES, IssuesPermits, Outcome, Permit};
pub use config::{AfterMaxWait, BreakerConfig, DEFAULT_OPEN_DURATION, FixedOpenDuration};
pub use error::{BreakerError, refusals_are_permanent};
pub use listener::{BreakerListener, Threshold};
pub use metrics::BreakerMetrics;
pub use state::{IllegalTransition, Rejected, State, StateAt};
