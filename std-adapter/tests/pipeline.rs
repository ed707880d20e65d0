//! The pipeline on tokio's paused clock: each layer refuses with its own
//! `PipelineError` variant, with `retry_after` where the layer knows it, at exact times.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use stanchion::breaker::{BreakerConfig, CircuitBreaker, State, window::ConsecutiveWindow};
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::rate::{Quota, RateLimitError, TokenBucket, WithClock};
use stanchion::retry::{Constant, GiveUpReason, RetryPolicy, Verdict};
use stanchion::{Clock, Deadline, Instant};
use stanchion_std::{BulkheadQueue, Pipeline, RateLimitQueue, StdRawMutex, TokioClock};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

type Breaker = CircuitBreaker<ConsecutiveWindow, StdRawMutex>;

fn breaker(failures: u32) -> Breaker {
    let config = BreakerConfig::new()
        .open_duration(S(30))
        .permitted_calls_in_half_open(1)
        .minimum_calls(1);
    CircuitBreaker::new(config, ConsecutiveWindow::new(failures).unwrap()).unwrap()
}

fn policy(attempts: u32, wait: Duration) -> RetryPolicy<Constant> {
    RetryPolicy::new(Constant::new(wait), attempts, fastrand::Rng::with_seed(11)).unwrap()
}

fn bucket(
    clock: TokioClock,
    per_second: u32,
) -> RateLimitQueue<WithClock<TokenBucket, TokioClock>> {
    RateLimitQueue::new(
        WithClock::new(
            TokenBucket::new(Quota::per_second(per_second).unwrap()),
            clock,
        ),
        clock,
    )
}

#[tokio::test(start_paused = true)]
async fn an_empty_pipeline_runs_the_operation_once() {
    let pipeline = Pipeline::new(TokioClock::starting_now());
    assert_eq!(
        pipeline.call(|a| async move { Ok::<_, ()>(a) }).await,
        Ok(1)
    );
    let err = pipeline
        .call(|_| async { Err::<(), _>("no") })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PipelineError::GaveUp {
            last: AttemptError::Operation("no"),
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 1
        }
    );
    assert_eq!(err.layer(), Layer::Retry);
}

