//! The circuit breaker: through every state against the flaky peripheral, and shared with
//! an interrupt handler while both call through it.

use core::time::Duration;

use embassy_time::Timer;
use portable_atomic::{AtomicU32, Ordering};
use stanchion::Clock;
use stanchion::breaker::window::CountWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, Outcome as CallOutcome, State};
use stanchion::sync::CriticalSectionRawMutex;
use stanchion_embassy::{BreakerError, EmbassyClock, breaker};

use super::peripheral::{Fault, Flaky};
use super::{LATE, join3};
use crate::irq;
use crate::report::{Failure, Outcome};
use crate::{ensure, ensure_eq};

/// The breaker type of every check (one type: its code is compiled once).
pub type Breaker = CircuitBreaker<CountWindow<64>, CriticalSectionRawMutex>;

/// Opens when three calls are recorded and all failed, for 20 ms; one probe in half-open.
static BREAKER: Breaker = match CountWindow::new() {
    Ok(window) => match CircuitBreaker::new(
        BreakerConfig::new()
            .failure_rate_threshold(100)
            .minimum_calls(3)
            .open_duration(Duration::from_millis(20))
            .permitted_calls_in_half_open(1),
        window,
    ) {
        Ok(b) => b,
        Err(_) => panic!("bad breaker"),
    },
    Err(_) => panic!("bad window"),
};

/// Every call of these checks goes through this one function, so the breaker's runner and
/// the peripheral's future are compiled once, not once per call site.
async fn call(device: &Flaky) -> Result<u32, BreakerError<Fault>> {
    breaker::call(&BREAKER, || device.read()).await
}

fn state_is(want: State, what: &'static str) -> Outcome {
    ensure!(BREAKER.state() == want, what);
    Ok(())
}

/// Closed, open (rejecting, with the time left), half-open (one probe, held across its
/// await: a second call is rejected meanwhile), open again when the probe fails, closed
/// when the next probe succeeds; forced open and disabled by hand.
pub async fn states() -> Outcome {
    BREAKER.reset_at(EmbassyClock.now());
    // Calls 0-2 fail, call 3 (the first probe) fails, call 4 (the second) succeeds.
    let device = Flaky::new(0b1111, 0, 2);
    for _ in 0..3 {
        ensure!(
            call(&device).await == Err(BreakerError::Operation(Fault)),
            "a failing call did not fail"
        );
    }
    state_is(State::Open, "not open after three failures")?;
    let Err(BreakerError::Rejected(rejected)) = call(&device).await else {
        return Err(Failure {
            what: "an open breaker let a call through",
            values: None,
        });
    };
    ensure_eq!(
        u64::from(device.calls()),
        3,
        "calls that reached the peripheral"
    );
    let Some(wait) = rejected.retry_after else {
        return Err(Failure {
            what: "an open breaker gave no time to wait",
            values: None,
        });
    };
    ensure!(
        wait <= Duration::from_millis(20) + Duration::from_nanos(1),
        "asked to wait longer than the open duration"
    );

    for (probe_fails, after) in [(true, State::Open), (false, State::Closed)] {
        // Half-open comes strictly after the open duration: 21 ms at 1 ms ticks.
        Timer::after_millis(21).await;
        // The probe takes 2 ms; a call 1 ms into it finds the one half-open slot taken.
        let probe = call(&device);
        let meanwhile = async {
            Timer::after_millis(1).await;
            let state = BREAKER.state();
            (state, call(&device).await)
        };
        let (probed, (state, second), ()) = join3(probe, meanwhile, async {}).await;
        ensure!(state == State::HalfOpen, "not half-open during the probe");
        ensure!(
            matches!(second, Err(BreakerError::Rejected(_))),
            "a second call got through in half-open"
        );
        ensure!(
            probed.is_err() == probe_fails,
            "the probe's outcome was lost"
        );
        state_is(after, "wrong state after the probe")?;
    }
    ensure_eq!(
        u64::from(device.calls()),
        5,
        "calls that reached the peripheral"
    );

    // By hand: forced open rejects with no time to wait; disabled lets everything through.
    let now = EmbassyClock.now();
    ensure!(
        BREAKER.transition_at(State::ForcedOpen, now).is_ok(),
        "cannot force open"
    );
    let forced = call(&device).await;
    ensure!(
        matches!(forced, Err(BreakerError::Rejected(r)) if r.retry_after.is_none()),
        "forced open did not reject without a time"
    );
    ensure!(
        BREAKER.transition_at(State::Disabled, now).is_ok(),
        "cannot disable"
    );
    let failing = Flaky::new(u32::MAX, 0, 0);
    for _ in 0..5 {
        let _ = call(&failing).await;
    }
    state_is(State::Disabled, "a disabled breaker changed state")?;
    ensure!(
        BREAKER.transition_at(State::Closed, now).is_ok(),
        "cannot close"
    );
    Ok(())
}

