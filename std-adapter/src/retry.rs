//! [`retry`]: run an async operation under a core [`RetryPolicy`], sleeping on tokio's
//! timer between attempts.
//!
//! The runner is the loop that core's policy docs describe: make attempt `n` (the closure
//! gets `n`, 1 for the first call), tell the policy the outcome, sleep for what it says
//! or stop. Every decision is the policy's (backoff, jitter, max attempts, deadline,
//! classifier, budget, server hint); the runner only sleeps. The sleeps are
//! `tokio::time::sleep`, so paused time drives them: a ten-minute outage takes no wall
//! time in a test.
//!
//! # With a breaker and a timeout
//!
//! [`Pipeline`](crate::Pipeline) composes retry, a breaker and a per-attempt timeout in
//! the order that works, so prefer it. By hand, the order is: `retry` outermost,
//! [`with_breaker`](crate::with_breaker) per attempt, the [`timeout`](crate::timeout())
//! *inside* the breaker's call, so that a hang ends as a failure the breaker records (a
//! timeout outside drops the call and its permit, which records nothing: a hung
//! dependency would never open the breaker). And give the policy
//! [`refusals_are_permanent`](crate::refusals_are_permanent) as its classifier: the
//! default calls every `Err` transient, so it would retry the open breaker's refusal
//! with backoff. Then a refusal ends the retries as in the pipeline: the [`RetryError`]
//! holds the refusal (its `retry_after` says when the breaker may admit a call again), and
//! `attempts` counts only the attempts that ran
//! ([`Verdict::Refused`](stanchion::retry::Verdict::Refused)).
//!
//! ```
//! use std::time::Duration;
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
//! use stanchion::retry::{Constant, GiveUpReason, RetryPolicy};
//! use stanchion::{Clock, Deadline};
//! use stanchion_std::{
//!     BreakerError, ErrorsAreFailures, StdRawMutex, TokioClock, refusals_are_permanent, retry,
//!     timeout, with_breaker,
//! };
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = TokioClock::starting_now();
//! let breaker: CircuitBreaker<_, StdRawMutex> =
//!     CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(2)?)?;
//! let mut policy = RetryPolicy::new(Constant::new(Duration::from_millis(10)), 5, fastrand::Rng::with_seed(1))?
//!     .with_classifier(refusals_are_permanent);
//! let hung = std::future::pending::<Result<(), &str>>;
//! let result = retry(clock, &mut policy, |_| {
//!     with_breaker(&breaker, clock, &ErrorsAreFailures, async {
//!         let deadline = Deadline::after(clock.now(), Duration::from_millis(50));
//!         timeout(clock, deadline, hung()).await.unwrap_or(Err("hung"))
//!     })
//! })
//! .await;
//! // Two hangs, each a failure, open the breaker; its refusal of the third attempt ends
//! // the retries, after the two attempts that ran.
//! let e = result.unwrap_err();
//! assert!(matches!(e.last, BreakerError::Rejected(_)));
//! assert_eq!((e.reason, e.attempts), (GiveUpReason::Permanent, 2));
//! assert_eq!(clock.now().as_millis(), 120); // two 50 ms timeouts, each followed by a 10 ms wait
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use stanchion::retry::{
    Backoff, Classify, Decision, GiveUpReason, HintBound, RetryBudget, RetryError, RetryPolicy,
};

use crate::TokioClock;
use crate::events::event;

