//! A fallback answering what the pipeline refuses: the tour's section 9.
//!
//! A price service answers in 10 ms, then goes down for good at its 30th call. The caller
//! asks for a price every 100 ms, 100 times, through the tokio [`Pipeline`]: a breaker
//! that opens after three failures in a row (for 1 s) and two attempts 20 ms apart. Run
//! twice on tokio's paused clock:
//!
//! 1. without a fallback: every failure reaches the caller, a call that gave up or one the
//!    open breaker refused;
//! 2. with [`Pipeline::call_or_else`] covering every failure
//!    ([`FallbackOn::EVERYTHING`]): the last good price stands in, and the fallback counts
//!    which layer each stand-in answered for, from the original error it receives.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::fallback::FallbackOn;
use stanchion::pipeline::{Layer, PipelineError};
use stanchion::retry::{Constant, RetryPolicy};
use stanchion_std::{Pipeline, StdRawMutex, TokioClock};

/// Calls per run, one every 100 ms.
pub const CALLS: u32 = 100;
/// The time between calls.
const EVERY: Duration = Duration::from_millis(100);
/// The price service's calls that answer; it is down from the next on.
const HEALTHY_CALLS: u32 = 30;

/// What one run answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Calls answered by the price service.
    pub fresh: u32,
    /// Calls answered by the fallback, because the retries gave up.
    pub stand_in_gave_up: u32,
    /// Calls answered by the fallback, because the open breaker refused them.
    pub stand_in_refused: u32,
    /// Calls that failed (without a fallback): they gave up.
    pub failed_gave_up: u32,
    /// Calls that failed (without a fallback): the open breaker refused them.
    pub failed_refused: u32,
    /// Calls that reached the price service.
    pub service_calls: u32,
}

/// The two runs: without a fallback, then with one.
pub fn run_both() -> [Run; 2] {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async { [run(false).await, run(true).await] })
}

/// One run of [`CALLS`] calls; `fallback`: through `call_or_else`.
async fn run(fallback: bool) -> Run {
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> = CircuitBreaker::new(
        BreakerConfig::new()
            .minimum_calls(1)
            .permitted_calls_in_half_open(1)
            .open_duration(Duration::from_secs(1)),
        ConsecutiveWindow::new(3).expect("a valid window"),
    )
    .expect("a valid breaker");
    let policy = RetryPolicy::new(
        Constant::new(Duration::from_millis(20)),
        2,
        fastrand::Rng::with_seed(9),
    )
    .expect("a valid policy");
    let pipeline = Pipeline::new(TokioClock::starting_now())
        .circuit_breaker(Arc::new(breaker))
        .retry(policy);
    let served = Cell::new(0u32);
    let last_good = Cell::new(0u32);
    let mut run = Run::default();
    for call in 0..CALLS {
        let next_tick = tokio::time::Instant::now() + EVERY;
        let price = |_attempt| {
            let n = served.get();
            served.set(n + 1);
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if n < HEALTHY_CALLS {
                    Ok(1_000 + call)
                } else {
                    Err("price service down")
                }
            }
        };
        let answered_by = Cell::new(None);
        let result = if fallback {
            pipeline
                .call_or_else(price, FallbackOn::EVERYTHING, |error| {
                    // The original error, for the count (and, in a service, the logs).
                    answered_by.set(Some(error.layer()));
                    std::future::ready(last_good.get())
                })
                .await
        } else {
            pipeline.call(price).await
        };
        match (result, answered_by.get()) {
            (Ok(price), None) => {
                run.fresh += 1;
                last_good.set(price);
            }
            (Ok(_), Some(Layer::CircuitBreaker)) => run.stand_in_refused += 1,
            (Ok(_), Some(_)) => run.stand_in_gave_up += 1,
            (Err(PipelineError::CircuitOpen(_)), _) => run.failed_refused += 1,
            (Err(_), _) => run.failed_gave_up += 1,
        }
        tokio::time::sleep_until(next_tick).await;
    }
    run.service_calls = served.get();
    run
}
