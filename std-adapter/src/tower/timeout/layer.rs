use std::time::Duration;

use stanchion::pipeline::Layer as PipelineLayer;
use tower_layer::Layer;

use super::TimeoutService;

/// Fails requests that take longer than a duration; see the [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use stanchion_std::tower::TimeoutLayer;
///
/// const PER_ATTEMPT: TimeoutLayer = TimeoutLayer::new(Duration::from_secs(2));
/// const OVERALL: TimeoutLayer = TimeoutLayer::overall(Duration::from_secs(10));
/// # let _ = (PER_ATTEMPT, OVERALL);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeoutLayer {
    timeout: Duration,
    layer: PipelineLayer,
}

impl TimeoutLayer {
    /// A per-attempt timeout of `timeout`.
    pub const fn new(timeout: Duration) -> Self {
        TimeoutLayer {
            timeout,
            layer: PipelineLayer::AttemptTimeout,
        }
    }

    /// An overall timeout of `timeout` (the caller's budget, outside every other layer).
    pub const fn overall(timeout: Duration) -> Self {
        TimeoutLayer {
            timeout,
            layer: PipelineLayer::OverallTimeout,
        }
    }

    /// The timeout.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService::new(inner, self.timeout, self.layer)
    }
}
