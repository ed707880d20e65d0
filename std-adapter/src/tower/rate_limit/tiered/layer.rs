use std::sync::Arc;

use stanchion::ConfigError;
use tower_layer::Layer;

use super::{NoHooks, OnRefusal, Tier, TierPolicies, TieredRateLimitService, Tiers};

/// A keyed rate limit with a quota per tier of clients, that answers its refusals
/// itself: 429 Too Many Requests with `Retry-After`, `RateLimit` and `RateLimit-Policy`
/// and a one-line `text/plain` body, as [`http`](crate::http) builds them. Its service's
/// error type is the inner service's, so an axum `Router` takes it as it is, with no
/// `HandleErrorLayer` (feature `http`).
///
/// For each request the key function returns the request's tier (a [`TierId`] that
/// [`Tiers::tier`] returned) and its key in that tier: an API token in the tier "gold",
/// the client's address in the tier "anonymous". Each tier has its own limiter, so its
/// own quota and its own table of keys: a key spending its quota in one tier changes
/// nothing in another, even the same key. The key function returns
/// [`Charge::To(tier, key)`](super::Charge::To), or answers the request itself
/// ([`Charge::Answer`]: a malformed token gets a 400), unlimited.
///
/// Granted responses get `RateLimit` (the permits left) and `RateLimit-Policy` (their
/// tier's policy), as [`RateLimitHeaders`](crate::http::RateLimitHeaders) adds them.
/// [`RateLimitHooks`] see each decision (to count it) and may change a refusal's answer
/// (a JSON body; a 503 for a refusal that is not a spent quota, such as a table too full
/// to hold a new key); [`on_refusal`](Self::on_refusal) takes a closure for the latter.
///
/// All tiers have one limiter type `L`. Tiers of different kinds (an in-process table for
/// addresses, one bucket per customer, a Redis limiter) go behind one enum that
/// implements [`AsyncKeyedRateLimiter`](crate::AsyncKeyedRateLimiter), as the service
/// example's `ClientLimiter` does. An in-process limiter answers in `call`; a remote one
/// is awaited in the response future, which needs the inner service to be `Clone` (as
/// [`KeyedRateLimitLayer`](crate::tower::KeyedRateLimitLayer)).
///
/// # When to choose it
///
/// In front of HTTP routes, when clients get different quotas (by plan, by
/// authentication) or when the refusal should be answered where it happens.
/// [`KeyedRateLimitLayer`](crate::tower::KeyedRateLimitLayer) is the form for one quota
/// and for services that are not HTTP: it refuses with a
/// [`RateLimited`](crate::tower::RateLimited) error for the caller (or axum's
/// `HandleErrorLayer`) to answer.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, body::Body, extract::Request, http::StatusCode, routing::get};
/// use stanchion::rate::{FullTablePolicy, Quota, WithClock};
/// use stanchion_std::tower::{Charge, RateLimitPolicy, TieredRateLimitLayer, Tiers};
/// use stanchion_std::{ShardedKeyedLimiter, TokioClock};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Gold customers, by API token: 100 requests a minute each, in a table of 8 x 256.
/// // Everyone else, by the `x-client` field: 2 a minute each.
/// let table = |quota| -> Result<_, stanchion::ConfigError> {
///     let keys = ShardedKeyedLimiter::<256>::new(quota, FullTablePolicy::DenyNewKeys, 8)?;
///     Ok(Arc::new(WithClock::new(keys, TokioClock::new())))
/// };
/// let minute = std::time::Duration::from_secs(60);
/// let mut tiers = Tiers::new();
/// let gold = tiers.tier(
///     RateLimitPolicy::new("gold").quota(100).window(minute),
///     table(Quota::per_minute(100)?)?,
/// )?;
/// let anonymous = tiers.tier(
///     RateLimitPolicy::new("anonymous").quota(2).window(minute),
///     table(Quota::per_minute(2)?)?,
/// )?;
/// let tokens = ["gold-token-1", "gold-token-2"];
/// let key = move |request: &Request| {
///     let field = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
///     match field("authorization").and_then(|a| a.strip_prefix("Bearer ")) {
///         Some(token) if tokens.contains(&token) => Charge::To(gold, token.to_owned()),
///         Some(_) => Charge::Answer((StatusCode::UNAUTHORIZED, "unknown token\n").into_response()),
///         None => Charge::To(anonymous, field("x-client").unwrap_or("").to_owned()),
///     }
/// };
/// # use axum::response::IntoResponse;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello\n" }))
///     .layer(TieredRateLimitLayer::new(tiers, key)?);
///
/// let get = |field: &str, value: &str| {
///     let request = Request::builder().uri("/").header(field, value);
///     app.clone().oneshot(request.body(Body::empty()).unwrap())
/// };
/// for left in ["1", "0"] {
///     let ok = get("x-client", "ann").await?;
///     assert_eq!(ok.headers()["ratelimit"], format!("\"anonymous\";r={left}").as_str());
/// }
/// let refused = get("x-client", "ann").await?;
/// assert_eq!(refused.status(), 429);
/// assert_eq!(refused.headers()["retry-after"], "30");
/// assert_eq!(refused.headers()["ratelimit-policy"], "\"anonymous\";q=2;w=60");
/// // A gold customer has a quota of its own.
/// let ok = get("authorization", "Bearer gold-token-1").await?;
/// assert_eq!(ok.headers()["ratelimit"], "\"gold\";r=99");
/// assert_eq!(get("authorization", "Bearer forged").await?.status(), 401);
/// # Ok(())
/// # }
/// ```
///
/// # Cost
///
/// Per request: the key function, the tier's policy by index, and the limiter's decision
/// (for a [`ShardedKeyedLimiter`](crate::ShardedKeyedLimiter), two hashes and one shard's
/// lock), with no allocation for an in-process limiter; a remote one allocates its boxed
/// admission. A refusal builds its response (the fields and a short body).
///
/// [`TierId`]: super::TierId
/// [`Charge::Answer`]: super::Charge::Answer
/// [`Charge::To`]: super::Charge::To
/// [`RateLimitHooks`]: super::RateLimitHooks
pub struct TieredRateLimitLayer<L, F, H = NoHooks> {
    tiers: Arc<[Tier<L>]>,
    key: F,
    permits: u32,
    hooks: Arc<H>,
}

