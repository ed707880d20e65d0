//! Timeouts: a peripheral that hangs is cut off at the timeout; one that answers in time
//! is not.

use core::time::Duration;

use stanchion::Clock;
use stanchion_embassy::{Elapsed, EmbassyClock, timeout};

use super::LATE;
use super::peripheral::{Fault, Flaky};
use crate::ensure;
use crate::report::Outcome;

/// One call, bounded by 10 ms (compiled once for both uses).
async fn read_within_10ms(device: &Flaky) -> Result<Result<u32, Fault>, Elapsed> {
    timeout(Duration::from_millis(10), device.read()).await
}

/// A hung call ends with `Elapsed` after 10 ms (not before); a 2 ms call within a 10 ms
/// timeout returns its answer.
pub async fn run() -> Outcome {
    let device = Flaky::new(0, 0b01, 2);
    let start = EmbassyClock.now();
    let hung = read_within_10ms(&device).await;
    let took = EmbassyClock.now() - start;
    ensure!(hung == Err(Elapsed), "a hung call did not time out");
    ensure!(took >= Duration::from_millis(10), "timed out early");
    ensure!(took <= Duration::from_millis(10) + LATE, "timed out late");

    let start = EmbassyClock.now();
    let answer = read_within_10ms(&device).await;
    let took = EmbassyClock.now() - start;
    ensure!(answer == Ok(Ok(1)), "a call in time lost its answer");
    ensure!(
        took >= Duration::from_millis(2),
        "the call took less than its latency"
    );
    ensure!(
        took <= Duration::from_millis(2) + LATE,
        "the call came back late"
    );
    Ok(())
}
