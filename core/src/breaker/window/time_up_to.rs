//! [`TimeWindowUpTo`]: the calls of the last span of time, in a number of buckets chosen
//! at run time up to a capacity.
//!
//! What it does: what [`TimeWindow<B>`](super::TimeWindow) does with `B = buckets`:
//! splits time into buckets of `span / buckets` (rounded down to whole nanoseconds, at
//! least one) and keeps the counts of the last `buckets` of them, the current one
//! included. A bucket older than that is evicted when its slot is reused or when totals
//! are read; an instant earlier than the latest seen counts as the latest. The storage is
//! `CAP` buckets, fixed at compile time; the window uses the first `buckets` of them. For
//! the same outcomes and instants it takes the same decisions as `TimeWindow<buckets>`
//! over the same span (a property test compares the two inside a breaker).
//!
//! When to choose it: when the span or the bucket count comes from configuration read at
//! start. The span is a run-time value for both time windows; this one lets the bucket
//! count (the resolution: how much of the oldest bucket leaves at once) be one too. Pick
//! `CAP` as the most buckets you accept. When the count is known when compiling,
//! [`TimeWindow<B>`](super::TimeWindow) is the smaller choice. As with it,
//! `minimum_calls` is not clamped: with little traffic the window may never hold enough
//! calls to trip.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::Instant;
//! use stanchion::breaker::window::{CallRecord, TimeWindowUpTo, Window};
//!
//! // Room for up to 60 buckets; this deployment uses ten seconds in ten buckets.
//! let (span, buckets) = (Duration::from_secs(10), 10); // read from configuration
//! let mut w = TimeWindowUpTo::<60>::new(span, buckets)?;
//! assert_eq!(w.bucket(), Duration::from_secs(1));
//! let fail = CallRecord { failure: true, slow: false };
//! w.record(fail, Instant::from_millis(500));
//! assert_eq!(w.totals(Instant::from_millis(9_999)).failures, 1);
//! assert_eq!(w.totals(Instant::from_secs(10)).failures, 0); // its bucket aged out
//!
//! let err = TimeWindowUpTo::<60>::new(span, 61).unwrap_err();
//! assert_eq!(err.field(), "buckets");
//! assert_eq!(err.allowed(), "in 1..=CAP (the window's bucket capacity)");
//! # Ok::<(), stanchion::ConfigError>(())
//! ```
//!
//! Cost: 12 bytes per bucket of capacity plus 36, whatever the count in use; O(1) per
//! outcome and per evaluation (a running total), plus one step per bucket that time has
//! moved past, at most `buckets`. The breaker's lock-free paths are those of
//! [`TimeWindow`](super::TimeWindow): on targets with native 64-bit atomics, once the
//! window holds `minimum_calls`, successes that are not slow and end within the latest
//! bucket are counted without the critical section.
//!
//! Origin: resilience4j's `SlidingTimeWindowMetrics` (one bucket per second there, their
//! number a run-time setting); the capacity bound is heapless's (storage fixed at compile
//! time, no allocation).

use core::time::Duration;

use crate::ConfigError;
use crate::Instant;
use crate::time::duration_to_nanos_saturating;

use super::{CallRecord, Thresholds, Totals, Window};

/// The calls of the last `span`, in `buckets` buckets, with `buckets` in `1..=CAP` chosen
/// at run time.
///
/// ```
/// use core::time::Duration;
/// use stanchion::breaker::window::TimeWindowUpTo;
///
/// let w = TimeWindowUpTo::<60>::new(Duration::from_secs(30), 30)?;
/// assert_eq!((w.buckets(), w.capacity()), (30, 60));
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimeWindowUpTo<const CAP: usize> {
    bucket_nanos: u64,
    /// The number of buckets in use, in `1..=CAP`.
    in_use: u64,
    latest: u64,
    /// The totals of the live buckets (those of the last `in_use` bucket indices up to
    /// `latest`), kept as buckets enter and leave.
    sum: Totals,
    buckets: [Totals; CAP],
}

