//! tower [`Layer`](tower_layer::Layer)s over the patterns of [`stanchion`] (feature
//! `tower`).
//!
//! | layer | service | refuses with | pipeline layer |
//! |---|---|---|---|
//! | [`RateLimitLayer`] over any [`AsyncRateLimiter`](crate::AsyncRateLimiter) | [`RateLimitService`] | [`RateLimited`] | [`Layer::RateLimit`] |
//! | [`KeyedRateLimitLayer`] over any [`AsyncKeyedRateLimiter`](crate::AsyncKeyedRateLimiter), keyed by the request | [`KeyedRateLimitService`] | [`RateLimited`] | [`Layer::RateLimit`] |
//! | [`BulkheadLayer`] (reject when full) | [`BulkheadService`] | [`BulkheadRejected`] | [`Layer::Bulkhead`] |
//! | [`QueuedBulkheadLayer`] (wait in line, bounded) over a [`BulkheadQueue`](crate::BulkheadQueue) | [`QueuedBulkheadService`] | [`BulkheadRejected`] | [`Layer::Bulkhead`] |
//! | [`CircuitBreakerLayer`] with a response classifier | [`CircuitBreakerService`] | [`CircuitOpen`] | [`Layer::CircuitBreaker`] |
//! | [`RetryLayer`] (core [`RetryPolicy`](stanchion::retry::RetryPolicy), optional budget) | [`RetryService`] | nothing of its own: the last outcome | [`Layer::Retry`] |
//! | [`TimeoutLayer`] | [`TimeoutService`] | [`Elapsed`] | [`Layer::AttemptTimeout`] or [`Layer::OverallTimeout`] |
//!
//! Conventions, after tower's own middleware:
//!
//! - One folder per middleware, with `layer.rs`, `service.rs`, `future.rs`, `error.rs`.
//! - Clones of a layer's service share one state (the limiter, bulkhead, breaker or
//!   budget behind an `Arc`); `Clone` is written by hand so that it does not require the
//!   state to be `Clone`.
//! - Permits are held by the response future: a request whose future is dropped frees
//!   its bulkhead slot, and records nothing in the breaker (a half-open probe slot comes
//!   back).
//! - Errors are [`BoxError`]s, so that layers stack without nesting error types. Each
//!   refusal is a small `Copy` error type in that box; [`refusal`] finds it (anywhere in
//!   the source chain) and says which pipeline [`Layer`] refused and, where known, when
//!   to try again. Each converts into [`PipelineError`](stanchion::pipeline::PipelineError).
//! - Time is tokio's: [`TokioClock`](crate::TokioClock) for decisions and
//!   `tokio::time::sleep` for waits, so `tokio::time::pause()` drives every layer.
//!
//! The order that [`stanchion::pipeline`] documents reads, with `tower::ServiceBuilder`
//! (outermost first): timeout, rate limit, bulkhead, retry, circuit breaker, timeout
//! (per attempt). Note that in tower the breaker sits *inside* the retry layer, so that
//! each attempt takes a breaker permit.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use stanchion::bulkhead::Bulkhead;
//! use stanchion::rate::{Quota, TokenBucket, WithClock};
//! use stanchion_std::TokioClock;
//! use stanchion_std::tower::{refusal, BulkheadLayer, RateLimitLayer, TimeoutLayer};
//! use stanchion::pipeline::Layer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), stanchion_std::tower::BoxError> {
//! let limiter = WithClock::new(TokenBucket::new(Quota::per_second(1)?), TokioClock::new());
//! let service = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(5)))
//!     .layer(RateLimitLayer::new(Arc::new(limiter)))
//!     .layer(BulkheadLayer::new(Arc::new(Bulkhead::new(8)?)))
//!     .service(service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x * 2) }));
//!
//! assert_eq!(service.clone().oneshot(21).await?, 42);
//! let err = service.oneshot(21).await.unwrap_err(); // the quota is spent
//! let refused = refusal(&*err).unwrap();
//! assert_eq!(refused.layer, Layer::RateLimit);
//! assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
//! # Ok(())
//! # }
//! ```

use std::error::Error;
use std::time::Duration;

use stanchion::pipeline::Layer;

pub mod breaker;
pub mod bulkhead;
pub mod rate_limit;
pub mod retry;
pub mod timeout;

pub use breaker::{CircuitBreakerLayer, CircuitBreakerService, CircuitOpen, SharedBreaker};
pub use bulkhead::{
    BulkheadLayer, BulkheadRejected, BulkheadService, QueuedBulkheadLayer, QueuedBulkheadService,
};
pub use rate_limit::{
    KeyedRateLimitLayer, KeyedRateLimitService, OnAdmission, RateLimitLayer, RateLimitPolicy,
    RateLimitService, RateLimited, SilentAdmission,
};
pub use retry::{NoHint, RefusalsArePermanent, RetryHint, RetryLayer, RetryService, SharedBudget};
pub use timeout::{Elapsed, TimeoutLayer, TimeoutService};

/// The error type of every layer here: tower's usual boxed error.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Which layer refused a request, and when trying again may succeed: the part of a
/// [`PipelineError`](stanchion::pipeline::PipelineError) that an HTTP response needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// The layer that refused.
    pub layer: Layer,
    /// When trying again may succeed, where the layer knows (rate limit, open breaker).
    pub retry_after: Option<Duration>,
}

/// The refusal of one of this module's layers in `error` or its source chain, if there is
/// one; `None` for any other error (the service's own).
///
/// A [`TimeoutService`] reports [`Layer::AttemptTimeout`] or [`Layer::OverallTimeout`] as
/// its layer was built ([`TimeoutLayer::overall`]).
pub fn refusal(error: &(dyn Error + 'static)) -> Option<Refusal> {
    let mut current = Some(error);
    let mut steps = 0;
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<RateLimited>() {
            return Some(r.refusal());
        }
        if let Some(r) = e.downcast_ref::<BulkheadRejected>() {
            return Some(r.refusal());
        }
        if let Some(r) = e.downcast_ref::<CircuitOpen>() {
            return Some(r.refusal());
        }
        if let Some(r) = e.downcast_ref::<Elapsed>() {
            return Some(r.refusal());
        }
        // A source chain is finite, but a buggy `source` could loop: bound the walk.
        steps += 1;
        if steps > 64 {
            return None;
        }
        current = e.source();
    }
    None
}
