//! stanchion on std and tokio.
//!
//! The decisions live in [`stanchion`] (re-exported here, with [`fastrand`], whose
//! generator retry policies take, so that a service needs this one dependency); this
//! crate provides what a service needs around them, and a [`prelude`] that imports the
//! usual names of both at once (`use stanchion_std::prelude::*;`):
//!
//! - clocks: [`TokioClock`], which honours `tokio::time::pause()` and `advance()` so that
//!   tests run on virtual time, [`StdClock`] on `std::time::Instant`, and (feature
//!   `quanta`) `QuantaClock`, on the CPU's time-stamp counter, for hot paths;
//! - [`StdRawMutex`], a per-instance lock for the patterns whose state needs a critical
//!   section, when they are shared across threads;
//! - [`AsyncRateLimiter`] and [`AsyncKeyedRateLimiter`]: one awaitable interface for core's
//!   in-process limiters and for remote ones.
//! - runners over tokio's timer, driven by [`TokioClock`] so that paused time drives them:
//!   [`retry`] (the attempt number passed to the operation), [`timeout`] (to a
//!   [`Deadline`](stanchion::Deadline)), [`RateLimitQueue`] and [`BulkheadQueue`] (FIFO,
//!   cancel-safe waiting, bounded by a deadline and a line length), [`with_breaker`] (a
//!   call through a circuit breaker, with a [`ClassifyOutcome`]);
//! - [`Pipeline`]: all of them composed in core's order
//!   ([`stanchion::pipeline::Layer::ORDER`]), returning
//!   [`PipelineError`](stanchion::pipeline::PipelineError), with no allocation per call;
//! - [`ShardedKeyedLimiter`]: a keyed rate limiter for servers, sharded for many threads,
//!   in memory fixed by configuration;
//! - (feature `tracing`) retries, refusals and state changes as `tracing` events, with
//!   listeners for breakers and bulkheads (`TracingBreakerListener`,
//!   `TracingBulkheadListener`);
//! - (feature `tower`) `tower` layers: rate limit (plain and keyed), bulkhead (reject, or
//!   wait in a `BulkheadQueue`), circuit breaker, retry, timeout and adaptive throttle,
//!   whose clones share one state; (feature `http`) their refusals as 429/503/504
//!   responses with `Retry-After` and the IETF `RateLimit` fields; (feature `axum`)
//!   `IntoResponse` and a `HandleErrorLayer` handler.
#![deny(missing_docs)]

mod clock;
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
/// The random generator core's retry policies draw jitter from (the version core uses),
/// so that building a policy needs no dependency of its own.
pub use fastrand;
pub use limiter::{Admission, AsyncKeyedRateLimiter, AsyncRateLimiter};
pub use mutex::StdRawMutex;
pub use stanchion;

pub use breaker::{
    BreakerError, BreakerLayer, ClassifyOutcome, ErrorsAreFailures, NoBreaker, with_breaker,
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
#[cfg(feature = "http")]
pub mod http;
pub mod prelude;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "tower")]
pub mod tower;
