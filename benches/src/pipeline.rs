//! The whole pipeline's setup, shared by the `stdrun` and `pipeline` benches: one
//! operation, one configuration, and the stacks built from it.
//!
//! Every stack has the same layers, outermost first: an overall timeout ([`OVERALL`]), a
//! rate limit that never refuses ([`RATE_PER_SECOND`]), a bulkhead of [`BULKHEAD`], a
//! retry of [`ATTEMPTS`] attempts with exponential backoff ([`FIRST_DELAY`] doubling up
//! to [`MAX_DELAY`]) around a consecutive-failures breaker ([`BREAKER_FAILURES`]) and an
//! attempt timeout ([`ATTEMPT`]), around [`op`], which succeeds at once.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota as GQuota};
use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::bulkhead::NoBulkheadListener;
use stanchion::rate::{Quota, TokenBucket, WithClock};
use stanchion::retry::{Exponential, NoBudget, Ratio, RetryPolicy, TransientErrors};
use stanchion_std::{
    BulkheadQueue, ErrorsAreFailures, Pipeline, QuantaClock, RateLimitQueue, StdRawMutex,
    TokioClock,
};

/// The overall timeout.
pub const OVERALL: Duration = Duration::from_secs(10);
/// The timeout of each attempt.
pub const ATTEMPT: Duration = Duration::from_secs(2);
/// The rate limit: more than any run can spend, so it never refuses nor waits.
pub const RATE_PER_SECOND: u32 = 1_000_000_000;
/// Calls at once in the bulkhead.
pub const BULKHEAD: u32 = 64;
/// Callers that may wait for the bulkhead (where the bulkhead has a line).
pub const BULKHEAD_LINE: usize = 1024;
/// Consecutive failures that open the breaker.
pub const BREAKER_FAILURES: u32 = 5;
/// Attempts, the first included.
pub const ATTEMPTS: u32 = 3;
/// The first retry's delay; each next one doubles.
pub const FIRST_DELAY: Duration = Duration::from_millis(10);
/// The longest delay between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// The operation's error (it never fails in these benches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpFailed;

impl std::fmt::Display for OpFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the operation failed")
    }
}

impl std::error::Error for OpFailed {}

/// The operation every stack wraps: an async fn that succeeds at once.
pub async fn op(x: u64) -> Result<u64, OpFailed> {
    Ok(black_box(x))
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// stanchion's rate limiter: a token bucket on the time-stamp counter.
pub fn limiter() -> WithClock<TokenBucket, QuantaClock> {
    WithClock::new(
        TokenBucket::new(ok(Quota::per_second(RATE_PER_SECOND))),
        QuantaClock::new(),
    )
}

/// stanchion's breaker: consecutive failures.
pub fn breaker() -> CircuitBreaker<ConsecutiveWindow, StdRawMutex> {
    ok(CircuitBreaker::new(
        BreakerConfig::new(),
        ok(ConsecutiveWindow::new(BREAKER_FAILURES)),
    ))
}

/// stanchion's retry policy, seeded.
pub fn retry_policy(seed: u64) -> RetryPolicy<Exponential> {
    let backoff = ok(Exponential::new(FIRST_DELAY, Ratio::TWO, MAX_DELAY));
    ok(RetryPolicy::new(
        backoff,
        ATTEMPTS,
        fastrand::Rng::with_seed(seed),
    ))
}

/// stanchion's bulkhead with a waiting line.
pub fn bulkhead_queue(clock: TokioClock) -> BulkheadQueue {
    ok(BulkheadQueue::new(BULKHEAD, BULKHEAD_LINE, clock))
}

/// The type of [`stanchion_pipeline`].
pub type StanchionPipeline = Pipeline<
    WithClock<TokenBucket, QuantaClock>,
    NoBulkheadListener,
    CircuitBreaker<ConsecutiveWindow, StdRawMutex>,
    ErrorsAreFailures,
    Exponential,
    TransientErrors,
    NoBudget,
>;

/// `stanchion_std::Pipeline` with every layer. Build it inside the runtime.
pub fn stanchion_pipeline() -> StanchionPipeline {
    let clock = TokioClock::new();
    Pipeline::new(clock)
        .overall_timeout(OVERALL)
        .rate_limit(RateLimitQueue::new(limiter(), clock))
        .bulkhead(bulkhead_queue(clock))
        .circuit_breaker(breaker())
        .retry(retry_policy(1))
        .attempt_timeout(ATTEMPT)
}

fn nz(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("zero"),
    }
}

/// The same layers from the crates a tokio service would compose by hand:
/// `tokio::time::timeout`, governor's `until_ready` (on quanta),
/// `tokio::sync::Semaphore::acquire`, backon's retry of an attempt that asks failsafe's
/// consecutive-failures breaker and runs under `tokio::time::timeout`.
pub struct HandComposed {
    limiter: DefaultDirectRateLimiter,
    semaphore: tokio::sync::Semaphore,
    breaker: failsafe::StateMachine<
        failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
        (),
    >,
    retry: ExponentialBuilder,
}

impl Default for HandComposed {
    fn default() -> Self {
        Self::new()
    }
}

impl HandComposed {
    /// The stack, configured as the others.
    pub fn new() -> Self {
        let backoff = failsafe::backoff::constant(Duration::from_secs(60));
        Self {
            limiter: DefaultDirectRateLimiter::direct(GQuota::per_second(nz(RATE_PER_SECOND))),
            semaphore: tokio::sync::Semaphore::new(BULKHEAD as usize),
            breaker: failsafe::Config::new()
                .failure_policy(failsafe::failure_policy::consecutive_failures(
                    BREAKER_FAILURES,
                    backoff,
                ))
                .build(),
            retry: ExponentialBuilder::default()
                .with_min_delay(FIRST_DELAY)
                .with_max_delay(MAX_DELAY)
                .with_max_times(ATTEMPTS as usize - 1),
        }
    }

    /// One call of [`op`] through every layer.
    pub async fn call(&self, x: u64) -> Result<u64, &'static str> {
        let call = async {
            self.limiter.until_ready().await;
            let _slot = self.semaphore.acquire().await.map_err(|_| "closed")?;
            let attempt = || async {
                if !self.breaker.is_call_permitted() {
                    return Err("open");
                }
                match tokio::time::timeout(ATTEMPT, op(x)).await {
                    Ok(Ok(v)) => {
                        self.breaker.on_success();
                        Ok(v)
                    }
                    Ok(Err(_)) => {
                        self.breaker.on_error();
                        Err("failed")
                    }
                    Err(_) => {
                        self.breaker.on_error();
                        Err("attempt timed out")
                    }
                }
            };
            attempt.retry(self.retry).await
        };
        match tokio::time::timeout(OVERALL, call).await {
            Ok(result) => result,
            Err(_) => Err("timed out"),
        }
    }
}
