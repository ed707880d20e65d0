//! The pipeline's fallback on tokio's paused clock: which failures it answers, what it
//! sees of them, and when it runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stanchion::fallback::FallbackOn;
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::rate::{Quota, TokenBucket, WithClock};
use stanchion::retry::{Constant, GiveUpReason, RetryPolicy};
use stanchion_std::{Pipeline, RateLimitQueue, TokioClock};
use tokio::time::Instant;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Three attempts 10 ms apart.
fn policy() -> RetryPolicy<Constant> {
    RetryPolicy::new(Constant::new(MS(10)), 3, fastrand::Rng::with_seed(1)).unwrap()
}

/// A pipeline over a bucket of one permit a second (burst 1), within 500 ms: a call that
/// finds the bucket empty is refused at once (its wait would pass the deadline).
fn pipeline(clock: TokioClock) -> Pipeline<WithClock<TokenBucket, TokioClock>> {
    let bucket = WithClock::new(TokenBucket::new(Quota::per_second(1).unwrap()), clock);
    Pipeline::new(clock)
        .overall_timeout(MS(500))
        .rate_limit(RateLimitQueue::new(bucket, clock))
}

#[tokio::test(start_paused = true)]
async fn a_covered_refusal_is_answered_and_the_fallback_sees_it() {
    let pipeline = pipeline(TokioClock::starting_now());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer = |n: u32| {
        let seen = Arc::clone(&seen);
        pipeline.call_or_else(
            move |_| async move { Ok::<u32, &str>(n) },
            FallbackOn::REFUSALS,
            move |error| async move {
                seen.lock().unwrap().push(error);
                0
            },
        )
    };
    assert_eq!(answer(1).await, Ok(1)); // the bucket's one permit
    assert_eq!(answer(2).await, Ok(0)); // refused: the fallback's answer
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].layer(), Layer::RateLimit);
    assert_eq!(seen[0].retry_after(), Some(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn an_uncovered_failure_goes_through_as_it_was() {
    let pipeline = pipeline(TokioClock::starting_now());
    let call = || pipeline.call(|_| async { Ok::<u32, &str>(1) });
    assert_eq!(call().await, Ok(1));
    let plain = call().await.unwrap_err();
    // Covering everything but the rate limit: the refusal is returned unchanged.
    let through = pipeline
        .call_or_else(
            |_| async { Ok::<u32, &str>(1) },
            FallbackOn::EVERYTHING.except(Layer::RateLimit),
            |_| async { unreachable!("not covered") },
        )
        .await
        .unwrap_err();
    assert_eq!(through.layer(), Layer::RateLimit);
    assert_eq!(through, plain);
}

#[tokio::test(start_paused = true)]
async fn a_rule_of_ones_own_answers_by_the_operations_error() {
    let pipeline = Pipeline::new(TokioClock::starting_now()).retry(policy());
    // Only "not found" has a stand-in; "down" must reach the caller.
    let not_found = |e: &PipelineError<&str>| {
        matches!(
            e,
            PipelineError::GaveUp {
                last: AttemptError::Operation("not found"),
                ..
            }
        )
    };
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let start = Instant::now();
    let answer = pipeline
        .call_or_else(
            |_| async { Err::<&str, _>("not found") },
            not_found,
            move |error| async move {
                *record.lock().unwrap() = Some(error);
                "placeholder"
            },
        )
        .await;
    assert_eq!(answer, Ok("placeholder"));
    // Three attempts, 10 ms apart, then the fallback: the error as the retries left it.
    assert_eq!(start.elapsed(), MS(20));
    assert_eq!(
        seen.lock().unwrap().take(),
        Some(PipelineError::GaveUp {
            last: AttemptError::Operation("not found"),
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 3,
        })
    );
    let down = pipeline
        .call_or_else(
            |_| async { Err::<&str, _>("down") },
            not_found,
            |_| async { unreachable!("not covered") },
        )
        .await;
    assert!(matches!(
        down,
        Err(PipelineError::GaveUp {
            last: AttemptError::Operation("down"),
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn the_fallback_runs_after_the_call_outside_its_deadline() {
    // The call times out at 50 ms; the fallback then takes 200 ms of its own, which the
    // call's overall timeout does not cut.
    let pipeline = Pipeline::new(TokioClock::starting_now()).overall_timeout(MS(50));
    let start = Instant::now();
    let answer = pipeline
        .call_or_else(
            |_| async {
                tokio::time::sleep(MS(1_000)).await;
                Ok::<u32, &str>(1)
            },
            FallbackOn::NOTHING.layer(Layer::OverallTimeout),
            |error| async move {
                assert_eq!(error, PipelineError::Timeout);
                assert_eq!(Instant::now() - start, MS(50));
                tokio::time::sleep(MS(200)).await;
                2
            },
        )
        .await;
    assert_eq!(answer, Ok(2));
    assert_eq!(start.elapsed(), MS(250));
}
