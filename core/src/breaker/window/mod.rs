//! Windows: which recorded calls a circuit breaker's thresholds look at.
//!
//! | window | remembers | state | cost per outcome |
//! |---|---|---|---|
//! | [`ConsecutiveWindow`] | the current failure and slow streaks | 12 bytes | O(1) |
//! | [`CountWindow<N>`](CountWindow) | the last `N` calls | `N` bytes + 20 | O(1) |
//! | [`TimeWindow<B>`](TimeWindow) | the calls of the last span, in `B` buckets | `12 * B` bytes + 28 | O(1) amortised |
//! | [`CountWindowUpTo<CAP>`](CountWindowUpTo) | the last `size` calls, `size` in `1..=CAP` chosen at run time | `CAP` bytes + 28 | O(1) |
//! | [`TimeWindowUpTo<CAP>`](TimeWindowUpTo) | the calls of the last span, in `buckets` buckets, `buckets` in `1..=CAP` chosen at run time | `12 * CAP` bytes + 36 | O(1) amortised |
//! | [`AnyWindow<CAP>`](AnyWindow) | one of the three above, the kind chosen at run time | the largest of them + a tag | theirs, plus a `match` |
//!
//! **Sized when compiling, or when starting.** [`CountWindow<N>`](CountWindow) and
//! [`TimeWindow<B>`](TimeWindow) take their size as a const generic: the smallest state and
//! code, and the choice for firmware and for sizes written in the source.
//! [`CountWindowUpTo<CAP>`](CountWindowUpTo) and [`TimeWindowUpTo<CAP>`](TimeWindowUpTo) fix
//! only a capacity when compiling and take the size (a plain `u32`, checked by `new`, which
//! names the field and the range) when the program starts, for a service that reads it from
//! its configuration: one build runs with 50 calls here and 100 there. They pay for the
//! capacity they do not use. For the same size they take the same decisions as the
//! const-sized ones: the same outcomes give the same states, metrics and rejections (a
//! property test drives both through a breaker).
//!
//! ```
//! use stanchion::ConfigError;
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::CountWindowUpTo};
//! use stanchion::sync::CriticalSectionRawMutex;
//!
//! /// Room for up to 128 calls; how many the breaker looks at is configuration.
//! type Breaker = CircuitBreaker<CountWindowUpTo<128>, CriticalSectionRawMutex>;
//!
//! fn breaker(window_size: u32) -> Result<Breaker, ConfigError> {
//!     CircuitBreaker::new(BreakerConfig::new(), CountWindowUpTo::new(window_size)?)
//! }
//! assert!(breaker(50).is_ok());
//! assert!(breaker(100).is_ok());
//! assert_eq!(
//!     breaker(200).unwrap_err().to_string(),
//!     "invalid configuration: `size` must be in 1..=CAP (the window's capacity)"
//! );
//! ```
//!
//! A window is a plain `&mut self` value; the breaker keeps it inside its critical section.
//! A window may let the breaker record calls that are not slow without that critical
//! section, on targets with native 64-bit atomics: the count and time windows (both
//! kinds) let it count successes ([`Window::batch_until`]) once they hold `minimum_calls`
//! (from then on such successes can only lower the rates), within the current bucket for
//! a time window;
//! [`ConsecutiveWindow`] lets it keep the failure streak
//! ([`Window::failure_streak`]) while no slow streak runs.

mod any;
mod consecutive;
mod count;
mod count_up_to;
mod time;
mod time_up_to;

pub use any::AnyWindow;
pub use consecutive::ConsecutiveWindow;
pub use count::CountWindow;
pub use count_up_to::CountWindowUpTo;
pub use time::TimeWindow;
pub use time_up_to::TimeWindowUpTo;

use crate::Instant;

/// One recorded outcome, as a window sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CallRecord {
    /// The call failed.
    pub failure: bool,
    /// The call took strictly longer than the slow-call duration.
    pub slow: bool,
}

/// A success that is not slow.
pub(crate) const SUCCESS: CallRecord = CallRecord {
    failure: false,
    slow: false,
};

/// Counts of recorded calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Totals {
    /// Calls recorded.
    pub calls: u32,
    /// Of which failed.
    pub failures: u32,
    /// Of which slow (failed or not).
    pub slow: u32,
}

