use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use stanchion::pipeline::Layer;
use tokio::time::{Instant, Sleep};

use super::Elapsed;
use crate::tower::BoxError;

pin_project! {
    /// The response future of [`TimeoutService`](super::TimeoutService): the inner future
    /// raced against a tokio timer.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        // Made the first time the inner future is pending: a call that answers at once
        // takes no timer (a tokio `Sleep` clones the runtime's handle and, polled,
        // takes the timer driver's lock).
        #[pin]
        sleep: Option<Sleep>,
        // When the timer fires: `after` from the call.
        deadline: Instant,
        after: Duration,
        layer: Layer,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(future: F, after: Duration, layer: Layer) -> Self {
        ResponseFuture {
            future,
            sleep: None,
            // tokio saturates an instant past its far future when it makes the timer.
            deadline: Instant::now().checked_add(after).unwrap_or_else(far_future),
            after,
            layer,
        }
    }
}

/// About 30 years from now, as tokio's own far future.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The inner future first: an answer that is ready when the timer fires wins.
        if let Poll::Ready(result) = this.future.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        let mut sleep = this.sleep;
        if sleep.is_none() {
            sleep.set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        let Some(sleep) = sleep.as_pin_mut() else {
            return Poll::Pending; // set just above
        };
        match sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Box::new(Elapsed {
                after: *this.after,
                layer: *this.layer,
            }))),
            Poll::Pending => Poll::Pending,
        }
    }
}
