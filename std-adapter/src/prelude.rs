//! The names a tokio service usually needs, from this crate and from core
//! ([`stanchion`]), in one import: `use stanchion_std::prelude::*;`.
//!
//! `stanchion-std` re-exports core as [`stanchion`] and the random
//! generator that retry policies take as [`fastrand`], so a service
//! needs this one dependency: `use stanchion_std::stanchion;` lets paths read
//! `stanchion::rate::...` as with a direct dependency. Each name here is also at its
//! home path. Names that other crates of a service use too are left out: core's
//! `pipeline::Layer` (tower's `Layer` trait; match a refusal's layer as
//! `stanchion::pipeline::Layer`) and the breaker's `State` (axum's extractor).
//!
//! ```
//! use std::time::Duration;
//! use stanchion_std::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), ConfigError> {
//! let clock = TokioClock::new();
//! let limiter = WithClock::new(TokenBucket::new(Quota::per_second(10)?), clock);
//! assert!(limiter.acquire(1).is_ok());
//!
//! let backoff = Exponential::new(Duration::from_millis(100), Ratio::TWO, Duration::from_secs(2))?
//!     .with_jitter(Jitter::FULL);
//! let policy = RetryPolicy::new(backoff, 3, stanchion_std::fastrand::Rng::new())?
//!     .with_deadline(Deadline::after(clock.now(), Duration::from_secs(5)));
//! let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
//!     CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(5)?)?;
//! let bulkhead = Bulkhead::new(16)?;
//! # let _ = (policy, breaker, bulkhead);
//! # Ok(())
//! # }
//! ```

pub use stanchion::breaker::window::{
    ConsecutiveWindow, CountWindow, CountWindowUpTo, TimeWindow, TimeWindowUpTo,
};
pub use stanchion::breaker::{BreakerConfig, CircuitBreaker};
pub use stanchion::bulkhead::Bulkhead;
pub use stanchion::rate::{
    FullTablePolicy, KeyedTokenBucket, Quota, RateLimitError, RateLimiter, SharedLimiter,
    TokenBucket, WindowQuota, WithClock,
};
pub use stanchion::retry::{
    Backoff, Classify, Constant, Exponential, Jitter, Ratio, RetryBudget, RetryPolicy, TokenBudget,
    Verdict,
};
pub use stanchion::{Clock, ConfigError, Deadline, Instant};

pub use crate::{
    AsyncKeyedRateLimiter, AsyncRateLimiter, BulkheadQueue, ClassifyOutcome, Pipeline,
    RateLimitQueue, ShardedKeyedLimiter, StdClock, StdRawMutex, TokioClock,
};

#[cfg(feature = "tower")]
pub use crate::tower::{
    BoxError, BulkheadLayer, CircuitBreakerLayer, KeyedRateLimitLayer, QueuedBulkheadLayer,
    RateLimitLayer, RateLimitPolicy, RateLimited, Refusal, RetryLayer, SharedBudget, TimeoutLayer,
    refusal,
};

#[cfg(feature = "http")]
pub use crate::http::{
    RateLimitHeaders, RetryAfterHeader, ServerErrorsAreFailures, refusal_response,
};
#[cfg(feature = "http")]
pub use crate::tower::{Charge, TieredRateLimitLayer, Tiers};

#[cfg(feature = "axum")]
pub use crate::http::handle_refusal;
