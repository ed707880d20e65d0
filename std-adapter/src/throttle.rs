//! [`with_throttle`]: run an async call through a core `AdaptiveThrottle` (adaptive
//! client-side throttling, the SRE book's), outside a tower stack. With feature `tower`,
//! the same is the `tower::ThrottleLayer`.
//!
//! The throttle decides before the call, with one draw from the caller's generator, and
//! learns whether the backend accepted it after; see core's [`stanchion::throttle`] for
//! the rule and when to choose it. A throttled call never runs.

use std::future::Future;

use stanchion::Clock;
use stanchion::throttle::AdaptiveThrottle;
pub use stanchion::throttle::ThrottleError;

use crate::events::event;

/// Runs `call` unless `throttle` refuses it (one draw from `rng`), reading `clock`, and
/// records whether the backend accepted it: `accepted(&outcome)` (give `Result::is_ok` to
/// count every `Ok` as accepted).
///
/// Cancel-safe: a future dropped before the call completes records nothing, as a timeout
/// would (the request is counted, not the accept).
///
/// ```
/// use std::time::Duration;
/// use stanchion::retry::Ratio;
/// use stanchion::throttle::AdaptiveThrottle;
/// use stanchion_std::throttle::{ThrottleError, with_throttle};
/// use stanchion_std::TokioClock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stanchion::ConfigError> {
/// // K = 2 over the last 10 s.
/// let throttle: AdaptiveThrottle<10> = AdaptiveThrottle::new(Duration::from_secs(10), Ratio::TWO)?;
/// let mut rng = fastrand::Rng::with_seed(1);
/// let clock = TokioClock::new();
/// let mut throttled = 0;
/// for _ in 0..100 {
///     // A backend that rejects everything: the client soon stops sending most calls.
///     let call = async { Err::<(), &str>("overloaded") };
///     match with_throttle(&throttle, &mut rng, &clock, Result::is_ok, call).await {
///         Err(ThrottleError::Throttled(_)) => throttled += 1,
///         Err(ThrottleError::Operation(_)) => {}
///         Ok(()) => unreachable!(),
///     }
/// }
/// assert!(throttled > 50);
/// # Ok(())
/// # }
/// ```
pub async fn with_throttle<C, K, F, T, E, const N: usize>(
    throttle: &AdaptiveThrottle<N>,
    rng: &mut fastrand::Rng,
    clock: &C,
    accepted: K,
    call: F,
) -> Result<T, ThrottleError<E>>
where
    C: Clock + ?Sized,
    K: FnOnce(&Result<T, E>) -> bool,
    F: Future<Output = Result<T, E>>,
{
    if let Err(throttled) = throttle.allow_at(clock.now(), rng) {
        event!(debug, "throttle refused the call");
        return Err(ThrottleError::Throttled(throttled));
    }
    let outcome = call.await;
    throttle.record_at(clock.now(), accepted(&outcome));
    outcome.map_err(ThrottleError::Operation)
}
