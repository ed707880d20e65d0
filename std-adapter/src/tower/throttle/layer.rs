use std::sync::Arc;

use stanchion::Instant;
use stanchion::throttle::{AdaptiveThrottle, Throttled};
use tower_layer::Layer;

use super::ThrottleService;
use crate::tower::retry::Streams;
use crate::{ErrorsAreFailures, TokioClock};

/// An adaptive throttle that a tower service can share through an `Arc`: every core
/// [`AdaptiveThrottle`], whatever its bucket count.
pub trait SharedThrottle: Send + Sync + 'static {
    /// [`AdaptiveThrottle::allow_at`].
    fn allow_at(&self, now: Instant, rng: &mut fastrand::Rng) -> Result<(), Throttled>;
    /// [`AdaptiveThrottle::record_at`].
    fn record_at(&self, now: Instant, accepted: bool);
}

impl<const N: usize> SharedThrottle for AdaptiveThrottle<N> {
    #[inline]
    fn allow_at(&self, now: Instant, rng: &mut fastrand::Rng) -> Result<(), Throttled> {
        AdaptiveThrottle::allow_at(self, now, rng)
    }

    #[inline]
    fn record_at(&self, now: Instant, accepted: bool) {
        AdaptiveThrottle::record_at(self, now, accepted)
    }
}

/// Throttles the requests to the inner service with a shared adaptive throttle; see the
/// [module docs](super).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use stanchion::retry::Ratio;
/// use stanchion::throttle::AdaptiveThrottle;
/// use stanchion_std::tower::ThrottleLayer;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stanchion::ConfigError> {
/// // K = 2 over the last minute, in 12 buckets of 5 s.
/// let throttle = AdaptiveThrottle::<12>::new(Duration::from_secs(60), Ratio::TWO)?;
/// let layer = ThrottleLayer::new(Arc::new(throttle)).seed(7);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ThrottleLayer<T, K = ErrorsAreFailures, C = TokioClock> {
    throttle: Arc<T>,
    classifier: K,
    clock: C,
    streams: Streams,
}

impl<T> ThrottleLayer<T> {
    /// A layer over `throttle` (an [`AdaptiveThrottle`]), counting errors as not
    /// accepted, on the process-wide [`TokioClock`], with random streams from a seed drawn
    /// at random.
    pub fn new(throttle: Arc<T>) -> Self {
        ThrottleLayer::with_clock(throttle, TokioClock::new())
    }
}

impl<T, C> ThrottleLayer<T, ErrorsAreFailures, C> {
    /// A layer over `throttle`, counting errors as not accepted, reading `clock`.
    pub fn with_clock(throttle: Arc<T>, clock: C) -> Self {
        ThrottleLayer {
            throttle,
            classifier: ErrorsAreFailures,
            clock,
            streams: Streams::random(),
        }
    }
}

impl<T, K, C> ThrottleLayer<T, K, C> {
    /// The same layer classifying results with `classifier`: a failure is not an accept.
    pub fn classifier<K2>(self, classifier: K2) -> ThrottleLayer<T, K2, C> {
        ThrottleLayer {
            throttle: self.throttle,
            classifier,
            clock: self.clock,
            streams: self.streams,
        }
    }

    /// The same layer deriving each request's draw from `seed` and the request's number
    /// (counted across every service of the layer), for reproducible runs.
    pub fn seed(self, seed: u64) -> Self {
        ThrottleLayer {
            streams: Streams::seeded(seed),
            ..self
        }
    }

    /// The throttle.
    pub fn throttle(&self) -> &Arc<T> {
        &self.throttle
    }
}

impl<T, K: Clone, C: Clone> Clone for ThrottleLayer<T, K, C> {
    fn clone(&self) -> Self {
        ThrottleLayer {
            throttle: Arc::clone(&self.throttle),
            classifier: self.classifier.clone(),
            clock: self.clock.clone(),
            streams: self.streams.clone(),
        }
    }
}

impl<S, T, K: Clone, C: Clone> Layer<S> for ThrottleLayer<T, K, C> {
    type Service = ThrottleService<S, T, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        ThrottleService::new(
            inner,
            Arc::clone(&self.throttle),
            self.classifier.clone(),
            self.clock.clone(),
            self.streams.clone(),
        )
    }
}
