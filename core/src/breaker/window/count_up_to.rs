//! [`CountWindowUpTo`]: the last `size` calls, `size` chosen at run time up to a capacity.
//!
//! What it does: what [`CountWindow<N>`](super::CountWindow) does with `N = size`: a ring
//! of the last `size` outcomes with running totals; a new outcome evicts the oldest once
//! the ring holds `size`; `minimum_calls` is clamped to `size`. The storage is `CAP`
//! slots, fixed at compile time; the window uses the first `size` of them. For the same
//! outcomes it takes the same decisions as `CountWindow<size>` (a property test compares
//! the two inside a breaker).
//!
//! When to choose it: when the size comes from configuration read at start (a file, the
//! environment), so that one build can run with 50 calls here and 100 there. Pick `CAP`
//! as the largest size you accept; a size above it is refused at construction. When the
//! size is known when compiling, [`CountWindow<N>`](super::CountWindow) is the smaller
//! choice (no unused slots, no size field), and the one firmware measures.
//!
//! ```
//! use stanchion::Instant;
//! use stanchion::breaker::window::{CallRecord, CountWindowUpTo, Totals, Window};
//!
//! // Room for up to 128 calls; this deployment looks at the last 2.
//! let size: u32 = 2; // read from configuration
//! let mut w = CountWindowUpTo::<128>::new(size)?;
//! let fail = CallRecord { failure: true, slow: false };
//! let ok = CallRecord { failure: false, slow: false };
//! w.record(fail, Instant::ZERO);
//! w.record(ok, Instant::ZERO);
//! w.record(ok, Instant::ZERO); // evicts the failure
//! assert_eq!(w.totals(Instant::ZERO), Totals { calls: 2, failures: 0, slow: 0 });
//!
//! let err = CountWindowUpTo::<128>::new(500).unwrap_err();
//! assert_eq!(err.field(), "size");
//! assert_eq!(err.allowed(), "in 1..=CAP (the window's capacity)");
//! # Ok::<(), stanchion::ConfigError>(())
//! ```
//!
//! Cost: `CAP` bytes plus 28 (on 64-bit targets; plus 20 on 32-bit ones), whatever the
//! size; O(1) per outcome and per evaluation. The breaker's lock-free paths are those of
//! [`CountWindow`](super::CountWindow): on targets with native 64-bit atomics, once the
//! window holds `minimum_calls`, successes that are not slow are counted without the
//! critical section and handed over in one batch (at most `size` ring steps).
//!
//! Origin: resilience4j's `FixedSizeSlidingWindowMetrics`, whose size is a run-time
//! setting; the capacity bound is heapless's (storage fixed at compile time, no
//! allocation).

use crate::ConfigError;
use crate::Instant;

use super::count::record_in_ring;
use super::{CallRecord, SUCCESS, Thresholds, Totals, Window};

/// The last `size` calls, with `size` in `1..=CAP` chosen at run time.
///
/// ```
/// use stanchion::breaker::window::CountWindowUpTo;
///
/// let w = CountWindowUpTo::<100>::new(50)?;
/// assert_eq!((w.size(), w.capacity()), (50, 100));
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CountWindowUpTo<const CAP: usize> {
    ring: [u8; CAP],
    /// The number of slots in use, in `1..=CAP`.
    size: usize,
    next: usize,
    /// Its `calls` are also how many slots of the ring are filled (at most `size`).
    totals: Totals,
}

impl<const CAP: usize> CountWindowUpTo<CAP> {
    /// An empty window over the last `size` calls; `size` must be in `1..=CAP`.
    ///
    /// The error names the field `size`; a `CAP` of 0 refuses every size.
    pub const fn new(size: u32) -> Result<CountWindowUpTo<CAP>, ConfigError> {
        // Compared as u64, which holds every u32 and every usize of the targets Rust
        // supports, so nothing truncates.
        if size == 0 || size as u64 > CAP as u64 {
            return Err(ConfigError::new(
                "size",
                "in 1..=CAP (the window's capacity)",
            ));
        }
        Ok(CountWindowUpTo {
            ring: [0; CAP],
            // At most CAP, a usize: the conversion is exact.
            size: size as usize,
            next: 0,
            totals: Totals::ZERO,
        })
    }

    /// The number of calls the window looks at, as given to [`new`](Self::new).
    pub const fn size(&self) -> u32 {
        // At most the u32 given to `new`.
        self.size as u32
    }

    /// `CAP`: the largest size this type accepts.
    pub const fn capacity(&self) -> usize {
        CAP
    }
}

impl<const CAP: usize> Window for CountWindowUpTo<CAP> {
    #[inline]
    fn record(&mut self, call: CallRecord, _now: Instant) {
        record_in_ring(
            &mut self.ring,
            self.size,
            &mut self.next,
            &mut self.totals,
            call,
        );
    }

    #[inline]
    fn totals(&mut self, _now: Instant) -> Totals {
        self.totals
    }

    /// The ring's position stays where it is, as in [`CountWindow`](super::CountWindow).
    fn reset(&mut self) {
        self.totals = Totals::ZERO;
    }

    fn max_calls(&self) -> u32 {
        self.size()
    }

    /// Once `minimum_calls` are in, a success that is not slow only lowers the rates.
    fn batch_until(&mut self, thresholds: &Thresholds) -> Option<Instant> {
        (self.totals.calls >= thresholds.minimum_calls).then_some(Instant::MAX)
    }

