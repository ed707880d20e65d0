use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use stanchion::Clock;
use stanchion::breaker::{Permit, Rejected};

use super::{CircuitOpen, SharedBreaker};
use crate::ClassifyOutcome;
use crate::tower::BoxError;

pin_project! {
    #[project = StateProj]
    enum State<F, CB: SharedBreaker, K, C> {
        Refused { rejected: Option<Rejected> },
        Called {
            #[pin] future: F,
            permit: Option<Permit<Arc<CB>>>,
            classifier: K,
            clock: C,
        },
    }
}

pin_project! {
    /// The response future of [`CircuitBreakerService`](super::CircuitBreakerService): it
    /// holds the permit, and records the outcome when the inner future completes. Dropped
    /// earlier, it records nothing.
    pub struct ResponseFuture<F, CB: SharedBreaker, K, C> {
        #[pin]
        state: State<F, CB, K, C>,
    }
}

impl<F, CB: SharedBreaker, K, C> ResponseFuture<F, CB, K, C> {
    pub(super) fn called(future: F, permit: Permit<Arc<CB>>, classifier: K, clock: C) -> Self {
        ResponseFuture {
            state: State::Called {
                future,
                permit: Some(permit),
                classifier,
                clock,
            },
        }
    }

    pub(super) fn refused(rejected: Rejected) -> Self {
        ResponseFuture {
            state: State::Refused {
                rejected: Some(rejected),
            },
        }
    }
}

impl<F, T, E, CB, K, C> Future for ResponseFuture<F, CB, K, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    CB: SharedBreaker,
    K: ClassifyOutcome<Result<T, E>>,
    C: Clock,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { rejected } => {
                let rejected = rejected.take().expect("future polled after completion");
                Poll::Ready(Err(Box::new(CircuitOpen { rejected })))
            }
            StateProj::Called {
                future,
                permit,
                classifier,
                clock,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record_at(classifier.classify(&result), clock.now());
                }
                Poll::Ready(result.map_err(Into::into))
            }
        }
    }
}
