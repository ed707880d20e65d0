//! Rate limiting as a tower layer: [`RateLimitLayer`] over any
//! [`AsyncRateLimiter`](crate::AsyncRateLimiter) (one quota for all requests), and
//! [`KeyedRateLimitLayer`] over any [`AsyncKeyedRateLimiter`](crate::AsyncKeyedRateLimiter)
//! (one quota per key, the key taken from the request).
//!
//! A request takes its permits in `call`. An in-process limiter answers at once
//! ([`AsyncRateLimiter::admit_now`](crate::AsyncRateLimiter::admit_now)): no allocation,
//! and a refused request never reaches the inner service. A remote limiter (Redis) is
//! awaited in the response future, which then calls the inner service; that path boxes
//! the limiter's future and needs the inner service to be `Clone` (it takes the service
//! that was made ready and leaves a clone in its place, as tower's own middleware does).
//!
//! A refusal is a [`RateLimited`] error carrying the core [`RateLimitError`] and the
//! [`RateLimitPolicy`] (quota and window) for the HTTP fields. What happens to a granted
//! response is the layer's [`OnAdmission`]: nothing ([`SilentAdmission`], the default), or
//! with feature `http`, `http::RateLimitHeaders` adds the
//! `RateLimit` and `RateLimit-Policy` fields.
//!
//! With feature `http`, `TieredRateLimitLayer` is the keyed layer for an HTTP server:
//! a quota per tier of clients (each tier with its own limiter), and its refusals
//! answered as 429 responses by the layer itself, so that it needs no error handler.
//!
//! [`RateLimitError`]: stanchion::rate::RateLimitError

mod error;
mod future;
mod layer;
mod service;
#[cfg(feature = "http")]
mod tiered;

pub use error::RateLimited;
pub use future::ResponseFuture;
pub use layer::{
    KeyedRateLimitLayer, OnAdmission, RateLimitLayer, RateLimitPolicy, SilentAdmission,
};
pub use service::{KeyedRateLimitService, RateLimitService};
#[cfg(feature = "http")]
pub use tiered::{
    Charge, MAX_TIER_NAME, MAX_TIERS, NoHooks, OnRefusal, RateLimitHooks, TierId, TierRefusal,
    TieredRateLimitLayer, TieredRateLimitService, TieredResponseFuture, Tiers,
};
