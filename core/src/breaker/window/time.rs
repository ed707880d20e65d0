//! [`TimeWindow`]: the calls of the last span of time, in `B` buckets.
//!
//! What it does: splits time into buckets of `span / B` (rounded down to whole
//! nanoseconds, at least one) and keeps the counts of the last `B` of them, the current
//! one included. A bucket older than that is evicted when its slot is reused or when
//! totals are read. An instant earlier than the latest seen counts as the latest.
//!
//! When to choose it: rates over "the last minute" whatever the traffic (resilience4j's
//! `TIME_BASED` window). `minimum_calls` is not clamped: with little traffic the window
//! may never hold enough calls to trip.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::Instant;
//! use stanchion::breaker::window::{CallRecord, TimeWindow, Window};
//!
//! // Ten seconds in ten buckets of one second.
//! let mut w = TimeWindow::<10>::new(Duration::from_secs(10)).unwrap();
//! let fail = CallRecord { failure: true, slow: false };
//! w.record(fail, Instant::from_millis(500));
//! assert_eq!(w.totals(Instant::from_millis(9_999)).failures, 1);
//! assert_eq!(w.totals(Instant::from_secs(10)).failures, 0); // its bucket aged out
//! ```
//!
//! Cost: 12 bytes per bucket plus 28; O(1) per outcome and per evaluation (a running
//! total), plus one step per bucket that time has moved past, at most `B`. Once the
//! window holds `minimum_calls`, the breaker counts successes that are not slow and end
//! within the latest bucket without its critical section (one compare-and-swap each), and
//! hands them over in one O(1) batch at the next locked outcome.
//!
//! Origin: resilience4j's `SlidingTimeWindowMetrics` (one bucket per second there; here
//! the bucket count is a const generic and the span any duration).

use core::time::Duration;

use crate::ConfigError;
use crate::Instant;
use crate::time::duration_to_nanos_saturating;

use super::{CallRecord, Thresholds, Totals, Window};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Bucket {
    totals: Totals,
}

/// The calls of the last `span`, in `B` buckets (`B` at least 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimeWindow<const B: usize> {
    bucket_nanos: u64,
    latest: u64,
    /// The totals of the live buckets (those of the last `B` bucket indices up to
    /// `latest`), kept as buckets enter and leave.
    sum: Totals,
    buckets: [Bucket; B],
}

impl<const B: usize> TimeWindow<B> {
    /// A window over `span`, in `B` buckets of `span / B` each (rounded down); the span
    /// must give each bucket at least one nanosecond.
    pub const fn new(span: Duration) -> Result<TimeWindow<B>, ConfigError> {
        if B == 0 {
            return Err(ConfigError::new("B (time window buckets)", "at least 1"));
        }
        let bucket_nanos = match duration_to_nanos_saturating(span).checked_div(B as u64) {
            Some(n) => n,
            None => 0,
        };
        if bucket_nanos == 0 {
            return Err(ConfigError::new(
                "span",
                "at least one nanosecond per bucket",
            ));
        }
        Ok(TimeWindow {
            bucket_nanos,
            latest: 0,
            sum: Totals::ZERO,
            buckets: [Bucket {
                totals: Totals::ZERO,
            }; B],
        })
    }

    /// The length of one bucket.
    pub const fn bucket(&self) -> Duration {
        Duration::from_nanos(self.bucket_nanos)
    }

    /// Moves the window to the bucket of `now` (never before the latest seen), evicting
    /// the buckets that leave it, and returns the slot of the current bucket.
    fn advance(&mut self, now: Instant) -> usize {
        let index = now
            .as_nanos()
            .checked_div(self.bucket_nanos)
            .unwrap_or(0)
            .max(self.latest);
        let steps = index.saturating_sub(self.latest);
        if steps >= B as u64 {
            // Every bucket has aged out.
            self.sum = Totals::ZERO;
            for bucket in &mut self.buckets {
                bucket.totals = Totals::ZERO;
            }
        } else {
            // The slots of the indices entered now held buckets `B` indices older.
            for step in 1..=steps {
                let entered = self.latest.saturating_add(step);
                let slot = Self::slot(entered);
                if let Some(bucket) = self.buckets.get_mut(slot) {
                    self.sum.remove_all(bucket.totals);
                    bucket.totals = Totals::ZERO;
                }
            }
        }
        self.latest = index;
        Self::slot(index)
    }

