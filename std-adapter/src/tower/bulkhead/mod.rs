//! A bulkhead as a tower layer: [`BulkheadLayer`] caps how many requests are in the inner
//! service at once, and refuses the rest at once ([`BulkheadRejected`]).
//!
//! The slot is taken in `call` (core [`Bulkhead::try_acquire_owned`], one
//! compare-and-swap) and held by the response future until it completes: a request whose
//! future is dropped frees its slot. A streaming HTTP body is not counted once the
//! response head is out.
//!
//! Refusal is this layer's mode: a request never waits for a slot here. For waiting
//! (FIFO, bounded queue and wait), put the std adapter's waiting bulkhead in front.
//!
//! [`Bulkhead::try_acquire_owned`]: stanchion::bulkhead::Bulkhead::try_acquire_owned

mod error;
mod future;
mod layer;
mod service;

pub use error::BulkheadRejected;
pub use future::ResponseFuture;
pub use layer::BulkheadLayer;
pub use service::BulkheadService;
