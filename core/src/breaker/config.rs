//! [`BreakerConfig`]: thresholds and durations of a circuit breaker, and
//! [`FixedOpenDuration`], the default open duration.

use core::time::Duration;

use crate::ConfigError;
use crate::retry::Backoff;
use crate::time::{duration_from_nanos, duration_to_nanos_saturating};

use super::state::State;

/// Where a half-open breaker goes when its maximum wait runs out before the probes have
/// decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
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
/// half-open, open duration 60 s. Thresholds are whole percents (integer arithmetic;
/// the rates that [`BreakerMetrics`](super::BreakerMetrics) and the listener report are
/// finer, in basis points). The window (consecutive, count-based or time-based) is a
/// separate value, given to the breaker's constructor.
///
/// It is checked when the breaker is built ([`BreakerConfig::validate`]). Every setting
/// reads back through a `get_` method of the same name (the plain names are the
/// builder's).
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
/// assert_eq!(CONFIG.get_minimum_calls(), 10);
/// assert_eq!(CONFIG.get_open_duration(), Some(Duration::from_secs(5)));
/// assert_eq!(
///     BreakerConfig::new().failure_rate_threshold(0).validate().unwrap_err().field(),
///     "failure_rate_threshold"
/// );
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BreakerConfig {
    pub(crate) failure_rate_threshold: u8,
    pub(crate) slow_call_rate_threshold: u8,
    /// In whole nanoseconds, saturating (what the breaker compares a call's duration to).
    pub(crate) slow_call_nanos: u64,
    pub(crate) minimum_calls: u32,
    pub(crate) permitted_calls_in_half_open: u16,
    /// In whole nanoseconds, saturating; `u64::MAX` for none (a wait that long never runs
    /// out: the deadline it gives saturates at the end of time). Half the size of an
    /// `Option<Duration>`, and added to `now` without a conversion.
    pub(crate) max_wait_nanos: u64,
    pub(crate) after_max_wait: AfterMaxWait,
    /// `None` until set: [`CircuitBreaker::new`](super::CircuitBreaker::new) then uses
    /// [`DEFAULT_OPEN_DURATION`], and only then may
    /// [`from_parts`](super::CircuitBreaker::from_parts), whose backoff gives the open
    /// durations, be given the configuration.
    pub(crate) open_duration: Option<Duration>,
}

impl core::fmt::Debug for BreakerConfig {
    /// As derived, with the open duration printed by core's small printer: firmware that
    /// prints a configuration does not link `Duration`'s `Debug`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BreakerConfig")
            .field("failure_rate_threshold", &self.failure_rate_threshold)
            .field("slow_call_rate_threshold", &self.slow_call_rate_threshold)
            .field("slow_call_nanos", &self.slow_call_nanos)
            .field("minimum_calls", &self.minimum_calls)
            .field(
                "permitted_calls_in_half_open",
                &self.permitted_calls_in_half_open,
            )
            .field("max_wait_nanos", &self.max_wait_nanos)
            .field("after_max_wait", &self.after_max_wait)
            .field(
                "open_duration",
                &self.open_duration.map(crate::time::ShowDuration),
            )
            .finish()
    }
}

/// The open duration of a breaker whose configuration sets none: 60 s, resilience4j's
/// default.
pub const DEFAULT_OPEN_DURATION: Duration = Duration::from_secs(60);

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
            max_wait_nanos: u64::MAX,
            after_max_wait: AfterMaxWait::Open,
            open_duration: None,
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
    /// outcome. `wait` must be above zero; it is kept in whole nanoseconds, saturating at
    /// `u64::MAX` (a wait that never runs out).
    pub const fn max_wait_in_half_open(mut self, wait: Duration, then: AfterMaxWait) -> Self {
        self.max_wait_nanos = duration_to_nanos_saturating(wait);
        self.after_max_wait = then;
        self
    }

    /// How long the breaker stays open, for a breaker built by
    /// [`CircuitBreaker::new`](super::CircuitBreaker::new) or
    /// [`with_listener`](super::CircuitBreaker::with_listener) (a [`FixedOpenDuration`];
    /// [`DEFAULT_OPEN_DURATION`] if not set). A breaker built by
    /// [`from_parts`](super::CircuitBreaker::from_parts) takes its durations from the
    /// [`Backoff`] it is given: that constructor refuses a configuration that sets this
    /// (a [`ConfigError`] naming `open_duration`), rather than ignore it.
    pub const fn open_duration(mut self, duration: Duration) -> Self {
        self.open_duration = Some(duration);
        self
    }

    /// The failure-rate threshold, in whole percent (`1..=100` once validated).
    pub const fn get_failure_rate_threshold(&self) -> u8 {
        self.failure_rate_threshold
    }

    /// The slow-call-rate threshold, in whole percent (`1..=100` once validated).
    pub const fn get_slow_call_rate_threshold(&self) -> u8 {
        self.slow_call_rate_threshold
    }

    /// The slow-call duration: the one given to
    /// [`slow_call_duration`](Self::slow_call_duration), saturated at `u64::MAX`
    /// nanoseconds (about 584 years) as the breaker compares it.
    pub const fn get_slow_call_duration(&self) -> Duration {
        // Without the 64-bit division routine on 32-bit targets (issue 17).
        duration_from_nanos(self.slow_call_nanos)
    }

    /// The minimum number of calls before rates are evaluated, as given (a count window
    /// clamps it to its size).
    pub const fn get_minimum_calls(&self) -> u32 {
        self.minimum_calls
    }

    /// The number of probe calls let through in half-open.
    pub const fn get_permitted_calls_in_half_open(&self) -> u16 {
        self.permitted_calls_in_half_open
    }

    /// The maximum wait in half-open and where the breaker goes when it runs out, if set.
    /// Like the slow-call duration, it is kept in whole nanoseconds: a wait of `u64::MAX`
    /// nanoseconds (about 584 years) or more never runs out, and reads as `None`.
    pub const fn get_max_wait_in_half_open(&self) -> Option<(Duration, AfterMaxWait)> {
        if self.max_wait_nanos == u64::MAX {
            return None;
        }
        Some((
            duration_from_nanos(self.max_wait_nanos),
            self.after_max_wait,
        ))
    }

    /// The open duration, if set with [`open_duration`](Self::open_duration) (`None`:
    /// [`CircuitBreaker::new`](super::CircuitBreaker::new) uses
    /// [`DEFAULT_OPEN_DURATION`]).
    pub const fn get_open_duration(&self) -> Option<Duration> {
        self.open_duration
    }

    /// The open duration of a [`FixedOpenDuration`] built from this configuration: the one
    /// set, or [`DEFAULT_OPEN_DURATION`].
    pub(crate) const fn fixed_open_duration(&self) -> FixedOpenDuration {
        FixedOpenDuration(match self.open_duration {
            Some(d) => d,
            None => DEFAULT_OPEN_DURATION,
        })
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
        if self.max_wait_nanos == 0 {
            return Err(ConfigError::new("max_wait_in_half_open", "above zero"));
        }
        Ok(())
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
