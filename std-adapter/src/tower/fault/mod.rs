//! Fault injection as a tower layer: [`FaultInjectionLayer`] puts a shared
//! [`FaultInjection`](crate::fault::FaultInjection) in front of the inner service, to
//! make a healthy service flaky on purpose (see [`stanchion::fault`] for when).
//!
//! For each request, in `call`, the injection decides (one atomic load while switched
//! off; on, one draw under a short lock). A request that gets the fault is answered with
//! its error (boxed, as every error here; it is not a refusal, so
//! [`refusal`](super::refusal) does not see it) or its outcome (converted `Into` the
//! inner service's response), without reaching the inner service; or the inner service
//! is called at once and its future is polled only after the added latency (on tokio's
//! timer, so a paused clock drives it). Requests that do not get the fault pass through
//! untouched.
//!
//! Every service made by one layer, and every clone, shares the injection: its switch,
//! its share, its fault and its generator (the `n`th request while it is on takes the
//! `n`th draw). Put it innermost, next to the service it stands in for, so that the
//! layers above meet its faults as they would the service's own.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::FaultInjectionLayer;
pub use service::FaultInjectionService;
