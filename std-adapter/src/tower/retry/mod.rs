//! Retry as a tower layer: [`RetryLayer`] re-sends a clone of the request while a core
//! [`RetryPolicy`](stanchion::retry::RetryPolicy) (built per request) says so, sleeping
//! on tokio's clock between attempts.
//!
//! - A policy per request, from the layer's `Fn(&C) -> RetryPolicy<..>` (given the
//!   layer's clock, to set a deadline with `Deadline::after(clock.now(), d)`; a policy
//!   without one costs no clock read): its backoff, jitter, max attempts, deadline,
//!   classifier and budget decide; the layer only sleeps. Share a budget across requests
//!   with a `&'static` budget or a [`SharedBudget`] (an `Arc`).
//! - A random stream per request: the layer reseeds each policy's generator with a seed
//!   derived from one layer seed and the request's number, so that requests failing
//!   together spread their retries even when the closure seeds every policy alike. (A
//!   service and each of its clones number their requests from blocks of their own, one
//!   atomic addition per clone and none per request.) The
//!   layer seed is drawn at random; [`RetryLayer::seed`] fixes it for reproducible runs,
//!   and [`RetryLayer::rng_from_policy`] keeps the generator the closure built.
//! - The request is cloned for every attempt (`Req: Clone`); the inner service is cloned
//!   once per request and made ready again before each retry.
//! - The outcome is transparent: the layer returns the last attempt's response or error
//!   as it is, like tower's own retry. A server's hint (`Retry-After`) can replace the
//!   backoff's delay through a [`RetryHint`].
//! - Stanchion's own refusals below it are not retried, whatever the policy's classifier
//!   says: a rate limit, a full bulkhead, an open breaker (retrying it with backoff only
//!   keeps knocking, as [`stanchion::pipeline`] says) or an overall timeout ends the
//!   request with that refusal. Per-attempt timeouts are retried as the classifier says
//!   (the default, [`TransientErrors`](stanchion::retry::TransientErrors), retries
//!   them). [`RetryLayer::retry_refusals`] hands refusals to the classifier too.
//!   [`RefusalsArePermanent`] is the same rule as a classifier.
//! - Over a circuit breaker, each attempt takes its own permit: in half-open, every
//!   attempt of a request can be a probe. Allow few probes (see the breaker's
//!   [module docs](super::breaker#retries-in-front-of-a-breaker) and its
//!   [`SERVICE_PRESET`](super::breaker::SERVICE_PRESET)).
//!
//! Cost per request: a request that succeeds at once costs the policy's construction
//! (constants, folded by the compiler when the closure is simple), a clone of the
//! request and of the service, and one addition to the service's request count; it reads
//! no clock and draws nothing. Its stream's seed is worked out, and the clock read, only
//! when an attempt fails. Per retry: a clone of the request and a tokio timer (boxed, so
//! that the response future stays small for the requests that never sleep).

mod budget;
mod future;
mod layer;
mod service;

pub use budget::SharedBudget;
pub use future::ResponseFuture;
pub(crate) use layer::Streams;
pub use layer::{NoHint, RefusalsArePermanent, RetryHint, RetryLayer};
pub use service::RetryService;
