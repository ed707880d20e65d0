//! stanchion-embassy's `defmt` events (feature `log-defmt`): a breaker with
//! `DefmtBreakerListener` that opens and refuses, and a retry that gives up, each log the
//! frames their docs promise, once each. Frames are counted by the logger of
//! `src/defmt_log.rs`.

use core::time::Duration;

use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, FixedOpenDuration, State};
use stanchion::const_config;
use stanchion::retry::{Constant, RetryPolicy};
use stanchion::sync::CriticalSectionRawMutex;
use stanchion_embassy::{BreakerError, DefmtBreakerListener, breaker, retry};

use crate::defmt_log::frames;
use crate::report::{Failure, Outcome};
use crate::{ensure, ensure_eq};

/// A failure naming `what`, with no values.
fn failure(what: &'static str) -> Failure {
    Failure { what, values: None }
}

/// Opens after two failures in a row, for 10 s; logs with `defmt` (as in the listener's
/// docs).
static SENSOR: CircuitBreaker<
    ConsecutiveWindow,
    CriticalSectionRawMutex,
    FixedOpenDuration,
    DefmtBreakerListener,
> = const_config!(CircuitBreaker::from_parts(
    BreakerConfig::new(),
    const_config!(ConsecutiveWindow::new(2)),
    FixedOpenDuration(Duration::from_secs(10)),
    7,
    DefmtBreakerListener::new("sensor"),
));

pub async fn run() -> Outcome {
    let sensor = &SENSOR;
    // Two failures in a row: the threshold (warn) and the transition to open (info).
    let before = frames();
    for _ in 0..2 {
        let failed: Result<(), _> = breaker::call(sensor, || async { Err("down") }).await;
        ensure!(
            failed == Err(BreakerError::Operation("down")),
            "a failure went unrecorded"
        );
    }
    ensure!(sensor.state() == State::Open, "the breaker did not open");
    ensure_eq!(
        u64::from(frames().wrapping_sub(before)),
        2,
        "frames for the threshold and the transition"
    );

    // A refused call: the listener's rejection and `breaker::call`'s refusal (debug each).
    let before = frames();
    let refused: Result<(), BreakerError<&str>> = breaker::call(sensor, || async { Ok(()) }).await;
    ensure!(
        matches!(refused, Err(BreakerError::Rejected(_))),
        "the open breaker let a call through"
    );
    ensure_eq!(
        u64::from(frames().wrapping_sub(before)),
        2,
        "frames for a refused call"
    );

    // Three failed attempts: two retries (debug) and the end (warn).
    let before = frames();
    let Ok(mut policy) = RetryPolicy::new(
        Constant::new(Duration::from_millis(1)),
        3,
        fastrand::Rng::with_seed(1),
    ) else {
        return Err(failure("bad policy"));
    };
    let gave_up = retry(&mut policy, |_| async { Err::<(), _>("busy") }).await;
    ensure!(
        gave_up.map_err(|e| e.attempts) == Err(3),
        "the retry did not give up after three attempts"
    );
    ensure_eq!(
        u64::from(frames().wrapping_sub(before)),
        3,
        "frames for two retries and the end"
    );
    Ok(())
}
