//! The pipeline's contract, shared by every adapter: the order in which the patterns
//! compose, and the one error that says which layer refused.
//!
//! The runners that compose the patterns live in the adapters (`stanchion-std` over tokio,
//! `stanchion-embassy` over embassy); both follow this order and return this error, so a
//! call behaves the same in a service and in firmware.
//!
//! # Order, outermost first
//!
//! | # | layer | why here |
//! |---|---|---|
//! | 1 | overall timeout | bounds everything below, waits included: the caller's budget |
//! | 2 | rate limit | refuse cheap and early: no bulkhead slot, breaker probe or retry is spent on a call over quota |
//! | 3 | bulkhead | bounds concurrency of the calls that were admitted; a call waiting here holds no breaker permit |
//! | 4 | circuit breaker | one permit per *attempt*: each retry is an outcome the breaker sees, and an open breaker stops the retries |
//! | 5 | retry | re-runs the attempt (breaker + per-attempt timeout) while its policy and budget allow |
//! | 6 | per-attempt timeout | bounds one attempt; its expiry is a failure that the breaker records and the retry may retry |
//! | 7 | fault injection | innermost, in place of the operation: an injected error, outcome or latency ([`crate::fault`]) is seen by every layer above as the operation's own, so it tests them; it refuses nothing itself |
//!
//! Retry sits *outside* the breaker (each attempt acquires a breaker permit), so a breaker
//! that opens during an outage cuts the retries short instead of being bypassed by them.
//! The rate limit and the bulkhead sit outside retry: one admitted call holds one slot
//! for all its attempts, and retries are throttled by the retry budget rather than by
//! taking more quota (an adapter may offer the other order as an option, documented there).
//!
//! ```
//! use stanchion::pipeline::{Layer, PipelineError, AttemptError};
//! use stanchion::retry::GiveUpReason;
//!
//! let err: PipelineError<&str> = PipelineError::GaveUp {
//!     last: AttemptError::Timeout,
//!     reason: GiveUpReason::AttemptsExhausted,
//!     attempts: 3,
//! };
//! assert_eq!(err.layer(), Layer::Retry);
//! assert_eq!(err.retry_after(), None);
//! assert_eq!(Layer::ORDER[0], Layer::OverallTimeout);
//! ```

use core::fmt;
use core::time::Duration;

use crate::breaker::Rejected;
use crate::bulkhead::BulkheadFull;
use crate::rate::RateLimitError;
use crate::retry::GiveUpReason;

/// One layer of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Layer {
    /// The overall timeout (the caller's deadline).
    OverallTimeout,
    /// The rate limiter.
    RateLimit,
    /// The bulkhead.
    Bulkhead,
    /// The circuit breaker.
    CircuitBreaker,
    /// The retry policy.
    Retry,
    /// The per-attempt timeout.
    AttemptTimeout,
    /// Fault injection ([`crate::fault`]): the innermost position, where an injected
    /// error, outcome or latency stands in for the operation's. It refuses nothing itself:
    /// an injected error is the operation's error ([`AttemptError::Operation`]).
    FaultInjection,
    /// The adaptive client-side throttle ([`crate::throttle`]): a tower layer and runners
    /// of its own, not a position of the pipeline, so not in [`ORDER`](Layer::ORDER).
    Throttle,
}

impl Layer {
    /// Every layer of the pipeline, outermost first.
    pub const ORDER: [Layer; 7] = [
        Layer::OverallTimeout,
        Layer::RateLimit,
        Layer::Bulkhead,
        Layer::CircuitBreaker,
        Layer::Retry,
        Layer::AttemptTimeout,
        Layer::FaultInjection,
    ];

    /// A short, stable name, for logs and metric labels: `overall_timeout`,
    /// `rate_limit`, `bulkhead`, `circuit_breaker`, `retry`, `attempt_timeout`,
    /// `fault_injection`, `throttle`.
    pub const fn name(self) -> &'static str {
        match self {
            Layer::OverallTimeout => "overall_timeout",
            Layer::RateLimit => "rate_limit",
            Layer::Bulkhead => "bulkhead",
            Layer::CircuitBreaker => "circuit_breaker",
            Layer::Retry => "retry",
            Layer::AttemptTimeout => "attempt_timeout",
            Layer::FaultInjection => "fault_injection",
            Layer::Throttle => "throttle",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AttemptError<E> {
    /// The operation returned an error.
    Operation(E),
    /// The per-attempt timeout expired first.
    Timeout,
    /// The circuit breaker refused this attempt (it opened during the retries).
    CircuitOpen(Rejected),
}

impl<E: fmt::Display> fmt::Display for AttemptError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Operation(e) => write!(f, "{e}"),
            AttemptError::Timeout => f.write_str("attempt timed out"),
            AttemptError::CircuitOpen(r) => write!(f, "circuit breaker refused the attempt ({r})"),
        }
    }
}

