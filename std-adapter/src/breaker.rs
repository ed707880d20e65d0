//! [`with_breaker`]: run an async call through a core [`CircuitBreaker`], with a
//! classifier that says what each `Result` means to the breaker.
//!
//! Under a retry, run the timeout inside `with_breaker` and classify the breaker's
//! refusals as permanent ([`refusals_are_permanent`]); the [`retry`](crate::retry())
//! docs show the order, and [`Pipeline`](crate::Pipeline) composes the three for you.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use stanchion::breaker::window::Window;
pub use stanchion::breaker::{BreakerError, refusals_are_permanent};
use stanchion::breaker::{BreakerListener, CircuitBreaker, Outcome, Permit, Rejected};
use stanchion::retry::Backoff;
use stanchion::sync::RawMutex;
use stanchion::{Clock, Instant};

use crate::TokioClock;
use crate::events::event;

/// Says what a call's outcome `O` (usually `Result<T, E>`) means to a circuit breaker:
/// [`Outcome::Success`], [`Outcome::Failure`], or [`Outcome::Ignored`] (says nothing
/// about the dependency, such as a client error).
///
/// Implemented by [`ErrorsAreFailures`] and by every closure `Fn(&O) -> Outcome`:
///
/// ```
/// use stanchion::breaker::Outcome;
/// use stanchion_std::ClassifyOutcome;
///
/// let http = |status: &Result<u16, std::io::Error>| match status {
///     Ok(500..=599) | Err(_) => Outcome::Failure,
///     Ok(400..=499) => Outcome::Ignored,
///     Ok(_) => Outcome::Success,
/// };
/// assert_eq!(http.classify(&Ok(503)), Outcome::Failure);
/// assert_eq!(http.classify(&Ok(404)), Outcome::Ignored);
/// ```
pub trait ClassifyOutcome<O: ?Sized> {
    /// What `outcome` means to the breaker.
    fn classify(&self, outcome: &O) -> Outcome;
}

impl<O: ?Sized, F: Fn(&O) -> Outcome> ClassifyOutcome<O> for F {
    #[inline]
    fn classify(&self, outcome: &O) -> Outcome {
        self(outcome)
    }
}

/// The default classifier: `Ok` is a success, every `Err` a failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ErrorsAreFailures;

impl<T, E> ClassifyOutcome<Result<T, E>> for ErrorsAreFailures {
    #[inline]
    fn classify(&self, outcome: &Result<T, E>) -> Outcome {
        match outcome {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// A circuit breaker the runners can call through: every core [`CircuitBreaker`], and
/// any `&` or `Arc` to one. (The pipeline's "no breaker" is [`NoBreaker`].)
pub trait BreakerLayer {
    /// The permit of one call, held across its `.await`.
    type Permit<'a>
    where
        Self: 'a;

    /// Asks to make a call at `now`.
    fn try_acquire_at(&self, now: Instant) -> Result<Self::Permit<'_>, Rejected>;

    /// Records the outcome of the call that `permit` admitted, ended at `end`.
    fn record_at<'a>(permit: Self::Permit<'a>, outcome: Outcome, end: Instant)
    where
        Self: 'a;
}

impl<W: Window, M: RawMutex, B: Backoff, L: BreakerListener, const S: usize> BreakerLayer
    for CircuitBreaker<W, M, B, L, S>
{
    type Permit<'a>
        = Permit<&'a Self>
    where
        Self: 'a;

    #[inline]
    fn try_acquire_at(&self, now: Instant) -> Result<Self::Permit<'_>, Rejected> {
        CircuitBreaker::try_acquire_at(self, now)
    }

    #[inline]
    fn record_at<'a>(permit: Self::Permit<'a>, outcome: Outcome, end: Instant)
    where
        Self: 'a,
    {
        permit.record_at(outcome, end);
    }
}

impl<T: BreakerLayer + ?Sized> BreakerLayer for &T {
    type Permit<'a>
        = T::Permit<'a>
    where
        Self: 'a;

    #[inline]
    fn try_acquire_at(&self, now: Instant) -> Result<Self::Permit<'_>, Rejected> {
        (**self).try_acquire_at(now)
    }

    #[inline]
    fn record_at<'a>(permit: Self::Permit<'a>, outcome: Outcome, end: Instant)
    where
        Self: 'a,
    {
        T::record_at(permit, outcome, end);
    }
}

impl<T: BreakerLayer + ?Sized> BreakerLayer for Arc<T> {
    type Permit<'a>
        = T::Permit<'a>
    where
        Self: 'a;

    #[inline]
    fn try_acquire_at(&self, now: Instant) -> Result<Self::Permit<'_>, Rejected> {
        self.deref().try_acquire_at(now)
    }

    #[inline]
    fn record_at<'a>(permit: Self::Permit<'a>, outcome: Outcome, end: Instant)
    where
        Self: 'a,
    {
        T::record_at(permit, outcome, end);
    }
}

/// The breaker of a [`Pipeline`](crate::Pipeline) without a circuit breaker layer: an
/// uninhabited type, so that the layer costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoBreaker {}

impl BreakerLayer for NoBreaker {
    type Permit<'a> = NoBreaker;

    fn try_acquire_at(&self, _now: Instant) -> Result<NoBreaker, Rejected> {
        match *self {}
    }

    fn record_at<'a>(permit: NoBreaker, _outcome: Outcome, _end: Instant)
    where
        Self: 'a,
    {
        match permit {}
    }
}

/// Runs `call` through `breaker`: refused at once with [`BreakerError::Rejected`] if the
/// breaker says so; otherwise the permit is held across the `.await`, and the outcome, as
/// `classifier` reads it, is recorded with the call's duration on `clock`.
///
/// Cancel-safe: if the future is dropped before `call` completes, nothing is recorded
/// and a half-open probe slot is given back (the permit's drop).
///
/// ```
/// use std::time::Duration;
/// use stanchion::breaker::{BreakerConfig, CircuitBreaker, State, window::ConsecutiveWindow};
/// use stanchion_std::{BreakerError, ErrorsAreFailures, StdRawMutex, TokioClock, with_breaker};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = TokioClock::new();
/// let config = BreakerConfig::new().open_duration(Duration::from_secs(30));
/// let breaker: CircuitBreaker<_, StdRawMutex> =
///     CircuitBreaker::new(config, ConsecutiveWindow::new(2)?)?;
/// for _ in 0..2 {
///     let failed = with_breaker(&breaker, clock, &ErrorsAreFailures, async { Err::<(), _>("down") });
///     assert_eq!(failed.await, Err(BreakerError::Operation("down")));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// let refused = with_breaker(&breaker, clock, &ErrorsAreFailures, async { Ok::<_, &str>(()) }).await;
/// assert!(matches!(refused, Err(BreakerError::Rejected(_))));
/// # Ok(())
/// # }
/// ```
pub async fn with_breaker<CB, K, F, T, E>(
    breaker: &CB,
    clock: TokioClock,
    classifier: &K,
    call: F,
) -> Result<T, BreakerError<E>>
where
    CB: BreakerLayer + ?Sized,
    K: ClassifyOutcome<Result<T, E>> + ?Sized,
    F: Future<Output = Result<T, E>>,
{
    let permit = match breaker.try_acquire_at(clock.now()) {
        Ok(permit) => permit,
        Err(rejected) => {
            event!(debug, state = %rejected.state, "circuit breaker refused the call");
            return Err(BreakerError::Rejected(rejected));
        }
    };
    let outcome = call.await;
    CB::record_at(permit, classifier.classify(&outcome), clock.now());
    outcome.map_err(BreakerError::Operation)
}
