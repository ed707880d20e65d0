use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use stanchion::Clock;
use stanchion::retry::{Backoff, Classify, Decision, RetryBudget, RetryPolicy};
use tokio::time::Sleep;
use tower_service::Service;

use super::RetryHint;
use super::layer::is_permanent_stack_refusal;

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        Sleeping { #[pin] sleep: Sleep },
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
        hint: H,
        clock: C,
        retry_refusals: bool,
    }
}

impl<F, S, Req, P, H, C> ResponseFuture<F, S, Req, P, H, C> {
    pub(super) fn new(
        future: F,
        service: S,
        request: Req,
        policy: P,
        hint: H,
        clock: C,
        retry_refusals: bool,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            service,
            request,
            policy,
            hint,
            clock,
            retry_refusals,
        }
    }
}

impl<S, Req, B, K, R, H, C> Future for ResponseFuture<S::Future, S, Req, RetryPolicy<B, K, R>, H, C>
where
    S: Service<Req>,
    S::Error: 'static,
    Req: Clone,
    B: Backoff,
    K: Classify<Result<S::Response, S::Error>>,
    R: RetryBudget,
    H: RetryHint<S::Response, S::Error>,
    C: Clock,
{
    type Output = Result<S::Response, S::Error>;

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
                    let hint = this.hint.retry_after(&result);
                    // The clock-bound form reads the clock only when the decision needs it (not on a
                    // success with a budget that ignores time).
                    match this.policy.on_outcome(&*this.clock, &result, hint) {
                        Decision::Retry { after, .. } if after.is_zero() => {
                            this.state.set(State::Readying);
                        }
                        Decision::Retry { after, .. } => {
                            let sleep = tokio::time::sleep(after);
                            this.state.set(State::Sleeping { sleep });
                        }
                        Decision::Done | Decision::GiveUp { .. } => return Poll::Ready(result),
                    }
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
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
