use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::tower::BoxError;

pin_project! {
    #[project = StateProj]
    enum State<F, T, E> {
        Answered { answer: Option<Result<T, E>> },
        Delayed {
            #[pin] sleep: Sleep,
            #[pin] future: F,
        },
        Called { #[pin] future: F },
    }
}

pin_project! {
    /// The response future of [`FaultInjectionService`](super::FaultInjectionService):
    /// the injected answer, or the inner service's future (polled only once the injected
    /// latency, if any, has passed).
    pub struct ResponseFuture<F, T, E> {
        #[pin]
        state: State<F, T, E>,
    }
}

impl<F, T, E> ResponseFuture<F, T, E> {
    pub(super) fn called(future: F) -> Self {
        ResponseFuture {
            state: State::Called { future },
        }
    }

    pub(super) fn answered(answer: Result<T, E>) -> Self {
        ResponseFuture {
            state: State::Answered {
                answer: Some(answer),
            },
        }
    }

    pub(super) fn delayed(future: F, latency: Duration) -> Self {
        ResponseFuture {
            state: State::Delayed {
                // tokio saturates a sleep past its far future.
                sleep: tokio::time::sleep(latency),
                future,
            },
        }
    }
}

impl<F, R, SE, T, E> Future for ResponseFuture<F, T, E>
where
    F: Future<Output = Result<R, SE>>,
    SE: Into<BoxError>,
    T: Into<R>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Answered { answer } => Poll::Ready(match answer.take() {
                Some(Ok(outcome)) => Ok(outcome.into()),
                Some(Err(error)) => Err(error.into()),
                // Polled again after it completed: a misuse the `Future` contract
                // allows to answer anyhow, without a panic.
                None => Err("fault injection: response future polled after completion".into()),
            }),
            StateProj::Delayed { sleep, future } => {
                ready!(sleep.poll(cx));
                future.poll(cx).map_err(Into::into)
            }
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
        }
    }
}
