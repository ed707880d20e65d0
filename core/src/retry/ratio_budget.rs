//! [`RatioBudget`]: retries as a percentage of recent requests, plus a floor, over a
//! sliding time window (Finagle's `RetryBudget`, tower's `TpsBudget`).
//!
//! Over the last `window`, in `N` buckets, the budget counts the requests (one deposit
//! per operation) and the retries it allowed. A retry is allowed while
//!
//! ```text
//! retries + 1 <= floor + ratio * requests
//! ```
//!
//! so a budget of 10% with a floor of 10 allows, in any window, at most 10 retries plus
//! one per ten requests: during an outage the extra load from retries stays at 10% (plus
//! the floor), and retries resume as soon as old retries leave the window.
//!
//! Choose it to bound retries as a share of traffic (the usual service-mesh setting);
//! choose [`TokenBudget`](super::TokenBudget) when calls are too irregular for a window,
//! or to mirror gRPC.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::Instant;
//! use stanchion::retry::{Ratio, RatioBudget, RetryBudget};
//!
//! // 20% of the requests of the last 10 s (in 10 buckets of 1 s), at least 1 retry.
//! static BUDGET: RatioBudget<10> = stanchion::const_config!(RatioBudget::new(
//!     Duration::from_secs(10),
//!     Ratio::percent(20),
//!     1
//! ));
//! let now = Instant::from_secs(100);
//! for _ in 0..10 {
//!     BUDGET.deposit_at(now); // ten requests
//! }
//! let allowed = (0..10).filter(|_| BUDGET.try_withdraw_at(now)).count();
//! assert_eq!(allowed, 3); // floor 1 + 20% of 10
//! // Ten seconds later the window has moved past all of it: the floor is back.
//! assert!(BUDGET.try_withdraw_at(Instant::from_secs(110)));
//! ```
//!
//! Sharing: lock-free. Each bucket is two `AtomicU64` words (requests, retries), each
//! holding the bucket's number in its top 40 bits and a count in the low 24. A deposit
//! is one compare-and-swap on the current bucket; a withdrawal reads the `2N` words and
//! is one compare-and-swap on the current bucket's retry word, re-checking the whole
//! budget if that word changed, so callers that see the same bucket never overdraw. Two
//! callers whose `now` fall in different buckets at a boundary may each spend the last
//! retry (at most one extra per such caller). A denial writes nothing.
//!
//! Limits, all conservative: a bucket counts at most 16,777,215 requests (more are not
//! counted, allowing fewer retries) and retries (more are refused). A clock that steps
//! backwards writes into the latest bucket and every retry already counted still counts.
//! Bucket numbers wrap after 2^40 buckets (34 years with 1 ms buckets); a bucket left
//! untouched for exactly a multiple of that would be read as current.
//!
//! Cost: `16 * N + 24` bytes; a deposit is one compare-and-swap, a withdrawal `2N`
//! atomic loads and one compare-and-swap.
//!
//! Source: Finagle's `RetryBudget` (`percentCanRetry`, `minRetriesPerSec`, `ttl`,
//! <https://twitter.github.io/finagle/guide/Clients.html#retries>) and tower's
//! `retry::budget::TpsBudget`.

use core::time::Duration;

use super::{Ratio, RetryBudget};
use crate::ConfigError;
use crate::Instant;
use crate::sync::{AtomicU64, Ordering};
use crate::time::duration_to_nanos_saturating;

// The bucketed words below are shared with `crate::throttle`, which counts requests and
// accepts the same way.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const GEN_MASK: u64 = (1 << 40) - 1;
/// Bucket-number differences at or above this are "in the future" (a clock that stepped
/// backwards).
const GEN_FUTURE: u64 = 1 << 39;
pub(crate) const MIN_BUCKET_NANOS: u64 = 1_000_000;

/// One of `n` buckets over `window`, in nanoseconds (rounded down), or the error naming
/// `window` if that is under [`MIN_BUCKET_NANOS`] (or `n` is zero): the check every
/// bucketed window of this crate makes at construction.
pub(crate) const fn bucket_nanos(window: Duration, n: usize) -> Result<u64, ConfigError> {
    match crate::div::checked_div(duration_to_nanos_saturating(window), n as u64) {
        Some(b) if b >= MIN_BUCKET_NANOS => Ok(b),
        _ => Err(ConfigError::new("window", "at least 1 ms per bucket")),
    }
}

