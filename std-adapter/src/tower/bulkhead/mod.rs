//! A bulkhead as a tower layer: [`BulkheadLayer`] caps how many requests are in the inner
//! service at once, and refuses the rest at once ([`BulkheadRejected`]).
//!
//! The slot is taken in `call` (core [`Bulkhead::try_acquire_owned`], one
//! compare-and-swap) and held by the response future until it completes: a request whose
//! future is dropped frees its slot. A streaming HTTP body is not counted once the
//! response head is out.
//!
//! [`BulkheadLayer`] refuses at once: a request never waits for a slot.
//! [`QueuedBulkheadLayer`] is the wait mode, over the std adapter's
//! [`BulkheadQueue`](crate::BulkheadQueue): a request that finds the bulkhead full waits
//! in line (FIFO, bounded length), for at most a bounded time, then is refused.
//!
//! [`Bulkhead::try_acquire_owned`]: stanchion::bulkhead::Bulkhead::try_acquire_owned

mod error;
mod future;
mod layer;
mod queued;
mod service;

pub use error::BulkheadRejected;
pub use future::ResponseFuture;
pub use layer::BulkheadLayer;
pub use queued::{QueueSlot, QueuedBulkheadLayer, QueuedBulkheadService, QueuedResponseFuture};
pub use service::BulkheadService;
