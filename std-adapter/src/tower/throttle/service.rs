use std::sync::Arc;
use std::task::{Context, Poll};

use stanchion::Clock;
use tower_service::Service;

use super::{ResponseFuture, SharedThrottle};
use crate::ClassifyOutcome;
use crate::tower::BoxError;
use crate::tower::retry::Streams;

/// Sends a request only if the shared throttle allows it, and records whether the
/// backend accepted it; see [`ThrottleLayer`](super::ThrottleLayer). Clones share the
/// throttle and the request count that seeds each draw.
#[derive(Debug)]
pub struct ThrottleService<S, T, K, C> {
    inner: S,
    throttle: Arc<T>,
    classifier: K,
    clock: C,
    streams: Streams,
}

impl<S, T, K, C> ThrottleService<S, T, K, C> {
    pub(super) fn new(
        inner: S,
        throttle: Arc<T>,
        classifier: K,
        clock: C,
        streams: Streams,
    ) -> Self {
        ThrottleService {
            inner,
            throttle,
            classifier,
            clock,
            streams,
        }
    }

    /// The throttle, shared with every clone.
    pub fn throttle(&self) -> &Arc<T> {
        &self.throttle
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, T, K: Clone, C: Clone> Clone for ThrottleService<S, T, K, C> {
    fn clone(&self) -> Self {
        ThrottleService {
            inner: self.inner.clone(),
            throttle: Arc::clone(&self.throttle),
            classifier: self.classifier.clone(),
            clock: self.clock.clone(),
            streams: self.streams.clone(),
        }
    }
}

impl<S, T, K, C, Req> Service<Req> for ThrottleService<S, T, K, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: SharedThrottle,
    K: ClassifyOutcome<Result<S::Response, S::Error>> + Clone,
    C: Clock + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, T, K, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let mut rng = fastrand::Rng::with_seed(self.streams.next_seed().unwrap_or(0));
        match self.throttle.allow_at(self.clock.now(), &mut rng) {
            Ok(()) => ResponseFuture::called(
                self.inner.call(request),
                Arc::clone(&self.throttle),
                self.classifier.clone(),
                self.clock.clone(),
            ),
            Err(throttled) => ResponseFuture::refused(throttled),
        }
    }
}
