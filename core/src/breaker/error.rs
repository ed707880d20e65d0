//! The error of a call made through a breaker, as the adapters' runners return it
//! (`stanchion_std::with_breaker`, `stanchion_embassy::breaker::call`), and the retry
//! classifier that goes with it.

use core::fmt;
use core::time::Duration;

use super::Rejected;
use crate::retry::Verdict;

/// Why a call through a circuit breaker did not succeed: the breaker refused it, or it
/// ran and failed.
///
/// ```
/// use core::time::Duration;
/// use stanchion::breaker::{BreakerError, Rejected, State};
///
/// let refused: BreakerError<&str> = BreakerError::Rejected(Rejected {
///     retry_after: Some(Duration::from_secs(30)),
///     state: State::Open,
/// });
/// assert_eq!(refused.retry_after(), Some(Duration::from_secs(30)));
/// assert_eq!(BreakerError::Operation("down").retry_after(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BreakerError<E> {
    /// The breaker refused the call; the operation did not run.
    Rejected(Rejected),
    /// The operation ran and failed with this error.
    Operation(E),
}

impl<E> BreakerError<E> {
    /// When the breaker may let a call through again, if it refused and knows
    /// ([`Rejected::retry_after`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BreakerError::Rejected(r) => r.retry_after,
            BreakerError::Operation(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerError::Rejected(r) => write!(f, "{r}"),
            BreakerError::Operation(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for BreakerError<E> {}

/// The retry classifier for a retry around a breaker's call: `Ok` is a success, the
/// operation's errors are transient, and a refusal of the breaker ends the retries
/// ([`Verdict::Refused`]: retrying it with backoff only waits out the open state in vain,
/// and in half-open every retry would be another probe). The refused call is not counted
/// as an attempt, as in the adapters' pipelines.
///
/// The default classifier calls every `Err` transient, refusals included: give the
/// policy this one (`RetryPolicy::with_classifier(refusals_are_permanent)`). The
/// adapters' retry docs show the whole composition.
///
/// ```
/// use stanchion::breaker::{BreakerError, Rejected, State, refusals_are_permanent};
/// use stanchion::retry::Verdict;
///
/// let refused = Rejected { retry_after: None, state: State::HalfOpen };
/// assert_eq!(refusals_are_permanent(&Ok::<u8, BreakerError<&str>>(1)), Verdict::Success);
/// assert_eq!(refusals_are_permanent(&Err::<u8, _>(BreakerError::Operation("down"))), Verdict::Transient);
/// assert_eq!(refusals_are_permanent(&Err::<u8, BreakerError<&str>>(BreakerError::Rejected(refused))), Verdict::Refused);
/// ```
pub fn refusals_are_permanent<T, E>(outcome: &Result<T, BreakerError<E>>) -> Verdict {
    match outcome {
        Ok(_) => Verdict::Success,
        Err(BreakerError::Operation(_)) => Verdict::Transient,
        Err(BreakerError::Rejected(_)) => Verdict::Refused,
    }
}
