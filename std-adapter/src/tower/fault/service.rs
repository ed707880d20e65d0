use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::ResponseFuture;
use crate::fault::FaultInjection;
use crate::tower::BoxError;

/// Answers, delays or passes on each request as the shared injection decides; see
/// [`FaultInjectionLayer`](super::FaultInjectionLayer). Clones share the injection.
#[derive(Debug)]
pub struct FaultInjectionService<S, T, E> {
    inner: S,
    faults: Arc<FaultInjection<T, E>>,
}

impl<S, T, E> FaultInjectionService<S, T, E> {
    pub(super) fn new(inner: S, faults: Arc<FaultInjection<T, E>>) -> Self {
        FaultInjectionService { inner, faults }
    }

    /// The injection, shared with every clone.
    pub fn faults(&self) -> &Arc<FaultInjection<T, E>> {
        &self.faults
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, T, E> Clone for FaultInjectionService<S, T, E> {
    fn clone(&self) -> Self {
        FaultInjectionService {
            inner: self.inner.clone(),
            faults: Arc::clone(&self.faults),
        }
    }
}

impl<S, T, E, Req> Service<Req> for FaultInjectionService<S, T, E>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: Clone + Into<S::Response>,
    E: Clone + Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, T, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.faults.decide() {
            None => ResponseFuture::called(self.inner.call(request)),
            Some(fault) => match fault.answer() {
                Some(answer) => ResponseFuture::answered(answer),
                // No timer for no latency.
                None => match fault.wait() {
                    None => ResponseFuture::called(self.inner.call(request)),
                    Some(wait) => ResponseFuture::delayed(self.inner.call(request), wait),
                },
            },
        }
    }
}
