//! The [`Backoff`] contract: a per-operation sequence of delays.

use core::time::Duration;

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
pub trait Backoff {
    /// The next delay in the sequence.
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration;

    /// Back to the start of the sequence.
    fn reset(&mut self);
}
