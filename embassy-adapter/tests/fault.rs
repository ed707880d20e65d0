//! `fault::call` and the pipeline's fault position on embassy-time's mock driver. The
//! driver is global: one test runs the steps in order.

mod common;

use core::pin::pin;
use core::time::Duration;

use common::*;
use stanchion::fault::{Fault, FaultInjector, Share};
use stanchion::pipeline::{AttemptError, PipelineError};
use stanchion::retry::{Constant, GiveUpReason, RetryPolicy};
use stanchion_embassy::Pipeline;
use stanchion_embassy::fault::{self, FaultInjection};

#[test]
fn fault_injection_on_the_mock_driver() {
    reset();
    // A seed picks the same calls as core's decision: one draw of the caller's generator
    // per call. An injected error does not run the operation.
    let ten = FaultInjector::new(Share::percent(10).unwrap());
    let error: Fault<u32, &str> = Fault::Error("injected");
    let mut rng = fastrand::Rng::with_seed(42);
    let mut ran = 0;
    let mut failed = Vec::new();
    for n in 0..50 {
        let call = pin!(fault::call(&ten, &error, &mut rng, || {
            ran += 1;
            async move { Ok(n) }
        }));
        match ready(call) {
            Ok(answer) => assert_eq!(answer, n),
            Err(e) => {
                assert_eq!(e, "injected");
                failed.push(n);
            }
        }
    }
    assert_eq!(failed, [3, 25, 28, 36, 42]);
    assert_eq!(ran, 45);

    // Latency: the picked calls wake exactly 200 ms later (seed 7 at 25% picks calls 1,
    // 4, 5 and 7, as in the tokio adapter's test), the others are ready at once.
    let quarter = FaultInjector::new(Share::percent(25).unwrap());
    let slow: Fault<u32, &str> = Fault::Latency(Duration::from_millis(200));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut delayed = Vec::new();
    for n in 0..8 {
        let start = now();
        let mut call = pin!(fault::call(
            &quarter,
            &slow,
            &mut rng,
            || async move { Ok(n) }
        ));
        match poll(call.as_mut()) {
            core::task::Poll::Ready(answer) => assert_eq!(answer, Ok(n)),
            core::task::Poll::Pending => {
                assert_eq!(ready_at(call, start + 200 * MS), Ok(n));
                delayed.push(n);
            }
        }
    }
    assert_eq!(delayed, [1, 4, 5, 7]);

    // A zero latency takes no timer: every call is ready at its first poll.
    let none: Fault<u32, &str> = Fault::Latency(Duration::ZERO);
    let every = FaultInjector::new(Share::ALL);
    let mut rng = fastrand::Rng::with_seed(1);
    for n in 0..4 {
        let call = pin!(fault::call(
            &every,
            &none,
            &mut rng,
            || async move { Ok(n) }
        ));
        assert_eq!(poll(call), core::task::Poll::Ready(Ok(n)));
    }

    // An outcome answers without running; switched off, nothing is injected and nothing
    // is drawn.
    let all = FaultInjector::new(Share::ALL);
    let stale: Fault<u32, &str> = Fault::Outcome(0);
    let mut rng = fastrand::Rng::with_seed(1);
    {
        let call = pin!(fault::call(&all, &stale, &mut rng, || async { Ok(9) }));
        assert_eq!(ready(call), Ok(0));
    }
    all.set_enabled(false);
    let seed = rng.get_seed();
    for _ in 0..10 {
        let call = pin!(fault::call(&all, &stale, &mut rng, || async { Ok(9) }));
        assert_eq!(ready(call), Ok(9));
    }
    assert_eq!(rng.get_seed(), seed);

    // In the pipeline, innermost: injected errors are retried like the operation's own,
    // drawing from the retry policy's generator, and injected latency is cut by the
    // attempt timeout.
    let flaky = FaultInjection::new(
        FaultInjector::new(Share::percent(50).unwrap()),
        Fault::<u32, &str>::Error("injected"),
    );
    let pipeline = Pipeline::new().fault_injection(&flaky);
    let mut policy = RetryPolicy::new(
        Constant::new(Duration::from_millis(100)),
        3,
        fastrand::Rng::with_seed(5),
    )
    .unwrap();
    let mut answers = Vec::new();
    for call in 0..6 {
        let start = now();
        let result = run(
            pipeline.call(
                &mut policy,
                |attempt| async move { Ok(call * 10 + attempt) },
            ),
            1_000 * MS,
        );
        answers.push((result, (now() - start) / MS));
    }
    // The answer is call * 10 + attempt: calls 0 and 5 got past two injected errors (200
    // ms of retries), calls 1 and 2 past one, 3 and 4 were not picked. The same as the
    // tokio pipeline's test with seed 5 (a constant backoff draws nothing, so the
    // policy's generator serves only the injection).
    assert_eq!(
        answers,
        [
            (Ok(3), 200),
            (Ok(12), 100),
            (Ok(22), 100),
            (Ok(31), 0),
            (Ok(41), 0),
            (Ok(53), 200)
        ]
    );

    let stuck = FaultInjection::new(
        FaultInjector::new(Share::ALL),
        Fault::<u32, &str>::Latency(Duration::from_secs(5)),
    );
    let pipeline = Pipeline::new()
        .attempt_timeout(Duration::from_secs(1))
        .fault_injection(&stuck);
    let start = now();
    let result = run(pipeline.call(&mut policy, |_| async { Ok(1) }), 10_000 * MS);
    assert_eq!(
        result,
        Err(PipelineError::GaveUp {
            last: AttemptError::Timeout,
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 3,
        })
    );
    assert_eq!(now() - start, 3_200 * MS);
    stuck.injector().set_enabled(false);
    let start = now();
    let call = pin!(pipeline.call(&mut policy, |_| async { Ok(1) }));
    assert_eq!(ready(call), Ok(1));
    assert_eq!(now(), start);
}
