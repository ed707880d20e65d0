//! stanchion on std and tokio.
//!
//! The decisions live in [`stanchion`] (re-exported here); this crate provides what a
//! service needs around them:
//!
//! - clocks: [`TokioClock`], which honours `tokio::time::pause()` and `advance()` so that
//!   tests run on virtual time, [`StdClock`] on `std::time::Instant`, and (feature
//!   `quanta`) `QuantaClock`, on the CPU's time-stamp counter, for hot paths;
//! - [`StdRawMutex`], a per-instance lock for the patterns whose state needs a critical
//!   section, when they are shared across threads;
//! - [`AsyncRateLimiter`] and [`AsyncKeyedRateLimiter`]: one awaitable interface for core's
//!   in-process limiters and for remote ones.
#![deny(missing_docs)]

mod clock;
mod limiter;
mod mutex;

#[cfg(feature = "quanta")]
pub use clock::QuantaClock;
pub use clock::{StdClock, TokioClock};
pub use limiter::{Admission, AsyncKeyedRateLimiter, AsyncRateLimiter};
pub use mutex::StdRawMutex;
pub use stanchion;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "tower")]
pub mod tower;
