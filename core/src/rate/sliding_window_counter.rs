//! [`SlidingWindowCounter`]: the previous window's count, weighted by its overlap with a
//! window sliding back from now, plus the current window's.

use crate::time::Instant;

use super::{RateLimitError, RateLimitState, WindowQuota};

/// At most `limit` permits per `window`, estimated over a window that slides with `now`:
/// the previous fixed window's count is weighted by how much of it the sliding window
/// still overlaps.
///
/// # What it does
///
/// With `e` the time elapsed in the current fixed window (of length `W`), a request of
/// `n` is granted iff `previous * (W - e) / W + current + n <= limit`, computed exactly in
/// integers (`previous * (W - e) + (current + n) * W <= limit * W`, no rounding). A
/// denial's `retry_after` is the exact first instant at which the same request fits, to
/// the nanosecond. It never grants more than `limit` in one fixed window, and smooths the
/// boundary burst of the [`FixedWindow`](super::FixedWindow) by assuming the previous
/// window's requests were spread evenly; it is an estimate, not an exact sliding count
/// (use the [`SlidingWindowLog`](super::SlidingWindowLog) for that).
///
/// # When to choose it
///
/// Window semantics ("about n per minute") without the 2x boundary burst, in constant
/// memory, for any limit.
///
/// # Example
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{SlidingWindowCounter, WindowQuota};
///
/// let mut limiter = SlidingWindowCounter::new(WindowQuota::per_second(10)?);
/// assert!(limiter.acquire_at(10, Instant::from_millis(900)).is_ok());
/// // At 1.2 s the previous window still weighs 80%: 8 of its 10 count.
/// assert!(limiter.acquire_at(2, Instant::from_millis(1_200)).is_ok());
/// let err = limiter.acquire_at(1, Instant::from_millis(1_200)).unwrap_err();
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(100)));
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
///
/// # Sharing
///
/// A plain `&mut self` state machine (window start and two counts do not fit one word);
/// share it with [`SharedLimiter`](super::SharedLimiter).
///
/// # Cost
///
/// 32 bytes; per call one 64-bit remainder and a few 128-bit multiplications; a denial
/// adds one 128-bit division to compute `retry_after`.
///
/// # Where it comes from
///
/// The sliding window counter popularised by Cloudflare ("How we built rate limiting
/// capable of scaling to millions of domains", 2017), here in exact integer arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlidingWindowCounter {
    start: u64,
    previous: u32,
    current: u32,
    quota: WindowQuota,
}

/// The counts as seen at some `now`: current window start, previous and current counts,
/// and the time elapsed in the current window (`< W`).
struct View {
    start: u64,
    previous: u32,
    current: u32,
    elapsed: u64,
}

impl SlidingWindowCounter {
    /// A limiter with `quota`, no permits granted yet.
    pub const fn new(quota: WindowQuota) -> SlidingWindowCounter {
        SlidingWindowCounter {
            start: 0,
            previous: 0,
            current: 0,
            quota,
        }
    }

    /// The quota in force.
    pub const fn quota(&self) -> WindowQuota {
        self.quota
    }

    /// Replaces the quota, keeping both counts.
    pub fn set_quota(&mut self, quota: WindowQuota) {
        self.quota = quota;
    }

    #[inline]
    fn view(&self, now: u64) -> View {
        let w = self.quota.window_nanos();
        let aligned = now.saturating_sub(now.checked_rem(w).unwrap_or(0));
        if aligned > self.start {
            let previous = if aligned.saturating_sub(self.start) <= w {
                self.current
            } else {
                0
            };
            View {
                start: aligned,
                previous,
                current: 0,
                elapsed: now.saturating_sub(aligned),
            }
        } else {
            // Same window, or a clock that stepped back (elapsed then reads as zero,
            // which weighs the previous window fully: never more lenient).
            View {
                start: self.start,
                previous: self.previous,
                current: self.current,
                elapsed: now.saturating_sub(self.start),
            }
        }
    }

    #[inline]
    fn decide(&self, n: u32, now: u64) -> Result<View, RateLimitError> {
        let limit = self.quota.limit();
        if n > limit {
            return Err(RateLimitError::too_large(limit));
        }
        let v = self.view(now);
        let w = self.quota.window_nanos() as u128;
        let rest = w.saturating_sub(v.elapsed as u128);
        let weighted = (v.previous as u128).saturating_mul(rest);
        let wanted = (v.current as u128).saturating_add(n as u128);
        let allowed = (limit as u128).saturating_mul(w);
        if weighted.saturating_add(wanted.saturating_mul(w)) <= allowed {
            return Ok(View {
                current: v.current.saturating_add(n),
                ..v
            });
        }
        let target = if wanted <= limit as u128 {
            // Fits in this window once the previous one weighs little enough:
            // previous * (W - e) <= (limit - current - n) * W.
            let room = (limit as u128).saturating_sub(wanted).saturating_mul(w);
            let k = room.checked_div(v.previous as u128).unwrap_or(w);
            let e = w.saturating_sub(k);
            (v.start as u128).saturating_add(e)
        } else {
            // Only in the next window, where this one becomes the previous:
            // current * (W - e') <= (limit - n) * W.
            let room = (limit.saturating_sub(n) as u128).saturating_mul(w);
            let k = room.checked_div(v.current as u128).unwrap_or(w);
            let e = w.saturating_sub(k);
            (v.start as u128).saturating_add(w).saturating_add(e)
        };
        let target = if target > u64::MAX as u128 {
            u64::MAX
        } else {
            target as u64
        };
        Err(RateLimitError::until(target, now))
    }

    /// Takes `n` permits at `now`, all or nothing. `n = 0` is always granted.
    pub fn acquire_at(&mut self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        let v = self.decide(n, now.as_nanos())?;
        self.start = v.start;
        self.previous = v.previous;
        self.current = v.current;
        Ok(())
    }
}

impl RateLimitState for SlidingWindowCounter {
    fn acquire_at(&mut self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        SlidingWindowCounter::acquire_at(self, n, now)
    }
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        self.decide(n, now.as_nanos()).map(|_| ())
    }
    fn remaining_at(&self, now: Instant) -> u32 {
        let v = self.view(now.as_nanos());
        let w = self.quota.window_nanos() as u128;
        let limit = self.quota.limit();
        let weighted = (v.previous as u128).saturating_mul(w.saturating_sub(v.elapsed as u128));
        let free = (limit as u128)
            .saturating_mul(w)
            .saturating_sub(weighted)
            .checked_div(w)
            .unwrap_or(0)
            .saturating_sub(v.current as u128);
        if free > limit as u128 {
            limit
        } else {
            free as u32
        }
    }
    fn max_acquire(&self) -> u32 {
        self.quota.limit()
    }
    fn reset(&mut self) {
        self.start = 0;
        self.previous = 0;
        self.current = 0;
    }
}
