//! `breaker::call` and the `Pipeline` on embassy-time's mock driver: what each layer
//! refuses, in core's order, with core's `PipelineError`, at exact ticks. The driver is
//! global: one test runs the steps in order.

mod common;

use core::cell::Cell;
use core::future::pending as never;
use core::num::NonZeroU32;
use core::pin::pin;
use core::time::Duration;

use common::*;
use stanchion::breaker::{
    BreakerConfig, CircuitBreaker, Rejected, State, window::ConsecutiveWindow,
};
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::rate::{Denied, Quota, RateLimitError, TokenBucket};
use stanchion::retry::{Constant, GiveUpReason, RetryPolicy, Verdict};
use stanchion::sync::NoopRawMutex;
use stanchion_embassy::{BreakerError, BulkheadQueue, Pipeline, RateLimitQueue, breaker};

type Breaker = CircuitBreaker<ConsecutiveWindow, NoopRawMutex>;

/// Opens after `failures` failures in a row, for 100 ms; one probe in half-open.
fn breaker(failures: u32) -> Breaker {
    let config = BreakerConfig::new()
        .open_duration(Duration::from_millis(100))
        .permitted_calls_in_half_open(1)
        .minimum_calls(1);
    CircuitBreaker::new(config, ConsecutiveWindow::new(failures).unwrap()).unwrap()
}

fn constant(ms: u64, attempts: u32) -> RetryPolicy<Constant> {
    RetryPolicy::new(
        Constant::new(Duration::from_millis(ms)),
        attempts,
        fastrand::Rng::with_seed(5),
    )
    .unwrap()
}

#[test]
fn breaker_and_pipeline_on_the_mock_driver() {
    reset();
    breaker_call_holds_the_permit_across_the_await();
    reset();
    pipeline_retries_and_succeeds();
    reset();
    each_layer_refuses_in_order();
    reset();
    a_breaker_that_opens_stops_the_retries();
    reset();
    attempt_and_overall_timeouts();
    reset();
    the_classifier_decides_what_to_retry();
    reset();
    a_window_sized_at_run_time();
}

fn breaker_call_holds_the_permit_across_the_await() {
    let b = breaker(2);
    for _ in 0..2 {
        let r: Result<(), _> = ready(pin!(breaker::call(&b, || async { Err("down") })).as_mut());
        assert_eq!(r, Err(BreakerError::Operation("down")));
    }
    assert_eq!(b.state(), State::Open);
    let ran = Cell::new(false);
    advance_to(40 * MS);
    let r = ready(
        pin!(breaker::call(&b, || async {
            ran.set(true);
            Ok::<_, ()>(())
        }))
        .as_mut(),
    );
    assert_eq!(
        r,
        Err(BreakerError::Rejected(Rejected {
            retry_after: Some(Duration::from_nanos(60 * 1_000_000 + 1)),
            state: State::Open
        }))
    );
    assert!(!ran.get(), "a rejected call ran");
    // Strictly after the open duration: one probe, held across its await.
    advance_to(100 * MS + 1);
    {
        let mut probe = Box::pin(breaker::call(&b, never::<Result<(), ()>>));
        pending(probe.as_mut());
        assert_eq!(b.state(), State::HalfOpen);
        let second = ready(pin!(breaker::call(&b, || async { Ok::<_, ()>(()) })).as_mut());
        assert!(matches!(second, Err(BreakerError::Rejected(_))));
        // Dropped mid-call: records nothing, gives the slot back.
    }
    assert_eq!(b.state(), State::HalfOpen);
    let mut probe = pin!(breaker::call(&b, || async {
        embassy_time::Timer::after_millis(5).await;
        Ok::<_, ()>(7)
    }));
    pending(probe.as_mut());
    assert_eq!(ready_at(probe.as_mut(), 105 * MS + 1), Ok(7));
    assert_eq!(b.state(), State::Closed);
}

