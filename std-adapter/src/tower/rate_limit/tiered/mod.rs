//! A keyed rate limit that answers its refusals itself, as HTTP responses, with a quota
//! per tier of clients (feature `http`): [`TieredRateLimitLayer`].

mod future;
mod layer;
mod service;

use std::fmt;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use stanchion::ConfigError;

use super::{RateLimitPolicy, RateLimited};
use crate::Admission;
use crate::http::{refusal_message, too_many_requests};

pub use future::TieredResponseFuture;
pub use layer::TieredRateLimitLayer;
pub use service::TieredRateLimitService;

/// The most tiers one [`Tiers`] holds.
pub const MAX_TIERS: usize = 1 << 16;

/// The longest tier (policy) name, in bytes.
pub const MAX_TIER_NAME: usize = 256;

/// One tier of a [`Tiers`]: the handle [`Tiers::tier`] returns, which the layer's key
/// function gives back with each request's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TierId(u32);

impl TierId {
    /// The tier's position in its [`Tiers`], from 0 in the order they were added.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// The tiers of a [`TieredRateLimitLayer`]: for each, its policy (its name, quota and
/// window, which the `RateLimit` fields report) and its own keyed limiter, whose table
/// holds that tier's keys and enforces that tier's quota.
///
/// Each tier is checked as it is added ([`tier`](Self::tier)); the layer checks that
/// there is at least one. Clones share the limiters.
pub struct Tiers<L> {
    tiers: Vec<Tier<L>>,
}

/// One tier: its policy and its limiter.
pub(crate) struct Tier<L> {
    pub(crate) policy: RateLimitPolicy,
    pub(crate) limiter: Arc<L>,
}

impl<L> Tiers<L> {
    /// No tiers yet.
    pub const fn new() -> Self {
        Tiers { tiers: Vec::new() }
    }

    /// Adds a tier whose keys are limited by `limiter` and described by `policy`, and
    /// returns its handle. A policy without a quota reports the limiter's burst
    /// ([`max_acquire`](crate::AsyncKeyedRateLimiter::max_acquire), asked on each
    /// request; giving the quota saves that call).
    ///
    /// # Errors
    ///
    /// - `policy.name`: 1 to 256 visible ASCII characters or spaces (the name goes into
    ///   the `RateLimit` fields as it is), and unique among the tiers (a client could not
    ///   tell two policies of one name apart);
    /// - `policy.quota`: at least 1, when given;
    /// - `policy.window`: not zero, when given;
    /// - `tiers`: at most 65536.
    pub fn tier(
        &mut self,
        policy: RateLimitPolicy,
        limiter: Arc<L>,
    ) -> Result<TierId, ConfigError> {
        let name = policy.name;
        if name.is_empty()
            || name.len() > MAX_TIER_NAME
            || !name.bytes().all(|b| (b' '..=b'~').contains(&b))
        {
            return Err(ConfigError::new(
                "policy.name",
                "1 to 256 visible ASCII characters or spaces",
            ));
        }
        if self.tiers.iter().any(|t| t.policy.name == name) {
            return Err(ConfigError::new("policy.name", "unique among the tiers"));
        }
        if policy.quota == Some(0) {
            return Err(ConfigError::new("policy.quota", "at least 1"));
        }
        if policy.window.is_some_and(|w| w.is_zero()) {
            return Err(ConfigError::new("policy.window", "not zero"));
        }
        let id = match u32::try_from(self.tiers.len()) {
            Ok(id) if (id as usize) < MAX_TIERS => TierId(id),
            _ => return Err(ConfigError::new("tiers", "at most 65536")),
        };
        self.tiers.push(Tier { policy, limiter });
        Ok(id)
    }

    /// The number of tiers.
    pub fn len(&self) -> usize {
        self.tiers.len()
    }

    /// Whether there is no tier yet.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// The policy of tier `id`, as it was given; `None` for a handle of other tiers.
    pub fn policy(&self, id: TierId) -> Option<&RateLimitPolicy> {
        self.tiers.get(id.index()).map(|t| &t.policy)
    }

    /// The limiter of tier `id`; `None` for a handle of other tiers.
    pub fn limiter(&self, id: TierId) -> Option<&Arc<L>> {
        self.tiers.get(id.index()).map(|t| &t.limiter)
    }
}

impl<L> Default for Tiers<L> {
    fn default() -> Self {
        Tiers::new()
    }
}

impl<L> Clone for Tiers<L> {
    fn clone(&self) -> Self {
        Tiers {
            tiers: self
                .tiers
                .iter()
                .map(|t| Tier {
                    policy: t.policy,
                    limiter: Arc::clone(&t.limiter),
                })
                .collect(),
        }
    }
}

impl<L> fmt::Debug for Tiers<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        TierPolicies(&self.tiers).fmt(f)
    }
}

