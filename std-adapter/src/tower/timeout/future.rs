use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use stanchion::pipeline::Layer;
use tokio::time::Sleep;

use super::Elapsed;
use crate::tower::BoxError;

pin_project! {
    /// The response future of [`TimeoutService`](super::TimeoutService): the inner future
    /// raced against a tokio timer.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        #[pin]
        sleep: Sleep,
        after: Duration,
        layer: Layer,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(future: F, after: Duration, layer: Layer) -> Self {
        ResponseFuture {
            future,
            sleep: tokio::time::sleep(after),
            after,
            layer,
        }
    }
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
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Box::new(Elapsed {
                after: *this.after,
                layer: *this.layer,
            }))),
            Poll::Pending => Poll::Pending,
        }
    }
}