/// Never opens by itself (every call would have to fail, over 256 calls).
static SHARED: CircuitBreaker<CountWindow<256>, CriticalSectionRawMutex> = match CountWindow::new()
{
    Ok(window) => match CircuitBreaker::new(
        BreakerConfig::new()
            .failure_rate_threshold(100)
            .minimum_calls(256),
        window,
    ) {
        Ok(b) => b,
        Err(_) => panic!("bad breaker"),
    },
    Err(_) => panic!("bad window"),
};
/// Failures the interrupt recorded, and calls it saw rejected.
static IRQ_FAILURES: AtomicU32 = AtomicU32::new(0);
static IRQ_REJECTED: AtomicU32 = AtomicU32::new(0);
const IRQ_CALLS: u32 = 30;
const THREAD_CALLS: u32 = 30;

fn on_interrupt() {
    match SHARED.try_acquire_at(EmbassyClock.now()) {
        Ok(permit) => {
            if IRQ_FAILURES.load(Ordering::Acquire) < IRQ_CALLS {
                permit.record_at(CallOutcome::Failure, EmbassyClock.now());
                IRQ_FAILURES.fetch_add(1, Ordering::AcqRel);
            }
        }
        Err(_) => {
            IRQ_REJECTED.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Thread mode records successes and the interrupt failures, through one breaker, while
/// both run; then both are rejected by a forced-open breaker. Every outcome and every
/// rejection is counted exactly once.
pub async fn interrupt() -> Outcome {
    let start = EmbassyClock.now();
    SHARED.reset_at(start);
    IRQ_FAILURES.store(0, Ordering::Release);
    IRQ_REJECTED.store(0, Ordering::Release);
    let rejected_before = SHARED.metrics_at(start).rejected;
    let first_run = irq::install(on_interrupt);
    let (mut successes, mut steps, mut rejected) = (0u32, 0u32, 0u32);
    let mut forced = false;
    while steps < 1_000_000 {
        let now = EmbassyClock.now();
        match SHARED.try_acquire_at(now) {
            Ok(permit) if successes < THREAD_CALLS => {
                permit.record_at(CallOutcome::Success, now);
                successes += 1;
            }
            Ok(_) => {}
            Err(_) => rejected += 1,
        }
        if !forced && IRQ_FAILURES.load(Ordering::Acquire) >= IRQ_CALLS && successes >= THREAD_CALLS
        {
            let metrics = SHARED.metrics_at(now);
            ensure_eq!(
                u64::from(metrics.calls),
                u64::from(THREAD_CALLS + IRQ_CALLS),
                "outcomes recorded by thread and interrupt"
            );
            ensure_eq!(
                u64::from(metrics.failures),
                u64::from(IRQ_CALLS),
                "failures recorded"
            );
            ensure!(
                SHARED.transition_at(State::ForcedOpen, now).is_ok(),
                "cannot force open"
            );
            forced = true;
        }
        if forced && IRQ_REJECTED.load(Ordering::Acquire) >= 20 {
            break;
        }
        steps += 1;
        if steps % 16 == 0 {
            Timer::after_ticks(1).await;
        }
    }
    irq::uninstall();
    let _ = first_run;
    ensure!(
        forced,
        "the interrupt recorded fewer than 30 outcomes before the step limit"
    );
    let end = EmbassyClock.now();
    let metrics = SHARED.metrics_at(end);
    ensure_eq!(
        metrics.rejected - rejected_before,
        u64::from(rejected) + u64::from(IRQ_REJECTED.load(Ordering::Acquire)),
        "rejections counted by thread and interrupt"
    );
    ensure!(end - start < Duration::from_secs(2) + LATE, "took over 2 s");
    ensure!(
        SHARED.transition_at(State::Closed, end).is_ok(),
        "cannot close"
    );
    Ok(())
}
