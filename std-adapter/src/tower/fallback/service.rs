use std::task::{Context, Poll};

use stanchion::fallback::FallbackOn;
use tower_service::Service;

use super::ResponseFuture;
use crate::tower::BoxError;

/// The service of [`FallbackLayer`](super::FallbackLayer).
#[derive(Clone, Copy, Debug)]
pub struct FallbackService<S, G> {
    inner: S,
    when: FallbackOn,
    fallback: G,
}

impl<S, G> FallbackService<S, G> {
    pub(super) fn new(inner: S, when: FallbackOn, fallback: G) -> Self {
        FallbackService {
            inner,
            when,
            fallback,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, G, Req> Service<Req> for FallbackService<S, G>
where
    S: Service<Req, Error = BoxError>,
    G: Fn(BoxError) -> S::Response + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, G>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(request), self.when, self.fallback.clone())
    }
}
