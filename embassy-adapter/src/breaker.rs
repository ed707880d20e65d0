//! Calling through a [`CircuitBreaker`]: one permit per call, held across the `.await`.
//!
//! [`call`] asks the breaker for a permit; refused, it returns [`BreakerError::Rejected`]
//! without running the operation. Admitted, it runs the operation and records its outcome
//! on the permit, with the call's duration as `EmbassyClock` measures it (from the permit's
//! issue to the operation's end): `Ok` as a success and `Err` as a failure, or as
//! [`call_classified`]'s classifier says. A future dropped mid-call (a timeout, a
//! `select`) drops the permit, which records nothing and gives back a half-open slot.
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker, State, window::ConsecutiveWindow};
//! use stanchion::sync::NoopRawMutex;
//! use stanchion_embassy::{BreakerError, breaker};
//!
//! let b: CircuitBreaker<ConsecutiveWindow, NoopRawMutex> =
//!     CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(2)?)?;
//! for _ in 0..2 {
//!     let r: Result<(), _> = doc_block_on(breaker::call(&b, || async { Err("down") }));
//!     assert_eq!(r, Err(BreakerError::Operation("down")));
//! }
//! assert_eq!(b.state(), State::Open);
//! let r: Result<(), BreakerError<&str>> = doc_block_on(breaker::call(&b, || async { Ok(()) }));
//! assert!(matches!(r, Err(BreakerError::Rejected(_))));
//! # fn doc_block_on<F: core::future::Future>(f: F) -> F::Output {
//! #     let mut f = core::pin::pin!(f);
//! #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! #     loop {
//! #         if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_ticks(1));
//! #     }
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Under a retry, run the timeout inside `call` and classify the breaker's refusals as
//! permanent ([`refusals_are_permanent`]); the [retry module](mod@crate::retry) shows the
//! order, and [`Pipeline`](crate::Pipeline) composes the three for you.
//!
//! Cost: the breaker's own (one atomic load to admit in closed, one critical section to
//! record) and two clock reads.

use core::future::Future;

use stanchion::Clock;
pub use stanchion::breaker::{BreakerError, refusals_are_permanent};
use stanchion::breaker::{BreakerListener, CircuitBreaker, Outcome, window::Window};
use stanchion::retry::Backoff;
use stanchion::sync::RawMutex;

use crate::EmbassyClock;
use crate::events::event;

/// The clock read of both ends of a call, compiled once rather than at each.
#[inline(never)]
fn now() -> stanchion::Instant {
    EmbassyClock.now()
}

/// Runs `op` if the breaker admits it, and records `Ok` as a success, `Err` as a failure.
pub async fn call<W, M, B, L, T, E, F, Fut, const S: usize>(
    breaker: &CircuitBreaker<W, M, B, L, S>,
    op: F,
) -> Result<T, BreakerError<E>>
where
    W: Window,
    M: RawMutex,
    B: Backoff,
    L: BreakerListener,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    call_classified(breaker, op, |outcome| match outcome {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    })
    .await
}

/// Runs `op` if the breaker admits it, and records what `classify` makes of its outcome
/// ([`Outcome::Ignored`] for an error that says nothing about the dependency, such as a
/// bad request).
pub async fn call_classified<W, M, B, L, T, E, F, Fut, K, const S: usize>(
    breaker: &CircuitBreaker<W, M, B, L, S>,
    op: F,
    classify: K,
) -> Result<T, BreakerError<E>>
where
    W: Window,
    M: RawMutex,
    B: Backoff,
    L: BreakerListener,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    K: FnOnce(&Result<T, E>) -> Outcome,
{
    let permit = breaker.try_acquire_at(now()).map_err(|rejected| {
        event!(debug, "breaker: refused a call, {}", rejected);
        BreakerError::Rejected(rejected)
    })?;
    let outcome = op().await;
    permit.record_at(classify(&outcome), now());
    outcome.map_err(BreakerError::Operation)
}