impl<const CAP: usize> TimeWindowUpTo<CAP> {
    /// A window over `span`, in `buckets` buckets of `span / buckets` each (rounded
    /// down). `buckets` must be in `1..=CAP` (the error names the field `buckets`); the
    /// span must give each bucket at least one nanosecond (the error names `span`).
    pub const fn new(span: Duration, buckets: u32) -> Result<TimeWindowUpTo<CAP>, ConfigError> {
        // Compared as u64, which holds every u32 and every usize of the targets Rust
        // supports, so nothing truncates.
        if buckets == 0 || buckets as u64 > CAP as u64 {
            return Err(ConfigError::new(
                "buckets",
                "in 1..=CAP (the window's bucket capacity)",
            ));
        }
        let in_use = buckets as u64;
        let bucket_nanos = match duration_to_nanos_saturating(span).checked_div(in_use) {
            Some(n) => n,
            None => 0,
        };
        if bucket_nanos == 0 {
            return Err(ConfigError::new(
                "span",
                "at least one nanosecond per bucket",
            ));
        }
        Ok(TimeWindowUpTo {
            bucket_nanos,
            in_use,
            latest: 0,
            sum: Totals::ZERO,
            buckets: [Totals::ZERO; CAP],
        })
    }

    /// The length of one bucket.
    pub const fn bucket(&self) -> Duration {
        Duration::from_nanos(self.bucket_nanos)
    }

    /// The number of buckets in use, as given to [`new`](Self::new).
    pub const fn buckets(&self) -> u32 {
        // At most the u32 given to `new`.
        self.in_use as u32
    }

    /// `CAP`: the most buckets this type accepts.
    pub const fn capacity(&self) -> usize {
        CAP
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
        if steps >= self.in_use {
            // Every bucket has aged out.
            self.clear();
        } else {
            // The slots of the indices entered now held buckets `in_use` indices older.
            for step in 1..=steps {
                let entered = self.latest.saturating_add(step);
                let slot = self.slot(entered);
                if let Some(bucket) = self.buckets.get_mut(slot) {
                    self.sum.remove_all(*bucket);
                    *bucket = Totals::ZERO;
                }
            }
        }
        self.latest = index;
        self.slot(index)
    }

    /// Empties the buckets in use (the others are never written).
    fn clear(&mut self) {
        self.sum = Totals::ZERO;
        let in_use = usize::try_from(self.in_use).unwrap_or(usize::MAX);
        for bucket in self.buckets.iter_mut().take(in_use) {
            *bucket = Totals::ZERO;
        }
    }

    fn slot(&self, index: u64) -> usize {
        usize::try_from(index.checked_rem(self.in_use).unwrap_or(0)).unwrap_or(0)
    }
}

impl<const CAP: usize> Window for TimeWindowUpTo<CAP> {
    #[inline]
    fn record(&mut self, call: CallRecord, now: Instant) {
        let slot = self.advance(now);
        if let Some(bucket) = self.buckets.get_mut(slot) {
            bucket.add(call);
            self.sum.add(call);
        }
    }

    #[inline]
    fn totals(&mut self, now: Instant) -> Totals {
        self.advance(now);
        self.sum
    }

    fn reset(&mut self) {
        self.clear();
    }

    /// As [`TimeWindow`](super::TimeWindow)'s: within the latest bucket and once
    /// `minimum_calls` are in; the bound is the last instant of the latest bucket.
    fn batch_until(&mut self, thresholds: &Thresholds) -> Option<Instant> {
        super::time::batch_bound(self.sum, thresholds, self.latest, self.bucket_nanos)
    }

