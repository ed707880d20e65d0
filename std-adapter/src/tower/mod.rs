//! tower [`Layer`](tower_layer::Layer)s over the patterns of [`stanchion`] (feature
//! `tower`).
//!
//! | layer | service | refuses with | pipeline layer |
//! |---|---|---|---|
//! | [`RateLimitLayer`] over any [`AsyncRateLimiter`](crate::AsyncRateLimiter) | [`RateLimitService`] | [`RateLimited`] | [`Layer::RateLimit`] |
//! | [`KeyedRateLimitLayer`] over any [`AsyncKeyedRateLimiter`](crate::AsyncKeyedRateLimiter), keyed by the request | [`KeyedRateLimitService`] | [`RateLimited`] | [`Layer::RateLimit`] |
//! | `TieredRateLimitLayer` (feature `http`) over one [`AsyncKeyedRateLimiter`](crate::AsyncKeyedRateLimiter) per tier, tier and key by the request | `TieredRateLimitService` | nothing: answers 429 itself | [`Layer::RateLimit`] |
//! | [`BulkheadLayer`] (reject when full) | [`BulkheadService`] | [`BulkheadRejected`] | [`Layer::Bulkhead`] |
//! | [`QueuedBulkheadLayer`] (wait in line, bounded) over a [`BulkheadQueue`](crate::BulkheadQueue) | [`QueuedBulkheadService`] | [`BulkheadRejected`] | [`Layer::Bulkhead`] |
//! | [`CircuitBreakerLayer`] with a response classifier | [`CircuitBreakerService`] | [`CircuitOpen`] | [`Layer::CircuitBreaker`] |
//! | [`RetryLayer`] (core [`RetryPolicy`](stanchion::retry::RetryPolicy), optional budget) | [`RetryService`] | nothing of its own: the last outcome | [`Layer::Retry`] |
//! | [`TimeoutLayer`] | [`TimeoutService`] | [`Elapsed`] | [`Layer::AttemptTimeout`] or [`Layer::OverallTimeout`] |
//! | [`FallbackLayer`] (core [`FallbackOn`](stanchion::fallback::FallbackOn): which failures a closure answers) | [`FallbackService`] | nothing of its own: a covered error becomes the closure's response, the others go through | any, as [`refusal`] reads it (the service's own errors: [`Layer::Retry`]) |
//! | [`FaultInjectionLayer`] (core [`FaultInjector`](stanchion::fault::FaultInjector): an error, an outcome or latency in a share of requests) | [`FaultInjectionService`] | nothing of its own: the injected error | [`Layer::FaultInjection`] |
//! | [`HedgeLayer`] (core [`Hedge`](stanchion::hedge::Hedge): another attempt after a fixed or learned delay, the first `Ok` wins; request and service `Clone`) | [`HedgeService`] | nothing of its own: the last error when every attempt failed | none |
//! | [`ThrottleLayer`] (adaptive client-side throttling, core [`AdaptiveThrottle`](stanchion::throttle::AdaptiveThrottle)) | [`ThrottleService`] | [`ThrottleRejected`] | none: [`Layer::Throttle`] |
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
//!   refusal is a small `Copy` error type in that box, returned as it is (never wrapped,
//!   and the inner service's errors are passed through unwrapped); [`refusal`] tells it
//!   from the service's own errors (those that wrap a refusal met further downstream
//!   included) and says which pipeline [`Layer`] refused and, where known, when to try
//!   again. Each converts into [`PipelineError`](stanchion::pipeline::PipelineError),
//!   except [`ThrottleRejected`]: the throttle is not a position of the pipeline.
//!   `TieredRateLimitLayer` (feature `http`) is the exception: it answers its refusals
//!   itself, as HTTP responses, and keeps the inner service's error type.
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
pub mod fallback;
pub mod fault;
pub mod hedge;
pub mod rate_limit;
pub mod retry;
pub mod throttle;
pub mod timeout;

pub use breaker::{CircuitBreakerLayer, CircuitBreakerService, CircuitOpen, SharedBreaker};
pub use bulkhead::{
    BulkheadLayer, BulkheadRejected, BulkheadService, QueuedBulkheadLayer, QueuedBulkheadService,
};
pub use fallback::{FallbackLayer, FallbackService};
pub use fault::{FaultInjectionLayer, FaultInjectionService};
pub use hedge::{HedgeLayer, HedgeService};
#[cfg(feature = "http")]
pub use rate_limit::{
    Charge, NoHooks, OnRefusal, RateLimitHooks, TierId, TierRefusal, TieredRateLimitLayer,
    TieredRateLimitService, Tiers,
};
pub use rate_limit::{
    KeyedRateLimitLayer, KeyedRateLimitService, OnAdmission, RateLimitLayer, RateLimitPolicy,
    RateLimitService, RateLimited, SilentAdmission,
};
pub use retry::{NoHint, RefusalsArePermanent, RetryHint, RetryLayer, RetryService, SharedBudget};
pub use throttle::{ThrottleLayer, ThrottleRejected, ThrottleService};
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

/// The refusal of one of this module's layers, if `error` is one; `None` for any other
/// error (the service's own).
///
/// Only `error` itself is looked at, not its [`source`](Error::source) chain: the layers
/// return their refusals as they are, and pass the inner service's errors through
/// unwrapped, so a refusal of this stack is always the error itself. An error whose
/// source is a refusal is another service's error that wraps one: an inner service that
/// called a dependency through stanchion layers of its own and was refused there, say.
/// That is not this stack refusing (its breaker is not open; answering the client with
/// its `Retry-After` would be wrong), so it reads as the service's own error. A layer
/// between them that wraps errors (tower's `Buffer` wraps them in its `ServiceError`)
/// hides a refusal the same way: put such layers outside this module's, or take the
/// refusal out of their error before asking.
///
/// A [`TimeoutService`] reports [`Layer::AttemptTimeout`] or [`Layer::OverallTimeout`] as
/// its layer was built ([`TimeoutLayer::overall`]).
///
/// ```
/// use std::error::Error;
/// use std::fmt;
/// use std::time::Duration;
/// use stanchion::pipeline::Layer;
/// use stanchion_std::tower::{BoxError, Elapsed, refusal};
///
/// let timeout = Elapsed { after: Duration::from_secs(1), layer: Layer::OverallTimeout };
/// let ours: BoxError = Box::new(timeout);
/// assert_eq!(refusal(&*ours).map(|r| r.layer), Some(Layer::OverallTimeout));
///
/// /// A dependency's error that wraps the refusal it met downstream.
/// #[derive(Debug)]
/// struct Downstream(Elapsed);
/// impl fmt::Display for Downstream {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         write!(f, "the downstream call failed")
///     }
/// }
/// impl Error for Downstream {
///     fn source(&self) -> Option<&(dyn Error + 'static)> {
///         Some(&self.0)
///     }
/// }
/// let theirs: BoxError = Box::new(Downstream(timeout));
/// assert_eq!(refusal(&*theirs), None);
/// ```
pub fn refusal(error: &(dyn Error + 'static)) -> Option<Refusal> {
    if let Some(r) = error.downcast_ref::<RateLimited>() {
        Some(r.refusal())
    } else if let Some(r) = error.downcast_ref::<BulkheadRejected>() {
        Some(r.refusal())
    } else if let Some(r) = error.downcast_ref::<CircuitOpen>() {
        Some(r.refusal())
    } else if let Some(r) = error.downcast_ref::<ThrottleRejected>() {
        Some(r.refusal())
    } else {
        error.downcast_ref::<Elapsed>().map(Elapsed::refusal)
    }
}
