//! stanchion on std and tokio.
//!
//! The decisions live in [`stanchion`] (re-exported here); this crate provides what a
//! service needs around them:
//!
//! - clocks: [`TokioClock`], which honours `tokio::time::pause()` and `advance()` so that
//!   tests run on virtual time, and [`StdClock`] on `std::time::Instant`;
//! - [`StdRawMutex`], a per-instance lock for the patterns whose state needs a critical
//!   section, when they are shared across threads.
#![deny(missing_docs)]

mod clock;
mod mutex;

pub use clock::{StdClock, TokioClock};
pub use mutex::StdRawMutex;
pub use stanchion;
