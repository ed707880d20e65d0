//! [`ConsecutiveWindow`]: opens after a run of consecutive failures (or slow calls).
//!
//! What it does: counts the current streak of failures and the current streak of slow
//! calls; a success resets the failure streak, a call that is not slow resets the slow
//! streak. A streak of `length` reaches the corresponding threshold, whatever the
//! configured rate thresholds and minimum calls (they still apply to the half-open probes).
//!
//! When to choose it: a low-traffic dependency, where "5 failures in a row" is the rule
//! people reason about (failsafe's and Polly's consecutive-failure breakers), and a rate
//! over a window would need too many calls to mean anything.
//!
//! ```
//! use stanchion::Instant;
//! use stanchion::breaker::window::{CallRecord, ConsecutiveWindow, Thresholds, Window};
//!
//! let mut w = ConsecutiveWindow::new(3).unwrap();
//! let fail = CallRecord { failure: true, slow: false };
//! let rules = Thresholds { failure_rate_percent: 50, slow_call_rate_percent: 100, minimum_calls: 1 };
//! w.record(fail, Instant::ZERO);
//! w.record(fail, Instant::ZERO);
//! assert!(!w.exceeded(Instant::ZERO, &rules).any());
//! w.record(fail, Instant::ZERO);
//! assert!(w.exceeded(Instant::ZERO, &rules).failure_rate);
//! ```
//!
//! Cost: 12 bytes; O(1) per outcome. On targets with native 64-bit atomics, while no slow
//! streak is running, the breaker keeps
//! the failure streak in its state word ([`Window::failure_streak`]): a success that is
//! not slow is one atomic load (no failure streak running) or one compare-and-swap (ending
//! one), and a failure that is not slow is one compare-and-swap, except the one that
//! reaches `length`, which takes the critical section and opens the breaker.
//!
//! Origin: the consecutive-failures policy of failsafe-rs and Polly's original circuit
//! breaker; resilience4j has no such window.

use crate::ConfigError;
use crate::Instant;

use super::{CallRecord, Exceeded, FailureStreak, Thresholds, Totals, Window};

/// Reaches its threshold after `length` consecutive failures or slow calls.
///
/// Its [`totals`](Window::totals) are the streaks: `failures` and `slow` are the current
/// streaks and `calls` the longer of the two, so its reported rates are 100 % or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConsecutiveWindow {
    length: u32,
    failures: u32,
    slow: u32,
}

impl ConsecutiveWindow {
    /// A window that reaches its threshold after `length` consecutive failures (or slow
    /// calls); `length` is at least 1.
    pub const fn new(length: u32) -> Result<ConsecutiveWindow, ConfigError> {
        if length == 0 {
            return Err(ConfigError::new("length", "at least 1"));
        }
        Ok(ConsecutiveWindow {
            length,
            failures: 0,
            slow: 0,
        })
    }

    /// The streak length that trips it.
    pub const fn length(&self) -> u32 {
        self.length
    }
}

impl Window for ConsecutiveWindow {
    #[inline]
    fn record(&mut self, call: CallRecord, _now: Instant) {
        self.failures = if call.failure {
            self.failures.saturating_add(1)
        } else {
            0
        };
        self.slow = if call.slow {
            self.slow.saturating_add(1)
        } else {
            0
        };
    }

    fn totals(&mut self, _now: Instant) -> Totals {
        Totals {
            calls: self.failures.max(self.slow),
            failures: self.failures,
            slow: self.slow,
        }
    }

    fn reset(&mut self) {
        self.failures = 0;
        self.slow = 0;
    }

    fn max_calls(&self) -> u32 {
        self.length
    }

    #[inline]
    fn success_is_noop(&self) -> bool {
        self.failures == 0 && self.slow == 0
    }

    const KEEPS_FAILURE_STREAKS: bool = true;

    /// The failure streak, while no slow streak runs (a call that is not slow then leaves
    /// the slow streak at zero); `limit` is `length - 1`.
    #[inline]
    fn failure_streak(&self, _thresholds: &Thresholds) -> Option<FailureStreak> {
        (self.slow == 0).then_some(FailureStreak {
            failures: self.failures,
            limit: self.length.saturating_sub(1),
        })
    }

    #[inline]
    fn set_failure_streak(&mut self, failures: u32) {
        self.failures = failures;
    }

    #[inline]
    fn exceeded(&mut self, _now: Instant, _thresholds: &Thresholds) -> Exceeded {
        Exceeded {
            failure_rate: self.failures >= self.length,
            slow_call_rate: self.slow >= self.length,
        }
    }

    fn rates(&mut self, _now: Instant, _minimum_calls: u32) -> (Option<u16>, Option<u16>) {
        let streak = |n: u32| (n >= self.length).then_some(10_000);
        (streak(self.failures), streak(self.slow))
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
    const SLOW: CallRecord = CallRecord {
        failure: false,
        slow: true,
    };
    const RULES: Thresholds = Thresholds {
        failure_rate_percent: 50,
        slow_call_rate_percent: 100,
        minimum_calls: 100,
    };

    #[test]
    fn a_success_breaks_the_streak() {
        let mut w = ConsecutiveWindow::new(2).unwrap();
        w.record(FAIL, Instant::ZERO);
        w.record(OK, Instant::ZERO);
        w.record(FAIL, Instant::ZERO);
        assert_eq!(w.exceeded(Instant::ZERO, &RULES), Exceeded::NONE);
        w.record(FAIL, Instant::ZERO);
        assert!(w.exceeded(Instant::ZERO, &RULES).failure_rate);
        w.reset();
        assert_eq!(w.totals(Instant::ZERO), Totals::ZERO);
        assert_eq!(ConsecutiveWindow::new(0).unwrap_err().field(), "length");
    }

    #[test]
    fn the_failure_streak_is_handed_out_while_no_slow_streak_runs() {
        let mut w = ConsecutiveWindow::new(3).unwrap();
        w.record(FAIL, Instant::ZERO);
        assert_eq!(
            w.failure_streak(&RULES),
            Some(FailureStreak {
                failures: 1,
                limit: 2
            })
        );
        w.set_failure_streak(2);
        assert_eq!(w.totals(Instant::ZERO).failures, 2);
        w.record(FAIL, Instant::ZERO);
        assert!(w.exceeded(Instant::ZERO, &RULES).failure_rate);
        w.record(SLOW, Instant::ZERO);
        assert_eq!(w.failure_streak(&RULES), None);
        w.record(OK, Instant::ZERO);
        assert_eq!(
            w.failure_streak(&RULES),
            Some(FailureStreak {
                failures: 0,
                limit: 2
            })
        );
    }

    #[test]
    fn slow_streaks_count_separately() {
        let mut w = ConsecutiveWindow::new(2).unwrap();
        w.record(SLOW, Instant::ZERO);
        w.record(SLOW, Instant::ZERO);
        assert_eq!(
            w.exceeded(Instant::ZERO, &RULES),
            Exceeded {
                failure_rate: false,
                slow_call_rate: true
            }
        );
    }
}
