//! Plain settings types for the patterns whose configuration is otherwise spread over a
//! constructor's arguments: the breaker's window choice, a backoff chosen by name, a retry
//! policy's settings, the retry budgets', the adaptive throttle's and the bulkhead's.

use core::time::Duration;

use crate::ConfigError;
use crate::breaker::window::{AnyWindow, ConsecutiveWindow, CountWindowUpTo, TimeWindowUpTo};
use crate::bulkhead::Bulkhead;
use crate::retry::policy::{DEFAULT_MAX_RETRY_AFTER, MaxRetryAfter};
use crate::retry::{
    Backoff, Constant, DecorrelatedJitter, DecorrelatedJitterV2, Exponential, Immediate, Linear,
    NoBudget, Ratio, RatioBudget, RetryPolicy, TokenBudget, TransientErrors,
};
use crate::throttle::AdaptiveThrottle;
use crate::time::duration_to_nanos_saturating;
use crate::{Deadline, Instant};

/// Which window a circuit breaker judges, and its size, as plain integers: the window
/// chosen in a configuration document. Build it with [`build`](Self::build) (an
/// [`AnyWindow`], one type for every choice), or with [`consecutive`](Self::consecutive),
/// [`count`](Self::count) or [`time`](Self::time) when the program takes one kind only;
/// `CAP` is the capacity the program was compiled with ([`CountWindowUpTo`],
/// [`TimeWindowUpTo`]).
///
/// With the `serde` feature it reads as `{ "count": { "size": 100 } }`,
/// `{ "consecutive": { "length": 5 } }` or `{ "time": { "span": "60s", "buckets": 60 } }`
/// (in TOML, `window = { count = { size = 100 } }`), checked on the way in except against
/// the capacity, which only the program knows.
///
/// ```
/// use core::time::Duration;
/// use stanchion::config::BreakerWindow;
///
/// let choice = BreakerWindow::Count { size: 50 };
/// assert!(choice.validate().is_ok());
/// let window = choice.count::<128>().unwrap()?;
/// assert_eq!(window.size(), 50);
/// assert!(choice.time::<60>().is_none());
/// assert_eq!(
///     BreakerWindow::Count { size: 200 }.count::<128>().unwrap().unwrap_err().field(),
///     "size"
/// );
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BreakerWindow {
    /// A [`ConsecutiveWindow`]: trips after `length` failures (or slow calls) in a row.
    Consecutive {
        /// At least 1.
        length: u32,
    },
    /// A [`CountWindowUpTo`]: the last `size` calls.
    Count {
        /// In `1..=CAP`.
        size: u32,
    },
    /// A [`TimeWindowUpTo`]: the calls of the last `span`, in `buckets` buckets.
    Time {
        /// At least one nanosecond per bucket.
        span: Duration,
        /// In `1..=CAP`.
        buckets: u32,
    },
}