/// A breaker over a time window whose bucket count is read at start (`TimeWindowUpTo`):
/// one second in 2 buckets of 500 ms; two failures in the window open it.
fn a_window_sized_at_run_time() {
    use stanchion::breaker::window::TimeWindowUpTo;

    let buckets: u32 = "2".parse().unwrap(); // as read from a configuration
    let window = TimeWindowUpTo::<60>::new(Duration::from_secs(1), buckets).unwrap();
    let config = BreakerConfig::new()
        .open_duration(Duration::from_millis(100))
        .failure_rate_threshold(50)
        .minimum_calls(2);
    let b: CircuitBreaker<TimeWindowUpTo<60>, NoopRawMutex> =
        CircuitBreaker::new(config, window).unwrap();
    let fail = || ready(pin!(breaker::call(&b, || async { Err::<(), _>("down") })).as_mut());
    advance_to(450 * MS);
    assert_eq!(fail(), Err(BreakerError::Operation("down")));
    // At 1 020 ms the bucket of 0..500 ms has left the window (in 10 buckets of 100 ms,
    // the one of 400..500 ms would still be in): one failure, below the minimum.
    advance_to(1_020 * MS);
    assert_eq!(fail(), Err(BreakerError::Operation("down")));
    assert_eq!(b.state(), State::Closed);
    advance_to(1_030 * MS);
    assert_eq!(fail(), Err(BreakerError::Operation("down")));
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        fail(),
        Err(BreakerError::Rejected(Rejected {
            retry_after: Some(Duration::from_nanos(100 * 1_000_000 + 1)),
            state: State::Open
        }))
    );
}

fn pipeline_retries_and_succeeds() {
    let b = breaker(5);
    let pipeline = Pipeline::new()
        .breaker(&b)
        .overall_timeout(Duration::from_millis(100));
    let mut policy = constant(10, 3);
    let calls = Cell::new(0);
    let mut call = pin!(pipeline.call(&mut policy, |attempt| {
        calls.set(calls.get() + 1);
        async move {
            if attempt < 3 {
                Err("glitch")
            } else {
                Ok(attempt * 10)
            }
        }
    }));
    pending(call.as_mut());
    assert!(wake_at(call.as_mut(), 10 * MS).is_pending());
    assert_eq!(ready_at(call.as_mut(), 20 * MS), Ok(30));
    assert_eq!(calls.get(), 3);
    // Two failures, then a success: the consecutive window is back to zero.
    assert_eq!(
        b.metrics_at(stanchion::Instant::from_millis(20)).failures,
        0
    );
}