impl Totals {
    /// No calls.
    pub const ZERO: Totals = Totals {
        calls: 0,
        failures: 0,
        slow: 0,
    };

    /// Adds one call, saturating.
    #[inline]
    pub fn add(&mut self, call: CallRecord) {
        self.calls = self.calls.saturating_add(1);
        self.failures = self.failures.saturating_add(u32::from(call.failure));
        self.slow = self.slow.saturating_add(u32::from(call.slow));
    }

    /// Adds `count` successes that are not slow, saturating.
    #[inline]
    pub fn add_successes(&mut self, count: u32) {
        self.calls = self.calls.saturating_add(count);
    }

    /// Removes one call, saturating at zero.
    #[inline]
    pub fn remove(&mut self, call: CallRecord) {
        self.calls = self.calls.saturating_sub(1);
        self.failures = self.failures.saturating_sub(u32::from(call.failure));
        self.slow = self.slow.saturating_sub(u32::from(call.slow));
    }

    /// Removes `other`, saturating at zero.
    #[inline]
    pub fn remove_all(&mut self, other: Totals) {
        self.calls = self.calls.saturating_sub(other.calls);
        self.failures = self.failures.saturating_sub(other.failures);
        self.slow = self.slow.saturating_sub(other.slow);
    }

    /// Adds `other`, saturating.
    #[inline]
    pub fn merge(&mut self, other: Totals) {
        self.calls = self.calls.saturating_add(other.calls);
        self.failures = self.failures.saturating_add(other.failures);
        self.slow = self.slow.saturating_add(other.slow);
    }

    /// `part / calls` in basis points, rounded down; `None` below `minimum` calls (a
    /// `minimum` of 0 counts as 1).
    pub fn rate_basis_points(&self, part: u32, minimum: u32) -> Option<u16> {
        if self.calls == 0 || self.calls < minimum {
            return None;
        }
        let bp = u64::from(part.min(self.calls))
            .saturating_mul(10_000)
            .checked_div(u64::from(self.calls))
            .unwrap_or(0);
        Some(u16::try_from(bp).unwrap_or(10_000))
    }

    /// Which thresholds these totals reach (inclusive), given at least `minimum` calls.
    pub fn exceeded(&self, thresholds: &Thresholds, minimum: u32) -> Exceeded {
        if self.calls == 0 || self.calls < minimum {
            return Exceeded::NONE;
        }
        let calls = u64::from(self.calls);
        // rate >= threshold  <=>  part * 100 >= threshold * calls, exactly, in integers.
        let reaches = |part: u32, percent: u8| {
            u64::from(part).saturating_mul(100) >= u64::from(percent).saturating_mul(calls)
        };
        Exceeded {
            failure_rate: reaches(self.failures, thresholds.failure_rate_percent),
            slow_call_rate: reaches(self.slow, thresholds.slow_call_rate_percent),
        }
    }
}

/// The thresholds a window is judged by (from the breaker's configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Thresholds {
    /// Failure-rate threshold, percent, inclusive.
    pub failure_rate_percent: u8,
    /// Slow-call-rate threshold, percent, inclusive.
    pub slow_call_rate_percent: u8,
    /// Calls needed before rates count (already clamped to the window's size).
    pub minimum_calls: u32,
}

/// A window's failure streak, handed to the breaker to keep (see
/// [`Window::failure_streak`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FailureStreak {
    /// The failures in a row recorded so far.
    pub failures: u32,
    /// The longest streak that reaches no threshold.
    pub limit: u32,
}

/// Which thresholds were reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Exceeded {
    /// The failure threshold was reached.
    pub failure_rate: bool,
    /// The slow-call threshold was reached.
    pub slow_call_rate: bool,
}

impl Exceeded {
    /// Nothing reached.
    pub const NONE: Exceeded = Exceeded {
        failure_rate: false,
        slow_call_rate: false,
    };

    /// Whether any threshold was reached.
    #[inline]
    pub const fn any(self) -> bool {
        self.failure_rate || self.slow_call_rate
    }
}

/// A window of recorded calls. Implemented by [`ConsecutiveWindow`], [`CountWindow`],
/// [`TimeWindow`], [`CountWindowUpTo`] and [`TimeWindowUpTo`]; a custom window may
/// implement it too.
///
/// `now` never goes backwards as far as a window is concerned: a window treats an instant
/// earlier than one it has seen as that one ("no time passed").
pub trait Window {
    /// Records one call that ended at `now`.
    fn record(&mut self, call: CallRecord, now: Instant);

