//! Fault injection over tokio (`stanchion_std::fault`) and as the pipeline's innermost
//! position, on tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use stanchion::breaker::{BreakerConfig, CircuitBreaker, State, window::ConsecutiveWindow};
use stanchion::fault::{Fault, FaultInjector, Share};
use stanchion::pipeline::{AttemptError, PipelineError};
use stanchion::retry::{Constant, GiveUpReason, RetryPolicy};
use stanchion_std::fault::FaultInjection;
use stanchion_std::{Pipeline, StdRawMutex, TokioClock};
use tokio::time::Instant;

fn injection(
    share: Share,
    fault: Fault<u32, &'static str>,
    seed: u64,
) -> FaultInjection<u32, &'static str> {
    FaultInjection::new(
        FaultInjector::new(share),
        fault,
        fastrand::Rng::with_seed(seed),
    )
}

/// Runs `n` calls through `faults`, each answering its number; returns the numbers of
/// the calls that did not get their own answer, and how many times the operation ran.
async fn run(faults: &FaultInjection<u32, &'static str>, n: u32) -> (Vec<u32>, u32) {
    let ran = AtomicU32::new(0);
    let mut hit = Vec::new();
    for i in 0..n {
        let result = faults
            .call(|| async {
                ran.fetch_add(1, Ordering::Relaxed);
                Ok(i)
            })
            .await;
        if result != Ok(i) {
            hit.push(i);
        }
    }
    (hit, ran.into_inner())
}

#[tokio::test(start_paused = true)]
async fn a_seed_picks_the_same_calls_and_an_injected_error_skips_the_operation() {
    let faults = injection(Share::percent(10).unwrap(), Fault::Error("injected"), 42);
    let (hit, ran) = run(&faults, 50).await;
    // The calls core's decision picks with seed 42 (its own test has the same list):
    // the generator's draws are the caller's, one per call.
    assert_eq!(hit, [3, 25, 28, 36, 42]);
    assert_eq!(ran, 45, "an injected error does not run the operation");
    assert_eq!(
        faults.call(|| async { Ok(0) }).await,
        Ok(0),
        "call 50 is not picked"
    );
}

#[tokio::test(start_paused = true)]
async fn the_share_holds_over_many_calls() {
    // 2.5% of 100,000: 2,500 expected (standard deviation 49); seed 7 gives 2,478, as
    // core's decision does.
    let faults = injection(
        Share::basis_points(250).unwrap(),
        Fault::Outcome(u32::MAX),
        7,
    );
    let (hit, ran) = run(&faults, 100_000).await;
    assert_eq!(hit.len(), 2_478);
    assert_eq!(
        ran,
        100_000 - 2_478,
        "an injected outcome does not run the operation"
    );
}

#[tokio::test(start_paused = true)]
async fn injected_latency_is_added_exactly_to_the_picked_calls() {
    let faults = injection(
        Share::percent(25).unwrap(),
        Fault::Latency(Duration::from_millis(200)),
        7,
    );
    let mut took = Vec::new();
    for i in 0..8 {
        let start = Instant::now();
        assert_eq!(faults.call(|| async move { Ok(i) }).await, Ok(i));
        took.push(start.elapsed().as_millis());
    }
    assert_eq!(took, [0, 200, 0, 0, 200, 200, 0, 200]);
    // The reference: seed 7's draws over a million, below 250,000.
    let mut rng = fastrand::Rng::with_seed(7);
    let picked: Vec<u128> = (0..8)
        .map(|_| {
            if rng.u64(0..1_000_000) < 250_000 {
                200
            } else {
                0
            }
        })
        .collect();
    assert_eq!(took, picked);
}

#[tokio::test(start_paused = true)]
async fn switched_off_mid_run_nothing_is_injected_after() {
    let faults = Arc::new(injection(
        Share::ALL,
        Fault::Latency(Duration::from_secs(1)),
        1,
    ));
    let start = Instant::now();
    // A task switches the injection off at t = 4.5 s, during the fifth call's latency.
    let switch = Arc::clone(&faults);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        switch.injector().set_enabled(false);
    });
    let mut ends = Vec::new();
    for i in 0..8 {
        faults.call(|| async move { Ok(i) }).await.unwrap();
        ends.push(start.elapsed().as_millis());
    }
    // Calls 1 to 5 were picked before the switch (the fifth keeps its latency); none after.
    assert_eq!(
        ends,
        [1_000, 2_000, 3_000, 4_000, 5_000, 5_000, 5_000, 5_000]
    );
    assert!(!faults.injector().is_enabled());
    // Back on, with another fault: injected again.
    faults.set_fault(Fault::Error("back"));
    faults.injector().set_enabled(true);
    assert_eq!(faults.call(|| async { Ok(9) }).await, Err("back"));
}

