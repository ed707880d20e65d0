use std::fmt;
use std::time::Duration;

use stanchion::pipeline::{Layer, PipelineError};
use stanchion::rate::RateLimitError;

use super::RateLimitPolicy;
use crate::tower::Refusal;

/// The rate limiter refused the request: the core error (when to try again, or never),
/// and the policy it was refused under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimited {
    /// The limiter's answer.
    pub error: RateLimitError,
    /// The policy, for the `RateLimit-Policy` field.
    pub policy: RateLimitPolicy,
}

impl RateLimited {
    /// When trying again may succeed (never zero); `None` if the request can never be
    /// granted (it asks for more permits than the limiter's burst).
    pub const fn retry_after(&self) -> Option<Duration> {
        self.error.retry_after()
    }

    /// [`Layer::RateLimit`], and the wait.
    pub const fn refusal(&self) -> Refusal {
        Refusal {
            layer: Layer::RateLimit,
            retry_after: self.retry_after(),
        }
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited ({}): {}", self.policy.name, self.error)
    }
}

impl std::error::Error for RateLimited {}

impl<E> From<RateLimited> for PipelineError<E> {
    fn from(e: RateLimited) -> Self {
        PipelineError::RateLimited(e.error)
    }
}
