use std::fmt;
use std::time::Duration;

use stanchion::pipeline::{AttemptError, Layer, PipelineError};

use crate::tower::Refusal;

/// The inner service did not answer within the timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Elapsed {
    /// The timeout that passed.
    pub after: Duration,
    /// [`Layer::AttemptTimeout`] or [`Layer::OverallTimeout`], as the layer was built.
    pub layer: Layer,
}

impl Elapsed {
    /// The timeout's layer; no known time to try again.
    pub const fn refusal(&self) -> Refusal {
        Refusal {
            layer: self.layer,
            retry_after: None,
        }
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {:?} elapsed", self.layer, self.after)
    }
}

impl std::error::Error for Elapsed {}

/// An overall timeout becomes [`PipelineError::Timeout`]; a per-attempt one is the
/// failure of an attempt that was not retried.
impl<E> From<Elapsed> for PipelineError<E> {
    fn from(e: Elapsed) -> Self {
        match e.layer {
            Layer::OverallTimeout => PipelineError::Timeout,
            _ => PipelineError::GaveUp {
                last: AttemptError::Timeout,
                reason: stanchion::retry::GiveUpReason::AttemptsExhausted,
                attempts: 1,
            },
        }
    }
}
