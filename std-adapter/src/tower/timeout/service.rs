use std::task::{Context, Poll};
use std::time::Duration;

use stanchion::pipeline::Layer;
use tower_service::Service;

use super::ResponseFuture;
use crate::tower::BoxError;

/// Fails a request that takes longer than its timeout; see
/// [`TimeoutLayer`](super::TimeoutLayer).
#[derive(Clone, Copy, Debug)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Duration,
    layer: Layer,
}

impl<S> TimeoutService<S> {
    pub(super) fn new(inner: S, timeout: Duration, layer: Layer) -> Self {
        TimeoutService {
            inner,
            timeout,
            layer,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req> Service<Req> for TimeoutService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let future = self.inner.call(request);
        ResponseFuture::new(future, self.timeout, self.layer)
    }
}
