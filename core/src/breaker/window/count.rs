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
//! Cost: `N` bytes plus 24; O(1) per outcome and per evaluation.
//!
//! Origin: resilience4j's `FixedSizeSlidingWindowMetrics`.

use crate::ConfigError;
use crate::Instant;

use super::{CallRecord, Totals, Window};

const FAILURE: u8 = 1;
const SLOW: u8 = 2;

/// The last `N` calls (`N` at least 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CountWindow<const N: usize> {
    ring: [u8; N],
    next: usize,
    filled: usize,
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
            filled: 0,
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
        let bits = (if call.failure { FAILURE } else { 0 }) | (if call.slow { SLOW } else { 0 });
        if let Some(slot) = self.ring.get_mut(self.next) {
            if self.filled >= N {
                self.totals.remove(decode(*slot));
            } else {
                self.filled = self.filled.saturating_add(1);
            }
            *slot = bits;
        }
        self.totals.add(call);
        let next = self.next.saturating_add(1);
        self.next = if next >= N { 0 } else { next };
    }

    #[inline]
    fn totals(&mut self, _now: Instant) -> Totals {
        self.totals
    }

    fn reset(&mut self) {
        self.next = 0;
        self.filled = 0;
        self.totals = Totals::ZERO;
    }

    fn max_calls(&self) -> u32 {
        u32::try_from(N).unwrap_or(u32::MAX)
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
        assert!(CountWindow::<0>::new().is_err());
    }
}
