use std::sync::Arc;
use std::task::{Context, Poll};

use stanchion::Clock;
use tower_service::Service;

use super::{ResponseFuture, SharedBreaker};
use crate::ClassifyOutcome;
use crate::tower::BoxError;

/// Runs a request only with a permit of the shared breaker, and records its outcome; see
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer). Clones share the breaker.
#[derive(Debug)]
pub struct CircuitBreakerService<S, CB, K, C> {
    inner: S,
    breaker: Arc<CB>,
    classifier: K,
    clock: C,
}

impl<S, CB, K, C> CircuitBreakerService<S, CB, K, C> {
    pub(super) fn new(inner: S, breaker: Arc<CB>, classifier: K, clock: C) -> Self {
        CircuitBreakerService {
            inner,
            breaker,
            classifier,
            clock,
        }
    }

    /// The breaker, shared with every clone.
    pub fn breaker(&self) -> &Arc<CB> {
        &self.breaker
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, CB, K: Clone, C: Clone> Clone for CircuitBreakerService<S, CB, K, C> {
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            breaker: Arc::clone(&self.breaker),
            classifier: self.classifier.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<S, CB, K, C, Req> Service<Req> for CircuitBreakerService<S, CB, K, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    CB: SharedBreaker,
    K: ClassifyOutcome<Result<S::Response, S::Error>> + Clone,
    C: Clock + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, CB, K, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match CB::acquire_owned_at(Arc::clone(&self.breaker), self.clock.now()) {
            Ok(permit) => ResponseFuture::called(
                self.inner.call(request),
                permit,
                self.classifier.clone(),
                self.clock.clone(),
            ),
            Err(rejected) => ResponseFuture::refused(rejected),
        }
    }
}
