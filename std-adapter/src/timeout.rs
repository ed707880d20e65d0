//! [`timeout`]: run a future until a [`Deadline`], on a [`TokioClock`].
//!
//! One function serves both timeouts of the pipeline: the overall one (the caller's
//! deadline, shared by everything the call does) and the per-attempt one (a deadline
//! built from `now` and the attempt's budget, clamped to the overall one with
//! [`Deadline::earliest`]).

use std::fmt;
use std::future::Future;

use stanchion::{Clock, Deadline};

use crate::TokioClock;

/// The deadline passed before the future completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline passed")
    }
}

impl std::error::Error for TimedOut {}

/// Runs `future` until `deadline` (read on `clock`): its output, or [`TimedOut`] once the
/// deadline has passed, in which case `future` is dropped (cancelled).
///
/// A deadline already expired refuses at once, without polling `future`;
/// [`Deadline::NEVER`] sets no timer at all. The deadline is expired at its instant, as
/// everywhere in stanchion. Paused tokio time drives it.
///
/// ```
/// use std::time::Duration;
/// use stanchion::{Clock, Deadline};
/// use stanchion_std::{TimedOut, TokioClock, timeout};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::starting_now();
/// let deadline = Deadline::after(clock.now(), Duration::from_secs(2));
/// let quick = timeout(clock, deadline, async { 7 }).await;
/// assert_eq!(quick, Ok(7));
/// let slow = timeout(clock, deadline, tokio::time::sleep(Duration::from_secs(5))).await;
/// assert_eq!(slow, Err(TimedOut));
/// assert_eq!(clock.now().as_secs(), 2);
/// # }
/// ```
///
/// Cost: one clock read, and tokio's timer (no allocation) unless the deadline is
/// [`Deadline::NEVER`].
pub async fn timeout<F: Future>(
    clock: TokioClock,
    deadline: Deadline,
    future: F,
) -> Result<F::Output, TimedOut> {
    if deadline.is_never() {
        return Ok(future.await);
    }
    if deadline.is_expired(clock.now()) {
        return Err(TimedOut);
    }
    tokio::time::timeout_at(clock.to_tokio(deadline.instant()), future)
        .await
        .map_err(|_| TimedOut)
}
