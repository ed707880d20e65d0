//! stanchion on std and tokio.
//!
//! # Quick start: an axum service
//!
//! One stanchion dependency is enough: `stanchion-std` re-exports core as [`stanchion`],
//! and [`prelude`] imports the names of both. Next to the service's own crates:
//!
//! ```toml
//! [dependencies]
//! stanchion-std = { version = "0.1", features = ["axum"] }
//! axum = "0.8"
//! tokio = { version = "1", features = ["full"] }
//! tower = { version = "0.5", features = ["util"] }
//! ```
//!
//! A per-client rate limit in front of the routes, and a downstream call behind a
//! timeout, a bulkhead, retries and a circuit breaker, in [`stanchion::pipeline`]'s
//! order (the module `tower` describes each layer); every refusal is answered by
//! `http::handle_refusal`: 429 with `Retry-After` over the client's quota, 503 with
//! `Retry-After` while the breaker is open, 503 when the bulkhead is full, 504 on a
//! timeout, and 500 for the downstream's own errors.
//!
#![cfg_attr(feature = "axum", doc = "```")]
#![cfg_attr(not(feature = "axum"), doc = "```ignore")]
//! use std::{sync::Arc, time::Duration};
//! use axum::extract::{Path, Request, State};
//! use axum::response::{IntoResponse, Response};
//! use axum::{Router, error_handling::HandleErrorLayer, routing::get};
//! use stanchion_std::{fastrand, prelude::*};
//! use tower::{ServiceBuilder, ServiceExt, util::BoxCloneSyncService};
//!
//! /// The downstream call, with every pattern in front; clones share their state.
//! type Downstream = BoxCloneSyncService<String, String, BoxError>;
//!
//! async fn hello(State(downstream): State<Downstream>, Path(name): Path<String>) -> Response {
//!     match downstream.oneshot(name).await {
//!         Ok(answer) => answer.into_response(),
//!         Err(error) => handle_refusal(error).await, // 503 + Retry-After, 504, or 500
//!     }
//! }
//!
//! fn app() -> Result<Router, ConfigError> {
//!     // 2 requests a second per API key (burst 2), in 8 shards of 512 keys. Requests
//!     // without a key share one quota (the key `None`).
//!     let quota = Quota::per_second(2)?;
//!     let keys = ShardedKeyedLimiter::<512>::new(quota, FullTablePolicy::DenyNewKeys, 8)?;
//!     let keys = Arc::new(WithClock::new(keys, TokioClock::new()));
//!     let api_key = |r: &Request| r.headers().get("x-api-key").map(|k| k.as_bytes().to_vec());
//!     let limit = KeyedRateLimitLayer::new(keys, api_key);
//!     // Opens after 3 failed calls in a row, for 30 s.
//!     let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> = CircuitBreaker::new(
//!         BreakerConfig::new().open_duration(Duration::from_secs(30)),
//!         ConsecutiveWindow::new(3)?,
//!     )?;
//!     // 3 attempts, backing off from 50 ms, doubling up to 1 s, with full jitter.
//!     let (ms, secs) = (Duration::from_millis, Duration::from_secs);
//!     let backoff = Exponential::new(ms(50), Ratio::TWO, secs(1))?.with_jitter(Jitter::FULL);
//!     let retry = RetryPolicy::new(backoff, 3, fastrand::Rng::new())?;
//!     let downstream = ServiceBuilder::new()
//!         .layer(TimeoutLayer::overall(secs(5)))
//!         .layer(BulkheadLayer::new(Arc::new(Bulkhead::new(64)?)))
//!         .layer(RetryLayer::new(move |_clock: &TokioClock| retry.clone()))
//!         .layer(CircuitBreakerLayer::new(Arc::new(breaker)))
//!         .layer(TimeoutLayer::new(secs(1))) // per attempt
//!         .service_fn(|name: String| async move {
//!             match name.as_str() {
//!                 "down" => Err(BoxError::from("the downstream is down")),
//!                 _ => Ok(format!("hello, {name}\n")),
//!             }
//!         });
//!     Ok(Router::new()
//!         .route("/hello/{name}", get(hello))
//!         // The keyed layer refuses with an error: `HandleErrorLayer` makes it a 429.
//!         .layer(ServiceBuilder::new().layer(HandleErrorLayer::new(handle_refusal)).layer(limit))
//!         .with_state(BoxCloneSyncService::new(downstream)))
//! }
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let app = app()?;
//! // Requests sent in-process, as a test sends them (`axum::serve` for real ones).
//! let get = |path: &str, key: &str| {
//!     let request = Request::builder().uri(path).header("x-api-key", key);
//!     app.clone().oneshot(request.body(axum::body::Body::empty()).unwrap())
//! };
//! assert_eq!(get("/hello/ann", "alice").await?.status(), 200);
//! assert_eq!(get("/hello/ann", "alice").await?.status(), 200);
//! let over_quota = get("/hello/ann", "alice").await?;
//! assert_eq!(over_quota.status(), 429);
//! assert_eq!(over_quota.headers()["retry-after"], "1");
//! // bob has a quota of his own. His request fails downstream on each of its 3 attempts,
//! // and the third failure in a row opens the breaker.
//! assert_eq!(get("/hello/down", "bob").await?.status(), 500);
//! let open = get("/hello/ann", "bob").await?;
//! assert_eq!(open.status(), 503);
//! // Open for 30 s: `Retry-After` says 30 (whole seconds, never a second late; the
//! // breaker lets a call in from the first instant after the 30 s).
//! assert_eq!(open.headers()["retry-after"], "30");
//! # Ok(())
//! # }
//! ```
//!
//! The decisions live in [`stanchion`] (re-exported here, with [`fastrand`], whose
//! generator retry policies take, so that a service needs this one dependency); this
//! crate provides what a service needs around them, and a [`prelude`] that imports the
//! usual names of both at once (`use stanchion_std::prelude::*;`):
//!
//! - clocks: [`TokioClock`], which honours `tokio::time::pause()` and `advance()` so that
//!   tests run on virtual time, [`CoarseClock`], one atomic load refreshed by a task every
//!   millisecond, the clock to give a server's layers (`with_clock`) on hot paths,
//!   [`StdClock`] on `std::time::Instant`, and (feature `quanta`) `QuantaClock`, on the
//!   CPU's time-stamp counter;
//! - [`StdRawMutex`], a per-instance lock for the patterns whose state needs a critical
//!   section, when they are shared across threads;
//! - [`AsyncRateLimiter`] and [`AsyncKeyedRateLimiter`]: one awaitable interface for core's
//!   in-process limiters and for remote ones.
//! - runners over tokio's timer, driven by [`TokioClock`] so that paused time drives them:
//!   [`retry`] (the attempt number passed to the operation), [`timeout`] (to a
//!   [`Deadline`](stanchion::Deadline)), [`RateLimitQueue`] and [`BulkheadQueue`] (FIFO,
//!   cancel-safe waiting, bounded by a deadline and a line length), [`with_breaker`] (a
//!   call through a circuit breaker, with a [`ClassifyOutcome`]);
//! - [`fault::FaultInjection`]: core's fault injection carried out over tokio (an error,
//!   an outcome, or latency on tokio's timer), switchable at run time;
//! - [`throttle::with_throttle`]: a call through core's adaptive client-side throttle;
//! - [`hedge::Hedging`]: core's hedging over tokio (for idempotent calls: another attempt
//!   after a fixed or learned delay, the first acceptable answer wins, the rest dropped);
//! - [`Pipeline`]: all of them composed in core's order
//!   ([`stanchion::pipeline::Layer::ORDER`]), returning
//!   [`PipelineError`](stanchion::pipeline::PipelineError), with no allocation per call;
//! - [`ShardedKeyedLimiter`]: a keyed rate limiter for servers, sharded for many threads,
//!   in memory fixed by configuration;
//! - (feature `config`) `registry::Registry`: named rate limiters, breakers, retry
//!   settings and bulkheads built from one TOML document (environment variables over
//!   single fields), reloaded in place; (feature `metrics`) reporting through the
//!   `metrics` facade;
//! - (feature `tracing`) retries, refusals and state changes as `tracing` events, with
//!   listeners for breakers and bulkheads (`TracingBreakerListener`,
//!   `TracingBulkheadListener`);
//! - (feature `tower`) `tower` layers: rate limit (plain and keyed), bulkhead (reject, or
//!   wait in a `BulkheadQueue`), circuit breaker, retry, timeout, adaptive throttle,
//!   fault injection and hedging,
//!   whose clones share one state; (feature `http`) their refusals as 429/503/504
//!   responses with `Retry-After` and the IETF `RateLimit` fields, and
//!   `TieredRateLimitLayer`, a keyed limit with a quota per tier of clients that answers
//!   its refusals itself; (feature `axum`) `IntoResponse` and a `HandleErrorLayer`
//!   handler.
#![deny(missing_docs)]

