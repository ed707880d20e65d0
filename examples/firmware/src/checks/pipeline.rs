//! The pipeline: rate limit, bulkhead, breaker, retry with jitter and timeouts, in core's
//! order, against the flaky peripheral; each refusal names its layer.

use core::num::NonZeroU32;
use core::time::Duration;

use embassy_time::Timer;
use stanchion::Clock;
use stanchion::breaker::window::CountWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::rate::{Quota, TokenBucket};
use stanchion::retry::{Exponential, GiveUpReason, Jitter, Ratio, RetryPolicy};
use stanchion::sync::CriticalSectionRawMutex;
use stanchion_embassy::{BulkheadQueue, EmbassyClock, Pipeline, RateLimitQueue};

use super::LATE;
use super::peripheral::{Fault, Flaky};
use crate::ensure;
use crate::report::{Failure, Outcome};

/// Three calls at once, then one every 100 ms.
static RATE: RateLimitQueue<CriticalSectionRawMutex, TokenBucket, 2> = RateLimitQueue::new(
    TokenBucket::new(match Quota::per_period(Duration::from_millis(100)) {
        Ok(q) => match q.with_burst(3) {
            Ok(q) => q,
            Err(_) => panic!("bad burst"),
        },
        Err(_) => panic!("bad period"),
    }),
);
static POOL: BulkheadQueue<CriticalSectionRawMutex, 2> = BulkheadQueue::new(NonZeroU32::MIN);
/// Opens when three attempts are recorded and all failed, for 50 ms. (The breaker check's
/// type, so that with both features its code is compiled once.)
static BREAKER: CircuitBreaker<CountWindow<64>, CriticalSectionRawMutex> = match CountWindow::new()
{
    Ok(window) => match CircuitBreaker::new(
        BreakerConfig::new()
            .failure_rate_threshold(100)
            .minimum_calls(3)
            .open_duration(Duration::from_millis(50)),
        window,
    ) {
        Ok(b) => b,
        Err(_) => panic!("bad breaker"),
    },
    Err(_) => panic!("bad window"),
};

fn policy() -> Option<RetryPolicy<Exponential>> {
    let backoff = Exponential::new(
        Duration::from_millis(2),
        Ratio::TWO,
        Duration::from_millis(8),
    )
    .ok()?
    .with_jitter(Jitter::FULL);
    RetryPolicy::new(backoff, 4, fastrand::Rng::with_seed(0xf1a4)).ok()
}

type Layers = Pipeline<
    'static,
    RateLimitQueue<CriticalSectionRawMutex, TokenBucket, 2>,
    BulkheadQueue<CriticalSectionRawMutex, 2>,
    CircuitBreaker<CountWindow<64>, CriticalSectionRawMutex>,
>;

/// Every call of this check goes through this one function, so the pipeline's runner is
/// compiled once, not once per call site.
async fn call(
    pipeline: &Layers,
    retry: &mut RetryPolicy<Exponential>,
    device: &Flaky,
) -> Result<u32, PipelineError<Fault>> {
    pipeline.call(retry, |_| device.read()).await
}

fn fail(what: &'static str) -> Outcome {
    Err(Failure { what, values: None })
}

/// A fault, then a hang (cut by the 10 ms attempt timeout), then an answer: the call
/// returns it. A dead peripheral trips the breaker, which stops the retries; the next call
/// is refused by the breaker; with the bucket empty, a call whose deadline is nearer than
/// the next permit is refused by the rate limit; a hang is cut by the overall timeout.
pub async fn run() -> Outcome {
    let now = EmbassyClock.now();
    RATE.limiter().reset();
    BREAKER.reset_at(now);
    let Some(mut retry) = policy() else {
        return fail("bad retry configuration");
    };
    let pipeline = Pipeline::new()
        .overall_timeout(Duration::from_millis(200))
        .rate_limit(&RATE)
        .bulkhead(&POOL)
        .breaker(&BREAKER)
        .attempt_timeout(Duration::from_millis(10));

    let device = Flaky::new(0b001, 0b010, 1);
    let start = EmbassyClock.now();
    let answer = call(&pipeline, &mut retry, &device).await;
    ensure!(answer == Ok(2), "no answer on the third attempt");
    let took = EmbassyClock.now() - start;
    // 1 ms + a backoff of at most 2 ms + 10 ms timeout + at most 4 ms + 1 ms.
    ensure!(
        took >= Duration::from_millis(12),
        "the attempts took too little time"
    );
    ensure!(
        took <= Duration::from_millis(18) + LATE,
        "the attempts took too long"
    );

    let dead = Flaky::new(u32::MAX, 0, 1);
    BREAKER.reset_at(EmbassyClock.now());
    match call(&pipeline, &mut retry, &dead).await {
        Err(PipelineError::GaveUp {
            last: AttemptError::CircuitOpen(_),
            reason: GiveUpReason::Permanent,
            attempts: 3,
        }) => {}
        _ => return fail("a dead peripheral did not trip the breaker after 3 attempts"),
    }
    ensure!(
        dead.calls() == 3,
        "an attempt reached the peripheral past the open breaker"
    );
    match call(&pipeline, &mut retry, &dead).await {
        Err(e @ PipelineError::CircuitOpen(_)) if e.layer() == Layer::CircuitBreaker => {}
        _ => return fail("an open breaker did not refuse the call"),
    }
    // Three permits used in about 30 ms: the next is about 70 ms away, past a 5 ms deadline.
    let hurried = pipeline.overall_timeout(Duration::from_millis(5));
    match call(&hurried, &mut retry, &dead).await {
        Err(e @ PipelineError::RateLimited(_)) if e.retry_after().is_some() => {}
        _ => return fail("the rate limit did not refuse a call it could not serve in time"),
    }
    ensure!(dead.calls() == 3, "a refused call reached the peripheral");

    // A permit again, the breaker closed: a hang ends at the overall deadline.
    Timer::after_millis(100).await;
    BREAKER.reset_at(EmbassyClock.now());
    let hang = Flaky::new(0, u32::MAX, 0);
    let start = EmbassyClock.now();
    let no_attempt_timeout = Pipeline::new()
        .overall_timeout(Duration::from_millis(15))
        .rate_limit(&RATE)
        .bulkhead(&POOL)
        .breaker(&BREAKER);
    let r = call(&no_attempt_timeout, &mut retry, &hang).await;
    let took = EmbassyClock.now() - start;
    ensure!(
        r == Err(PipelineError::Timeout),
        "a hang did not end in the overall timeout"
    );
    ensure!(
        took >= Duration::from_millis(15) && took <= Duration::from_millis(15) + LATE,
        "the overall timeout did not fire at its deadline"
    );
    ensure!(POOL.bulkhead().in_use() == 0, "a slot was left held");
    Ok(())
}
