//! [`SlidingWindowLog`]: an exact sliding window, remembering the last grants.

use crate::error::ConfigError;
use crate::time::Instant;

use super::{RateLimitError, RateLimitState, WindowQuota};

/// At most `limit` permits in any window of length `window` ending at `now`, exactly:
/// the instants of the last `limit` grants are kept in a fixed array of `N` slots
/// (`limit <= N`).
///
/// # What it does
///
/// A grant at instant `g` counts against every request at `now` with
/// `now - window < g <= now` (it stops counting exactly `window` after it was made). A
/// request of `n` is granted iff the grants still counting plus `n` stay within the
/// limit; a request of `n` permits records `n` grants. A denial's `retry_after` is the
/// exact instant at which enough old grants stop counting. `n` above the limit can never
/// succeed. Unlike the window counters, no span of one window's length, anywhere, ever
/// holds more than `limit` grants.
///
/// # When to choose it
///
/// When the limit is small (tens to a few thousand) and must hold over *every* window,
/// not on average: login attempts, SMS sends, expensive jobs.
///
/// # Example
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{SlidingWindowLog, WindowQuota};
///
/// // 3 per second, exactly, in 3 slots.
/// let mut limiter = SlidingWindowLog::<3>::new(WindowQuota::per_second(3)?)?;
/// assert!(limiter.acquire_at(1, Instant::from_millis(100)).is_ok());
/// assert!(limiter.acquire_at(2, Instant::from_millis(900)).is_ok());
/// let err = limiter.acquire_at(1, Instant::from_millis(1_000)).unwrap_err();
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(100))); // the 100 ms grant expires at 1.1 s
/// assert!(limiter.acquire_at(1, Instant::from_millis(1_100)).is_ok());
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
///
/// # Sharing
///
/// A plain `&mut self` state machine; share it with
/// [`SharedLimiter`](super::SharedLimiter).
///
/// # Cost
///
/// `8 * N + 40` bytes. A grant of `n` writes `n` slots; each call first drops the grants
/// that stopped counting (amortised O(1) per grant); no division.
///
/// # Where it comes from
///
/// The sliding log (as in the sorted-set recipes for Redis rate limiting), bounded here by
/// a ring buffer: only the last `limit` grants can ever matter to a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlidingWindowLog<const N: usize> {
    times: [u64; N],
    /// Index of the oldest grant still held.
    head: usize,
    len: usize,
    /// The latest `now` seen: a clock that steps back is read as this.
    latest: u64,
    quota: WindowQuota,
}

const fn check_limit(limit: u32, n: usize) -> Result<(), ConfigError> {
    if n == 0 {
        return Err(ConfigError::new("N", "at least 1"));
    }
    if limit as u128 > n as u128 {
        return Err(ConfigError::new("limit", "at most N, the log's capacity"));
    }
    Ok(())
}

impl<const N: usize> SlidingWindowLog<N> {
    /// An empty log with `quota`; `N` must be at least 1 and the limit at most `N`.
    pub const fn new(quota: WindowQuota) -> Result<Self, ConfigError> {
        if let Err(e) = check_limit(quota.limit(), N) {
            return Err(e);
        }
        Ok(SlidingWindowLog {
            times: [0; N],
            head: 0,
            len: 0,
            latest: 0,
            quota,
        })
    }

    /// The quota in force.
    pub const fn quota(&self) -> WindowQuota {
        self.quota
    }

    /// Replaces the quota, keeping the log (the limit must stay at most `N`). A smaller
    /// limit denies until enough grants stop counting.
    pub fn set_quota(&mut self, quota: WindowQuota) -> Result<(), ConfigError> {
        check_limit(quota.limit(), N)?;
        self.quota = quota;
        Ok(())
    }

    /// The `i`-th oldest grant held (`i < len`).
    #[inline]
    fn at(&self, i: usize) -> u64 {
        let mut idx = self.head.saturating_add(i);
        if idx >= N {
            idx = idx.saturating_sub(N);
        }
        self.times.get(idx).copied().unwrap_or(u64::MAX)
    }

    /// How many of the held grants stopped counting at `now`.
    #[inline]
    fn expired(&self, now: u64) -> usize {
        // In u128: a grant near the end of time must not expire by saturation.
        let w = self.quota.window_nanos() as u128;
        let now = now as u128;
        let mut k = 0;
        while k < self.len && (self.at(k) as u128).saturating_add(w) <= now {
            k = k.saturating_add(1);
        }
        k
    }

    #[inline]
    fn decide(&self, n: u32, now: u64) -> Result<usize, RateLimitError> {
        let limit = self.quota.limit();
        if n > limit {
            return Err(RateLimitError::too_large(limit));
        }
        let eff = if now > self.latest { now } else { self.latest };
        let expired = self.expired(eff);
        let live = self.len.saturating_sub(expired);
        let over = live
            .saturating_add(n as usize)
            .saturating_sub(limit as usize);
        if over == 0 {
            return Ok(expired);
        }
        // The `over`-th oldest live grant must stop counting.
        let blocking = self.at(expired.saturating_add(over).saturating_sub(1));
        Err(RateLimitError::until(
            blocking.saturating_add(self.quota.window_nanos()),
            now,
        ))
    }

    /// Takes `n` permits at `now`, all or nothing. `n = 0` is always granted.
    pub fn acquire_at(&mut self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        let now = now.as_nanos();
        let expired = self.decide(n, now)?;
        if now > self.latest {
            self.latest = now;
        }
        // Drop what stopped counting, then record n grants at the (monotonic) instant.
        self.head = self.index(expired);
        self.len = self.len.saturating_sub(expired);
        for _ in 0..n {
            if self.len >= N {
                break; // unreachable: limit <= N was checked
            }
            let idx = self.index(self.len);
            if let Some(slot) = self.times.get_mut(idx) {
                *slot = self.latest;
            }
            self.len = self.len.saturating_add(1);
        }
        Ok(())
    }

    #[inline]
    fn index(&self, i: usize) -> usize {
        let idx = self.head.saturating_add(i);
        if idx >= N { idx.saturating_sub(N) } else { idx }
    }
}

impl<const N: usize> RateLimitState for SlidingWindowLog<N> {
    fn acquire_at(&mut self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        SlidingWindowLog::acquire_at(self, n, now)
    }
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        self.decide(n, now.as_nanos()).map(|_| ())
    }
    fn remaining_at(&self, now: Instant) -> u32 {
        let now = now.as_nanos();
        let eff = if now > self.latest { now } else { self.latest };
        let live = self.len.saturating_sub(self.expired(eff));
        (self.quota.limit() as usize).saturating_sub(live) as u32
    }
    fn max_acquire(&self) -> u32 {
        self.quota.limit()
    }
    fn reset(&mut self) {
        self.head = 0;
        self.len = 0;
        self.latest = 0;
    }
}
