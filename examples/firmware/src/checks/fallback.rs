//! Fallback through the pipeline's `call_or_else`: a call the breaker refuses is answered
//! by the fallback, which sees the refusal; a call whose retries gave up goes through when
//! only refusals are covered, and is answered when a rule of its own covers it.

use core::cell::Cell;
use core::time::Duration;

use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::fallback::FallbackOn;
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::retry::{Constant, RetryPolicy};
use stanchion::sync::CriticalSectionRawMutex;
use stanchion::{Clock, const_config};
use stanchion_embassy::{EmbassyClock, Pipeline};

use crate::report::Outcome;
use crate::{ensure, ensure_eq};

/// Opens after two failures in a row, for 1 s.
static BREAKER: CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex> =
    const_config!(CircuitBreaker::new(
        BreakerConfig::new()
            .minimum_calls(1)
            .open_duration(Duration::from_secs(1)),
        const_config!(ConsecutiveWindow::new(2)),
    ));

pub async fn run() -> Outcome {
    let pipeline = Pipeline::new().breaker(&BREAKER);
    let mut policy = const_config!(RetryPolicy::new(
        Constant::new(Duration::from_millis(5)),
        2,
        fastrand::Rng::with_seed(3),
    ));
    // Two failed attempts open the breaker; only refusals are covered, so the error of
    // the call that gave up comes back as it was, and the fallback is not run.
    let ran = Cell::new(0u32);
    let gave_up = pipeline
        .call_or_else(
            &mut policy,
            |_| async { Err::<u32, u8>(9) },
            FallbackOn::REFUSALS,
            |_| {
                ran.set(ran.get() + 1);
                async { 0 }
            },
        )
        .await;
    ensure!(
        matches!(
            gave_up,
            Err(PipelineError::GaveUp {
                last: AttemptError::Operation(9),
                attempts: 2,
                ..
            })
        ),
        "a call that gave up was not returned as it was"
    );
    ensure_eq!(
        u64::from(ran.get()),
        0,
        "fallbacks run for an uncovered error"
    );

    // Open: refused, and answered by the fallback, which sees the breaker's refusal.
    let refused_by = Cell::new(None);
    let answer = pipeline
        .call_or_else(
            &mut policy,
            |_| async { Ok::<u32, u8>(1) },
            FallbackOn::REFUSALS,
            |refused| {
                refused_by.set(Some(refused.layer()));
                async { 7 }
            },
        )
        .await;
    ensure!(
        answer == Ok(7),
        "a refusal was not answered by the fallback"
    );
    ensure!(
        refused_by.get() == Some(Layer::CircuitBreaker),
        "the fallback did not see the breaker's refusal"
    );

    // A rule of one's own: the operation's error 9 has a stand-in.
    let nine = |e: &PipelineError<u8>| {
        matches!(
            e,
            PipelineError::GaveUp {
                last: AttemptError::Operation(9),
                ..
            }
        )
    };
    BREAKER.reset_at(EmbassyClock.now());
    let stood_in = pipeline
        .call_or_else(
            &mut policy,
            |_| async { Err::<u32, u8>(9) },
            nine,
            |_| async { 5 },
        )
        .await;
    ensure!(stood_in == Ok(5), "the rule's error was not answered");
    Ok(())
}
