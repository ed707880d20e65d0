//! A circuit breaker as a tower layer: [`CircuitBreakerLayer`] asks a shared core
//! [`CircuitBreaker`](stanchion::breaker::CircuitBreaker) for a permit on each request,
//! and records the response's outcome as its classifier says.
//!
//! - The permit is taken in `call` (closed state: one atomic load) and held by the
//!   response future. When the inner future completes, the classifier
//!   ([`ClassifyOutcome`](crate::ClassifyOutcome) over `Result<Response, Error>`, the
//!   one the `with_breaker` runner takes: [`ErrorsAreFailures`](crate::ErrorsAreFailures)
//!   by default; with feature `http`,
//!   `http::ServerErrorsAreFailures` counts 5xx
//!   responses) turns the result into a success, failure or ignored outcome, recorded with
//!   the call's duration on the layer's clock.
//! - A future dropped before it completes records nothing: its half-open probe slot, if
//!   it took one, comes back.
//! - A rejected request never reaches the inner service: [`CircuitOpen`] carries the
//!   breaker's [`Rejected`](stanchion::breaker::Rejected), with `retry_after` while open.
//!
//! Every service made by one layer (and every clone of them) shares the breaker and the
//! clock. A breaker shared by several layers needs them to share one clock too, since
//! its instants count from the clock's epoch: build the layers with
//! [`with_clock`](CircuitBreakerLayer::with_clock) and one [`TokioClock`](crate::TokioClock).

mod error;
mod future;
mod layer;
mod service;

pub use error::CircuitOpen;
pub use future::ResponseFuture;
pub use layer::{CircuitBreakerLayer, SharedBreaker};
pub use service::CircuitBreakerService;
