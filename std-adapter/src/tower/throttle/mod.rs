//! Adaptive client-side throttling as a tower layer: [`ThrottleLayer`] asks a shared core
//! [`AdaptiveThrottle`](stanchion::throttle::AdaptiveThrottle) whether to send each
//! request, and records whether the backend accepted it.
//!
//! - The decision is taken in `call` (the window's `2N` atomic loads, one
//!   compare-and-swap, one draw when the probability is above zero). A refused request
//!   never reaches the inner service: [`ThrottleRejected`] carries the window's counts,
//!   [`refusal`](super::refusal) reads it as [`Layer::Throttle`](stanchion::pipeline::Layer::Throttle),
//!   and the `http` helpers answer it with 503 Service Unavailable, without `Retry-After`.
//! - When the inner future completes, the classifier
//!   ([`ClassifyOutcome`](crate::ClassifyOutcome), the breaker's:
//!   [`ErrorsAreFailures`](crate::ErrorsAreFailures) by default; with feature `http`,
//!   `http::ServerErrorsAreFailures` counts 5xx responses) says whether the backend
//!   accepted the request: a failure is not an accept; a success or an ignored outcome
//!   (a client error, say) is. A future dropped before it completes records no accept,
//!   as a timeout would.
//! - Each request draws from a random stream of its own, derived from the layer's seed
//!   and the request's number, as the [retry layer](super::retry) does, so clones of the
//!   service (axum makes one per request) do not draw in step.
//!
//! Every service made by one layer, and every clone, shares the throttle. Under a
//! [`RetryLayer`](super::RetryLayer), put the throttle inside it: each attempt is then a
//! request to the throttle, as the SRE book counts them, and a refusal is not retried by
//! default.

mod error;
mod future;
mod layer;
mod service;

pub use error::ThrottleRejected;
pub use future::ResponseFuture;
pub use layer::{SharedThrottle, ThrottleLayer};
pub use service::ThrottleService;
