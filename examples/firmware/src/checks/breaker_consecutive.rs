//! The circuit breaker over a consecutive window: a success breaks a run of failures; the
//! run that reaches the length opens it; strictly after the open duration one probe
//! decides.

use core::time::Duration;

use embassy_time::Timer;
use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, State};
use stanchion::sync::CriticalSectionRawMutex;
use stanchion_embassy::{BreakerError, breaker};

use crate::ensure;
use crate::report::Outcome;

/// Opens after three failures in a row, for 5 ms; one probe in half-open.
static BREAKER: CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex> =
    match ConsecutiveWindow::new(3) {
        Ok(window) => match CircuitBreaker::new(
            BreakerConfig::new()
                .permitted_calls_in_half_open(1)
                .open_duration(Duration::from_millis(5)),
            window,
        ) {
            Ok(b) => b,
            Err(_) => panic!("bad breaker"),
        },
        Err(_) => panic!("bad window"),
    };

/// One call through the breaker that succeeds when `ok`.
async fn call(ok: bool) -> Result<(), BreakerError<()>> {
    breaker::call(
        &BREAKER,
        || async move { if ok { Ok(()) } else { Err(()) } },
    )
    .await
}

/// Two failures, a success, two failures: still closed; the third in a row opens; a call
/// is rejected; after the open duration a successful probe closes it.
pub async fn run() -> Outcome {
    for ok in [false, false, true, false, false] {
        let _ = call(ok).await;
    }
    ensure!(
        BREAKER.state() == State::Closed,
        "opened without three in a row"
    );
    ensure!(
        call(false).await == Err(BreakerError::Operation(())),
        "a failing call did not fail"
    );
    ensure!(
        BREAKER.state() == State::Open,
        "not open after three in a row"
    );
    ensure!(
        matches!(call(true).await, Err(BreakerError::Rejected(_))),
        "an open breaker let a call through"
    );
    Timer::after_millis(6).await;
    ensure!(call(true).await == Ok(()), "the probe did not go through");
    ensure!(
        BREAKER.state() == State::Closed,
        "not closed after the probe"
    );
    Ok(())
}