fn breaker() -> CircuitBreaker<ConsecutiveWindow, StdRawMutex> {
    CircuitBreaker::new(
        BreakerConfig::new().open_duration(Duration::from_secs(30)),
        ConsecutiveWindow::new(3).unwrap(),
    )
    .unwrap()
}

fn policy() -> RetryPolicy<Constant> {
    RetryPolicy::new(
        Constant::new(Duration::from_millis(100)),
        3,
        fastrand::Rng::with_seed(1),
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn in_the_pipeline_every_layer_meets_an_injected_fault_as_the_operations_own() {
    let faults = Arc::new(injection(Share::ALL, Fault::Error("injected"), 3));
    let pipeline = Pipeline::new(TokioClock::new())
        .circuit_breaker(breaker())
        .retry(policy())
        .attempt_timeout(Duration::from_secs(1))
        .fault_injection(Arc::clone(&faults));
    let ran = AtomicU32::new(0);
    let operation = |_attempt: u32| async {
        ran.fetch_add(1, Ordering::Relaxed);
        Ok(7)
    };
    let start = Instant::now();
    // Every attempt fails with the injected error: retried, then given up; the breaker
    // counted three failures and opened.
    assert_eq!(
        pipeline.call(operation).await,
        Err(PipelineError::GaveUp {
            last: AttemptError::Operation("injected"),
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 3,
        })
    );
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(ran.load(Ordering::Relaxed), 0);
    assert_eq!(pipeline.breaker().unwrap().state(), State::Open);
    assert!(matches!(
        pipeline.call(operation).await,
        Err(PipelineError::CircuitOpen(_))
    ));

    // Injected latency beyond the attempt timeout: each attempt times out.
    let slow = Arc::new(injection(
        Share::ALL,
        Fault::Latency(Duration::from_secs(5)),
        3,
    ));
    let pipeline = Pipeline::new(TokioClock::new())
        .retry(policy())
        .attempt_timeout(Duration::from_secs(1))
        .fault_injection(Arc::clone(&slow));
    let start = Instant::now();
    assert_eq!(
        pipeline.call(operation).await,
        Err(PipelineError::GaveUp {
            last: AttemptError::Timeout,
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 3,
        })
    );
    assert_eq!(start.elapsed(), Duration::from_millis(3_200));
    assert_eq!(ran.load(Ordering::Relaxed), 0, "cut during the latency");
    // Switched off: the operation runs, at once.
    slow.injector().set_enabled(false);
    let start = Instant::now();
    assert_eq!(pipeline.call(operation).await, Ok(7));
    assert_eq!(
        (start.elapsed(), ran.load(Ordering::Relaxed)),
        (Duration::ZERO, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn in_the_pipeline_a_picked_attempt_is_retried_and_the_next_one_runs() {
    // Half the attempts are picked (seed 5): the retries get past them.
    let faults = injection(Share::percent(50).unwrap(), Fault::Error("injected"), 5);
    let pipeline = Pipeline::new(TokioClock::new())
        .retry(policy())
        .fault_injection(faults);
    let mut answers = Vec::new();
    for call in 0..6 {
        let result = pipeline
            .call(|attempt| async move { Ok(call * 10 + attempt) })
            .await;
        answers.push(result.map_err(|e| e.to_string()));
    }
    // Calls 0 and 5 got past two injected errors, calls 1 and 2 past one; calls 3 and 4
    // were not picked (the answer is call * 10 + attempt, attempts counted from 1).
    assert_eq!(answers, [Ok(3), Ok(12), Ok(22), Ok(31), Ok(41), Ok(53)]);
}

#[test]
fn a_zero_latency_takes_no_timer() {
    // Every call gets a latency of zero: it runs at once, without tokio's timer (which a
    // zero sleep would take, and which is not there outside a tokio runtime: a sleep
    // polled here would panic).
    let faults = injection(Share::ALL, Fault::Latency(Duration::ZERO), 7);
    let call = std::pin::pin!(faults.call(|| async { Ok::<u32, &str>(5) }));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert_eq!(call.poll(&mut cx), std::task::Poll::Ready(Ok(5)));
}