    fn slot(index: u64) -> usize {
        usize::try_from(index.checked_rem(B as u64).unwrap_or(0)).unwrap_or(0)
    }
}

/// A time window's batch bound: once `minimum_calls` are in (`sum`), the last instant of
/// the latest bucket (index `latest`, `bucket_nanos` long). Shared by [`TimeWindow`] and
/// [`TimeWindowUpTo`](super::TimeWindowUpTo).
pub(super) fn batch_bound(
    sum: Totals,
    thresholds: &Thresholds,
    latest: u64,
    bucket_nanos: u64,
) -> Option<Instant> {
    if sum.calls < thresholds.minimum_calls {
        return None;
    }
    let end = latest
        .saturating_add(1)
        .saturating_mul(bucket_nanos)
        .saturating_sub(1);
    Some(Instant::from_nanos(end))
}

impl<const B: usize> Window for TimeWindow<B> {
    #[inline]
    fn record(&mut self, call: CallRecord, now: Instant) {
        let slot = self.advance(now);
        if let Some(bucket) = self.buckets.get_mut(slot) {
            bucket.totals.add(call);
            self.sum.add(call);
        }
    }

    #[inline]
    fn totals(&mut self, now: Instant) -> Totals {
        self.advance(now);
        self.sum
    }

    fn reset(&mut self) {
        self.sum = Totals::ZERO;
        for bucket in &mut self.buckets {
            bucket.totals = Totals::ZERO;
        }
    }

    /// Within the latest bucket (an earlier instant counts as the latest) and once
    /// `minimum_calls` are in, a success that is not slow evicts nothing and only lowers
    /// the rates. The bound is the last instant of the latest bucket; it moves forward
    /// only, as the latest bucket does.
    fn batch_until(&mut self, thresholds: &Thresholds) -> Option<Instant> {
        batch_bound(self.sum, thresholds, self.latest, self.bucket_nanos)
    }