/// Runs `operation(attempt)` until `policy` says done or give up, sleeping between
/// attempts for what the policy says.
///
/// Returns the last outcome: `Ok` as is (also an `Ok` that the classifier called
/// transient, such as an HTTP 503 response, once the policy gives up), `Err` as a
/// [`RetryError`] with the reason and the attempt count. The policy is used as given
/// (from its current attempt; [`reset`](RetryPolicy::reset) it to reuse it), and its
/// deadline, read on `clock`, is never overslept. Cancel-safe: dropping the future stops
/// the retries; nothing is spent but what the policy already withdrew from its budget.
///
/// ```
/// use std::time::Duration;
/// use stanchion::Clock;
/// use stanchion::retry::{Exponential, Ratio, RetryPolicy};
/// use stanchion_std::{TokioClock, retry};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = TokioClock::starting_now();
/// let backoff = Exponential::new(Duration::from_secs(1), Ratio::TWO, Duration::from_secs(30))?;
/// let mut policy = RetryPolicy::new(backoff, 5, fastrand::Rng::with_seed(1))?;
/// let value = retry(clock, &mut policy, |attempt| async move {
///     if attempt < 3 { Err("busy") } else { Ok(attempt * 10) }
/// })
/// .await?;
/// assert_eq!(value, 30);
/// assert_eq!(clock.now().as_secs(), 3); // slept 1 s, then 2 s
/// # Ok(())
/// # }
/// ```
///
/// Cost: the policy's decision per attempt, one clock read after a failure (none after
/// a success unless the budget counts time), one tokio sleep per retry; no allocation.
pub async fn retry<T, E, F, Fut, B, K, R, M>(
    clock: TokioClock,
    policy: &mut RetryPolicy<B, K, R, M>,
    operation: F,
) -> Result<T, RetryError<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    B: Backoff,
    K: Classify<Result<T, E>>,
    R: RetryBudget,
    M: HintBound,
{
    retry_with_hint(clock, policy, operation, |_: &Result<T, E>| None).await
}

/// [`retry`], with a server's hint read from each outcome: `hint(&outcome)` returns the
/// wait the server asked for (an HTTP `Retry-After`), which replaces the backoff's delay,
/// bounded by the policy's [`with_max_retry_after`](RetryPolicy::with_max_retry_after).
///
/// ```
/// use std::time::Duration;
/// use stanchion::Clock;
/// use stanchion::retry::{Constant, RetryPolicy};
/// use stanchion_std::{TokioClock, retry_with_hint};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = TokioClock::starting_now();
/// let mut policy = RetryPolicy::new(Constant::new(Duration::from_secs(1)), 3, fastrand::Rng::with_seed(1))?;
/// let value = retry_with_hint(
///     clock,
///     &mut policy,
///     |attempt| async move { if attempt == 1 { Err(Duration::from_secs(7)) } else { Ok(()) } },
///     |outcome| outcome.err(),
/// )
/// .await;
/// assert!(value.is_ok());
/// assert_eq!(clock.now().as_secs(), 7); // the server's 7 s, not the backoff's 1 s
/// # Ok(())
/// # }
/// ```
pub async fn retry_with_hint<T, E, F, Fut, H, B, K, R, M>(
    clock: TokioClock,
    policy: &mut RetryPolicy<B, K, R, M>,
    mut operation: F,
    hint: H,
) -> Result<T, RetryError<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    H: Fn(&Result<T, E>) -> Option<Duration>,
    B: Backoff,
    K: Classify<Result<T, E>>,
    R: RetryBudget,
    M: HintBound,
{
    loop {
        let attempt = policy.attempt();
        let outcome = operation(attempt).await;
        let server = hint(&outcome);
        match policy.on_outcome(&clock, &outcome, server) {
            Decision::Retry {
                after,
                attempt: next,
            } => {
                event!(
                    debug,
                    failed_attempt = attempt,
                    next_attempt = next,
                    after_ms = after.as_millis() as u64,
                    "retrying"
                );
                let _ = next;
                tokio::time::sleep(after).await;
            }
            Decision::Done => {
                return outcome.map_err(|last| RetryError {
                    last,
                    reason: GiveUpReason::Permanent,
                    attempts: attempt,
                });
            }
            Decision::GiveUp { reason } => {
                // Not `attempt`: a refused attempt (`Verdict::Refused`) did not run.
                let attempts = policy.attempt();
                event!(warn, attempts, reason = %reason, "retries given up");
                return outcome.map_err(|last| RetryError {
                    last,
                    reason,
                    attempts,
                });
            }
        }
    }
}
