//! Sleeping on core's time: until an [`Instant`] of [`EmbassyClock`], or for a span.
//!
//! What an application needs beside the patterns: to wait until a [`Deadline`]'s instant,
//! or for the wait a decision returned (a rate limiter's `retry_after`, a
//! `Deadline::clamp_wait`). embassy-time's own conversions from `core::time::Duration`
//! (`from_micros`, `from_millis` of a value known only at run time) divide 64-bit
//! integers, which on a 32-bit microcontroller links a division routine of about 930
//! bytes; these convert with core's [`TickRate`](stanchion::time::TickRate) instead, and
//! round up to the next tick, so a sleeper never wakes before the instant it asked for.
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::time::Duration;
//! use stanchion::{Clock, Deadline};
//! use stanchion_embassy::{EmbassyClock, sleep, sleep_until};
//!
//! # doc_block_on(async {
//! let deadline = Deadline::after(EmbassyClock.now(), Duration::from_millis(10));
//! sleep(deadline.clamp_wait(EmbassyClock.now(), Duration::from_millis(4))).await;
//! assert!(!deadline.is_expired(EmbassyClock.now()));
//! sleep_until(deadline.instant()).await;
//! assert!(deadline.is_expired(EmbassyClock.now()));
//! # });
//! # fn doc_block_on<F: core::future::Future>(f: F) -> F::Output {
//! #     let mut f = core::pin::pin!(f);
//! #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! #     loop {
//! #         if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_ticks(1));
//! #     }
//! # }
//! ```
//!
//! [`Deadline`]: stanchion::Deadline

use core::time::Duration;

use embassy_time::Timer;
use stanchion::Instant;

use crate::EmbassyClock;

/// Sleeps until `at`, an instant of [`EmbassyClock`] (rounded up to the next tick; forever
/// for [`Instant::MAX`], the instant of [`Deadline::NEVER`](stanchion::Deadline::NEVER)).
/// An instant that has passed wakes without waiting, after yielding once, as every
/// embassy `Timer` does.
pub fn sleep_until(at: Instant) -> Timer {
    Timer::at(EmbassyClock::to_embassy(at))
}

/// Sleeps for `span` from now (rounded up to the next tick; forever if `now + span` is
/// past the last instant embassy-time can represent). Like every embassy `Timer`, it
/// yields once even for a zero span.
pub fn sleep(span: Duration) -> Timer {
    Timer::at(EmbassyClock::deadline_after(span).unwrap_or(embassy_time::Instant::MAX))
}