    /// The counts of the calls in the window at `now` (evicting what has aged out).
    fn totals(&mut self, now: Instant) -> Totals;

    /// Forgets every call.
    fn reset(&mut self);

    /// The most calls the window can hold; `minimum_calls` is clamped to it. Unbounded
    /// windows return `u32::MAX`.
    fn max_calls(&self) -> u32 {
        u32::MAX
    }

    /// Whether recording a success that is not slow, at any later instant, would leave
    /// the window exactly as it is. When it does, the breaker records such successes
    /// without entering its critical section (one atomic load). The default is `false`,
    /// always correct; [`ConsecutiveWindow`] says `true` while both streaks are zero.
    fn success_is_noop(&self) -> bool {
        false
    }

    /// Until which instant (inclusive) successes that are not slow may be counted outside
    /// the window and recorded later, all at once, with
    /// [`record_successes`](Window::record_successes). When it returns `Some(until)`, the
    /// breaker counts such successes that end at or before `until` with one
    /// compare-and-swap on its state word or one of its stripes, without its critical
    /// section, and hands them to the window before anything else touches it.
    ///
    /// Return `Some` only when both hold: recording any number of such successes, at any
    /// instants up to `until`, leaves the window as
    /// [`record_successes`](Window::record_successes) with their count does; and none of
    /// them can make the window reach a threshold (in `thresholds`) that it does not reach
    /// now. Bounds returned between two [`reset`](Window::reset)s never decrease. The
    /// default is `None`, always correct.
    fn batch_until(&mut self, thresholds: &Thresholds) -> Option<Instant> {
        let _ = thresholds;
        None
    }

    /// Records `count` successes that are not slow, at the latest instant the window has
    /// seen. The default records them one by one at [`Instant::ZERO`] (which a window
    /// treats as its latest instant).
    fn record_successes(&mut self, count: u16) {
        for _ in 0..count {
            self.record(SUCCESS, Instant::ZERO);
        }
    }

    /// Whether [`failure_streak`](Window::failure_streak) can return `Some`. The breaker
    /// compiles its lock-free failure path only for windows that say `true`. The default
    /// is `false`; [`ConsecutiveWindow`] says `true`.
    const KEEPS_FAILURE_STREAKS: bool = false;

    /// The window's failure streak, if the breaker may keep it in its state word and
    /// record calls that are not slow there, without its critical section, until it hands
    /// the streak back with [`set_failure_streak`](Window::set_failure_streak).
    ///
    /// Return `Some` only when all hold, at any later instant: recording a success that is
    /// not slow sets the streak to zero, recording a failure that is not slow adds one, and
    /// neither changes anything else in the window; and a streak of at most `limit`
    /// reaches no threshold (in `thresholds`). The breaker then counts such a failure with
    /// one compare-and-swap while the streak stays within `limit` (the failure that would
    /// pass it takes the critical section), and such a success with one atomic load (no
    /// streak running) or one compare-and-swap. The default is `None`, always correct.
    fn failure_streak(&self, thresholds: &Thresholds) -> Option<FailureStreak> {
        let _ = thresholds;
        None
    }

    /// Takes back the failure streak that the breaker kept since
    /// [`failure_streak`](Window::failure_streak) (the failures in a row recorded since
    /// then, counting those it returned). Only called on windows that returned `Some`.
    fn set_failure_streak(&mut self, failures: u32) {
        let _ = failures;
    }

    /// Which thresholds the window reaches at `now`. The default compares the rates of
    /// [`totals`](Window::totals) with the thresholds, once `minimum_calls` are in.
    fn exceeded(&mut self, now: Instant, thresholds: &Thresholds) -> Exceeded {
        self.totals(now)
            .exceeded(thresholds, thresholds.minimum_calls)
    }

    /// The failure and slow-call rates reported with a threshold event and in metrics,
    /// in basis points (`None` below the minimum).
    fn rates(&mut self, now: Instant, minimum_calls: u32) -> (Option<u16>, Option<u16>) {
        let t = self.totals(now);
        (
            t.rate_basis_points(t.failures, minimum_calls),
            t.rate_basis_points(t.slow, minimum_calls),
        )
    }
}
