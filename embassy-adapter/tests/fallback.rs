//! The pipeline's fallback on embassy-time's mock driver. The driver is global: one test
//! runs the steps in order.

mod common;

use core::time::Duration;

use common::*;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
use stanchion::fallback::FallbackOn;
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::retry::{Constant, GiveUpReason, RetryPolicy};
use stanchion::sync::NoopRawMutex;
use stanchion_embassy::Pipeline;

#[test]
fn fallback_on_the_mock_driver() {
    reset();
    // A breaker that opens after two failures in a row, for 1 s.
    let config = BreakerConfig::new()
        .open_duration(Duration::from_secs(1))
        .minimum_calls(1);
    let breaker: CircuitBreaker<ConsecutiveWindow, NoopRawMutex> =
        CircuitBreaker::new(config, ConsecutiveWindow::new(2).unwrap()).unwrap();
    let pipeline = Pipeline::new().breaker(&breaker);
    let mut policy = RetryPolicy::new(
        Constant::new(Duration::from_millis(10)),
        2,
        fastrand::Rng::with_seed(3),
    )
    .unwrap();

    // Two failed attempts 10 ms apart open the breaker; the call gave up, and only
    // refusals are covered: the error goes through as it was.
    let start = now();
    let gave_up = run(
        pipeline.call_or_else(
            &mut policy,
            |_| async { Err::<u32, _>("down") },
            FallbackOn::REFUSALS,
            |_| async { unreachable!("not covered") },
        ),
        1_000 * MS,
    );
    assert_eq!(
        gave_up,
        Err(PipelineError::GaveUp {
            last: AttemptError::Operation("down"),
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 2,
        })
    );
    assert_eq!(now() - start, 10 * MS);

    // Open: the next call is refused at once and answered by the fallback, which sees the
    // refusal and the time left.
    let mut seen = None;
    let answered = run(
        pipeline.call_or_else(
            &mut policy,
            |_| async { Ok::<u32, &str>(1) },
            FallbackOn::REFUSALS,
            |refused| {
                seen = Some(refused);
                async { 7 }
            },
        ),
        0,
    );
    assert_eq!(answered, Ok(7));
    let seen = seen.unwrap();
    assert_eq!(seen.layer(), Layer::CircuitBreaker);
    assert_eq!(
        seen.retry_after(),
        Some(Duration::from_secs(1) + Duration::from_nanos(1))
    );

    // The fallback runs outside the call: its own wait is not bounded by anything of it.
    let start = now();
    let waited = run(
        pipeline.call_or_else(
            &mut policy,
            |_| async { Ok::<u32, &str>(1) },
            FallbackOn::REFUSALS,
            |_| async {
                embassy_time::Timer::after_millis(50).await;
                9
            },
        ),
        1_000 * MS,
    );
    assert_eq!(waited, Ok(9));
    assert_eq!(now() - start, 50 * MS);
}
