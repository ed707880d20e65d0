//! [`LeakyBucket`]: a leaky bucket as a queue, which spaces requests evenly.

use core::time::Duration;

use crate::error::ConfigError;
use crate::sync::{AtomicU64, Ordering};
use crate::time::Instant;

use super::gcra::{FRESH, Params, QuotaCell};
use super::{Quota, QuotaChangeConflict, RateLimitError, RateLimiter};

/// The configuration of a [`LeakyBucket`]: one request per `period`, and the longest a
/// request may be queued (`max_delay`).
///
/// ```
/// use core::time::Duration;
/// use stanchion::rate::Spacing;
///
/// let s = Spacing::new(Duration::from_millis(100), Duration::from_secs(1))?;
/// assert_eq!(s.queue_capacity(), 11); // one now, ten queued
/// assert!(Spacing::new(Duration::ZERO, Duration::ZERO).is_err());
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Spacing {
    period_nanos: u64,
    max_delay_nanos: u64,
}

impl Spacing {
    /// One request per `period` (1 ns..=`u64::MAX` ns), each queued at most `max_delay`
    /// (saturating at `u64::MAX` ns; zero means "no queue": go now or be denied).
    pub const fn new(period: Duration, max_delay: Duration) -> Result<Spacing, ConfigError> {
        let p = period.as_nanos();
        if p == 0 || p > u64::MAX as u128 {
            return Err(ConfigError::new("period", "in 1 ns..=u64::MAX ns"));
        }
        let d = max_delay.as_nanos();
        Ok(Spacing {
            period_nanos: p as u64,
            max_delay_nanos: if d > u64::MAX as u128 {
                u64::MAX
            } else {
                d as u64
            },
        })
    }

    /// The leaky bucket that admits what a token bucket of `quota` admits: one request per
    /// period, and as many queued behind it as the burst holds beyond the first (GCRA's
    /// two views of one rule: a burst of `b` is a queue of `b - 1` periods).
    ///
    /// ```
    /// use core::time::Duration;
    /// use stanchion::rate::{Quota, Spacing};
    ///
    /// let s = Spacing::from_quota(Quota::new(4, Duration::from_millis(10))?);
    /// assert_eq!(s.period(), Duration::from_millis(10));
    /// assert_eq!(s.max_delay(), Duration::from_millis(30));
    /// assert_eq!(s.queue_capacity(), 4);
    /// # Ok::<(), stanchion::ConfigError>(())
    /// ```
    pub const fn from_quota(quota: Quota) -> Spacing {
        Spacing {
            period_nanos: quota.period_nanos(),
            max_delay_nanos: quota.tolerance_nanos(),
        }
    }

    /// The interval between two consecutive requests.
    pub const fn period(&self) -> Duration {
        crate::time::duration_from_nanos(self.period_nanos)
    }

    /// The longest a request may wait.
    pub const fn max_delay(&self) -> Duration {
        crate::time::duration_from_nanos(self.max_delay_nanos)
    }

    /// How many requests an idle bucket accepts at one instant: the one that goes now,
    /// plus `max_delay / period` queued behind it.
    pub const fn queue_capacity(&self) -> u32 {
        self.params().max_n()
    }

    const fn params(&self) -> Params {
        Params {
            t: self.period_nanos,
            tau: self.max_delay_nanos,
        }
    }
}

/// A leaky bucket as a queue (a shaper): [`reserve_at`](LeakyBucket::reserve_at) tells
/// each caller the instant at which it may go, spaced one `period` apart, or denies it
/// when that wait would exceed `max_delay`.
///
/// # What it does
///
/// Requests leave the bucket at a steady rate, one per period, in the order they
/// reserved; a request that finds the queue idle goes at once. The reservation is made
/// at `reserve_at` time: the caller must then wait until the returned instant (the
/// adapters sleep for it). A denial says when a reservation would fit again
/// (`retry_after`, never zero) and changes nothing. A request that cannot fit even in an
/// idle queue (`n > max_delay / period + 1`) can never succeed.
///
/// As a [`RateLimiter`], `acquire_at(n, now)` makes the same reservation but does not
/// report the instant: this is the leaky bucket as a *meter*, which is the token bucket
/// with burst `max_delay / period + 1`. Use [`reserve_at`](LeakyBucket::reserve_at) to
/// shape.
///
/// # When to choose it
///
/// When downstream wants a smooth flow (a serial link, an API that punishes bursts, a
/// device that needs 10 ms between commands) and callers would rather wait a bounded
/// time than be refused.
///
/// # Example
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{LeakyBucket, Spacing};
///
/// let shaper = LeakyBucket::new(Spacing::new(Duration::from_millis(10), Duration::from_millis(25))?);
/// let t0 = Instant::from_secs(1);
/// assert_eq!(shaper.reserve_at(t0), Ok(t0)); // idle: go now
/// assert_eq!(shaper.reserve_at(t0), Ok(t0 + Duration::from_millis(10)));
/// assert_eq!(shaper.reserve_at(t0), Ok(t0 + Duration::from_millis(20)));
/// // A fourth would wait 30 ms > 25 ms: denied until 5 ms from now.
/// let err = shaper.reserve_at(t0).unwrap_err();
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(5)));
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
///
/// # Sharing
///
/// Shared by `&` through atomics: the whole state is one `u64` (the instant at which the
/// queue is next free), so a reservation is one compare-and-swap loop and a denial
/// writes nothing. Concurrent callers get distinct, evenly spaced instants.
///
/// # Cost
///
/// 48 bytes (the state word and a runtime-changeable [`Spacing`]); per call, a few loads
/// and, on a grant, one compare-and-swap.
///
/// # Where it comes from
///
/// The leaky bucket as a queue (Tanenbaum, *Computer Networks*), computed as GCRA's
/// virtual scheduling with the tolerance set to the maximum queue delay: the next free
/// instant `tat` is the state, a request at `now` goes at `max(tat, now)` if that is at
/// most `max_delay` away, and `tat` moves one period past it.
#[derive(Debug)]
pub struct LeakyBucket {
    tat: AtomicU64,
    params: QuotaCell,
}

