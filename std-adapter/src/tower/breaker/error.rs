use std::fmt;

use stanchion::breaker::Rejected;
use stanchion::pipeline::{Layer, PipelineError};

use crate::tower::Refusal;

/// The circuit breaker refused the request: it did not reach the inner service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CircuitOpen {
    /// The breaker's refusal: the state and, while open, the time left.
    pub rejected: Rejected,
}

impl CircuitOpen {
    /// [`Layer::CircuitBreaker`], and the time left while open.
    pub const fn refusal(&self) -> Refusal {
        Refusal {
            layer: Layer::CircuitBreaker,
            retry_after: self.rejected.retry_after,
        }
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.rejected, f)
    }
}

impl std::error::Error for CircuitOpen {}

impl<E> From<CircuitOpen> for PipelineError<E> {
    fn from(e: CircuitOpen) -> Self {
        PipelineError::CircuitOpen(e.rejected)
    }
}
