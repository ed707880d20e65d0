//! [`FixedWindow`]: a counter per fixed window of time.

use crate::time::Instant;

use super::{RateLimitError, RateLimitState, WindowQuota};

/// At most `limit` permits in each fixed window of time; windows are aligned to the
/// clock's epoch (`[k * window, (k + 1) * window)`).
///
/// # What it does
///
/// Counts the permits granted in the current window; a request of `n` is granted if the
/// count plus `n` stays within the limit, and otherwise denied until the window ends
/// (`retry_after` = time to the next boundary). The count starts again at zero in each
/// window. `n` above the limit can never succeed.
///
/// **The boundary burst:** a client can take the whole limit at the end of one window and
/// again at the start of the next, so up to **2x the limit** can pass in any span of one
/// window's length that straddles a boundary. That is this algorithm's documented
/// trade-off; the [`SlidingWindowCounter`](super::SlidingWindowCounter) and
/// [`SlidingWindowLog`](super::SlidingWindowLog) avoid it.
///
/// # When to choose it
///
/// When the contract is literally "n per calendar minute" (a quota you report against,
/// an upstream that counts that way), or when you need the cheapest possible window.
///
/// # Example
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{FixedWindow, WindowQuota};
///
/// let mut limiter = FixedWindow::new(WindowQuota::per_second(3)?);
/// let t = Instant::from_millis(1_900);
/// assert!(limiter.acquire_at(3, t).is_ok());
/// let err = limiter.acquire_at(1, t).unwrap_err();
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(100))); // to the boundary
/// assert!(limiter.acquire_at(3, Instant::from_secs(2)).is_ok()); // 6 within 100 ms
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
///
/// # Sharing
///
/// A plain `&mut self` state machine: the window's start and its count do not fit one
/// atomic word together. Share it with [`SharedLimiter`](super::SharedLimiter).
///
/// # Cost
///
/// 24 bytes (window start, count, quota); one division (`now % window`) per call.
///
/// # Where it comes from
///
/// The classic fixed-window counter, as in Redis `INCR` + `EXPIRE` recipes and most API
/// gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FixedWindow {
    start: u64,
    count: u32,
    quota: WindowQuota,
}

impl FixedWindow {
    /// A limiter with `quota`, no permits granted yet.
    pub const fn new(quota: WindowQuota) -> FixedWindow {
        FixedWindow {
            start: 0,
            count: 0,
            quota,
        }
    }

    /// The quota in force.
    pub const fn quota(&self) -> WindowQuota {
        self.quota
    }

    /// Replaces the quota, keeping the count of the current window (which ends
    /// `window` after it started, under the new length).
    pub fn set_quota(&mut self, quota: WindowQuota) {
        self.quota = quota;
    }

    /// `(window start, count in it)` as seen at `now`; a backwards clock stays in the
    /// latest window seen.
    #[inline]
    fn window_at(&self, now: u64) -> (u64, u32) {
        let w = self.quota.window_nanos();
        let aligned = now.saturating_sub(now.checked_rem(w).unwrap_or(0));
        if aligned > self.start {
            (aligned, 0)
        } else {
            (self.start, self.count)
        }
    }

    #[inline]
    fn decide(&self, n: u32, now: u64) -> Result<(u64, u32), RateLimitError> {
        let limit = self.quota.limit();
        if n > limit {
            return Err(RateLimitError::too_large(limit));
        }
        let (start, count) = self.window_at(now);
        match count.checked_add(n) {
            Some(c) if c <= limit => Ok((start, c)),
            _ => Err(RateLimitError::until(
                start.saturating_add(self.quota.window_nanos()),
                now,
            )),
        }
    }

    /// Takes `n` permits at `now`, all or nothing. `n = 0` is always granted.
    pub fn acquire_at(&mut self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        let (start, count) = self.decide(n, now.as_nanos())?;
        self.start = start;
        self.count = count;
        Ok(())
    }
}

impl RateLimitState for FixedWindow {
    fn acquire_at(&mut self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        FixedWindow::acquire_at(self, n, now)
    }
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        self.decide(n, now.as_nanos()).map(|_| ())
    }
    fn remaining_at(&self, now: Instant) -> u32 {
        let (_, count) = self.window_at(now.as_nanos());
        self.quota.limit().saturating_sub(count)
    }
    fn max_acquire(&self) -> u32 {
        self.quota.limit()
    }
    fn reset(&mut self) {
        self.start = 0;
        self.count = 0;
    }
}