fn each_layer_refuses_in_order() {
    let limiter: RateLimitQueue<NoopRawMutex, TokenBucket, 2> = RateLimitQueue::new(
        TokenBucket::new(Quota::per_period(Duration::from_millis(50)).unwrap()),
    );
    let pool: BulkheadQueue<NoopRawMutex, 0> = BulkheadQueue::new(NonZeroU32::MIN);
    let b = breaker(1);
    let pipeline = Pipeline::new()
        .overall_timeout(Duration::from_millis(30))
        .rate_limit(&limiter)
        .bulkhead(&pool)
        .breaker(&b);
    let calls = Cell::new(0);
    let op = |_| {
        calls.set(calls.get() + 1);
        async { Err::<(), _>("boom") }
    };

    // 1. Allowed through every layer; the breaker trips on the failure.
    let r = ready(pin!(pipeline.call(&mut constant(1, 1), op)).as_mut());
    assert_eq!(
        r,
        Err(PipelineError::GaveUp {
            last: AttemptError::Operation("boom"),
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 1
        })
    );
    assert_eq!((r.unwrap_err().layer(), calls.get()), (Layer::Retry, 1));
    assert_eq!(b.state(), State::Open);

    // 2. The rate limiter refuses first: its wait (50 ms) passes the deadline (30 ms).
    let r = ready(pin!(pipeline.call(&mut constant(1, 1), op)).as_mut());
    assert_eq!(
        r,
        Err(PipelineError::RateLimited(RateLimitError::Denied(
            Denied::new(Duration::from_millis(50))
        )))
    );
    assert_eq!(r.unwrap_err().layer(), Layer::RateLimit);

    // 3. At 50 ms the rate limit admits; the bulkhead (held elsewhere, no queue) refuses.
    advance_to(50 * MS);
    let held = pool.bulkhead().try_acquire().unwrap();
    let r = ready(pin!(pipeline.call(&mut constant(1, 1), op)).as_mut());
    let Err(PipelineError::BulkheadFull(full)) = r else {
        panic!("{r:?}")
    };
    assert_eq!((full.in_use(), full.max_concurrent()), (1, 1));
    drop(held);

    // 4. At 100 ms: rate limit and bulkhead admit; the open breaker refuses, op not run.
    advance_to(100 * MS);
    let r = ready(pin!(pipeline.call(&mut constant(1, 1), op)).as_mut());
    let Err(PipelineError::CircuitOpen(rejected)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(rejected.state, State::Open);
    assert_eq!(r.unwrap_err().retry_after(), rejected.retry_after);
    assert_eq!(calls.get(), 1);
    assert_eq!(pool.bulkhead().in_use(), 0);
}

fn a_breaker_that_opens_stops_the_retries() {
    let b = breaker(2);
    let pipeline = Pipeline::new().breaker(&b);
    let mut policy = constant(10, 5);
    let mut call = pin!(pipeline.call(&mut policy, |_| async { Err::<(), _>("down") }));
    pending(call.as_mut());
    // Attempt 2 at 10 ms fails and trips the breaker; attempt 3 at 20 ms is refused.
    assert!(wake_at(call.as_mut(), 10 * MS).is_pending());
    let r = ready_at(call.as_mut(), 20 * MS);
    assert_eq!(
        r,
        Err(PipelineError::GaveUp {
            last: AttemptError::CircuitOpen(Rejected {
                retry_after: Some(Duration::from_nanos(90 * 1_000_000 + 1)),
                state: State::Open
            }),
            reason: GiveUpReason::Permanent,
            // Two attempts ran; the refused third did not.
            attempts: 2
        })
    );
    assert_eq!(
        r.unwrap_err().retry_after(),
        Some(Duration::from_nanos(90_000_001))
    );
}

fn attempt_and_overall_timeouts() {
    let b = breaker(5);
    // Each attempt times out at 5 ms and is retried 10 ms later; two attempts.
    let pipeline = Pipeline::new()
        .breaker(&b)
        .attempt_timeout(Duration::from_millis(5));
    let mut policy = constant(10, 2);
    let mut call = pin!(pipeline.call(&mut policy, |_| never::<Result<(), ()>>()));
    pending(call.as_mut());
    assert!(wake_at(call.as_mut(), 5 * MS).is_pending());
    assert!(wake_at(call.as_mut(), 15 * MS).is_pending());
    assert_eq!(
        ready_at(call.as_mut(), 20 * MS),
        Err(PipelineError::GaveUp {
            last: AttemptError::Timeout,
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 2
        })
    );
    // Both timeouts were failures for the breaker.
    assert_eq!(
        b.metrics_at(stanchion::Instant::from_millis(20)).failures,
        2
    );

    // The overall deadline (12 ms) comes before the attempt's (20 ms): a timeout, and
    // the dropped attempt's permit records nothing.
    let start = now();
    let pipeline = Pipeline::new()
        .breaker(&b)
        .overall_timeout(Duration::from_millis(12))
        .attempt_timeout(Duration::from_millis(20));
    let mut policy = constant(1, 5);
    let mut call = pin!(pipeline.call(&mut policy, |_| never::<Result<(), ()>>()));
    pending(call.as_mut());
    assert_eq!(
        ready_at(call.as_mut(), start + 12 * MS),
        Err(PipelineError::Timeout)
    );
    assert_eq!(
        b.metrics_at(stanchion::Instant::from_millis(40)).failures,
        2
    );
    assert_eq!(PipelineError::<()>::Timeout.layer(), Layer::ORDER[0]);
}

fn the_classifier_decides_what_to_retry() {
    // An `Ok(503)` is transient: retried, and returned as it is once the policy gives up;
    // an `Err(404)` is permanent: not retried.
    let http = |outcome: &Result<u16, u16>| match outcome {
        Ok(200) => Verdict::Success,
        Ok(503) => Verdict::Transient,
        _ => Verdict::Permanent,
    };
    let pipeline = Pipeline::new();
    let mut policy = constant(10, 2).with_classifier(http);
    let calls = Cell::new(0);
    let mut call = pin!(pipeline.call(&mut policy, |_| {
        calls.set(calls.get() + 1);
        async { Ok(503) }
    }));
    pending(call.as_mut());
    assert_eq!(ready_at(call.as_mut(), 10 * MS), Ok(503));
    assert_eq!(calls.get(), 2);
    let mut policy = constant(10, 5).with_classifier(http);
    let r = ready(pin!(pipeline.call(&mut policy, |_| async { Err(404) })).as_mut());
    assert_eq!(
        r,
        Err(PipelineError::GaveUp {
            last: AttemptError::Operation(404),
            reason: GiveUpReason::Permanent,
            attempts: 1
        })
    );
}
