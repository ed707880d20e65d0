use std::sync::Arc;

use stanchion::Instant;
use stanchion::breaker::window::Window;
use stanchion::breaker::{BreakerListener, CircuitBreaker, IssuesPermits, Permit, Rejected};
use stanchion::retry::Backoff;
use stanchion::sync::RawMutex;
use tower_layer::Layer;

use super::CircuitBreakerService;
use crate::{ErrorsAreFailures, TokioClock};

/// A circuit breaker that a tower service can share through an `Arc` and take owned
/// permits from: every core [`CircuitBreaker`] whose parts are `Send + Sync`.
pub trait SharedBreaker: IssuesPermits + Send + Sync + 'static {
    /// [`CircuitBreaker::try_acquire_owned_at`] through an `Arc`.
    fn acquire_owned_at(this: Arc<Self>, now: Instant) -> Result<Permit<Arc<Self>>, Rejected>;
}

impl<W, M, B, L, const S: usize> SharedBreaker for CircuitBreaker<W, M, B, L, S>
where
    W: Window,
    M: RawMutex,
    B: Backoff,
    L: BreakerListener,
    Self: Send + Sync + 'static,
{
    #[inline]
    fn acquire_owned_at(this: Arc<Self>, now: Instant) -> Result<Permit<Arc<Self>>, Rejected> {
        CircuitBreaker::try_acquire_owned_at(this, now)
    }
}

/// Guards the inner service with a shared circuit breaker; see the
/// [module docs](super).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
/// use stanchion_std::StdRawMutex;
/// use stanchion_std::tower::CircuitBreakerLayer;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stanchion::ConfigError> {
/// let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
///     CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(5)?)?;
/// let layer = CircuitBreakerLayer::new(Arc::new(breaker));
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CircuitBreakerLayer<CB, K = ErrorsAreFailures, C = TokioClock> {
    breaker: Arc<CB>,
    classifier: K,
    clock: C,
}

impl<CB> CircuitBreakerLayer<CB> {
    /// A layer over `breaker`, counting errors as failures, on the process-wide
    /// [`TokioClock`].
    pub fn new(breaker: Arc<CB>) -> Self {
        CircuitBreakerLayer::with_clock(breaker, TokioClock::new())
    }
}

impl<CB, C> CircuitBreakerLayer<CB, ErrorsAreFailures, C> {
    /// A layer over `breaker`, counting errors as failures, reading `clock`.
    pub const fn with_clock(breaker: Arc<CB>, clock: C) -> Self {
        CircuitBreakerLayer {
            breaker,
            classifier: ErrorsAreFailures,
            clock,
        }
    }
}

impl<CB, K, C> CircuitBreakerLayer<CB, K, C> {
    /// The same layer classifying results with `classifier`.
    pub fn classifier<K2>(self, classifier: K2) -> CircuitBreakerLayer<CB, K2, C> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
            clock: self.clock,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Arc<CB> {
        &self.breaker
    }
}

impl<CB, K: Clone, C: Clone> Clone for CircuitBreakerLayer<CB, K, C> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            breaker: Arc::clone(&self.breaker),
            classifier: self.classifier.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<S, CB, K: Clone, C: Clone> Layer<S> for CircuitBreakerLayer<CB, K, C> {
    type Service = CircuitBreakerService<S, CB, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(
            inner,
            Arc::clone(&self.breaker),
            self.classifier.clone(),
            self.clock.clone(),
        )
    }
}