    /// O(1): all of them go into the latest bucket.
    fn record_successes(&mut self, count: u16) {
        let slot = Self::slot(self.latest);
        if let Some(bucket) = self.buckets.get_mut(slot) {
            bucket.totals.add_successes(u32::from(count));
            self.sum.add_successes(u32::from(count));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: CallRecord = CallRecord {
        failure: true,
        slow: false,
    };
    const OK: CallRecord = CallRecord {
        failure: false,
        slow: false,
    };

    #[test]
    fn buckets_age_out_one_by_one() {
        let mut w = TimeWindow::<4>::new(Duration::from_secs(4)).unwrap();
        w.record(FAIL, Instant::from_millis(100)); // bucket 0
        w.record(OK, Instant::from_millis(1_100)); // bucket 1
        w.record(FAIL, Instant::from_millis(3_900)); // bucket 3
        assert_eq!(
            w.totals(Instant::from_millis(3_999)),
            Totals {
                calls: 3,
                failures: 2,
                slow: 0
            }
        );
        // At 4 s bucket 0 leaves the window.
        assert_eq!(
            w.totals(Instant::from_secs(4)),
            Totals {
                calls: 2,
                failures: 1,
                slow: 0
            }
        );
        // Reusing slot 1 for bucket 5 evicts bucket 1.
        w.record(FAIL, Instant::from_millis(5_000));
        assert_eq!(
            w.totals(Instant::from_millis(5_000)),
            Totals {
                calls: 2,
                failures: 2,
                slow: 0
            }
        );
        // Eight seconds later everything is gone.
        assert_eq!(w.totals(Instant::from_secs(13)), Totals::ZERO);
    }

    #[test]
    fn batches_stay_within_the_latest_bucket() {
        let rules = |minimum_calls| Thresholds {
            failure_rate_percent: 50,
            slow_call_rate_percent: 100,
            minimum_calls,
        };
        let mut w = TimeWindow::<4>::new(Duration::from_secs(4)).unwrap();
        w.record(FAIL, Instant::from_millis(1_500)); // bucket 1
        assert_eq!(w.batch_until(&rules(2)), None);
        assert_eq!(
            w.batch_until(&rules(1)),
            Some(Instant::from_nanos(1_999_999_999))
        );
        w.record_successes(3);
        assert_eq!(
            w.totals(Instant::from_millis(1_999)),
            Totals {
                calls: 4,
                failures: 1,
                slow: 0
            }
        );
        // The batch went into bucket 1: it ages out with it.
        assert_eq!(w.totals(Instant::from_secs(5)), Totals::ZERO);
        assert_eq!(w.batch_until(&rules(1)), None);
    }

    #[test]
    fn backwards_time_counts_as_the_latest() {
        let mut w = TimeWindow::<2>::new(Duration::from_secs(2)).unwrap();
        w.record(FAIL, Instant::from_secs(10));
        w.record(FAIL, Instant::from_secs(1)); // backwards: counted in bucket 10
        assert_eq!(w.totals(Instant::from_secs(10)).failures, 2);
        assert_eq!(w.totals(Instant::ZERO).failures, 2);
        assert_eq!(w.totals(Instant::from_secs(12)).failures, 0);
    }

    #[test]
    fn extremes_do_not_panic() {
        let mut w = TimeWindow::<3>::new(Duration::MAX).unwrap();
        w.record(FAIL, Instant::MAX);
        assert_eq!(w.totals(Instant::MAX).failures, 1);
        let mut w = TimeWindow::<3>::new(Duration::from_nanos(3)).unwrap();
        w.record(FAIL, Instant::MAX);
        assert_eq!(w.totals(Instant::MAX).failures, 1);
        let rules = Thresholds {
            failure_rate_percent: 50,
            slow_call_rate_percent: 100,
            minimum_calls: 1,
        };
        assert_eq!(
            w.batch_until(&rules),
            Some(Instant::from_nanos(u64::MAX - 1))
        );
        assert!(TimeWindow::<3>::new(Duration::from_nanos(2)).is_err());
        assert!(TimeWindow::<0>::new(Duration::from_secs(1)).is_err());
        w.reset();
        assert_eq!(w.totals(Instant::MAX), Totals::ZERO);
    }
}

#[cfg(all(test, not(loom)))]
mod model {
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(256)))]

        /// The running total equals a naive sum over every recorded call whose bucket
        /// index is within the last `B` of the latest index seen.
        #[test]
        fn running_total_matches_a_naive_sum(
            steps in proptest::collection::vec((0u64..2_500, any::<bool>(), any::<bool>(), any::<bool>()), 1..100),
        ) {
            let mut w = TimeWindow::<4>::new(Duration::from_secs(4)).unwrap();
            let mut calls: Vec<(u64, CallRecord)> = Vec::new();
            let mut now = 0u64;
            let mut latest = 0u64;
            for (advance_ms, backwards, failure, slow) in steps {
                now = if backwards { now.saturating_sub(advance_ms) } else { now + advance_ms };
                let t = Instant::from_millis(now);
                latest = latest.max(now / 1_000);
                let call = CallRecord { failure, slow };
                w.record(call, t);
                calls.push((latest, call));
                let mut want = Totals::ZERO;
                for (index, c) in &calls {
                    if latest - index < 4 {
                        want.add(*c);
                    }
                }
                prop_assert_eq!(w.totals(t), want);
            }
        }
    }
}
