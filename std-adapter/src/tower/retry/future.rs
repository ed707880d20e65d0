use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use stanchion::retry::{Backoff, Classify, Decision, HintBound, RetryBudget, RetryPolicy, Verdict};
use stanchion::{Clock, Instant};
use tokio::time::Sleep;
use tower_service::Service;

use super::RetryHint;
use super::layer::{StreamOf, is_permanent_stack_refusal};

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        // Boxed: a tokio `Sleep` is about 100 bytes, which every request's future would
        // carry (and move) even when its first attempt succeeds.
        Sleeping { sleep: Pin<Box<Sleep>> },
        Readying,
    }
}

pin_project! {
    /// The response future of [`RetryService`](super::RetryService): attempts, and the
    /// sleeps between them, until the policy is done or gives up.
    pub struct ResponseFuture<F, S, Req, P, H, C> {
        #[pin]
        state: State<F>,
        service: S,
        request: Req,
        policy: P,
        // This request's random stream, until the first outcome is told to the policy
        // (`None` after, or to keep the policy's own).
        stream: Option<StreamOf>,
        hint: H,
        clock: C,
        retry_refusals: bool,
    }
}

impl<F, S, Req, P, H, C> ResponseFuture<F, S, Req, P, H, C> {
    // One argument per field: the service hands over what the future owns.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        future: F,
        service: S,
        request: Req,
        policy: P,
        stream: Option<StreamOf>,
        hint: H,
        clock: C,
        retry_refusals: bool,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            service,
            request,
            policy,
            stream,
            hint,
            clock,
            retry_refusals,
        }
    }
}

impl<S, Req, B, K, R, M, H, C> Future
    for ResponseFuture<S::Future, S, Req, RetryPolicy<B, K, R, M>, H, C>
where
    S: Service<Req>,
    S::Error: 'static,
    Req: Clone,
    B: Backoff,
    K: Classify<Result<S::Response, S::Error>>,
    R: RetryBudget,
    M: HintBound,
    H: RetryHint<S::Response, S::Error>,
    C: Clock,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    if let Err(e) = &result {
                        if !*this.retry_refusals && is_permanent_stack_refusal(e) {
                            // Stanchion's own refusal below: not worth a retry.
                            return Poll::Ready(result);
                        }
                    }
                    let verdict = this.policy.classify(&result);
                    if verdict == Verdict::Success {
                        // The common case, kept small enough to inline: the clock is read
                        // only for a budget that counts successes in time.
                        let now = if R::USES_TIME {
                            this.clock.now()
                        } else {
                            Instant::ZERO
                        };
                        this.policy.on_success_at(now);
                        return Poll::Ready(result);
                    }
                    let next = after_failure(
                        this.policy,
                        this.stream,
                        &*this.hint,
                        &*this.clock,
                        &result,
                        verdict,
                    );
                    match next {
                        Some(state) => this.state.set(state),
                        None => return Poll::Ready(result),
                    }
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    ready!(this.service.poll_ready(cx))?;
                    let future = this.service.call(this.request.clone());
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

/// What follows an attempt that did not succeed: the state to go on in, or `None` to
/// return its outcome (the policy is done or gives up). Out of line: `poll` keeps only
/// the success path, which every request takes.
#[inline(never)]
fn after_failure<F, T, E, B, K, R, M, H, C>(
    policy: &mut RetryPolicy<B, K, R, M>,
    stream: &mut Option<StreamOf>,
    hint: &H,
    clock: &C,
    result: &Result<T, E>,
    verdict: Verdict,
) -> Option<State<F>>
where
    B: Backoff,
    R: RetryBudget,
    M: HintBound,
    H: RetryHint<T, E>,
    C: Clock,
{
    // Before the policy's first draw: the request's own stream.
    if let Some(stream) = stream.take() {
        policy.rng_mut().seed(stream.seed());
    }
    match policy.on_verdict_at(clock.now(), verdict, hint.retry_after(result)) {
        Decision::Retry { after, .. } if after.is_zero() => Some(State::Readying),
        Decision::Retry { after, .. } => Some(State::Sleeping {
            sleep: Box::pin(tokio::time::sleep(after)),
        }),
        Decision::Done | Decision::GiveUp { .. } => None,
    }
}
