//! Retry with exponential backoff and full jitter, against the flaky peripheral.

use core::time::Duration;

use stanchion::retry::{Decision, Exponential, GiveUpReason, Jitter, Ratio, RetryPolicy};
use stanchion::{Clock, Instant};
use stanchion_embassy::{EmbassyClock, RetryError, retry};

use super::LATE;
use super::peripheral::{Fault, Flaky};
use crate::report::{Failure, Outcome};
use crate::{ensure, ensure_eq};

fn policy(attempts: u32) -> Option<RetryPolicy<Exponential>> {
    let backoff = Exponential::new(
        Duration::from_millis(4),
        Ratio::TWO,
        Duration::from_millis(40),
    )
    .ok()?
    .with_jitter(Jitter::FULL);
    // Seeded per device in real firmware; fixed here so the delays are known.
    RetryPolicy::new(backoff, attempts, fastrand::Rng::with_seed(0x5eed)).ok()
}

/// The total wait the policy asks for over `failures` failures, rounded up to whole ticks
/// as the runner sleeps.
fn expected_wait(mut model: RetryPolicy<Exponential>, failures: u32) -> Duration {
    let mut t = Instant::ZERO;
    for _ in 0..failures {
        if let Decision::Retry { after, .. } = model.on_failure_at(t, None) {
            let ms = (t + after).as_nanos().div_ceil(1_000_000);
            t = Instant::from_millis(ms);
        }
    }
    t - Instant::ZERO
}

/// Every retry of this check goes through this one function (compiled once).
async fn read_with_retry(
    policy: &mut RetryPolicy<Exponential>,
    device: &Flaky,
) -> Result<u32, RetryError<Fault>> {
    retry(policy, |_| device.read()).await
}

/// A peripheral that fails twice answers on the third attempt, after the jittered waits;
/// one that keeps failing is given up on after the last attempt, with its error.
pub async fn run() -> Outcome {
    let Some(mut p) = policy(4) else {
        return Err(Failure {
            what: "bad retry configuration",
            values: None,
        });
    };
    let want = expected_wait(p.clone(), 2);
    let flaky = Flaky::new(0b11, 0, 0);
    let start = EmbassyClock.now();
    let answer = read_with_retry(&mut p, &flaky).await;
    let took = EmbassyClock.now() - start;
    ensure!(answer == Ok(2), "no reading on the third attempt");
    ensure_eq!(u64::from(flaky.calls()), 3, "calls to the peripheral");
    ensure!(
        took >= want,
        "retried before the jittered backoff had passed"
    );
    ensure!(took <= want + LATE, "retries more than 5 ms late");

    let Some(mut p) = policy(3) else {
        return Err(Failure {
            what: "bad retry configuration",
            values: None,
        });
    };
    let broken = Flaky::new(u32::MAX, 0, 0);
    let Err(e) = read_with_retry(&mut p, &broken).await else {
        return Err(Failure {
            what: "a broken peripheral answered",
            values: None,
        });
    };
    ensure!(
        e.reason == GiveUpReason::AttemptsExhausted,
        "gave up for another reason than the attempts"
    );
    ensure_eq!(u64::from(e.attempts), 3, "attempts before giving up");
    ensure_eq!(
        u64::from(broken.calls()),
        3,
        "calls to the broken peripheral"
    );
    Ok(())
}