/// Tiers as their policies, for `Debug` (a limiter need not be `Debug`).
struct TierPolicies<'a, L>(&'a [Tier<L>]);

impl<L> fmt::Debug for TierPolicies<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|t| &t.policy))
            .finish()
    }
}

/// What the key function of a [`TieredRateLimitLayer`] says of a request: whose quota
/// it takes, or the answer to send without limiting it or calling the inner service.
#[derive(Debug)]
pub enum Charge<K, B> {
    /// Take the request's permits from `key`'s quota in this tier.
    To(TierId, K),
    /// Answer the request with this response at once (a malformed key: 400).
    Answer(Response<B>),
}

/// A refusal of a [`TieredRateLimitLayer`], as its [`RateLimitHooks::refused`] sees it:
/// which tier and key, and the limiter's answer with the tier's policy.
#[derive(Debug)]
pub struct TierRefusal<'a, K> {
    /// The request's tier.
    pub tier: TierId,
    /// The request's key in that tier.
    pub key: &'a K,
    /// The limiter's answer (when to try again, or never) and the tier's policy (its
    /// quota resolved).
    pub refused: RateLimited,
}

/// What a [`TieredRateLimitLayer`] does besides deciding: see each decision (to count
/// it), and change the answer to a refusal (another body, another status for a refusal
/// that is not a spent quota). Both methods do nothing by default; [`NoHooks`] is that
/// default, and [`TieredRateLimitLayer::on_refusal`] takes a closure for the second.
pub trait RateLimitHooks<K, B> {
    /// `key` of tier `tier` was granted its permits, with `admission.remaining` left;
    /// called before the request goes on to the inner service.
    fn granted(&self, tier: TierId, key: &K, admission: Admission) {
        let _ = (tier, key, admission);
    }

    /// A request was refused: `answer` is the layer's response (429 Too Many Requests
    /// with `Retry-After`, `RateLimit` and `RateLimit-Policy`, and a one-line text body,
    /// [`refusal_message`](crate::http::refusal_message)); returns the response to send.
    fn refused(&self, refusal: &TierRefusal<'_, K>, answer: Response<B>) -> Response<B> {
        let _ = refusal;
        answer
    }
}

/// Hooks shared with the rest of a service (a metrics registry, a table to consult).
impl<K, B, H: RateLimitHooks<K, B> + ?Sized> RateLimitHooks<K, B> for Arc<H> {
    fn granted(&self, tier: TierId, key: &K, admission: Admission) {
        (**self).granted(tier, key, admission);
    }

    fn refused(&self, refusal: &TierRefusal<'_, K>, answer: Response<B>) -> Response<B> {
        (**self).refused(refusal, answer)
    }
}

/// Counts nothing and sends the layer's answers as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoHooks;

impl<K, B> RateLimitHooks<K, B> for NoHooks {}

/// [`RateLimitHooks`] with a closure for [`refused`](RateLimitHooks::refused): see
/// [`TieredRateLimitLayer::on_refusal`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OnRefusal<F>(pub F);

impl<K, B, F> RateLimitHooks<K, B> for OnRefusal<F>
where
    F: Fn(&TierRefusal<'_, K>, Response<B>) -> Response<B>,
{
    fn refused(&self, refusal: &TierRefusal<'_, K>, answer: Response<B>) -> Response<B> {
        (self.0)(refusal, answer)
    }
}

/// The layer's answer to a refusal, before the hooks: [`too_many_requests`] with
/// [`refusal_message`] as a `text/plain` body.
fn refused_answer<B: From<String>>(refused: &RateLimited) -> Response<B> {
    let message = refusal_message(refused).unwrap_or_default();
    with_text(too_many_requests::<()>(refused), message)
}

/// 500 Internal Server Error for a [`TierId`] of other tiers (a bug of the key function).
fn unknown_tier<B: From<String>>() -> Response<B> {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    with_text(response, "internal server error\n".to_owned())
}

fn with_text<B: From<String>>(response: Response<()>, message: String) -> Response<B> {
    let (mut parts, ()) = response.into_parts();
    parts.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Response::from_parts(parts, B::from(message))
}

/// The refusal of `key` of `tier`, answered: the layer's answer through the hook.
fn refuse<K, B, H>(hooks: &H, tier: TierId, key: &K, refused: RateLimited) -> Response<B>
where
    B: From<String>,
    H: RateLimitHooks<K, B>,
{
    let answer = refused_answer(&refused);
    hooks.refused(&TierRefusal { tier, key, refused }, answer)
}