impl LeakyBucket {
    crate::sync::const_fn_unless_loom! {
        /// An idle queue with `spacing`.
        pub fn new(spacing: Spacing) -> LeakyBucket {
            LeakyBucket {
                tat: AtomicU64::new(FRESH),
                params: QuotaCell::new(spacing.params()),
            }
        }
    }

    /// Reserves one slot: the instant at which the caller may go (`now` if the queue is
    /// idle), or a denial.
    #[inline]
    pub fn reserve_at(&self, now: Instant) -> Result<Instant, RateLimitError> {
        self.reserve_n_at(1, now)
    }

    /// Reserves `n` consecutive slots (`n >= 1`): the instant of the first; the caller
    /// may send `n` requests from there, one per period. Denied if the last would wait
    /// more than `max_delay`. `n = 0` reserves nothing and returns `now`.
    pub fn reserve_n_at(&self, n: u32, now: Instant) -> Result<Instant, RateLimitError> {
        if n == 0 {
            return Ok(now);
        }
        let p = self.params.load();
        let now = now.as_nanos();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = p.decide(tat, now, n)?;
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(Instant::from_nanos(if tat > now { tat } else { now })),
                Err(actual) => tat = actual,
            }
        }
    }

    /// The wait a reservation of `n` slots made at `now` would get, without reserving.
    pub fn peek_delay_at(&self, n: u32, now: Instant) -> Result<Duration, RateLimitError> {
        if n == 0 {
            return Ok(Duration::ZERO);
        }
        let tat = self.tat.load(Ordering::Relaxed);
        self.params.load().decide(tat, now.as_nanos(), n)?;
        Ok(crate::time::duration_from_nanos(
            tat.saturating_sub(now.as_nanos()),
        ))
    }

    /// The configuration in force.
    pub fn spacing(&self) -> Spacing {
        let p = self.params.load();
        Spacing {
            period_nanos: p.t,
            max_delay_nanos: p.tau,
        }
    }

    /// Replaces the spacing, keeping the queue: reservations already handed out stand,
    /// new ones are spaced by the new period after them. Lock-free, like
    /// [`TokenBucket::set_quota`](super::TokenBucket::set_quota).
    pub fn set_spacing(&self, spacing: Spacing) -> Result<(), QuotaChangeConflict> {
        self.params.store(spacing.params())
    }
}

impl RateLimiter for LeakyBucket {
    #[inline]
    fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.reserve_n_at(n, now).map(|_| ())
    }
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.peek_delay_at(n, now).map(|_| ())
    }
    fn remaining_at(&self, now: Instant) -> u32 {
        self.params
            .load()
            .remaining(self.tat.load(Ordering::Relaxed), now.as_nanos())
    }
    fn max_acquire(&self) -> u32 {
        self.params.load().max_n()
    }
    fn reset(&self) {
        self.tat.store(FRESH, Ordering::Relaxed);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    extern crate std;
    use super::*;
    use loom::sync::Arc;
    use std::vec::Vec;

    fn shaper(queued: u64) -> Arc<LeakyBucket> {
        let spacing = Spacing::new(
            Duration::from_millis(10),
            Duration::from_millis(10 * queued),
        )
        .unwrap();
        Arc::new(LeakyBucket::new(spacing))
    }

    /// Racing reservations get distinct slots, one period apart, and exactly the queue's
    /// capacity is handed out: no slot twice, none lost to a failed compare-and-swap.
    #[test]
    fn loom_leaky_bucket_racing_reservations_get_distinct_slots() {
        loom::model(|| {
            let bucket = shaper(2); // capacity 3: one now, two queued
            let t0 = Instant::from_secs(1);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let bucket = bucket.clone();
                    loom::thread::spawn(move || {
                        [bucket.reserve_at(t0).ok(), bucket.reserve_at(t0).ok()]
                    })
                })
                .collect();
            let mut slots: Vec<Instant> = threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .flatten()
                .collect();
            slots.sort();
            let ms = |n| t0 + Duration::from_millis(n);
            assert_eq!(slots, [ms(0), ms(10), ms(20)]);
            assert!(bucket.reserve_at(t0).is_err());
        });
    }

    /// A reset racing a reservation leaves either the fresh queue or the queue with that
    /// one reservation, never a torn state: the next reservation at `t0` goes at `t0` or one
    /// period later.
    #[test]
    fn loom_leaky_bucket_reset_races_a_reservation() {
        loom::model(|| {
            let bucket = shaper(1);
            let t0 = Instant::from_secs(1);
            let resetter = {
                let bucket = bucket.clone();
                loom::thread::spawn(move || RateLimiter::reset(&*bucket))
            };
            assert_eq!(bucket.reserve_at(t0), Ok(t0));
            resetter.join().unwrap();
            let next = bucket.reserve_at(t0).unwrap();
            assert!(
                next == t0 || next == t0 + Duration::from_millis(10),
                "{next:?}"
            );
        });
    }
}