impl BreakerWindow {
    /// Checks what can be checked without the capacity, with the words of the windows'
    /// constructors.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            BreakerWindow::Consecutive { length: 0 } => {
                Err(ConfigError::new("length", "at least 1"))
            }
            BreakerWindow::Count { size: 0 } => Err(ConfigError::new(
                "size",
                "in 1..=CAP (the window's capacity)",
            )),
            BreakerWindow::Time { buckets: 0, .. } => Err(ConfigError::new(
                "buckets",
                "in 1..=CAP (the window's bucket capacity)",
            )),
            BreakerWindow::Time { span, buckets } => {
                if duration_to_nanos_saturating(span) < buckets as u64 {
                    return Err(ConfigError::new(
                        "span",
                        "at least one nanosecond per bucket",
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The window chosen, as an [`AnyWindow`] of capacity `CAP`: one breaker type for
    /// every choice. The errors of the window's constructor (a size or a bucket count
    /// above `CAP` names `size` or `buckets`).
    pub const fn build<const CAP: usize>(&self) -> Result<AnyWindow<CAP>, ConfigError> {
        match *self {
            BreakerWindow::Consecutive { length } => match ConsecutiveWindow::new(length) {
                Ok(w) => Ok(AnyWindow::Consecutive(w)),
                Err(e) => Err(e),
            },
            BreakerWindow::Count { size } => match CountWindowUpTo::new(size) {
                Ok(w) => Ok(AnyWindow::Count(w)),
                Err(e) => Err(e),
            },
            BreakerWindow::Time { span, buckets } => match TimeWindowUpTo::new(span, buckets) {
                Ok(w) => Ok(AnyWindow::Time(w)),
                Err(e) => Err(e),
            },
        }
    }

    /// The consecutive window, if that is the choice.
    pub const fn consecutive(&self) -> Option<Result<ConsecutiveWindow, ConfigError>> {
        match *self {
            BreakerWindow::Consecutive { length } => Some(ConsecutiveWindow::new(length)),
            _ => None,
        }
    }

    /// The count window, of capacity `CAP`, if that is the choice.
    pub const fn count<const CAP: usize>(
        &self,
    ) -> Option<Result<CountWindowUpTo<CAP>, ConfigError>> {
        match *self {
            BreakerWindow::Count { size } => Some(CountWindowUpTo::new(size)),
            _ => None,
        }
    }

    /// The time window, of capacity `CAP` buckets, if that is the choice.
    pub const fn time<const CAP: usize>(&self) -> Option<Result<TimeWindowUpTo<CAP>, ConfigError>> {
        match *self {
            BreakerWindow::Time { span, buckets } => Some(TimeWindowUpTo::new(span, buckets)),
            _ => None,
        }
    }
}

/// A backoff of any of core's kinds, chosen at run time (from a configuration document):
/// each call goes to the one it holds.
///
/// With the `serde` feature it reads as `"immediate"`, or the kind's name holding its
/// settings: `{ "exponential": { "base": "100ms", "factor": 2, "cap": "10s", "jitter":
/// "full" } }` (`constant`, `linear`, `exponential`, `decorrelated_jitter`,
/// `decorrelated_jitter_v2`).
///
/// ```
/// use core::time::Duration;
/// use stanchion::config::AnyBackoff;
/// use stanchion::retry::{Backoff, Constant};
///
/// let mut backoff = AnyBackoff::Constant(Constant::new(Duration::from_millis(20)));
/// let mut rng = fastrand::Rng::with_seed(1);
/// assert_eq!(backoff.next_delay(&mut rng), Duration::from_millis(20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AnyBackoff {
    /// [`Immediate`].
    Immediate,
    /// [`Constant`].
    Constant(Constant),
    /// [`Linear`].
    Linear(Linear),
    /// [`Exponential`].
    Exponential(Exponential),
    /// [`DecorrelatedJitter`].
    DecorrelatedJitter(DecorrelatedJitter),
    /// [`DecorrelatedJitterV2`].
    DecorrelatedJitterV2(DecorrelatedJitterV2),
}

impl Backoff for AnyBackoff {
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        match self {
            AnyBackoff::Immediate => Immediate.next_delay(rng),
            AnyBackoff::Constant(b) => b.next_delay(rng),
            AnyBackoff::Linear(b) => b.next_delay(rng),
            AnyBackoff::Exponential(b) => b.next_delay(rng),
            AnyBackoff::DecorrelatedJitter(b) => b.next_delay(rng),
            AnyBackoff::DecorrelatedJitterV2(b) => b.next_delay(rng),
        }
    }

    fn next_delay_nanos(&mut self, rng: &mut fastrand::Rng) -> u64 {
        match self {
            AnyBackoff::Immediate => Immediate.next_delay_nanos(rng),
            AnyBackoff::Constant(b) => b.next_delay_nanos(rng),
            AnyBackoff::Linear(b) => b.next_delay_nanos(rng),
            AnyBackoff::Exponential(b) => b.next_delay_nanos(rng),
            AnyBackoff::DecorrelatedJitter(b) => b.next_delay_nanos(rng),
            AnyBackoff::DecorrelatedJitterV2(b) => b.next_delay_nanos(rng),
        }
    }

    fn reset(&mut self) {
        match self {
            AnyBackoff::Immediate => {}
            AnyBackoff::Constant(b) => b.reset(),
            AnyBackoff::Linear(b) => b.reset(),
            AnyBackoff::Exponential(b) => b.reset(),
            AnyBackoff::DecorrelatedJitter(b) => b.reset(),
            AnyBackoff::DecorrelatedJitterV2(b) => b.reset(),
        }
    }
}

/// The settings of a [`RetryPolicy`], which is per operation and holds its own state and
/// random generator: the backoff, the attempts, the bound on server hints and the
/// overall time budget. [`build`](Self::build) makes each operation's policy.
///
/// With the `serde` feature it reads as `{ "backoff": ..., "max_attempts": 4,
/// "max_retry_after": "30s", "timeout": "10s" }` (`max_retry_after` defaults to
/// [`DEFAULT_MAX_RETRY_AFTER`]; no `timeout`: no overall deadline).
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::config::{AnyBackoff, RetrySettings};
///
/// let settings = RetrySettings {
///     backoff: AnyBackoff::Immediate,
///     max_attempts: 3,
///     max_retry_after: Duration::from_secs(30),
///     timeout: Some(Duration::from_secs(10)),
/// };
/// let now = Instant::from_secs(5);
/// let policy = settings.build(fastrand::Rng::with_seed(7), now)?;
/// assert_eq!(policy.max_attempts(), 3);
/// assert_eq!(policy.deadline().instant(), Instant::from_secs(15));
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetrySettings<B = AnyBackoff> {
    /// The delays between attempts.
    pub backoff: B,
    /// At least 1, counting the first call.
    pub max_attempts: u32,
    /// The longest server hint (Retry-After) followed; a longer one waits this long.
    pub max_retry_after: Duration,
    /// The whole operation's time budget, from its start, if any: no wait ends at or past
    /// it.
    pub timeout: Option<Duration>,
}

impl<B: Backoff + Clone> RetrySettings<B> {
    /// Settings with `backoff` and `max_attempts`, [`DEFAULT_MAX_RETRY_AFTER`] and no
    /// timeout, as [`RetryPolicy::new`].
    pub const fn new(backoff: B, max_attempts: u32) -> RetrySettings<B> {
        RetrySettings {
            backoff,
            max_attempts,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            timeout: None,
        }
    }

    /// Checks the settings, with [`RetryPolicy::new`]'s words.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new("max_attempts", "at least 1"));
        }
        Ok(())
    }

    /// The deadline of an operation that starts at `now`: `timeout` later, or never.
    pub const fn deadline(&self, now: Instant) -> Deadline {
        match self.timeout {
            Some(timeout) => Deadline::after(now, timeout),
            None => Deadline::NEVER,
        }
    }

    /// The policy of one operation starting at `now`, drawing jitter from `rng` (seed each
    /// operation's differently: see [`RetryPolicy::new`]).
    pub fn build(
        &self,
        rng: fastrand::Rng,
        now: Instant,
    ) -> Result<RetryPolicy<B, TransientErrors, NoBudget, MaxRetryAfter>, ConfigError> {
        Ok(
            RetryPolicy::new(self.backoff.clone(), self.max_attempts, rng)?
                .with_max_retry_after(self.max_retry_after)
                .with_deadline(self.deadline(now)),
        )
    }
}

