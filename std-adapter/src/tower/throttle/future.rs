use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use stanchion::Clock;
use stanchion::breaker::Outcome;
use stanchion::throttle::Throttled;

use super::{SharedThrottle, ThrottleRejected};
use crate::ClassifyOutcome;
use crate::tower::BoxError;

pin_project! {
    #[project = StateProj]
    enum State<F, A, K, C> {
        Refused { throttled: Throttled },
        Called {
            #[pin] future: F,
            throttle: Arc<A>,
            classifier: K,
            clock: C,
        },
    }
}

pin_project! {
    /// The response future of [`ThrottleService`](super::ThrottleService): it records
    /// whether the backend accepted the request when the inner future completes.
    /// Dropped earlier, it records no accept.
    pub struct ResponseFuture<F, A, K, C> {
        #[pin]
        state: State<F, A, K, C>,
    }
}

impl<F, A, K, C> ResponseFuture<F, A, K, C> {
    pub(super) fn called(future: F, throttle: Arc<A>, classifier: K, clock: C) -> Self {
        ResponseFuture {
            state: State::Called {
                future,
                throttle,
                classifier,
                clock,
            },
        }
    }

    pub(super) fn refused(throttled: Throttled) -> Self {
        ResponseFuture {
            state: State::Refused { throttled },
        }
    }
}

impl<F, T, E, A, K, C> Future for ResponseFuture<F, A, K, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    A: SharedThrottle,
    K: ClassifyOutcome<Result<T, E>>,
    C: Clock,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { throttled } => Poll::Ready(Err(Box::new(ThrottleRejected {
                throttled: *throttled,
            }))),
            StateProj::Called {
                future,
                throttle,
                classifier,
                clock,
            } => {
                let result = ready!(future.poll(cx));
                let accepted = classifier.classify(&result) != Outcome::Failure;
                throttle.record_at(clock.now(), accepted);
                Poll::Ready(result.map_err(Into::into))
            }
        }
    }
}
