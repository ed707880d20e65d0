//! Fallback as a tower layer: [`FallbackLayer`] answers the failures it covers with a
//! response of its own, made from the error.
//!
//! Which failures: core's [`FallbackOn`](stanchion::fallback::FallbackOn), by the layer
//! that refused, as [`refusal`](super::refusal) reads it (a rate limit, a full bulkhead,
//! an open breaker, an overall timeout, the throttle). Any other error is the service's
//! own and counts as [`Layer::Retry`](stanchion::pipeline::Layer::Retry)'s, the layer of a
//! call whose attempts failed, as in the pipeline; so does an attempt's timeout that
//! reaches this layer (the retries, if any, gave up on it). A covered error is handed to
//! the closure by value, for its answer, its metrics and its logs; the layer's error type
//! stays the inner one, so an uncovered error goes through unchanged.
//!
//! Put it outermost, around the stack whose failures it stands in for. See
//! [`stanchion::fallback`] for when to choose a fallback.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use stanchion::fallback::FallbackOn;
//! use stanchion_std::tower::{BoxError, FallbackLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(FallbackOn::EVERYTHING, |error: BoxError| {
//!         format!("cached answer ({error})")
//!     }))
//!     .service(service_fn(|_: u32| async { Err::<String, BoxError>("down".into()) }));
//! assert_eq!(svc.oneshot(1).await.unwrap(), "cached answer (down)");
//! # }
//! ```

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::FallbackLayer;
pub use service::FallbackService;
