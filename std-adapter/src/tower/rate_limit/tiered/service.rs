use std::sync::Arc;
use std::task::{Context, Poll};

use http::Response;
use tower_service::Service;

use super::{
    Charge, RateLimitHooks, Tier, TierPolicies, TieredResponseFuture, refuse, unknown_tier,
};
use crate::AsyncKeyedRateLimiter;
use crate::tower::RateLimited;

/// Takes permits of the request's tier for its key, and answers refusals; see
/// [`TieredRateLimitLayer`](super::TieredRateLimitLayer). Clones share the tiers and the
/// hooks.
pub struct TieredRateLimitService<S, L, F, H> {
    inner: S,
    tiers: Arc<[Tier<L>]>,
    key: F,
    permits: u32,
    hooks: Arc<H>,
}

impl<S, L, F, H> TieredRateLimitService<S, L, F, H> {
    pub(super) fn new(
        inner: S,
        tiers: Arc<[Tier<L>]>,
        key: F,
        permits: u32,
        hooks: Arc<H>,
    ) -> Self {
        TieredRateLimitService {
            inner,
            tiers,
            key,
            permits,
            hooks,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: std::fmt::Debug, L, F, H> std::fmt::Debug for TieredRateLimitService<S, L, F, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredRateLimitService")
            .field("inner", &self.inner)
            .field("tiers", &TierPolicies(&self.tiers))
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, L, F: Clone, H> Clone for TieredRateLimitService<S, L, F, H> {
    fn clone(&self) -> Self {
        TieredRateLimitService {
            inner: self.inner.clone(),
            tiers: Arc::clone(&self.tiers),
            key: self.key.clone(),
            permits: self.permits,
            hooks: Arc::clone(&self.hooks),
        }
    }
}

impl<S, L, F, H, K, Req, B> Service<Req> for TieredRateLimitService<S, L, F, H>
where
    S: Service<Req, Response = Response<B>> + Clone,
    F: Fn(&Req) -> Charge<K, B>,
    K: Send + Sync + 'static,
    L: AsyncKeyedRateLimiter<K> + 'static,
    H: RateLimitHooks<K, B>,
    B: From<String>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = TieredResponseFuture<S::Future, S, Req, K, H, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let (tier, key) = match (self.key)(&request) {
            Charge::To(tier, key) => (tier, key),
            Charge::Answer(answer) => return TieredResponseFuture::answered(answer),
        };
        let Some(t) = self.tiers.get(tier.index()) else {
            return TieredResponseFuture::answered(unknown_tier());
        };
        let policy = match t.policy.quota {
            Some(_) => t.policy,
            None => t
                .policy
                .resolved(AsyncKeyedRateLimiter::<K>::max_acquire(&*t.limiter)),
        };
        match t.limiter.admit_now(&key, self.permits) {
            Some(Ok(admission)) => {
                self.hooks.granted(tier, &key, admission);
                TieredResponseFuture::calling(self.inner.call(request), admission, policy)
            }
            Some(Err(error)) => TieredResponseFuture::answered(refuse(
                &*self.hooks,
                tier,
                &key,
                RateLimited { error, policy },
            )),
            None => {
                let (limiter, n) = (Arc::clone(&t.limiter), self.permits);
                let admit = Box::pin(async move {
                    let decision = limiter.admit(&key, n).await;
                    (key, decision)
                });
                // The service that was made ready serves this request; a clone takes its
                // place for the next.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                TieredResponseFuture::admitting(
                    admit,
                    ready,
                    request,
                    tier,
                    policy,
                    Arc::clone(&self.hooks),
                )
            }
        }
    }
}
