//! [`BreakerConfig`]: thresholds and durations of a circuit breaker, and
//! [`FixedOpenDuration`], the default open duration.

use core::time::Duration;

use crate::ConfigError;
use crate::retry::Backoff;
use crate::time::duration_to_nanos_saturating;

use super::state::State;

/// Where a half-open breaker goes when its maximum wait runs out before the probes have
/// decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AfterMaxWait {
    /// Back to open, for another (possibly longer) open duration. The default, as in
    /// resilience4j.
    Open,
    /// On to closed.
    Closed,
}

impl AfterMaxWait {
    pub(crate) const fn state(self) -> State {
        match self {
            AfterMaxWait::Open => State::Open,
            AfterMaxWait::Closed => State::Closed,
        }
    }
}

/// The thresholds and durations of a [`CircuitBreaker`](super::CircuitBreaker).
///
/// Built with `const` methods from [`BreakerConfig::new`], whose defaults are
/// resilience4j's: failure-rate threshold 50 %, slow-call-rate threshold 100 %, slow-call
/// duration 60 s, minimum calls 100, 10 permitted calls in half-open, no maximum wait in
/// half-open, open duration 60 s. Rates are whole percents (integer arithmetic). The
/// window (consecutive, count-based or time-based) is a separate value, given to the
/// breaker's constructor.
///
/// It is checked when the breaker is built ([`BreakerConfig::validate`]).
///
/// ```
/// use core::time::Duration;
/// use stanchion::breaker::BreakerConfig;
///
/// const CONFIG: BreakerConfig = BreakerConfig::new()
///     .failure_rate_threshold(25)
///     .minimum_calls(10)
///     .open_duration(Duration::from_secs(5));
/// assert!(CONFIG.validate().is_ok());
/// assert_eq!(
///     BreakerConfig::new().failure_rate_threshold(0).validate().unwrap_err().field(),
///     "failure_rate_threshold"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BreakerConfig {
    pub(crate) failure_rate_threshold: u8,
    pub(crate) slow_call_rate_threshold: u8,
    /// In whole nanoseconds, saturating (what the breaker compares a call's duration to).
    pub(crate) slow_call_nanos: u64,
    pub(crate) minimum_calls: u32,
    pub(crate) permitted_calls_in_half_open: u16,
    pub(crate) max_wait_in_half_open: Option<Duration>,
    pub(crate) after_max_wait: AfterMaxWait,
    pub(crate) open_duration: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig::new()
    }
}

impl BreakerConfig {
    /// resilience4j's defaults (see the type's docs).
    pub const fn new() -> BreakerConfig {
        BreakerConfig {
            failure_rate_threshold: 50,
            slow_call_rate_threshold: 100,
            slow_call_nanos: 60_000_000_000,
            minimum_calls: 100,
            permitted_calls_in_half_open: 10,
            max_wait_in_half_open: None,
            after_max_wait: AfterMaxWait::Open,
            open_duration: Duration::from_secs(60),
        }
    }

    /// Opens when at least this percentage of the recorded calls failed (inclusive), in
    /// `1..=100`.
    pub const fn failure_rate_threshold(mut self, percent: u8) -> Self {
        self.failure_rate_threshold = percent;
        self
    }

    /// Opens when at least this percentage of the recorded calls were slow (inclusive), in
    /// `1..=100`.
    pub const fn slow_call_rate_threshold(mut self, percent: u8) -> Self {
        self.slow_call_rate_threshold = percent;
        self
    }

    /// A call is slow when its duration is strictly longer than this. Durations are
    /// compared in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
    pub const fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.slow_call_nanos = duration_to_nanos_saturating(duration);
        self
    }

    /// Rates are not evaluated until the window holds at least this many calls (at least
    /// 1; clamped to the size of a count-based window).
    pub const fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// The number of probe calls let through in half-open (at least 1); the decision is
    /// taken once `min(minimum_calls, permitted_calls_in_half_open)` of them have an
    /// outcome.
    pub const fn permitted_calls_in_half_open(mut self, calls: u16) -> Self {
        self.permitted_calls_in_half_open = calls;
        self
    }

    /// Leaves half-open for `then` once `wait` has passed since entering it without a
    /// decision (inclusive: at exactly `wait`). Checked lazily, on the next acquire or
    /// outcome. `wait` must be above zero.
    pub const fn max_wait_in_half_open(mut self, wait: Duration, then: AfterMaxWait) -> Self {
        self.max_wait_in_half_open = Some(wait);
        self.after_max_wait = then;
        self
    }

    /// How long the breaker stays open with the default [`FixedOpenDuration`] (a breaker
    /// built with another [`Backoff`] takes its durations from that instead).
    pub const fn open_duration(mut self, duration: Duration) -> Self {
        self.open_duration = duration;
        self
    }

    /// Checks every field; the error names the first one out of range.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.failure_rate_threshold == 0 || self.failure_rate_threshold > 100 {
            return Err(ConfigError::new(
                "failure_rate_threshold",
                "in 1..=100 percent",
            ));
        }
        if self.slow_call_rate_threshold == 0 || self.slow_call_rate_threshold > 100 {
            return Err(ConfigError::new(
                "slow_call_rate_threshold",
                "in 1..=100 percent",
            ));
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", "at least 1"));
        }
        if self.permitted_calls_in_half_open == 0 {
            return Err(ConfigError::new(
                "permitted_calls_in_half_open",
                "at least 1",
            ));
        }
        if let Some(wait) = self.max_wait_in_half_open {
            if wait.is_zero() {
                return Err(ConfigError::new("max_wait_in_half_open", "above zero"));
            }
        }
        Ok(())
    }

    /// The number of half-open outcomes after which the probes decide.
    pub(crate) const fn half_open_decision_calls(&self) -> u32 {
        let permitted = self.permitted_calls_in_half_open as u32;
        if self.minimum_calls < permitted {
            self.minimum_calls
        } else {
            permitted
        }
    }
}

/// The default open duration: the same every time (a [`Backoff`] that never grows).
///
/// Give the breaker any other [`Backoff`] (for example an exponential one from
/// [`crate::retry`]) to grow the open duration with each consecutive opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FixedOpenDuration(pub Duration);

impl Backoff for FixedOpenDuration {
    #[inline]
    fn next_delay(&mut self, _rng: &mut fastrand::Rng) -> Duration {
        self.0
    }

    #[inline]
    fn reset(&mut self) {}
}
