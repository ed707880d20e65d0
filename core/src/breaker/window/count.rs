//! [`CountWindow`]: the last `N` calls.
//!
//! What it does: a ring of the last `N` outcomes with running totals; a new outcome
//! evicts the oldest once the ring is full.
//!
//! When to choose it: the default (resilience4j's `COUNT_BASED` window). The rates mean
//! "of the last `N` calls", whatever the traffic; `minimum_calls` is clamped to `N`.
//!
//! ```
//! use stanchion::Instant;
//! use stanchion::breaker::window::{CallRecord, CountWindow, Totals, Window};
//!
//! let mut w = CountWindow::<2>::new().unwrap();
//! let fail = CallRecord { failure: true, slow: false };
//! let ok = CallRecord { failure: false, slow: false };
//! w.record(fail, Instant::ZERO);
//! w.record(ok, Instant::ZERO);
//! w.record(ok, Instant::ZERO); // evicts the failure
//! assert_eq!(w.totals(Instant::ZERO), Totals { calls: 2, failures: 0, slow: 0 });
//! ```
//!
//! Cost: `N` bytes plus 20; O(1) per outcome and per evaluation. On targets with native
//! 64-bit atomics, once the window holds
//! `minimum_calls`, the breaker counts successes that are not slow without its critical
//! section and hands them over in one batch (at most `N` ring steps) at the next locked
//! outcome, so a mostly successful closed path is one compare-and-swap per call.
//!
//! Origin: resilience4j's `FixedSizeSlidingWindowMetrics`.

use crate::ConfigError;
use crate::Instant;

use super::{CallRecord, SUCCESS, Thresholds, Totals, Window};

const FAILURE: u8 = 1;
const SLOW: u8 = 2;

/// One outcome into a ring of the last `size` calls (`size` at most `ring.len()`): the
/// oldest leaves once `size` are in. Shared by [`CountWindow`] (`size = N`) and
/// [`CountWindowUpTo`](super::CountWindowUpTo) (`size` chosen at run time).
#[inline]
pub(super) fn record_in_ring(
    ring: &mut [u8],
    size: usize,
    next: &mut usize,
    totals: &mut Totals,
    call: CallRecord,
) {
    let bits = (if call.failure { FAILURE } else { 0 }) | (if call.slow { SLOW } else { 0 });
    if let Some(slot) = ring.get_mut(*next) {
        // Full: the oldest call leaves as this one comes in.
        if usize::try_from(totals.calls).unwrap_or(usize::MAX) >= size {
            totals.remove(decode(*slot));
        }
        *slot = bits;
    }
    totals.add(call);
    let following = next.saturating_add(1);
    *next = if following >= size { 0 } else { following };
}

/// The last `N` calls (`N` at least 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CountWindow<const N: usize> {
    ring: [u8; N],
    next: usize,
    /// Its `calls` are also how many slots of the ring are filled (at most `N`).
    totals: Totals,
}

impl<const N: usize> CountWindow<N> {
    /// An empty window; `N` must be at least 1.
    pub const fn new() -> Result<CountWindow<N>, ConfigError> {
        if N == 0 {
            return Err(ConfigError::new("N (count window size)", "at least 1"));
        }
        Ok(CountWindow {
            ring: [0; N],
            next: 0,
            totals: Totals::ZERO,
        })
    }
}

const fn decode(bits: u8) -> CallRecord {
    CallRecord {
        failure: bits & FAILURE != 0,
        slow: bits & SLOW != 0,
    }
}

impl<const N: usize> Window for CountWindow<N> {
    #[inline]
    fn record(&mut self, call: CallRecord, _now: Instant) {
        record_in_ring(&mut self.ring, N, &mut self.next, &mut self.totals, call);
    }

    #[inline]
    fn totals(&mut self, _now: Instant) -> Totals {
        self.totals
    }

    /// The ring's position stays where it is: the next `N` calls fill it from there, and
    /// only then is anything evicted (fewer stores than a full clear, no `memset`).
    fn reset(&mut self) {
        self.totals = Totals::ZERO;
    }

    fn max_calls(&self) -> u32 {
        u32::try_from(N).unwrap_or(u32::MAX)
    }

    /// Once `minimum_calls` are in, a success that is not slow only lowers the rates: it
    /// adds a call that neither failed nor was slow, or replaces the oldest call with one.
    fn batch_until(&mut self, thresholds: &Thresholds) -> Option<Instant> {
        (self.totals.calls >= thresholds.minimum_calls).then_some(Instant::MAX)
    }

    /// At most `N` steps: `N` successes in a row replace every call in the ring.
    fn record_successes(&mut self, count: u16) {
        for _ in 0..usize::from(count).min(N) {
            self.record(SUCCESS, Instant::ZERO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest() {
        let fail = CallRecord {
            failure: true,
            slow: true,
        };
        let ok = CallRecord {
            failure: false,
            slow: false,
        };
        let mut w = CountWindow::<3>::new().unwrap();
        w.record(fail, Instant::ZERO);
        w.record(ok, Instant::ZERO);
        w.record(fail, Instant::ZERO);
        assert_eq!(
            w.totals(Instant::ZERO),
            Totals {
                calls: 3,
                failures: 2,
                slow: 2
            }
        );
        w.record(ok, Instant::ZERO); // evicts the first failure
        assert_eq!(
            w.totals(Instant::ZERO),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(ok, Instant::ZERO);
        w.record(ok, Instant::ZERO);
        assert_eq!(
            w.totals(Instant::ZERO),
            Totals {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        w.reset();
        assert_eq!(w.totals(Instant::ZERO), Totals::ZERO);
        assert_eq!(w.max_calls(), 3);
        let rules = |minimum_calls| Thresholds {
            failure_rate_percent: 50,
            slow_call_rate_percent: 100,
            minimum_calls,
        };
        w.record(fail, Instant::ZERO);
        assert_eq!(w.batch_until(&rules(2)), None);
        assert_eq!(w.batch_until(&rules(1)), Some(Instant::MAX));
        w.record_successes(1);
        assert_eq!(w.totals(Instant::ZERO).calls, 2);
        // More successes than slots replace every call, in at most N steps.
        w.record_successes(u16::MAX);
        assert_eq!(
            w.totals(Instant::ZERO),
            Totals {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        w.record(fail, Instant::ZERO);
        w.record_successes(2);
        assert_eq!(w.totals(Instant::ZERO).failures, 1);
        w.record_successes(1); // evicts the failure
        assert_eq!(w.totals(Instant::ZERO).failures, 0);
        assert!(CountWindow::<0>::new().is_err());
    }
}