/// Retries as a share of recent requests, plus a floor, over a sliding window of `N`
/// buckets. See the [module docs](self).
#[derive(Debug)]
pub struct RatioBudget<const N: usize> {
    requests: [AtomicU64; N],
    retries: [AtomicU64; N],
    bucket_nanos: u64,
    num: u64,
    den: u64,
    floor: u64,
}

impl<const N: usize> RatioBudget<N> {
    crate::sync::const_fn_unless_loom! {
        /// A budget allowing `ratio` (in `0..=10`, that is up to 1000%) retries per
        /// request, plus `floor` retries, in any `window`, tracked in `N` buckets (at
        /// least 1, each at least 1 ms long). Starts empty: only the floor is available.
        pub fn new(window: Duration, ratio: Ratio, floor: u32) -> Result<RatioBudget<N>, ConfigError> {
            if N == 0 {
                return Err(ConfigError::new("N", "at least 1 bucket"));
            }
            if !ratio.le(Ratio::integer(10)) {
                return Err(ConfigError::new("ratio", "in 0..=10 (0% to 1000%)"));
            }
            let bucket_nanos = match bucket_nanos(window, N) {
                Ok(b) => b,
                Err(e) => return Err(e),
            };
            Ok(RatioBudget {
                requests: new_words(),
                retries: new_words(),
                bucket_nanos,
                num: ratio.num() as u64,
                den: ratio.den() as u64,
                floor: floor as u64,
            })
        }
    }

    /// Requests and retries counted in the window at `now`.
    pub fn counts_at(&self, now: Instant) -> (u64, u64) {
        let (index, _) = self.bucket(now);
        (sum(&self.requests, index), sum(&self.retries, index))
    }

    /// Whether a retry would be allowed at `now`, without spending it.
    pub fn would_allow_at(&self, now: Instant) -> bool {
        let (requests, retries) = self.counts_at(now);
        self.allows(requests, retries)
    }

    #[inline]
    fn allows(&self, requests: u64, retries: u64) -> bool {
        // retries + 1 <= floor + requests * num / den, in integers.
        let spent = u128::from(retries.saturating_add(1)).saturating_mul(u128::from(self.den));
        let granted = u128::from(self.floor)
            .saturating_mul(u128::from(self.den))
            .saturating_add(u128::from(requests).saturating_mul(u128::from(self.num)));
        spent <= granted
    }

    /// The bucket number at `now` (masked to 40 bits) and the index of its word.
    #[inline]
    fn bucket(&self, now: Instant) -> (u64, usize) {
        bucket_at(now, self.bucket_nanos, N)
    }
}

impl<const N: usize> RetryBudget for RatioBudget<N> {
    fn deposit_at(&self, now: Instant) {
        let (index, slot) = self.bucket(now);
        if let Some(word) = self.requests.get(slot) {
            // Saturated: not counted, which only allows fewer retries.
            count_one(word, index);
        }
    }

    #[inline]
    fn record_success_at(&self, _now: Instant) {}