    /// At most `size` steps: `size` successes in a row replace every call in the ring.
    fn record_successes(&mut self, count: u16) {
        for _ in 0..usize::from(count).min(self.size) {
            self.record(SUCCESS, Instant::ZERO);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    const FAIL: CallRecord = CallRecord {
        failure: true,
        slow: true,
    };
    const OK: CallRecord = CallRecord {
        failure: false,
        slow: false,
    };

    #[test]
    fn sizes_outside_one_to_the_capacity_are_refused() {
        let refused = ConfigError::new("size", "in 1..=CAP (the window's capacity)");
        assert_eq!(CountWindowUpTo::<100>::new(0), Err(refused));
        assert_eq!(CountWindowUpTo::<100>::new(101), Err(refused));
        assert_eq!(CountWindowUpTo::<100>::new(u32::MAX), Err(refused));
        assert_eq!(CountWindowUpTo::<0>::new(1), Err(refused));
        assert_eq!(CountWindowUpTo::<0>::new(0), Err(refused));
        assert_eq!(
            std::format!("{}", refused),
            "invalid configuration: `size` must be in 1..=CAP (the window's capacity)"
        );
        let w = CountWindowUpTo::<100>::new(100).unwrap();
        assert_eq!((w.size(), w.capacity(), w.max_calls()), (100, 100, 100));
        let w = CountWindowUpTo::<100>::new(1).unwrap();
        assert_eq!((w.size(), w.capacity(), w.max_calls()), (1, 100, 1));
    }

    #[test]
    fn evicts_the_oldest_of_size_not_of_capacity() {
        let mut w = CountWindowUpTo::<8>::new(3).unwrap();
        w.record(FAIL, Instant::ZERO);
        w.record(OK, Instant::ZERO);
        w.record(FAIL, Instant::ZERO);
        assert_eq!(
            w.totals(Instant::ZERO),
            Totals {
                calls: 3,
                failures: 2,
                slow: 2
            }
        );
        w.record(OK, Instant::ZERO); // evicts the first failure
        assert_eq!(
            w.totals(Instant::ZERO),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(OK, Instant::ZERO);
        assert_eq!(w.totals(Instant::ZERO).failures, 1);
        w.record(OK, Instant::ZERO); // evicts the second failure
        assert_eq!(w.totals(Instant::ZERO).failures, 0);
        w.reset();
        assert_eq!(w.totals(Instant::ZERO), Totals::ZERO);
        let rules = |minimum_calls| Thresholds {
            failure_rate_percent: 50,
            slow_call_rate_percent: 100,
            minimum_calls,
        };
        w.record(FAIL, Instant::ZERO);
        assert_eq!(w.batch_until(&rules(2)), None);
        assert_eq!(w.batch_until(&rules(1)), Some(Instant::MAX));
        // More successes than the size replace every call, in at most `size` steps.
        w.record_successes(u16::MAX);
        assert_eq!(
            w.totals(Instant::ZERO),
            Totals {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        w.record(FAIL, Instant::ZERO);
        w.record_successes(2);
        assert_eq!(w.totals(Instant::ZERO).failures, 1);
        w.record_successes(1); // evicts the failure
        assert_eq!(w.totals(Instant::ZERO).failures, 0);
    }
}

#[cfg(all(test, not(loom)))]
mod model {
    use proptest::prelude::*;

    use super::super::CountWindow;
    use super::*;

    /// Drives a `CountWindow<N>` and a `CountWindowUpTo<CAP>` of size `N` through the same
    /// operations and compares everything the breaker reads from a window.
    fn agree<const N: usize, const CAP: usize>(
        ops: &[(u8, u8)],
        minimum: u32,
    ) -> Result<(), TestCaseError> {
        let mut fixed = CountWindow::<N>::new().unwrap();
        let mut sized = CountWindowUpTo::<CAP>::new(N as u32).unwrap();
        let rules = Thresholds {
            failure_rate_percent: 50,
            slow_call_rate_percent: 80,
            minimum_calls: minimum.min(fixed.max_calls()),
        };
        prop_assert_eq!(fixed.max_calls(), sized.max_calls());
        for &(kind, count) in ops {
            match kind % 6 {
                0 | 1 => {
                    let call = CallRecord {
                        failure: kind % 6 == 1,
                        slow: count % 3 == 0,
                    };
                    fixed.record(call, Instant::ZERO);
                    sized.record(call, Instant::ZERO);
                }
                2 => {
                    fixed.record_successes(count.into());
                    sized.record_successes(count.into());
                }
                3 => {
                    fixed.reset();
                    sized.reset();
                }
                _ => prop_assert_eq!(fixed.batch_until(&rules), sized.batch_until(&rules)),
            }
            prop_assert_eq!(fixed.totals(Instant::ZERO), sized.totals(Instant::ZERO));
            prop_assert_eq!(
                fixed.exceeded(Instant::ZERO, &rules),
                sized.exceeded(Instant::ZERO, &rules)
            );
            prop_assert_eq!(
                fixed.rates(Instant::ZERO, rules.minimum_calls),
                sized.rates(Instant::ZERO, rules.minimum_calls)
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(256)))]

        /// The run-time sized window counts exactly as the const-sized one of its size.
        #[test]
        fn counts_as_the_const_sized_window(
            ops in proptest::collection::vec((any::<u8>(), 0u8..120), 1..400),
            minimum in 1u32..120,
        ) {
            agree::<1, 1>(&ops, minimum)?;
            agree::<1, 100>(&ops, minimum)?;
            agree::<5, 100>(&ops, minimum)?;
            agree::<32, 32>(&ops, minimum)?;
            agree::<50, 100>(&ops, minimum)?;
            agree::<100, 100>(&ops, minimum)?;
            agree::<100, 128>(&ops, minimum)?;
        }
    }
}
