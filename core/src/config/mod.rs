//! Configuration read from a document: human durations, and (feature `serde`) serde for
//! every configuration type, validated on the way in.
//!
//! With the `serde` feature (`no_std`, no allocation), every configuration type of core
//! implements `Deserialize` and `Serialize`: [`Quota`](crate::rate::Quota),
//! [`WindowQuota`](crate::rate::WindowQuota), [`Spacing`](crate::rate::Spacing),
//! [`FullTablePolicy`](crate::rate::FullTablePolicy),
//! [`BreakerConfig`](crate::breaker::BreakerConfig) and
//! [`AfterMaxWait`](crate::breaker::AfterMaxWait), the window choice [`BreakerWindow`],
//! the backoffs ([`Immediate`](crate::retry::Immediate), [`Constant`](crate::retry::Constant),
//! [`Linear`](crate::retry::Linear), [`Exponential`](crate::retry::Exponential),
//! [`DecorrelatedJitter`](crate::retry::DecorrelatedJitter),
//! [`DecorrelatedJitterV2`](crate::retry::DecorrelatedJitterV2), and [`AnyBackoff`] to
//! choose one in the document), [`Jitter`](crate::retry::Jitter),
//! [`Ratio`](crate::retry::Ratio), the retry policy's settings [`RetrySettings`], and the
//! adaptive limits' [`AimdConfig`](crate::adaptive::AimdConfig) and
//! [`VegasConfig`](crate::adaptive::VegasConfig), and hedging's
//! [`HedgeConfig`](crate::hedge::HedgeConfig) (`delay = "20ms"` for a fixed delay, or
//! `per_mille = 950` with `min_samples` and `window` for a learned one, and
//! `max_attempts`).
//!
//! **Validated on the way in.** A document is read into a plain form and the value is built
//! through its constructor, so a value the constructor refuses is a deserialisation error
//! with the constructor's words, naming the field and the allowed range:
//!
//! ```text
//! invalid configuration: `burst` must be at least 1
//! invalid configuration: `period` must be a duration whose units are ns, us, ms, s, m, h or d (such as "250ms")
//! ```
//!
//! The error is raised once the value's fields are read, so a format that says where
//! points at the value, not at the field (TOML: the table's line and column).
//!
//! **Durations** are strings in a human form, `"250ms"`, `"5s"`, `"1m30s"` (whole numbers
//! with units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`; see [`duration`]), and are written in the
//! largest exact unit. **Ratios** (a backoff factor, a jitter spread, a budget's ratio) are
//! exact, never floating point: an integer, or a string `"1.5"`, `"3/2"`, `"10%"`.
//!
//! **Round trip.** Writing a value and reading it back builds a value equal to it (`==`,
//! to the nanosecond and to the bit of the fixed-point factors). A backoff is written as
//! its configuration: one that has already produced delays reads back as it was built,
//! before its first delay.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use core::time::Duration;
//! use stanchion::rate::Quota;
//! use stanchion::breaker::BreakerConfig;
//!
//! let quota: Quota = serde_json::from_str(r#"{ "burst": 10, "period": "100ms" }"#).unwrap();
//! assert_eq!(quota, Quota::new(10, Duration::from_millis(100)).unwrap());
//! assert_eq!(serde_json::to_string(&quota).unwrap(), r#"{"burst":10,"period":"100ms"}"#);
//!
//! let err = serde_json::from_str::<Quota>(r#"{ "burst": 0, "period": "1s" }"#).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid configuration: `burst` must be at least 1"
//! );
//!
//! // Fields left out keep the defaults of `BreakerConfig::new()`.
//! let config: BreakerConfig =
//!     serde_json::from_str(r#"{ "failure_rate_threshold": 25, "open_duration": "1m30s" }"#).unwrap();
//! assert_eq!(
//!     config,
//!     BreakerConfig::new().failure_rate_threshold(25).open_duration(Duration::from_secs(90))
//! );
//! # }
//! ```
//!
//! The types compose into an application's own document. In TOML:
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use stanchion::breaker::window::AnyWindow;
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker};
//! use stanchion::config::{BreakerWindow, RetrySettings};
//! use stanchion::rate::{Quota, TokenBucket};
//! use stanchion::sync::CriticalSectionRawMutex;
//!
//! #[derive(serde::Deserialize)]
//! struct Upstream {
//!     quota: Quota,
//!     breaker: BreakerConfig,
//!     window: BreakerWindow,
//!     retry: RetrySettings,
//! }
//!
//! let upstream: Upstream = toml::from_str(r#"
//!     quota = { burst = 20, period = "50ms" }
//!     window = { count = { size = 50 } }
//!     retry = { max_attempts = 3, backoff = { constant = { delay = "200ms", jitter = "full" } } }
//!
//!     [breaker]
//!     failure_rate_threshold = 50
//!     minimum_calls = 20
//!     open_duration = "30s"
//! "#).unwrap();
//!
//! let bucket = TokenBucket::new(upstream.quota);
//! let breaker: CircuitBreaker<AnyWindow<128>, CriticalSectionRawMutex> =
//!     CircuitBreaker::new(upstream.breaker, upstream.window.build().unwrap()).unwrap();
//! assert_eq!(upstream.retry.max_attempts, 3);
//! # let _ = (bucket, breaker);
//! # }
//! ```
//!
//! What holds live state (a [`TokenBucket`](crate::rate::TokenBucket), a
//! [`CircuitBreaker`](crate::breaker::CircuitBreaker), a
//! [`RetryPolicy`](crate::retry::RetryPolicy)) is not serialised: its configuration is, and
//! builds it.

pub mod duration;

mod settings;

#[cfg(feature = "serde")]
pub(crate) mod serde_support;

#[cfg(feature = "serde")]
mod impls;

#[cfg(all(test, feature = "serde"))]
mod tests;

pub use settings::{
    AnyBackoff, BreakerWindow, BulkheadSettings, RatioBudgetSettings, RetrySettings,
    ThrottleSettings, TokenBudgetSettings,
};
