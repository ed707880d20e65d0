use std::sync::Arc;
use std::task::{Context, Poll};

use stanchion::bulkhead::{Bulkhead, BulkheadListener};
use tower_service::Service;

use super::ResponseFuture;
use crate::tower::BoxError;

/// Runs a request only while the shared bulkhead has a free slot; see
/// [`BulkheadLayer`](super::BulkheadLayer). Clones share the bulkhead.
#[derive(Debug)]
pub struct BulkheadService<S, L: BulkheadListener> {
    inner: S,
    bulkhead: Arc<Bulkhead<L>>,
}

impl<S, L: BulkheadListener> BulkheadService<S, L> {
    pub(super) fn new(inner: S, bulkhead: Arc<Bulkhead<L>>) -> Self {
        BulkheadService { inner, bulkhead }
    }

    /// The bulkhead, shared with every clone.
    pub fn bulkhead(&self) -> &Arc<Bulkhead<L>> {
        &self.bulkhead
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, L: BulkheadListener> Clone for BulkheadService<S, L> {
    fn clone(&self) -> Self {
        BulkheadService {
            inner: self.inner.clone(),
            bulkhead: Arc::clone(&self.bulkhead),
        }
    }
}

impl<S, L, Req> Service<Req> for BulkheadService<S, L>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    L: BulkheadListener,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, L>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match Bulkhead::try_acquire_owned(Arc::clone(&self.bulkhead)) {
            Ok(permit) => ResponseFuture::called(self.inner.call(request), permit),
            Err(full) => ResponseFuture::refused(full),
        }
    }
}
