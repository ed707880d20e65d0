use std::task::{Context, Poll};

use stanchion::Clock;
use stanchion::retry::{Backoff, Classify, HintBound, RetryBudget, RetryPolicy};
use tower_service::Service;

use super::layer::Streams;
use super::{ResponseFuture, RetryHint};

/// Retries requests as a per-request core policy says; see
/// [`RetryLayer`](super::RetryLayer).
///
/// A clone numbers its requests from a block of its own (one atomic addition per clone,
/// none per request), so that every request gets a random stream of its own.
#[derive(Debug)]
pub struct RetryService<S, P, H, C> {
    inner: S,
    make_policy: P,
    hint: H,
    clock: C,
    streams: Streams,
    /// The number of this service's next request (see [`Streams::block`]).
    next_request: u64,
    retry_refusals: bool,
}

impl<S: Clone, P: Clone, H: Clone, C: Clone> Clone for RetryService<S, P, H, C> {
    fn clone(&self) -> Self {
        RetryService {
            inner: self.inner.clone(),
            make_policy: self.make_policy.clone(),
            hint: self.hint.clone(),
            clock: self.clock.clone(),
            next_request: self.streams.block(),
            streams: self.streams.clone(),
            retry_refusals: self.retry_refusals,
        }
    }
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
            next_request: streams.block(),
            streams,
            retry_refusals,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, P, B, K, R, M, H, C, Req> Service<Req> for RetryService<S, P, H, C>
where
    S: Service<Req> + Clone,
    S::Error: 'static,
    Req: Clone,
    P: Fn(&C) -> RetryPolicy<B, K, R, M>,
    B: Backoff,
    K: Classify<Result<S::Response, S::Error>>,
    R: RetryBudget,
    M: HintBound,
    H: RetryHint<S::Response, S::Error> + Clone,
    C: Clock + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, Req, RetryPolicy<B, K, R, M>, H, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let policy = (self.make_policy)(&self.clock);
        // The stream's seed is worked out only if the first attempt fails: a request that
        // succeeds at once draws no jitter.
        let number = self.next_request;
        self.next_request = number.wrapping_add(1);
        // The ready service makes the first attempt and, made ready again, the retries.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let future = service.call(request.clone());
        ResponseFuture::new(
            future,
            service,
            request,
            policy,
            self.streams.stream_of(number),
            self.hint.clone(),
            self.clock.clone(),
            self.retry_refusals,
        )
    }
}