impl<L, F> TieredRateLimitLayer<L, F> {
    /// A layer over `tiers`, taking one permit per request from the tier and key that
    /// `key(&request)` returns ([`Charge::To`](super::Charge::To)), or answering the request with the
    /// response it returns instead ([`Charge::Answer`](super::Charge::Answer)).
    ///
    /// # Errors
    ///
    /// `tiers` empty.
    pub fn new(tiers: Tiers<L>, key: F) -> Result<Self, ConfigError> {
        if tiers.is_empty() {
            return Err(ConfigError::new("tiers", "at least one tier"));
        }
        Ok(TieredRateLimitLayer {
            tiers: tiers.tiers.into(),
            key,
            permits: 1,
            hooks: Arc::new(NoHooks),
        })
    }
}

impl<L, F, H> TieredRateLimitLayer<L, F, H> {
    /// The same layer taking `permits` permits per request (a cost; 0 always passes).
    pub fn permits(self, permits: u32) -> Self {
        TieredRateLimitLayer { permits, ..self }
    }

    /// The same layer with `hooks` (see [`RateLimitHooks`](super::RateLimitHooks)),
    /// shared by every clone.
    pub fn hooks<H2>(self, hooks: H2) -> TieredRateLimitLayer<L, F, H2> {
        TieredRateLimitLayer {
            tiers: self.tiers,
            key: self.key,
            permits: self.permits,
            hooks: Arc::new(hooks),
        }
    }

    /// The same layer passing each refusal and the layer's answer to `hook`, which
    /// returns the response to send: [`refused`](super::RateLimitHooks::refused) as a
    /// closure, `Fn(&TierRefusal<'_, K>, http::Response<B>) -> http::Response<B>`.
    pub fn on_refusal<G>(self, hook: G) -> TieredRateLimitLayer<L, F, OnRefusal<G>> {
        self.hooks(OnRefusal(hook))
    }
}

impl<L, F, H> std::fmt::Debug for TieredRateLimitLayer<L, F, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredRateLimitLayer")
            .field("tiers", &TierPolicies(&self.tiers))
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

impl<L, F: Clone, H> Clone for TieredRateLimitLayer<L, F, H> {
    fn clone(&self) -> Self {
        TieredRateLimitLayer {
            tiers: Arc::clone(&self.tiers),
            key: self.key.clone(),
            permits: self.permits,
            hooks: Arc::clone(&self.hooks),
        }
    }
}

impl<S, L, F: Clone, H> Layer<S> for TieredRateLimitLayer<L, F, H> {
    type Service = TieredRateLimitService<S, L, F, H>;

    fn layer(&self, inner: S) -> Self::Service {
        TieredRateLimitService::new(
            inner,
            Arc::clone(&self.tiers),
            self.key.clone(),
            self.permits,
            Arc::clone(&self.hooks),
        )
    }
}
