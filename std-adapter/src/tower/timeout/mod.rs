//! A timeout as a tower layer: [`TimeoutLayer`] fails a request with [`Elapsed`] when the
//! inner service has not answered within the layer's duration, on tokio's clock (so a
//! paused runtime drives it). The inner future is dropped on expiry, which frees what it
//! held (a bulkhead slot, a breaker permit: the breaker records nothing for it unless the
//! timeout sits inside the breaker layer, where the expiry is the failure it records).
//!
//! A timeout is the pipeline's per-attempt timeout by default; built with
//! [`TimeoutLayer::overall`] it reports itself as the overall one
//! ([`Layer::OverallTimeout`](stanchion::pipeline::Layer::OverallTimeout)).

mod error;
mod future;
mod layer;
mod service;

pub use error::Elapsed;
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;
pub use service::TimeoutService;