#[tokio::test(start_paused = true)]
async fn the_overall_timeout_cancels_the_call() {
    let clock = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock).overall_timeout(MS(1500));
    let err = pipeline
        .call(|_| async {
            tokio::time::sleep(S(60)).await;
            Ok::<(), ()>(())
        })
        .await
        .unwrap_err();
    assert_eq!(err, PipelineError::Timeout);
    assert_eq!(
        (err.layer(), err.retry_after()),
        (Layer::OverallTimeout, None)
    );
    assert_eq!(clock.now(), Instant::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_refuses_with_the_limiters_wait() {
    let clock = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock)
        .overall_timeout(MS(400))
        .rate_limit(bucket(clock, 2));
    let ok = || async { Ok::<_, ()>(()) };
    assert!(pipeline.call(|_| ok()).await.is_ok());
    assert!(pipeline.call(|_| ok()).await.is_ok());
    // The next permit is 500 ms away, past the 400 ms budget: refused at once.
    let err = pipeline.call(|_| ok()).await.unwrap_err();
    assert!(matches!(
        err,
        PipelineError::RateLimited(RateLimitError::Denied(_))
    ));
    assert_eq!(
        (err.layer(), err.retry_after()),
        (Layer::RateLimit, Some(MS(500)))
    );
    assert_eq!(clock.now(), Instant::ZERO);
    // 200 ms later the wait (300 ms) fits the budget: the call waits and goes.
    tokio::time::sleep(MS(200)).await;
    assert!(pipeline.call(|_| ok()).await.is_ok());
    assert_eq!(clock.now(), Instant::from_millis(500));

    // More permits per call than the burst: never, at once.
    let heavy = Pipeline::new(clock)
        .rate_limit(bucket(clock, 2))
        .permits_per_call(3);
    let err = heavy.call(|_| ok()).await.unwrap_err();
    assert!(matches!(
        err,
        PipelineError::RateLimited(RateLimitError::InsufficientCapacity(_))
    ));
    assert_eq!(err.retry_after(), None);
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_refuses_when_full_and_its_line_too() {
    let clock = TokioClock::starting_now();
    let pipeline = Arc::new(
        Pipeline::new(clock)
            .overall_timeout(S(5))
            .bulkhead(BulkheadQueue::new(1, 1, clock).unwrap()),
    );
    let slow = {
        let p = Arc::clone(&pipeline);
        tokio::spawn(async move {
            p.call(|_| async {
                tokio::time::sleep(S(3)).await;
                Ok::<_, ()>(1)
            })
            .await
        })
    };
    tokio::task::yield_now().await;
    let waiting = {
        let p = Arc::clone(&pipeline);
        tokio::spawn(async move { p.call(|_| async { Ok::<_, ()>(2) }).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(pipeline.bulkhead_queue().unwrap().waiting(), 1);
    // A third caller finds the slot taken and the line full.
    let err = pipeline
        .call(|_| async { Ok::<_, ()>(3) })
        .await
        .unwrap_err();
    assert_eq!(err.layer(), Layer::Bulkhead);
    let PipelineError::BulkheadFull(full) = err else {
        unreachable!()
    };
    assert_eq!((full.in_use(), full.max_concurrent()), (1, 1));
    assert_eq!(slow.await.unwrap(), Ok(1));
    assert_eq!(waiting.await.unwrap(), Ok(2));
    assert_eq!(clock.now(), Instant::from_secs(3));

    // A wait that the deadline ends: refused at the deadline, as the bulkhead's.
    let hog = pipeline
        .bulkhead_queue()
        .unwrap()
        .acquire(Deadline::NEVER)
        .await
        .unwrap();
    let err = pipeline
        .call(|_| async { Ok::<_, ()>(4) })
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::BulkheadFull(_)));
    assert_eq!(clock.now(), Instant::from_secs(8));
    drop(hog);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_refuses_the_first_attempt_with_its_wait() {
    let clock = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock).circuit_breaker(breaker(2));
    for _ in 0..2 {
        let _ = pipeline.call(|_| async { Err::<(), _>("down") }).await;
    }
    assert_eq!(pipeline.breaker().unwrap().state(), State::Open);
    tokio::time::sleep(S(10)).await;
    let ran = Cell::new(false);
    let err = pipeline
        .call(|_| async {
            ran.set(true);
            Ok::<(), &str>(())
        })
        .await
        .unwrap_err();
    assert!(!ran.get());
    assert!(matches!(err, PipelineError::CircuitOpen(r) if r.state == State::Open));
    assert_eq!(err.layer(), Layer::CircuitBreaker);
    assert_eq!(err.retry_after(), Some(S(20) + Duration::from_nanos(1)));

    // After the open duration a probe goes through and closes it.
    tokio::time::sleep(err.retry_after().unwrap()).await;
    assert_eq!(pipeline.call(|_| async { Ok::<_, ()>(5) }).await, Ok(5));
    assert_eq!(pipeline.breaker().unwrap().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_that_opens_during_the_retries_stops_them() {
    let clock = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock)
        .circuit_breaker(Arc::new(breaker(2)))
        .retry(policy(5, S(1)));
    let calls = Cell::new(0);
    let err = pipeline
        .call(|_| async {
            calls.set(calls.get() + 1);
            Err::<(), _>("down")
        })
        .await
        .unwrap_err();
    // Attempts at 0 s and 1 s fail and open the breaker; the third, at 2 s, is refused.
    assert_eq!(calls.get(), 2);
    let PipelineError::GaveUp {
        last: AttemptError::CircuitOpen(rejected),
        reason,
        attempts,
    } = err
    else {
        panic!("expected the breaker to stop the retries, got {err:?}")
    };
    assert_eq!((reason, attempts), (GiveUpReason::Permanent, 2));
    assert_eq!(rejected.state, State::Open);
    assert_eq!(clock.now(), Instant::from_secs(2));
    assert_eq!(err.layer(), Layer::Retry);
    assert_eq!(err.retry_after(), Some(S(29) + Duration::from_nanos(1)));
}

#[tokio::test(start_paused = true)]
async fn retries_pass_the_attempt_number_and_give_up_on_attempts_or_deadline() {
    let clock = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock).retry(policy(4, MS(250)));
    let seen = std::sync::Mutex::new(Vec::new());
    let result = pipeline
        .call(|attempt| {
            seen.lock()
                .unwrap()
                .push((attempt, clock.now().as_millis()));
            async move {
                if attempt < 3 {
                    Err(attempt)
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
    assert_eq!(result, Ok(3));
    assert_eq!(*seen.lock().unwrap(), [(1, 0), (2, 250), (3, 500)]);

    let err = pipeline
        .call(|a| async move { Err::<(), _>(a) })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PipelineError::GaveUp {
            last: AttemptError::Operation(4),
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 4
        }
    );
    assert_eq!(err.operation_error(), Some(&4));

    // With an overall budget of 2 s and waits of 800 ms: attempts at +0, +0.8, +1.6 s;
    // the next wait would end at the deadline, so the policy gives up (never oversleeps).
    let start = clock.now();
    let bounded = Pipeline::new(clock)
        .overall_timeout(S(2))
        .retry(policy(10, MS(800)));
    let err = bounded
        .call(|_| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PipelineError::GaveUp {
            reason: GiveUpReason::Deadline,
            attempts: 3,
            ..
        }
    ));
    assert_eq!(clock.now(), start + MS(1600));
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempts_are_failures_the_breaker_sees_and_the_retry_retries() {
    let clock = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock)
        .circuit_breaker(breaker(10))
        .retry(policy(3, MS(100)))
        .attempt_timeout(MS(500));
    let err = pipeline
        .call(|_| async {
            tokio::time::sleep(S(60)).await;
            Ok::<(), ()>(())
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PipelineError::GaveUp {
            last: AttemptError::Timeout,
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 3
        }
    );
    // 3 x 500 ms attempts and 2 x 100 ms waits.
    assert_eq!(clock.now(), Instant::from_millis(1700));
    let metrics = pipeline.breaker().unwrap().metrics_at(clock.now());
    assert_eq!(metrics.failures, 3);
}

#[tokio::test(start_paused = true)]
async fn an_ok_classified_transient_is_returned_after_the_retries() {
    let clock = TokioClock::starting_now();
    let status = |r: &Result<u16, ()>| match r {
        Ok(503) => Verdict::Transient,
        _ => Verdict::Success,
    };
    let pipeline = Pipeline::new(clock).retry(policy(2, S(1)).with_classifier(status));
    assert_eq!(pipeline.call(|_| async { Ok(503) }).await, Ok(503));
    assert_eq!(clock.now(), Instant::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn every_layer_together_in_order() {
    let clock = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock)
        .overall_timeout(S(10))
        .rate_limit(bucket(clock, 1))
        .bulkhead(BulkheadQueue::new(4, 4, clock).unwrap())
        .circuit_breaker(breaker(5))
        .retry(policy(3, MS(200)))
        .attempt_timeout(S(1));
    // Two calls: the second waits 1 s for the rate limit; each retries once.
    for expected_start in [0, 1000] {
        let first = Cell::new(None);
        let r = pipeline
            .call(|attempt| {
                first.set(first.get().or(Some(clock.now().as_millis())));
                async move {
                    if attempt == 1 {
                        Err("flaky")
                    } else {
                        Ok(attempt)
                    }
                }
            })
            .await;
        assert_eq!(r, Ok(2));
        assert_eq!(first.get(), Some(expected_start));
    }
    assert_eq!(clock.now(), Instant::from_millis(1200));
    let bulkhead = pipeline.bulkhead_queue().unwrap().bulkhead();
    assert_eq!(bulkhead.in_use(), 0);
    assert_eq!(pipeline.rate_limiter().unwrap().waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_per_attempt_makes_every_retry_take_quota() {
    let clock = TokioClock::starting_now();
    // Burst 2, one permit per 500 ms; three attempts 100 ms apart.
    let pipeline = Pipeline::new(clock)
        .rate_limit(bucket(clock, 2))
        .rate_limit_per_attempt()
        .retry(policy(3, MS(100)));
    let seen = std::sync::Mutex::new(Vec::new());
    let err = pipeline
        .call(|attempt| {
            seen.lock()
                .unwrap()
                .push((attempt, clock.now().as_millis()));
            async { Err::<(), _>("down") }
        })
        .await
        .unwrap_err();
    // Attempts 1 and 2 take the burst; attempt 3 waits for the next permit, at 500 ms
    // (not 200 ms, when its backoff ended).
    assert_eq!(*seen.lock().unwrap(), [(1, 0), (2, 100), (3, 500)]);
    assert!(matches!(err, PipelineError::GaveUp { attempts: 3, .. }));

    // The default order takes one permit per call, whatever the retries.
    let per_call = Pipeline::new(clock)
        .rate_limit(bucket(clock, 2))
        .retry(policy(3, MS(100)));
    let start = clock.now();
    let _ = per_call.call(|_| async { Err::<(), _>("down") }).await;
    let _ = per_call.call(|_| async { Err::<(), _>("down") }).await;
    assert_eq!(clock.now(), start + MS(400));
}

#[tokio::test(start_paused = true)]
async fn a_full_pipeline_is_shared_across_spawned_tasks() {
    let clock = TokioClock::starting_now();
    let pipeline = Arc::new(
        Pipeline::new(clock)
            .overall_timeout(S(10))
            .rate_limit(bucket(clock, 100))
            .bulkhead(BulkheadQueue::new(2, 8, clock).unwrap())
            .circuit_breaker(Arc::new(breaker(5)))
            .retry(policy(2, MS(10)))
            .attempt_timeout(S(1)),
    );
    // `tokio::spawn` needs the call's future to be `Send + 'static`.
    let tasks: Vec<_> = (0..6u64)
        .map(|i| {
            let p = Arc::clone(&pipeline);
            tokio::spawn(async move {
                p.call(move |_| async move {
                    tokio::time::sleep(MS(100)).await;
                    Ok::<_, ()>(i)
                })
                .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().unwrap());
    }
    assert_eq!(results, [0, 1, 2, 3, 4, 5]);
    // Two at a time through the bulkhead: three rounds of 100 ms.
    assert_eq!(clock.now(), Instant::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_cut_by_the_overall_timeout_records_nothing_in_the_breaker() {
    let clock = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock)
        .overall_timeout(S(1))
        .circuit_breaker(breaker(1));
    let err = pipeline
        .call(|_| async {
            tokio::time::sleep(S(5)).await;
            Ok::<(), ()>(())
        })
        .await
        .unwrap_err();
    assert_eq!(err, PipelineError::Timeout);
    // A window of one failure would have opened on a recorded failure: nothing was
    // recorded, the attempt was cancelled.
    let cb = pipeline.breaker().unwrap();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.metrics_at(clock.now()).failures, 0);

    // Cut by the per-attempt timeout instead, the same attempt is a failure: it opens.
    let per_attempt = Pipeline::new(clock)
        .circuit_breaker(breaker(1))
        .attempt_timeout(S(1));
    let err = per_attempt
        .call(|_| async {
            tokio::time::sleep(S(5)).await;
            Ok::<(), ()>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PipelineError::GaveUp {
            last: AttemptError::Timeout,
            ..
        }
    ));
    assert_eq!(per_attempt.breaker().unwrap().state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn queues_read_deadlines_on_the_pipelines_clock() {
    let clock = TokioClock::starting_now();
    tokio::time::advance(S(100)).await;
    // A queue built on another clock (epoch 100 s later) still agrees with the
    // pipeline's deadlines: the limiter's 1 s wait passes the 400 ms budget, so the
    // call is refused at once, not cut by the overall timeout after waiting.
    let other = TokioClock::starting_now();
    let pipeline = Pipeline::new(clock)
        .overall_timeout(MS(400))
        .rate_limit(bucket(other, 1));
    assert!(pipeline.call(|_| async { Ok::<_, ()>(()) }).await.is_ok());
    let err = pipeline
        .call(|_| async { Ok::<_, ()>(()) })
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(S(1)));
    assert_eq!(clock.now(), Instant::from_secs(100));
}
