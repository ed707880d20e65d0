//! The [`Backoff`] contract: a per-operation sequence of delays.
//!
//! The strategies, each in its own file, all implement it:
//!
//! | strategy | delay before retry `n` (from 0), before jitter and cap |
//! |---|---|
//! | [`Immediate`](super::Immediate) | `0` |
//! | [`Constant`](super::Constant) | `d` |
//! | [`Linear`](super::Linear) | `initial + n * step` |
//! | [`Exponential`](super::Exponential) | `base * factor^n` |
//! | [`DecorrelatedJitter`](super::DecorrelatedJitter) | `min(cap, U(base, 3 * previous))` (AWS) |
//! | [`DecorrelatedJitterV2`](super::DecorrelatedJitterV2) | Polly's V2 formula: the time to retry `n` has a median near `base * 2^n` |
//!
//! A strategy value is its own per-operation state: `Copy`, a few words, built by a
//! `const fn`, and reset by [`Backoff::reset`] without touching the configuration.

use core::time::Duration;

use crate::time::duration_to_nanos_saturating;

/// A sequence of delays, one per consecutive failure: the delay before the first retry,
/// then before the second, and so on, until [`reset`](Backoff::reset).
///
/// A backoff is a calculation, not a sleep: it returns durations, drawing any jitter from
/// the caller's random generator (seeded by the caller; there is no fixed default seed,
/// or every device would jitter in step). Implementations never panic and saturate
/// instead of overflowing, however many delays are drawn.
///
/// Retry policies use it between attempts; the circuit breaker uses it to grow its open
/// duration with each consecutive opening.
///
/// ```
/// use core::time::Duration;
/// use stanchion::retry::{Backoff, Exponential, Ratio};
///
/// let mut rng = fastrand::Rng::with_seed(1);
/// let mut b = Exponential::new(Duration::from_millis(100), Ratio::TWO, Duration::from_secs(1))
///     .unwrap();
/// let ms: Vec<u128> = b.delays(&mut rng).take(6).map(|d| d.as_millis()).collect();
/// assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
/// b.reset();
/// assert_eq!(b.next_delay(&mut rng), Duration::from_millis(100));
/// ```
pub trait Backoff {
    /// The next delay in the sequence.
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration;

    /// The next delay in the sequence, as [`next_delay`](Backoff::next_delay) gives it,
    /// in whole nanoseconds (saturating at `u64::MAX`): for callers that add it to an
    /// [`Instant`](crate::Instant), as a retry runner that sleeps until an instant does
    /// ([`RetryPolicy::next_attempt_at`](super::RetryPolicy::next_attempt_at)). The
    /// strategies of this crate hold their delays in nanoseconds and return them without
    /// the round trip through `Duration` (on a 32-bit target, a 64-bit division and a
    /// multiplication back); the default converts `next_delay`.
    #[inline]
    fn next_delay_nanos(&mut self, rng: &mut fastrand::Rng) -> u64 {
        duration_to_nanos_saturating(self.next_delay(rng))
    }

    /// Back to the start of the sequence.
    fn reset(&mut self);

    /// The sequence as an endless iterator over `rng` (handy in tests and tables).
    fn delays<'a>(&'a mut self, rng: &'a mut fastrand::Rng) -> Delays<'a, Self>
    where
        Self: Sized,
    {
        Delays { backoff: self, rng }
    }
}

impl<B: Backoff + ?Sized> Backoff for &mut B {
    #[inline]
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        (**self).next_delay(rng)
    }

    #[inline]
    fn next_delay_nanos(&mut self, rng: &mut fastrand::Rng) -> u64 {
        (**self).next_delay_nanos(rng)
    }

    #[inline]
    fn reset(&mut self) {
        (**self).reset();
    }
}

/// The endless iterator returned by [`Backoff::delays`].
#[derive(Debug)]
pub struct Delays<'a, B> {
    backoff: &'a mut B,
    rng: &'a mut fastrand::Rng,
}

impl<B: Backoff> Iterator for Delays<'_, B> {
    type Item = Duration;

    #[inline]
    fn next(&mut self) -> Option<Duration> {
        Some(self.backoff.next_delay(self.rng))
    }
}
