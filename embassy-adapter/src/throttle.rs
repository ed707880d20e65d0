//! Calling through an [`AdaptiveThrottle`]: the SRE book's client-side throttling, on
//! embassy's clock.
//!
//! [`call`] asks the throttle whether to send; refused, it returns
//! [`ThrottleError::Throttled`] without running the operation. Sent, it runs the operation
//! and records `Ok` as accepted by the backend and `Err` as not, or as
//! [`call_classified`]'s classifier says (an error the backend answered, such as a bad
//! request, is still an accept; a refusal for overload or a timeout is not). A future
//! dropped mid-call records no accept, as a timeout would. The random draw comes from
//! the caller's generator, seeded by the caller (per device, say).
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::time::Duration;
//! use stanchion::retry::Ratio;
//! use stanchion::throttle::AdaptiveThrottle;
//! use stanchion_embassy::throttle::{self, ThrottleError};
//!
//! static THROTTLE: AdaptiveThrottle<10> =
//!     stanchion::const_config!(AdaptiveThrottle::new(Duration::from_secs(10), Ratio::TWO));
//! let mut rng = fastrand::Rng::with_seed(7);
//! // The backend refuses every call. The first goes out (there is nothing to go on yet),
//! // then each is refused with probability requests / (requests + 1).
//! let outcomes: Vec<_> = (0..20)
//!     .map(|_| doc_block_on(throttle::call(&THROTTLE, &mut rng, || async { Err::<(), _>("busy") })))
//!     .collect();
//! let sent = outcomes.iter().filter(|r| **r == Err(ThrottleError::Operation("busy"))).count();
//! assert_eq!(sent, 3); // the other 17 were refused here, without a call
//! # fn doc_block_on<F: core::future::Future>(f: F) -> F::Output {
//! #     let mut f = core::pin::pin!(f);
//! #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! #     loop {
//! #         if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_ticks(1));
//! #     }
//! # }
//! ```
//!
//! Cost: the throttle's own (`2N` atomic loads, a compare-and-swap, a draw when the
//! probability is above zero; one more compare-and-swap to record an accept) and two
//! clock reads.

use core::future::Future;

use stanchion::Clock;
use stanchion::throttle::AdaptiveThrottle;
pub use stanchion::throttle::ThrottleError;

use crate::EmbassyClock;
use crate::events::event;

/// Runs `op` if the throttle lets it through, and records `Ok` as accepted, `Err` as not.
pub async fn call<T, E, F, Fut, const N: usize>(
    throttle: &AdaptiveThrottle<N>,
    rng: &mut fastrand::Rng,
    op: F,
) -> Result<T, ThrottleError<E>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    call_classified(throttle, rng, op, Result::is_ok).await
}

/// Runs `op` if the throttle lets it through, and records it as accepted if `accepted`
/// says so of its outcome.
pub async fn call_classified<T, E, F, Fut, K, const N: usize>(
    throttle: &AdaptiveThrottle<N>,
    rng: &mut fastrand::Rng,
    op: F,
    accepted: K,
) -> Result<T, ThrottleError<E>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    K: FnOnce(&Result<T, E>) -> bool,
{
    throttle
        .allow_at(EmbassyClock.now(), rng)
        .map_err(|throttled| {
            event!(debug, "throttle: refused a call, {}", throttled);
            ThrottleError::Throttled(throttled)
        })?;
    let outcome = op().await;
    throttle.record_at(EmbassyClock.now(), accepted(&outcome));
    outcome.map_err(ThrottleError::Operation)
}
