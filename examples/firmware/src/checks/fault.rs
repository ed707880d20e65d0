//! Fault injection through `stanchion_embassy::fault::call` and the pipeline's fault
//! position: a seed picks the same calls as on the host; an injected error does not run the
//! operation; injected latency is waited exactly; an interrupt handler switches the
//! injection off (one atomic store) and nothing is injected or drawn after; in the
//! pipeline, injected errors are retried like the operation's own.

use core::cell::Cell;
use core::time::Duration;

use embassy_time::Timer;
use stanchion::fault::{Fault, FaultInjector, Share};
use stanchion::retry::{Constant, RetryPolicy};
use stanchion::{Clock, const_config};
use stanchion_embassy::fault::{self, FaultInjection};
use stanchion_embassy::{EmbassyClock, Pipeline};

use super::{LATE, nanos};
use crate::report::Outcome;
use crate::{ensure, ensure_eq, irq};

/// 10% of calls.
static TENTH: FaultInjector = FaultInjector::new(const_config!(Share::percent(10)));
/// Every call, until the interrupt handler switches it off.
static SWITCHED: FaultInjector = FaultInjector::new(Share::ALL);
/// Half the attempts through the pipeline fail with an injected error.
static FLAKY: FaultInjection<u32, ()> = FaultInjection::new(
    FaultInjector::new(const_config!(Share::percent(50))),
    Fault::Error(()),
);

/// The interrupt handler's work: switch the injection off.
fn switch_off() {
    SWITCHED.set_enabled(false);
}

/// The calls of the first 50 that seed 42 picks at 10%, one bit each: calls 3, 25, 28, 36
/// and 42, as core's, the tokio adapter's and the embassy adapter's host tests find.
const PICKED: u64 = 1 << 3 | 1 << 25 | 1 << 28 | 1 << 36 | 1 << 42;

pub async fn run() -> Outcome {
    // The host's calls, and the operation skipped for each.
    let mut rng = fastrand::Rng::with_seed(42);
    let error: Fault<u32, ()> = Fault::Error(());
    let (mut picked, mut ran) = (0u64, 0u64);
    for n in 0..50u32 {
        let ran_now = Cell::new(false);
        let result = fault::call(&TENTH, &error, &mut rng, || {
            ran_now.set(true);
            async move { Ok(n) }
        })
        .await;
        match result {
            Ok(answer) => ensure!(
                answer == n && ran_now.get(),
                "a call not picked did not run"
            ),
            Err(()) => {
                ensure!(!ran_now.get(), "an injected error ran the operation");
                picked |= 1 << n;
            }
        }
        ran += u64::from(ran_now.get());
    }
    ensure_eq!(picked, PICKED, "not the host's calls picked");
    ensure_eq!(ran, 45, "operations run");

    // Latency: waited in full, never early.
    let slow: Fault<u32, ()> = Fault::Latency(Duration::from_millis(20));
    let start = EmbassyClock.now();
    let result = fault::call(&SWITCHED, &slow, &mut rng, || async { Ok(1) }).await;
    let took = nanos(EmbassyClock.now() - start);
    ensure!(result == Ok(1), "a delayed call did not answer");
    ensure!(took >= 20_000_000, "injected latency cut short");
    ensure!(
        took <= nanos(Duration::from_millis(20) + LATE),
        "injected latency too long"
    );

    // Switched off by an interrupt handler: nothing injected, nothing drawn.
    let first_run = irq::install(switch_off);
    let mut waited = 0;
    while irq::runs().wrapping_sub(first_run) == 0 && waited < 100 {
        Timer::after_millis(1).await;
        waited += 1;
    }
    irq::uninstall();
    ensure!(
        !SWITCHED.is_enabled(),
        "the interrupt handler did not switch it off"
    );
    let seed = rng.get_seed();
    for n in 0..100u32 {
        let result = fault::call(&SWITCHED, &slow, &mut rng, || async move { Ok(n) }).await;
        ensure!(result == Ok(n), "injected while switched off");
    }
    ensure!(rng.get_seed() == seed, "drew while switched off");

    // In the pipeline, drawing from the retry policy's generator (seed 5, as on the host):
    // the answer is call * 10 + attempt; calls 0 and 5 get past two injected errors, calls
    // 1 and 2 past one, calls 3 and 4 are not picked.
    let pipeline = Pipeline::new().fault_injection(&FLAKY);
    let Ok(mut policy) = RetryPolicy::new(
        Constant::new(Duration::from_millis(10)),
        3,
        fastrand::Rng::with_seed(5),
    ) else {
        return Err(crate::report::Failure {
            what: "retry policy",
            values: None,
        });
    };
    let mut answers = [0u32; 6];
    for (call, answer) in (0u32..).zip(answers.iter_mut()) {
        let result = pipeline
            .call(
                &mut policy,
                |attempt| async move { Ok(call * 10 + attempt) },
            )
            .await;
        ensure!(result.is_ok(), "gave up through the injected errors");
        *answer = result.unwrap_or(0);
    }
    ensure!(answers == [3, 12, 22, 31, 41, 53], "not the host's retries");
    Ok(())
}
