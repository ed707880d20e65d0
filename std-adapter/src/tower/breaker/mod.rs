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
//! clock. A breaker shared by several layers needs them to read one time, since its
//! instants count from the clock's epoch: [`CircuitBreakerLayer::new`] takes the
//! process-wide [`TokioClock`](crate::TokioClock), the same in every layer; with
//! [`with_clock`](CircuitBreakerLayer::with_clock), give them all the same clock.
//!
//! # Retries in front of a breaker
//!
//! Under a [`RetryLayer`](crate::tower::RetryLayer) (the order [`stanchion::pipeline`]
//! prescribes), every attempt takes its own permit, so in half-open every attempt of a
//! request can be one of the probes: with resilience4j's defaults
//! ([`BreakerConfig::new`](stanchion::breaker::BreakerConfig::new): 10 probes, a
//! decision after min(minimum calls, probes) outcomes) one failing request retries
//! through up to its `max_attempts` probes, so the verdict on a recovering dependency is
//! one client's retries, and that request keeps knocking while it is still down. Allow
//! few probes: [`SERVICE_PRESET`] allows one. Then the first attempt is the probe, and a
//! retry finds the breaker open again (or its probe slot taken), a refusal that the
//! retry layer does not retry by default.

mod error;
mod future;
mod layer;
mod service;

pub use error::CircuitOpen;
pub use future::ResponseFuture;
pub use layer::{CircuitBreakerLayer, SharedBreaker};
pub use service::CircuitBreakerService;

use std::time::Duration;

use stanchion::breaker::BreakerConfig;

/// A breaker configuration for a service calling a dependency through these layers,
/// with retries in front: one probe in half-open (see the
/// [module docs](self#retries-in-front-of-a-breaker)), a verdict from at least 20 calls
/// at a failure rate of 50 % (a count or time window; a consecutive window opens on its
/// own count), 10 s open. The rest is [`BreakerConfig::new`]'s. Each setting can be
/// changed on the constant, which is a plain [`BreakerConfig`]:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use stanchion::breaker::{CircuitBreaker, window::CountWindow};
/// use stanchion_std::StdRawMutex;
/// use stanchion_std::tower::{CircuitBreakerLayer, breaker::SERVICE_PRESET};
///
/// let config = SERVICE_PRESET.open_duration(Duration::from_secs(30));
/// let breaker: CircuitBreaker<CountWindow<50>, StdRawMutex> =
///     CircuitBreaker::new(config, CountWindow::new()?)?;
/// let layer = CircuitBreakerLayer::new(Arc::new(breaker));
/// # let _ = layer;
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
pub const SERVICE_PRESET: BreakerConfig = BreakerConfig::new()
    .failure_rate_threshold(50)
    .minimum_calls(20)
    .permitted_calls_in_half_open(1)
    .open_duration(Duration::from_secs(10));
