use std::fmt;

use stanchion::bulkhead::BulkheadFull;
use stanchion::pipeline::{Layer, PipelineError};

use crate::tower::Refusal;

/// The bulkhead was full: the request was refused without reaching the inner service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BulkheadRejected {
    /// The core refusal: slots in use and the maximum.
    pub full: BulkheadFull,
}

impl BulkheadRejected {
    /// [`Layer::Bulkhead`]; no known time to try again.
    pub const fn refusal(&self) -> Refusal {
        Refusal {
            layer: Layer::Bulkhead,
            retry_after: None,
        }
    }
}

impl fmt::Display for BulkheadRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.full, f)
    }
}

impl std::error::Error for BulkheadRejected {}

impl<E> From<BulkheadRejected> for PipelineError<E> {
    fn from(e: BulkheadRejected) -> Self {
        PipelineError::BulkheadFull(e.full)
    }
}
