//! Async retry: run an operation, ask core's [`RetryPolicy`] what its outcome means, sleep
//! as the policy says, and run it again.
//!
//! The policy decides everything (classification, attempts, backoff and jitter, deadline,
//! budget); this runner only sleeps, with `Timer::at` the instant `now + after`, rounded
//! up to the next tick, so a retry never starts before the policy allowed. The sleep never
//! passes the policy's deadline: the policy refuses a wait that would reach it.
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::time::Duration;
//! use stanchion::retry::{Constant, GiveUpReason, RetryPolicy};
//! use stanchion_embassy::{RetryError, retry};
//!
//! let mut policy = RetryPolicy::new(
//!     Constant::new(Duration::from_millis(10)),
//!     3,
//!     fastrand::Rng::with_seed(1),
//! )?;
//! let result: Result<u32, RetryError<&str>> = doc_block_on(retry(&mut policy, |attempt| async move {
//!     if attempt < 3 { Err("busy") } else { Ok(attempt) }
//! }));
//! assert_eq!(result, Ok(3));
//! # fn doc_block_on<F: core::future::Future>(f: F) -> F::Output {
//! #     let mut f = core::pin::pin!(f);
//! #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! #     loop {
//! #         if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_ticks(1));
//! #     }
//! # }
//! # Ok::<(), stanchion::ConfigError>(())
//! ```
//!
//! # With a breaker and a timeout
//!
//! [`Pipeline`](crate::Pipeline) composes retry, a breaker and a per-attempt timeout in the
//! order that works (`Pipeline::new().breaker(&b).attempt_timeout(d)`), so prefer it. By
//! hand, the order is: `retry` outermost, [`breaker::call`](crate::breaker::call) per
//! attempt, the [`timeout`](crate::timeout()) *inside* the breaker's call, so that a hang
//! ends as a failure the breaker records (a timeout outside drops the call and its permit,
//! which records nothing: a hung dependency would never open the breaker). And give the
//! policy [`breaker::refusals_are_permanent`](crate::breaker::refusals_are_permanent) as its
//! classifier: the default calls every `Err` transient, so it would retry the open
//! breaker's refusal with backoff. Then a refusal ends the retries as in the pipeline: the
//! [`RetryError`] holds the refusal (its `retry_after` says when the breaker may admit a
//! call again), and `attempts` counts only the attempts that ran
//! ([`Verdict::Refused`](stanchion::retry::Verdict::Refused)).
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::time::Duration;
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
//! use stanchion::retry::{Constant, GiveUpReason, RetryPolicy};
//! use stanchion::sync::NoopRawMutex;
//! use stanchion_embassy::{BreakerError, breaker, retry, timeout};
//!
//! let b: CircuitBreaker<ConsecutiveWindow, NoopRawMutex> =
//!     CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(2)?)?;
//! let mut policy = RetryPolicy::new(Constant::new(Duration::from_millis(10)), 5, fastrand::Rng::with_seed(1))?
//!     .with_classifier(breaker::refusals_are_permanent);
//! let result: Result<(), _> = doc_block_on(retry(&mut policy, |_| {
//!     breaker::call(&b, || async {
//!         timeout(Duration::from_millis(5), async { Err("down") }).await.unwrap_or(Err("hung"))
//!     })
//! }));
//! // Two failures open the breaker; its refusal of the third attempt ends the retries,
//! // after the two attempts that ran.
//! let e = result.unwrap_err();
//! assert!(matches!(e.last, BreakerError::Rejected(_)));
//! assert_eq!((e.reason, e.attempts), (GiveUpReason::Permanent, 2));
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
//! Cost: the policy (borrowed) and the operation's future; a `Timer` while sleeping.

use core::future::Future;
use core::time::Duration;

use stanchion::Clock;
use stanchion::retry::{
    Backoff, Classify, Decision, GiveUpReason, HintBound, RetryBudget, RetryError, RetryPolicy,
};

use crate::EmbassyClock;
use crate::events::event;
use crate::sleep::sleep_until;

/// Runs `op(attempt)` (attempt 1, 2, ...) until the policy says done or gives up, sleeping
/// between attempts as it says. Returns the last outcome: an `Ok` (also one the classifier
/// called transient, once the policy gives up) or the last error with the reason.
///
/// The policy is used as it is: [`reset`](RetryPolicy::reset) it between operations.
pub async fn retry<B, K, R, M, T, E, F, Fut>(
    policy: &mut RetryPolicy<B, K, R, M>,
    op: F,
) -> Result<T, RetryError<E>>
where
    B: Backoff,
    K: Classify<Result<T, E>>,
    R: RetryBudget,
    M: HintBound,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_with_hint(policy, op, |_| None).await
}

/// [`retry`], with the server's hint (a `Retry-After`) read from each outcome by `hint`;
/// the policy bounds it ([`RetryPolicy::with_max_retry_after`]).
pub async fn retry_with_hint<B, K, R, M, T, E, F, Fut, H>(
    policy: &mut RetryPolicy<B, K, R, M>,
    mut op: F,
    hint: H,
) -> Result<T, RetryError<E>>
where
    B: Backoff,
    K: Classify<Result<T, E>>,
    R: RetryBudget,
    M: HintBound,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    H: Fn(&Result<T, E>) -> Option<Duration>,
{
    loop {
        // One attempt, in a block of its own so that its outcome is gone before the sleep
        // (held across it, the outcome would take room in the future).
        let wake = 'attempt: {
            let attempts = policy.attempt();
            let outcome = op(attempts).await;
            let now = EmbassyClock.now();
            let verdict = policy.classify(&outcome);
            let reason = match policy.next_attempt_at(now, verdict, hint(&outcome)) {
                Ok(wake) => {
                    event!(
                        debug,
                        "retry: attempt {=u32} failed; the next at {=u64} ns",
                        attempts,
                        wake.as_nanos()
                    );
                    break 'attempt wake;
                }
                Err(Decision::GiveUp { reason }) => reason,
                // Done: an `Err` the classifier called a success ends the retries.
                Err(_) => GiveUpReason::Permanent,
            };
            // The attempts that ran: one fewer than `attempts` after a refusal
            // (`Verdict::Refused`), which did not run.
            let attempts = policy.attempt();
            if outcome.is_err() {
                event!(
                    warn,
                    "retry: gave up after {=u32} attempt(s): {}",
                    attempts,
                    reason
                );
            }
            return outcome.map_err(|last| RetryError {
                last,
                reason,
                attempts,
            });
        };
        sleep_until(wake).await;
    }
}