/// The settings of a [`TokenBudget`] (gRPC retry throttling): its size and its refill per
/// success. [`build`](Self::build) makes the budget, which holds live state.
///
/// With the `serde` feature it reads as `{ "max_tokens": 10, "token_ratio": "0.1" }`.
///
/// ```
/// use stanchion::config::TokenBudgetSettings;
/// use stanchion::retry::Ratio;
///
/// let settings = TokenBudgetSettings { max_tokens: 10, token_ratio: Ratio::percent(10) };
/// assert_eq!(settings.build()?.milli_tokens(), 10_000);
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TokenBudgetSettings {
    /// In `1..=1_000_000`.
    pub max_tokens: u32,
    /// Tokens back per success, in `0.001..=max_tokens`.
    pub token_ratio: Ratio,
}

impl TokenBudgetSettings {
    /// The budget, full; the errors of [`TokenBudget::new`].
    pub fn build(&self) -> Result<TokenBudget, ConfigError> {
        TokenBudget::new(self.max_tokens, self.token_ratio)
    }
}

/// The settings of a [`RatioBudget`] (Finagle, tower): retries as a share of recent
/// requests plus a floor, over a window. [`build`](Self::build) makes the budget with `N`
/// buckets.
///
/// With the `serde` feature it reads as `{ "window": "10s", "ratio": "20%", "floor": 10 }`,
/// checked on the way in as for one bucket (each of `N` buckets must be at least 1 ms,
/// which [`build`](Self::build) checks).
///
/// ```
/// use core::time::Duration;
/// use stanchion::config::RatioBudgetSettings;
/// use stanchion::retry::Ratio;
///
/// let settings = RatioBudgetSettings {
///     window: Duration::from_secs(10),
///     ratio: Ratio::percent(20),
///     floor: 10,
/// };
/// assert!(settings.build::<10>().is_ok());
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RatioBudgetSettings {
    /// The window the share is counted over.
    pub window: Duration,
    /// Retries per request, in `0..=10`.
    pub ratio: Ratio,
    /// Retries allowed on top of the share.
    pub floor: u32,
}

