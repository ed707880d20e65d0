use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use stanchion::fallback::FallbackOn;
use stanchion::pipeline::Layer;

use crate::tower::{BoxError, refusal};

pin_project! {
    /// The response future of [`FallbackService`](super::FallbackService).
    pub struct ResponseFuture<F, G> {
        #[pin]
        future: F,
        when: FallbackOn,
        fallback: G,
    }
}

impl<F, G> ResponseFuture<F, G> {
    pub(super) fn new(future: F, when: FallbackOn, fallback: G) -> Self {
        ResponseFuture {
            future,
            when,
            fallback,
        }
    }
}

impl<F, G, T> Future for ResponseFuture<F, G>
where
    F: Future<Output = Result<T, BoxError>>,
    G: Fn(BoxError) -> T,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.future.poll(cx)) {
            Err(error) if this.when.covers_layer(layer_of(&error)) => Ok((this.fallback)(error)),
            result => result,
        })
    }
}

/// The layer a failure counts as: the refusing layer, or [`Layer::Retry`] for the
/// service's own error and for an attempt's timeout.
fn layer_of(error: &BoxError) -> Layer {
    match refusal(&**error) {
        Some(refused) if refused.layer != Layer::AttemptTimeout => refused.layer,
        _ => Layer::Retry,
    }
}
