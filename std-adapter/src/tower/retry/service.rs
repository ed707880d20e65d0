use std::task::{Context, Poll};

use stanchion::Clock;
use stanchion::retry::{Backoff, Classify, RetryBudget, RetryPolicy};
use tower_service::Service;

use super::layer::Streams;
use super::{ResponseFuture, RetryHint};

/// Retries requests as a per-request core policy says; see
/// [`RetryLayer`](super::RetryLayer).
#[derive(Clone, Debug)]
pub struct RetryService<S, P, H, C> {
    inner: S,
    make_policy: P,
    hint: H,
    clock: C,
    streams: Streams,
    retry_refusals: bool,
}

impl<S, P, H, C> RetryService<S, P, H, C> {
    pub(super) fn new(
        inner: S,
        make_policy: P,
        hint: H,
        clock: C,
        streams: Streams,
        retry_refusals: bool,
    ) -> Self {
        RetryService {
            inner,
            make_policy,
            hint,
            clock,
            streams,
            retry_refusals,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, P, B, K, R, H, C, Req> Service<Req> for RetryService<S, P, H, C>
where
    S: Service<Req> + Clone,
    S::Error: 'static,
    Req: Clone,
    P: Fn(&C) -> RetryPolicy<B, K, R>,
    B: Backoff,
    K: Classify<Result<S::Response, S::Error>>,
    R: RetryBudget,
    H: RetryHint<S::Response, S::Error> + Clone,
    C: Clock + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, Req, RetryPolicy<B, K, R>, H, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let mut policy = (self.make_policy)(&self.clock);
        if let Some(seed) = self.streams.next_seed() {
            policy.rng_mut().seed(seed);
        }
        // The ready service makes the first attempt and, made ready again, the retries.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let future = service.call(request.clone());
        ResponseFuture::new(
            future,
            service,
            request,
            policy,
            self.hint.clone(),
            self.clock.clone(),
            self.retry_refusals,
        )
    }
}