impl RatioBudgetSettings {
    /// The budget over `N` buckets, empty; the errors of [`RatioBudget::new`].
    pub fn build<const N: usize>(&self) -> Result<RatioBudget<N>, ConfigError> {
        RatioBudget::new(self.window, self.ratio, self.floor)
    }
}

/// The settings of an [`AdaptiveThrottle`] (client-side throttling, Google SRE): its
/// window and multiplier `k`. [`build`](Self::build) makes the throttle with `N` buckets.
///
/// With the `serde` feature it reads as `{ "window": "2m", "k": 2 }`, checked on the way in
/// as for one bucket (each of `N` buckets must be at least 1 ms, which
/// [`build`](Self::build) checks).
///
/// ```
/// use core::time::Duration;
/// use stanchion::config::ThrottleSettings;
/// use stanchion::retry::Ratio;
///
/// let settings = ThrottleSettings { window: Duration::from_secs(120), k: Ratio::TWO };
/// assert!(settings.build::<12>().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ThrottleSettings {
    /// The window requests and accepts are counted over.
    pub window: Duration,
    /// At least 1.
    pub k: Ratio,
}

impl ThrottleSettings {
    /// The throttle over `N` buckets, empty; the errors of [`AdaptiveThrottle::new`].
    pub fn build<const N: usize>(&self) -> Result<AdaptiveThrottle<N>, ConfigError> {
        AdaptiveThrottle::new(self.window, self.k)
    }
}

/// The limit of a [`Bulkhead`]. [`build`](Self::build) makes the bulkhead.
///
/// With the `serde` feature it reads as `{ "max_concurrent": 10 }`.
///
/// ```
/// use stanchion::config::BulkheadSettings;
///
/// let bulkhead = BulkheadSettings { max_concurrent: 10 }.build()?;
/// assert_eq!(bulkhead.metrics().available, 10);
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BulkheadSettings {
    /// At least 1.
    pub max_concurrent: u32,
}

impl BulkheadSettings {
    /// Checks the limit, with [`Bulkhead::new`]'s words.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::new("max_concurrent", "at least 1"));
        }
        Ok(())
    }

    /// The bulkhead, with no permit out.
    pub fn build(&self) -> Result<Bulkhead, ConfigError> {
        Bulkhead::new(self.max_concurrent)
    }
}