    fn try_withdraw_at(&self, now: Instant) -> bool {
        let (index, slot) = self.bucket(now);
        let Some(word) = self.retries.get(slot) else {
            return false;
        };
        let mut current = word.load(Ordering::Relaxed);
        loop {
            if !self.allows(sum(&self.requests, index), sum(&self.retries, index)) {
                return false;
            }
            let Some(next) = incremented(current, index) else {
                return false; // this bucket's retry count is full: refuse
            };
            match word.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(not(loom))]
pub(crate) const fn new_words<const N: usize>() -> [AtomicU64; N] {
    [const { AtomicU64::new(0) }; N]
}

#[cfg(loom)]
pub(crate) fn new_words<const N: usize>() -> [AtomicU64; N] {
    core::array::from_fn(|_| AtomicU64::new(0))
}

#[inline]
const fn pack(index: u64, count: u64) -> u64 {
    (index << COUNT_BITS) | count
}

/// The age of a word's bucket, seen from bucket `index`, or `None` if it is in the
/// future (a clock that stepped backwards).
#[inline]
const fn age(word: u64, index: u64) -> Option<u64> {
    let age = index.wrapping_sub(word >> COUNT_BITS) & GEN_MASK;
    if age >= GEN_FUTURE { None } else { Some(age) }
}

/// The word after counting one more at bucket `index`, or `None` if the count is full.
#[inline]
fn incremented(word: u64, index: u64) -> Option<u64> {
    match age(word, index) {
        Some(0) | None => {
            let count = word & COUNT_MASK;
            if count == COUNT_MASK {
                return None;
            }
            // Same (or a later) bucket: count one more in it.
            Some((word & !COUNT_MASK) | count.saturating_add(1))
        }
        Some(_) => Some(pack(index, 1)),
    }
}

/// The number of the bucket of `bucket_nanos` that holds `now` (masked to 40 bits), and
/// its slot among `n`. The divisions go through [`crate::div`]: on 32-bit targets, a few
/// dozen bytes of long division instead of the 64-bit division routine (about 930 bytes).
#[inline]
pub(crate) fn bucket_at(now: Instant, bucket_nanos: u64, n: usize) -> (u64, usize) {
    let index = crate::div::checked_div_rem(now.as_nanos(), bucket_nanos).map_or(0, |(q, _)| q);
    let slot = crate::div::checked_div_rem(index, n as u64).map_or(0, |(_, r)| r) as usize;
    (index & GEN_MASK, slot)
}

/// Counts one more in `word` at bucket `index` (one compare-and-swap, retried on
/// contention); a full count stays full.
#[inline]
pub(crate) fn count_one(word: &AtomicU64, index: u64) {
    let mut current = word.load(Ordering::Relaxed);
    while let Some(next) = incremented(current, index) {
        match word.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

/// The counts of the words whose bucket is within the window at bucket `index`
/// (younger than `N` buckets, or in the future).
#[inline]
pub(crate) fn sum(words: &[AtomicU64], index: u64) -> u64 {
    let n = words.len() as u64;
    words.iter().fold(0u64, |acc, w| {
        let word = w.load(Ordering::Relaxed);
        match age(word, index) {
            Some(a) if a >= n => acc,
            _ => acc.saturating_add(word & COUNT_MASK),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> RatioBudget<10> {
        RatioBudget::new(Duration::from_secs(10), Ratio::percent(10), 5).unwrap()
    }

    #[test]
    fn outage_stays_within_ten_percent_plus_floor_and_recovers() {
        // 100 operations per second, each tries up to 3 times and every attempt fails.
        let b = budget();
        let mut t = Instant::from_secs(1_000);
        let mut per_window = [0u64; 60];
        for retries in per_window.iter_mut() {
            for _ in 0..100 {
                b.deposit_at(t);
                for _ in 0..2 {
                    if b.try_withdraw_at(t) {
                        *retries += 1;
                    } else {
                        break;
                    }
                }
                t += Duration::from_millis(10);
            }
        }
        // Any 10 consecutive seconds: at most 10% of 1000 requests plus the floor of 5.
        for start in 0..=50 {
            let retries: u64 = per_window[start..start + 10].iter().sum();
            assert!(retries <= 105, "window at {start}: {retries}");
        }
        // In the steady state the budget is used fully: 10 retries per second.
        let steady: u64 = per_window[20..30].iter().sum();
        assert!(steady >= 95, "{steady}");
        // Recovery: after a quiet window, the floor and the share are available again.
        let later = t + Duration::from_secs(10);
        assert_eq!(b.counts_at(later), (0, 0));
        for _ in 0..100 {
            b.deposit_at(later);
        }
        let allowed = (0..100).filter(|_| b.try_withdraw_at(later)).count();
        assert_eq!(allowed, 15);
    }

    #[test]
    fn window_slides_bucket_by_bucket() {
        let b = RatioBudget::<4>::new(Duration::from_secs(4), Ratio::ONE, 0).unwrap();
        let at = Instant::from_secs;
        b.deposit_at(at(0));
        b.deposit_at(at(1));
        assert!(b.try_withdraw_at(at(1)));
        assert!(b.try_withdraw_at(at(1)));
        assert!(!b.try_withdraw_at(at(1)));
        assert_eq!(b.counts_at(at(3)), (2, 2));
        // At 4 s the bucket of second 0 has left the window: one request, two retries.
        assert_eq!(b.counts_at(at(4)), (1, 2));
        assert!(!b.would_allow_at(at(4)));
        assert_eq!(b.counts_at(at(5)), (0, 0));
        b.deposit_at(at(5));
        assert!(b.try_withdraw_at(at(5)));
    }

    #[test]
    fn a_clock_stepping_back_admits_nothing_extra() {
        let b = RatioBudget::<4>::new(Duration::from_secs(4), Ratio::ONE, 1).unwrap();
        let at = Instant::from_secs;
        b.deposit_at(at(10));
        assert!(b.try_withdraw_at(at(10)));
        assert!(b.try_withdraw_at(at(10)));
        assert!(!b.try_withdraw_at(at(10)));
        // Back to 2 s (and 6 s, which shares bucket slots): the retries still count.
        assert!(!b.try_withdraw_at(at(2)));
        assert!(!b.try_withdraw_at(at(6)));
        assert!(!b.try_withdraw_at(at(9)));
        assert_eq!(b.counts_at(at(6)), (1, 2));
        // A deposit at the earlier time lands in the latest bucket of its slot.
        b.deposit_at(at(6));
        assert_eq!(b.counts_at(at(10)), (2, 2));
        assert!(b.try_withdraw_at(at(10)));
    }

    #[test]
    fn extremes_and_bad_configuration() {
        let b = budget();
        for t in [Instant::ZERO, Instant::MAX] {
            b.deposit_at(t);
            let _ = b.try_withdraw_at(t);
        }
        let zero = RatioBudget::<2>::new(Duration::from_secs(1), Ratio::ZERO, 0).unwrap();
        zero.deposit_at(Instant::ZERO);
        assert!(!zero.try_withdraw_at(Instant::ZERO));
        assert_eq!(
            RatioBudget::<0>::new(Duration::from_secs(1), Ratio::ONE, 0).unwrap_err(),
            ConfigError::new("N", "at least 1 bucket")
        );
        assert_eq!(
            RatioBudget::<10>::new(Duration::from_secs(1), Ratio::integer(11), 0).unwrap_err(),
            ConfigError::new("ratio", "in 0..=10 (0% to 1000%)")
        );
        assert_eq!(
            RatioBudget::<10>::new(Duration::from_millis(9), Ratio::ONE, 0).unwrap_err(),
            ConfigError::new("window", "at least 1 ms per bucket")
        );
    }

    #[test]
    fn saturated_buckets_are_conservative() {
        let word = pack(7, COUNT_MASK);
        assert_eq!(incremented(word, 7), None);
        assert_eq!(incremented(word, 8), Some(pack(8, 1)));
        assert_eq!(incremented(pack(9, 3), 8), Some(pack(9, 4)));
    }

    #[test]
    fn shared_across_threads_never_overdraws_within_a_bucket() {
        extern crate std;
        let b = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 7).unwrap();
        let now = Instant::from_secs(50);
        for _ in 0..1000 {
            b.deposit_at(now);
        }
        let allowed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        if b.try_withdraw_at(now) {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.into_inner(), 107);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_concurrent_withdrawals_spend_the_floor_exactly() {
        loom::model(|| {
            let b = loom::sync::Arc::new(
                RatioBudget::<2>::new(Duration::from_secs(2), Ratio::ZERO, 1).unwrap(),
            );
            let b2 = b.clone();
            let t = loom::thread::spawn(move || b2.try_withdraw_at(Instant::ZERO));
            let mine = b.try_withdraw_at(Instant::ZERO);
            let theirs = t.join().unwrap();
            assert_eq!(u8::from(mine) + u8::from(theirs), 1);
        });
    }
}