    /// O(1): all of them go into the latest bucket.
    fn record_successes(&mut self, count: u16) {
        let slot = self.slot(self.latest);
        if let Some(bucket) = self.buckets.get_mut(slot) {
            bucket.add_successes(u32::from(count));
            self.sum.add_successes(u32::from(count));
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

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
    fn bucket_counts_outside_one_to_the_capacity_are_refused() {
        let buckets = ConfigError::new("buckets", "in 1..=CAP (the window's bucket capacity)");
        let secs = Duration::from_secs;
        assert_eq!(TimeWindowUpTo::<10>::new(secs(10), 0), Err(buckets));
        assert_eq!(TimeWindowUpTo::<10>::new(secs(10), 11), Err(buckets));
        assert_eq!(TimeWindowUpTo::<10>::new(secs(10), u32::MAX), Err(buckets));
        assert_eq!(TimeWindowUpTo::<0>::new(secs(10), 1), Err(buckets));
        // The bucket count is checked before the span.
        assert_eq!(TimeWindowUpTo::<10>::new(Duration::ZERO, 0), Err(buckets));
        assert_eq!(
            std::format!("{}", buckets),
            "invalid configuration: `buckets` must be in 1..=CAP (the window's bucket capacity)"
        );
        let span = ConfigError::new("span", "at least one nanosecond per bucket");
        assert_eq!(TimeWindowUpTo::<10>::new(Duration::ZERO, 1), Err(span));
        assert_eq!(
            TimeWindowUpTo::<10>::new(Duration::from_nanos(9), 10),
            Err(span)
        );
        let w = TimeWindowUpTo::<10>::new(Duration::from_nanos(10), 10).unwrap();
        assert_eq!(
            (w.bucket(), w.buckets(), w.capacity()),
            (Duration::from_nanos(1), 10, 10)
        );
        let w = TimeWindowUpTo::<10>::new(secs(10), 4).unwrap();
        assert_eq!(
            (w.bucket(), w.buckets(), w.capacity()),
            (Duration::from_millis(2_500), 4, 10)
        );
        let w = TimeWindowUpTo::<10>::new(Duration::MAX, 3).unwrap();
        assert_eq!(w.bucket(), Duration::from_nanos(u64::MAX / 3));
    }

    #[test]
    fn buckets_age_out_after_the_count_in_use() {
        // Four buckets of one second in a window with room for sixteen.
        let mut w = TimeWindowUpTo::<16>::new(Duration::from_secs(4), 4).unwrap();
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
        let rules = Thresholds {
            failure_rate_percent: 50,
            slow_call_rate_percent: 100,
            minimum_calls: 2,
        };
        assert_eq!(
            w.batch_until(&rules),
            Some(Instant::from_nanos(5_999_999_999))
        );
        w.record_successes(2);
        assert_eq!(w.totals(Instant::from_millis(5_999)).calls, 4);
        // Eight seconds later everything is gone.
        assert_eq!(w.totals(Instant::from_secs(13)), Totals::ZERO);
        assert_eq!(w.batch_until(&rules), None);
        w.record(FAIL, Instant::MAX);
        assert_eq!(w.totals(Instant::MAX).failures, 1);
        w.reset();
        assert_eq!(w.totals(Instant::MAX), Totals::ZERO);
    }
}

#[cfg(all(test, not(loom)))]
mod model {
    use proptest::prelude::*;

    use super::super::TimeWindow;
    use super::*;

    /// Drives a `TimeWindow<B>` and a `TimeWindowUpTo<CAP>` of `B` buckets over the same
    /// span through the same operations and compares everything the breaker reads.
    fn agree<const B: usize, const CAP: usize>(
        span_ms: u64,
        ops: &[(u8, u64, bool)],
        minimum: u32,
    ) -> Result<(), TestCaseError> {
        let span = Duration::from_millis(span_ms);
        let mut fixed = TimeWindow::<B>::new(span).unwrap();
        let mut sized = TimeWindowUpTo::<CAP>::new(span, B as u32).unwrap();
        prop_assert_eq!(fixed.bucket(), sized.bucket());
        prop_assert_eq!(fixed.max_calls(), sized.max_calls());
        let rules = Thresholds {
            failure_rate_percent: 50,
            slow_call_rate_percent: 80,
            minimum_calls: minimum,
        };
        let mut now = 0u64;
        for &(kind, step_ms, backwards) in ops {
            now = if backwards {
                now.saturating_sub(step_ms)
            } else {
                now + step_ms
            };
            let t = Instant::from_millis(now);
            match kind % 6 {
                0 | 1 => {
                    let call = CallRecord {
                        failure: kind % 6 == 1,
                        slow: step_ms % 3 == 0,
                    };
                    fixed.record(call, t);
                    sized.record(call, t);
                }
                2 => {
                    let count = u16::from(kind);
                    fixed.record_successes(count);
                    sized.record_successes(count);
                }
                3 => {
                    fixed.reset();
                    sized.reset();
                }
                _ => prop_assert_eq!(fixed.batch_until(&rules), sized.batch_until(&rules)),
            }
            prop_assert_eq!(fixed.totals(t), sized.totals(t));
            prop_assert_eq!(fixed.exceeded(t, &rules), sized.exceeded(t, &rules));
            prop_assert_eq!(fixed.rates(t, minimum), sized.rates(t, minimum));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(256)))]

        /// The run-time sized window counts exactly as the const-sized one of its bucket
        /// count.
        #[test]
        fn counts_as_the_const_sized_window(
            span_ms in 100u64..20_000,
            ops in proptest::collection::vec((any::<u8>(), 0u64..3_000, any::<bool>()), 1..300),
            minimum in 1u32..60,
        ) {
            agree::<1, 1>(span_ms, &ops, minimum)?;
            agree::<1, 100>(span_ms, &ops, minimum)?;
            agree::<5, 100>(span_ms, &ops, minimum)?;
            agree::<32, 32>(span_ms, &ops, minimum)?;
            agree::<50, 100>(span_ms, &ops, minimum)?;
            agree::<100, 100>(span_ms, &ops, minimum)?;
        }
    }
}
