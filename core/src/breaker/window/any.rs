//! [`AnyWindow`]: a window of any kind, chosen at run time: consecutive, count or time.

use super::{
    CallRecord, ConsecutiveWindow, CountWindowUpTo, Exceeded, FailureStreak, Thresholds,
    TimeWindowUpTo, Totals, Window,
};
use crate::Instant;

/// A window of any kind, chosen at run time: consecutive, count or time.
///
/// What it does: holds one of [`ConsecutiveWindow`], [`CountWindowUpTo<CAP>`] and
/// [`TimeWindowUpTo<CAP>`], and passes every call to it, so it takes the decisions of the
/// window it holds (a property test drives a breaker over each kind and one over
/// `AnyWindow` holding it, and compares every answer).
///
/// When to choose it: when even the kind of window comes from configuration (a service
/// whose breakers are named in a file: [`BreakerWindow`](crate::config::BreakerWindow)
/// builds one), so that every breaker has one type, `CircuitBreaker<AnyWindow<CAP>, _>`.
/// When the kind is known when compiling, the window itself is smaller and skips the
/// dispatch.
///
/// ```
/// use core::time::Duration;
/// use stanchion::breaker::window::AnyWindow;
/// use stanchion::breaker::{BreakerConfig, CircuitBreaker};
/// use stanchion::config::BreakerWindow;
/// use stanchion::sync::CriticalSectionRawMutex;
///
/// type Breaker = CircuitBreaker<AnyWindow<128>, CriticalSectionRawMutex>;
///
/// // Read from configuration: any kind, any size up to 128.
/// for choice in [
///     BreakerWindow::Consecutive { length: 5 },
///     BreakerWindow::Count { size: 100 },
///     BreakerWindow::Time { span: Duration::from_secs(60), buckets: 60 },
/// ] {
///     let breaker: Breaker = CircuitBreaker::new(BreakerConfig::new(), choice.build()?)?;
///     # let _ = breaker;
/// }
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
///
/// Cost: the largest of the three (the time window's `12 * CAP` bytes plus 36, on 64-bit
/// targets) plus a tag; one `match` per call. The breaker's lock-free paths are those of
/// the window held: the failure streak of a consecutive window, the batched successes of
/// a count or time window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AnyWindow<const CAP: usize> {
    /// Failures (or slow calls) in a row.
    Consecutive(ConsecutiveWindow),
    /// The last `size` calls, `size` up to `CAP`.
    Count(CountWindowUpTo<CAP>),
    /// The calls of the last span, in up to `CAP` buckets.
    Time(TimeWindowUpTo<CAP>),
}

/// Calls `$method` on the window held.
macro_rules! each {
    ($self:expr, $w:ident => $call:expr) => {
        match $self {
            AnyWindow::Consecutive($w) => $call,
            AnyWindow::Count($w) => $call,
            AnyWindow::Time($w) => $call,
        }
    };
}

impl<const CAP: usize> Window for AnyWindow<CAP> {
    #[inline]
    fn record(&mut self, call: CallRecord, now: Instant) {
        each!(self, w => w.record(call, now))
    }

    #[inline]
    fn totals(&mut self, now: Instant) -> Totals {
        each!(self, w => w.totals(now))
    }

    fn reset(&mut self) {
        each!(self, w => w.reset())
    }

    fn max_calls(&self) -> u32 {
        each!(self, w => w.max_calls())
    }

    #[inline]
    fn success_is_noop(&self) -> bool {
        each!(self, w => w.success_is_noop())
    }

    fn batch_until(&mut self, thresholds: &Thresholds) -> Option<Instant> {
        each!(self, w => w.batch_until(thresholds))
    }

    fn record_successes(&mut self, count: u16) {
        each!(self, w => w.record_successes(count))
    }

    /// A consecutive window keeps its streak; the others return `None` from
    /// [`failure_streak`](Window::failure_streak), as they do on their own.
    const KEEPS_FAILURE_STREAKS: bool = true;

    fn failure_streak(&self, thresholds: &Thresholds) -> Option<FailureStreak> {
        each!(self, w => w.failure_streak(thresholds))
    }

    fn set_failure_streak(&mut self, failures: u32) {
        each!(self, w => w.set_failure_streak(failures))
    }

    #[inline]
    fn exceeded(&mut self, now: Instant, thresholds: &Thresholds) -> Exceeded {
        each!(self, w => w.exceeded(now, thresholds))
    }

    fn rates(&mut self, now: Instant, minimum_calls: u32) -> (Option<u16>, Option<u16>) {
        each!(self, w => w.rates(now, minimum_calls))
    }
}
