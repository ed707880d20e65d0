//! Fault injection in front of a healthy downstream, to rehearse its failure: the tour's
//! section 8.
//!
//! A downstream that always answers in 10 ms sits behind the tokio [`Pipeline`] with
//! [`FaultInjection`] in its innermost position (seeded, so the same calls are picked
//! every run). Four phases of 1,000 calls, one after the other, on tokio's paused clock;
//! the injection is one shared handle that the phases reconfigure and finally switch off,
//! as an operator would in a running service:
//!
//! 1. 20% of attempts fail with an injected error, and nothing retries: the caller sees
//!    each one;
//! 2. the same 20%, with up to three attempts (50 ms apart): the retries hide almost all;
//! 3. 20% of attempts answer 300 ms late instead, under a 100 ms attempt timeout: each
//!    is cut and retried, and costs the caller 150 ms;
//! 4. switched off: every call answers on its first attempt, in 10 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use stanchion::fault::{Fault, FaultInjector, Share};
use stanchion::pipeline::PipelineError;
use stanchion::retry::{Constant, RetryPolicy};
use stanchion_std::fault::FaultInjection;
use stanchion_std::{Pipeline, TokioClock};

/// Calls per phase.
pub const CALLS: u32 = 1_000;

/// What one phase did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    /// The phase.
    pub name: &'static str,
    /// Calls answered `Ok`.
    pub ok: u32,
    /// Attempts made (the pipeline's, injected ones included).
    pub attempts: u32,
    /// Attempts that reached the downstream (an injected error does not).
    pub downstream_calls: u32,
    /// Virtual time the phase took.
    pub took: Duration,
}

/// The injection every phase's pipeline shares.
type Faults = Arc<FaultInjection<u32, &'static str>>;

/// The downstream's own answer time.
const DOWNSTREAM: Duration = Duration::from_millis(10);

/// The four phases, in the order above.
pub fn run_all() -> [Phase; 4] {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let clock = TokioClock::starting_now();
        let faults: Faults = Arc::new(FaultInjection::new(
            FaultInjector::new(Share::percent(20).expect("a valid share")),
            Fault::Error("injected"),
            fastrand::Rng::with_seed(7),
        ));
        let retries = || {
            RetryPolicy::new(
                Constant::new(Duration::from_millis(50)),
                3,
                fastrand::Rng::with_seed(1),
            )
            .expect("a valid policy")
        };
        let once = Pipeline::new(clock).fault_injection(Arc::clone(&faults));
        let first = phase("20% errors, no retry", &once).await;
        let retried = Pipeline::new(clock)
            .retry(retries())
            .attempt_timeout(Duration::from_millis(100))
            .fault_injection(Arc::clone(&faults));
        let second = phase("20% errors, 3 attempts", &retried).await;
        faults.set_fault(Fault::Latency(Duration::from_millis(300)));
        let third = phase("20% +300 ms, 100 ms timeout", &retried).await;
        faults.injector().set_enabled(false);
        let fourth = phase("switched off", &retried).await;
        [first, second, third, fourth]
    })
}

/// [`CALLS`] calls through `pipeline`, one after the other.
async fn phase<L, BL, CB, BK, RB, RK, RR>(
    name: &'static str,
    pipeline: &Pipeline<L, BL, CB, BK, RB, RK, RR, Faults>,
) -> Phase
where
    L: stanchion_std::AsyncRateLimiter,
    BL: stanchion::bulkhead::BulkheadListener,
    CB: stanchion_std::BreakerLayer,
    BK: stanchion_std::ClassifyOutcome<Result<u32, &'static str>>,
    RB: stanchion::retry::Backoff + Clone,
    RK: stanchion::retry::Classify<Result<u32, &'static str>> + Clone,
    RR: stanchion::retry::RetryBudget + Clone,
{
    let start = tokio::time::Instant::now();
    let reached = AtomicU32::new(0);
    let (mut ok, mut attempts) = (0, 0);
    for _ in 0..CALLS {
        let result = pipeline
            .call(|attempt| {
                let reached = &reached;
                async move {
                    reached.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(DOWNSTREAM).await;
                    Ok(attempt)
                }
            })
            .await;
        match result {
            Ok(attempt) => {
                ok += 1;
                attempts += attempt;
            }
            Err(PipelineError::GaveUp { attempts: n, .. }) => attempts += n,
            Err(_) => attempts += 1,
        }
    }
    Phase {
        name,
        ok,
        attempts,
        downstream_calls: reached.into_inner(),
        took: start.elapsed(),
    }
}