mod clock;
mod coarse;
mod limiter;
mod mutex;

mod breaker;
mod bulkhead;
mod events;
mod keyed;
mod limit;
mod line;
mod pipeline;
mod retry;
mod timeout;

#[cfg(feature = "quanta")]
pub use clock::QuantaClock;
pub use clock::{StdClock, TokioClock};
pub use coarse::CoarseClock;
/// The random generator core's retry policies draw jitter from (the version core uses),
/// so that building a policy needs no dependency of its own.
pub use fastrand;
pub use limiter::{Admission, AsyncKeyedRateLimiter, AsyncRateLimiter};
pub use mutex::StdRawMutex;
pub use stanchion;

pub use breaker::{
    BreakerError, BreakerLayer, ClassifyOutcome, ErrorsAreFailures, NoBreaker,
    refusals_are_permanent, with_breaker,
};
pub use bulkhead::{BulkheadQueue, QueuedPermit, WakeOnRelease};
#[cfg(feature = "tracing")]
pub use events::{TracingBreakerListener, TracingBulkheadListener};
pub use keyed::ShardedKeyedLimiter;
pub use limit::{NoRateLimit, RateLimitQueue};
pub use pipeline::Pipeline;
pub use retry::{retry, retry_with_hint};
pub use stanchion::retry::RetryError;
pub use timeout::{TimedOut, timeout};
pub mod fault;
pub mod hedge;
#[cfg(feature = "http")]
pub mod http;
pub mod prelude;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "config")]
pub mod registry;
pub mod throttle;
#[cfg(feature = "tower")]
pub mod tower;
