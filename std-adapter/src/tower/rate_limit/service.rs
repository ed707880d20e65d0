use std::sync::Arc;
use std::task::{Context, Poll};

use stanchion::rate::RateLimitError;

use tower_service::Service;

use super::{OnAdmission, RateLimitPolicy, ResponseFuture};
use crate::tower::BoxError;
use crate::{Admission, AsyncKeyedRateLimiter, AsyncRateLimiter};

/// A grant whose admission nobody reads ([`OnAdmission::USES_ADMISSION`] is `false`).
fn unread_admission(
    decision: Option<Result<(), RateLimitError>>,
) -> Option<Result<Admission, RateLimitError>> {
    decision.map(|d| d.map(|()| Admission { remaining: 0 }))
}

/// Takes permits of a shared rate limiter for each request; see
/// [`RateLimitLayer`](super::RateLimitLayer). Clones share the limiter.
#[derive(Debug)]
pub struct RateLimitService<S, L, A> {
    inner: S,
    limiter: Arc<L>,
    permits: u32,
    policy: RateLimitPolicy,
    on_admission: A,
}

impl<S, L, A> RateLimitService<S, L, A> {
    pub(super) fn new(
        inner: S,
        limiter: Arc<L>,
        permits: u32,
        policy: RateLimitPolicy,
        on_admission: A,
    ) -> Self {
        RateLimitService {
            inner,
            limiter,
            permits,
            policy,
            on_admission,
        }
    }

    /// The limiter, shared with every clone.
    pub fn limiter(&self) -> &Arc<L> {
        &self.limiter
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, L, A: Clone> Clone for RateLimitService<S, L, A> {
    fn clone(&self) -> Self {
        RateLimitService {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
            permits: self.permits,
            policy: self.policy,
            on_admission: self.on_admission.clone(),
        }
    }
}

impl<S, L, A, Req> Service<Req> for RateLimitService<S, L, A>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    L: AsyncRateLimiter + 'static,
    A: OnAdmission<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, A>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let on_admission = self.on_admission.clone();
        let decision = if A::USES_ADMISSION {
            self.limiter.admit_now(self.permits)
        } else {
            unread_admission(self.limiter.acquire_now(self.permits))
        };
        match decision {
            Some(Ok(admission)) => ResponseFuture::calling(
                self.inner.call(request),
                admission,
                self.policy,
                on_admission,
            ),
            Some(Err(error)) => ResponseFuture::refused(error, self.policy, on_admission),
            None => {
                let (limiter, n) = (Arc::clone(&self.limiter), self.permits);
                let admit = Box::pin(async move { limiter.admit(n).await });
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::admitting(admit, ready, request, self.policy, on_admission)
            }
        }
    }
}

/// Takes permits of a shared keyed rate limiter for each request, under the request's
/// key; see [`KeyedRateLimitLayer`](super::KeyedRateLimitLayer). Clones share the
/// limiter.
#[derive(Debug)]
pub struct KeyedRateLimitService<S, L, F, A> {
    inner: S,
    limiter: Arc<L>,
    key: F,
    permits: u32,
    policy: RateLimitPolicy,
    on_admission: A,
}

impl<S, L, F, A> KeyedRateLimitService<S, L, F, A> {
    pub(super) fn new(
        inner: S,
        limiter: Arc<L>,
        key: F,
        permits: u32,
        policy: RateLimitPolicy,
        on_admission: A,
    ) -> Self {
        KeyedRateLimitService {
            inner,
            limiter,
            key,
            permits,
            policy,
            on_admission,
        }
    }

    /// The limiter, shared with every clone.
    pub fn limiter(&self) -> &Arc<L> {
        &self.limiter
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, L, F: Clone, A: Clone> Clone for KeyedRateLimitService<S, L, F, A> {
    fn clone(&self) -> Self {
        KeyedRateLimitService {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
            permits: self.permits,
            policy: self.policy,
            on_admission: self.on_admission.clone(),
        }
    }
}

impl<S, L, F, K, A, Req> Service<Req> for KeyedRateLimitService<S, L, F, A>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> K,
    K: Send + Sync + 'static,
    L: AsyncKeyedRateLimiter<K> + 'static,
    A: OnAdmission<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, A>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key)(&request);
        // Ask the limiter for its burst only when the policy gives no quota: for a sharded
        // table that is a lock of one shard, which every request would otherwise take.
        let policy = match self.policy.quota {
            Some(_) => self.policy,
            None => self
                .policy
                .resolved(AsyncKeyedRateLimiter::<K>::max_acquire(&*self.limiter)),
        };
        let on_admission = self.on_admission.clone();
        let decision = if A::USES_ADMISSION {
            self.limiter.admit_now(&key, self.permits)
        } else {
            unread_admission(self.limiter.acquire_now(&key, self.permits))
        };
        match decision {
            Some(Ok(admission)) => {
                ResponseFuture::calling(self.inner.call(request), admission, policy, on_admission)
            }
            Some(Err(error)) => ResponseFuture::refused(error, policy, on_admission),
            None => {
                let (limiter, n) = (Arc::clone(&self.limiter), self.permits);
                let admit = Box::pin(async move { limiter.admit(&key, n).await });
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::admitting(admit, ready, request, policy, on_admission)
            }
        }
    }
}
