//! Hedging as a tower layer: [`HedgeLayer`] runs a shared
//! [`Hedging`](crate::hedge::Hedging) over the inner service: when a request has not
//! been answered after the hedge delay (fixed, or learned from recent latencies), the
//! same request goes to a clone of the inner service too, and the first `Ok` wins; the
//! other attempts are dropped at once. Only for idempotent requests: see
//! [`stanchion::hedge`] for when to choose it, what wins and how the budget bounds it.
//!
//! As tower's own `hedge`, it needs the request to be `Clone` and the inner service to be
//! `Clone`: the first attempt goes to the service that `poll_ready` readied; each hedge
//! to a clone, readied in its own future. An error of the first attempt while a hedge is
//! in flight waits for the hedge; once every attempt has failed, the last error is the
//! answer (boxed, as every error here, and unwrapped: the layer refuses nothing of its
//! own, so [`refusal`](super::refusal) sees the inner service's errors as they are).
//!
//! Every service made by one layer, and every clone, shares the hedging: its learned
//! delay and its budget. Put it inside a retry layer (a retry is a new hedged call) and
//! outside a per-attempt timeout if there is one (each hedge then has its own).

mod future;
mod layer;
mod service;

pub use future::{Attempt, NewAttempt, ResponseFuture};
pub use layer::HedgeLayer;
pub use service::HedgeService;