/// Why a call through the pipeline did not return the operation's success.
///
/// Each variant names the layer that refused ([`PipelineError::layer`]) and, where one is
/// known, when trying again may succeed ([`PipelineError::retry_after`]): what an HTTP
/// service turns into 429/503 with `Retry-After`, or 504.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PipelineError<E> {
    /// The overall deadline passed (while waiting or while the operation ran).
    Timeout,
    /// The rate limiter refused (or the wait for it would pass the deadline).
    RateLimited(RateLimitError),
    /// The bulkhead was full (and its queue, if any, too; or the wait ran out).
    BulkheadFull(BulkheadFull),
    /// The circuit breaker refused the first attempt.
    CircuitOpen(Rejected),
    /// The attempts failed and the retry policy gave up.
    GaveUp {
        /// How the last attempt failed.
        last: AttemptError<E>,
        /// Why the policy stopped.
        reason: GiveUpReason,
        /// Attempts made, counting the first.
        attempts: u32,
    },
}

impl<E> PipelineError<E> {
    /// The layer that refused. A call that gave up is the retry layer's, whatever its
    /// last attempt's error.
    pub const fn layer(&self) -> Layer {
        match self {
            PipelineError::Timeout => Layer::OverallTimeout,
            PipelineError::RateLimited(_) => Layer::RateLimit,
            PipelineError::BulkheadFull(_) => Layer::Bulkhead,
            PipelineError::CircuitOpen(_) => Layer::CircuitBreaker,
            PipelineError::GaveUp { .. } => Layer::Retry,
        }
    }

    /// When trying again may succeed, where the refusing layer knows: the rate limiter's
    /// wait, or the time left in an open breaker (also when the breaker refused a retry).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PipelineError::RateLimited(e) => e.retry_after(),
            PipelineError::CircuitOpen(r)
            | PipelineError::GaveUp {
                last: AttemptError::CircuitOpen(r),
                ..
            } => r.retry_after,
            _ => None,
        }
    }

    /// The operation's own error, if the call ended on one.
    pub const fn operation_error(&self) -> Option<&E> {
        match self {
            PipelineError::GaveUp {
                last: AttemptError::Operation(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Timeout => f.write_str("overall timeout"),
            PipelineError::RateLimited(e) => write!(f, "rate limited: {e}"),
            PipelineError::BulkheadFull(e) => write!(f, "{e}"),
            PipelineError::CircuitOpen(r) => write!(f, "circuit breaker refused the call: {r}"),
            PipelineError::GaveUp {
                last,
                reason,
                attempts,
            } => write!(f, "gave up after {attempts} attempt(s) ({reason}): {last}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for PipelineError<E> {}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;
    use crate::breaker::State;

    #[test]
    fn layers_and_retry_after() {
        let open = Rejected {
            retry_after: Some(Duration::from_secs(3)),
            state: State::Open,
        };
        let e: PipelineError<()> = PipelineError::CircuitOpen(open);
        assert_eq!(e.layer(), Layer::CircuitBreaker);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        let e: PipelineError<()> = PipelineError::GaveUp {
            last: AttemptError::CircuitOpen(open),
            reason: GiveUpReason::Permanent,
            attempts: 2,
        };
        assert_eq!(e.layer(), Layer::Retry);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        let e: PipelineError<()> = PipelineError::Timeout;
        assert_eq!((e.layer(), e.retry_after()), (Layer::OverallTimeout, None));
    }

    #[test]
    fn operation_error_and_display() {
        let e: PipelineError<&str> = PipelineError::GaveUp {
            last: AttemptError::Operation("boom"),
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 3,
        };
        assert_eq!(e.operation_error(), Some(&"boom"));
        assert_eq!(e.layer().name(), "retry");
        assert!(e.to_string().starts_with("gave up after 3 attempt(s)"));
        assert!(e.to_string().ends_with(": boom"));
        assert_eq!(Layer::ORDER.len(), 7);
        assert_eq!(Layer::ORDER[5].to_string(), "attempt_timeout");
        assert_eq!(Layer::ORDER[6].to_string(), "fault_injection");
    }
}
