use std::sync::Arc;
use std::task::{Context, Poll};

use stanchion::hedge::DEFAULT_BUCKETS;
use stanchion::retry::RetryBudget;
use tower_service::Service;

use super::{NewAttempt, ResponseFuture};
use crate::hedge::{Hedged, Hedging};
use crate::tower::BoxError;

/// Hedges each request over clones of the inner service; see
/// [`HedgeLayer`](super::HedgeLayer). Clones share the hedging.
#[derive(Debug)]
pub struct HedgeService<S, Bu, const B: usize = DEFAULT_BUCKETS> {
    inner: S,
    hedging: Arc<Hedging<Bu, B>>,
}

impl<S, Bu, const B: usize> HedgeService<S, Bu, B> {
    pub(super) fn new(inner: S, hedging: Arc<Hedging<Bu, B>>) -> Self {
        HedgeService { inner, hedging }
    }

    /// The hedging, shared with every clone.
    pub fn hedging(&self) -> &Arc<Hedging<Bu, B>> {
        &self.hedging
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, Bu, const B: usize> Clone for HedgeService<S, Bu, B> {
    fn clone(&self) -> Self {
        HedgeService {
            inner: self.inner.clone(),
            hedging: Arc::clone(&self.hedging),
        }
    }
}

fn is_ok<R>(result: &Result<R, BoxError>) -> bool {
    result.is_ok()
}

impl<S, Req, Bu, const B: usize> Service<Req> for HedgeService<S, Bu, B>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
    Bu: RetryBudget,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, Bu, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The first attempt takes the service `poll_ready` readied (tower's usual swap);
        // hedges call clones, each readied in its own future.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let attempts = NewAttempt::new(ready, self.inner.clone(), request);
        Hedged::new(Arc::clone(&self.hedging), attempts, is_ok::<S::Response>)
    }
}
