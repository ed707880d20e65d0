use std::fmt;

use stanchion::pipeline::Layer;
use stanchion::throttle::Throttled;

use crate::tower::Refusal;

/// The throttle refused the request locally: it did not reach the inner service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThrottleRejected {
    /// The core refusal: the window's requests and accepts when it was decided.
    pub throttled: Throttled,
}

impl ThrottleRejected {
    /// [`Layer::Throttle`]; no known time to try again (the refusal is a draw).
    pub const fn refusal(&self) -> Refusal {
        Refusal {
            layer: Layer::Throttle,
            retry_after: None,
        }
    }
}

impl fmt::Display for ThrottleRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.throttled, f)
    }
}

impl std::error::Error for ThrottleRejected {}
