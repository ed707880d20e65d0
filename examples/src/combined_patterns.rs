//! Every pattern in front of one flaky downstream, in core's pipeline order
//! ([`Layer::ORDER`]): overall timeout, rate limit, bulkhead, circuit breaker, retry,
//! per-attempt timeout. Runs as real async code on tokio's paused clock (read through
//! [`TokioClock`]), so 24 simulated seconds of traffic take no wall time.
//!
//! The composition is written out by hand over core's decisions, so that each layer is
//! visible in a few lines; it follows the contract of [`stanchion::pipeline`] (the order
//! and the one [`PipelineError`]) that the adapters' pipeline runners share. Nothing waits
//! here: the rate limiter and the bulkhead refuse at once rather than queue.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use stanchion::breaker::window::CountWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, FixedOpenDuration, Outcome};
use stanchion::bulkhead::Bulkhead;
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::rate::{Quota, TokenBucket};
use stanchion::retry::{
    Decision, Exponential, GiveUpReason, Jitter, Ratio, RatioBudget, RetryPolicy, Verdict,
};
use stanchion::sync::NoopRawMutex;
use stanchion::{Clock, Deadline, Instant};
use stanchion_std::TokioClock;

use crate::circuit_breaker::{Event, Recorder};
use crate::timeline::{Align, Table, at, heading, note, secs};

/// One request every this long (25 per second).
pub const ARRIVAL_EVERY: Duration = Duration::from_millis(40);
/// Requests in the run (24 s).
pub const REQUESTS: u32 = 600;
/// The caller's budget for a whole call, waits and retries included.
pub const OVERALL_TIMEOUT: Duration = Duration::from_millis(600);
/// The bound on one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(400);
/// Attempts per call, counting the first.
pub const MAX_ATTEMPTS: u32 = 3;
/// Calls in flight at most.
pub const MAX_CONCURRENT: u32 = 8;
/// The seed of the retries' jitter (each call draws from `SEED + call number`).
pub const SEED: u64 = 42;

/// What the downstream does to a call that starts at `t`: `(name, latency, one call in
/// how many fails)`. Healthy (40 ms, one call in 25 fails), slow (1.5 s: every attempt
/// times out), down (every call fails in 10 ms), degraded (350 ms, one call in 3 fails),
/// healthy again.
pub fn downstream_at(t: Instant) -> (&'static str, Duration, u32) {
    match t.as_nanos() / 1_000_000_000 {
        0..=5 => ("healthy", Duration::from_millis(40), 25),
        6..=9 => ("slow", Duration::from_millis(1_500), 25),
        10..=13 => ("down", Duration::from_millis(10), 1),
        14..=17 => ("degraded", Duration::from_millis(350), 3),
        _ => ("healthy", Duration::from_millis(40), 25),
    }
}

/// The downstream's failure, as the operation returns it.
pub type DownstreamError = &'static str;

/// The patterns shared by every call.
struct Shared {
    clock: TokioClock,
    limiter: TokenBucket,
    bulkhead: Bulkhead,
    breaker: CircuitBreaker<CountWindow<20>, NoopRawMutex, FixedOpenDuration, Recorder>,
    budget: RatioBudget<10>,
    downstream_calls: Cell<u32>,
    attempt_timeouts: Cell<u32>,
}

/// The flaky downstream.
async fn downstream(shared: &Shared) -> Result<(), DownstreamError> {
    let n = shared.downstream_calls.get() + 1;
    shared.downstream_calls.set(n);
    let (_, latency, fail_every) = downstream_at(shared.clock.now());
    tokio::time::sleep(latency).await;
    if n.is_multiple_of(fail_every) {
        Err("503 from downstream")
    } else {
        Ok(())
    }
}

type AttemptResult = Result<(), AttemptError<DownstreamError>>;

/// An open breaker stops the retries; every other failure is worth another attempt.
fn classify(result: &AttemptResult) -> Verdict {
    match result {
        Ok(()) => Verdict::Success,
        Err(AttemptError::CircuitOpen(_)) => Verdict::Permanent,
        Err(_) => Verdict::Transient,
    }
}

/// One call through every layer, outermost first. `Ok` carries the attempts made.
async fn call(shared: &Shared, id: u32) -> Result<u32, PipelineError<DownstreamError>> {
    let clock = shared.clock;
    let deadline = Deadline::after(clock.now(), OVERALL_TIMEOUT);
    // 1. Overall timeout: bounds everything below.
    let inner = async {
        // 2. Rate limit: refuse cheap and early.
        shared
            .limiter
            .acquire_at(1, clock.now())
            .map_err(PipelineError::RateLimited)?;
        // 3. Bulkhead: one slot for all the call's attempts, released on drop.
        let _slot = shared
            .bulkhead
            .try_acquire()
            .map_err(PipelineError::BulkheadFull)?;
        // 5. Retry, around 4. the breaker and 6. the attempt timeout.
        let backoff = Exponential::new(
            Duration::from_millis(100),
            Ratio::TWO,
            Duration::from_secs(1),
        )
        .expect("valid backoff")
        .with_jitter(Jitter::FULL);
        let mut policy = RetryPolicy::new(
            backoff,
            MAX_ATTEMPTS,
            fastrand::Rng::with_seed(SEED + u64::from(id)),
        )
        .expect("valid policy")
        .with_deadline(deadline)
        .with_classifier(classify)
        .with_budget(&shared.budget);
        // Step limit: the policy allows MAX_ATTEMPTS; the loop never runs more.
        for _ in 0..MAX_ATTEMPTS {
            let attempt = policy.attempt();
            let result: AttemptResult = match shared.breaker.try_acquire_at(clock.now()) {
                Err(rejected) if attempt == 1 => return Err(PipelineError::CircuitOpen(rejected)),
                Err(rejected) => Err(AttemptError::CircuitOpen(rejected)),
                Ok(permit) => {
                    match tokio::time::timeout(ATTEMPT_TIMEOUT, downstream(shared)).await {
                        Ok(Ok(())) => {
                            permit.record_at(Outcome::Success, clock.now());
                            Ok(())
                        }
                        Ok(Err(e)) => {
                            permit.record_at(Outcome::Failure, clock.now());
                            Err(AttemptError::Operation(e))
                        }
                        Err(_elapsed) => {
                            shared
                                .attempt_timeouts
                                .set(shared.attempt_timeouts.get() + 1);
                            permit.record_at(Outcome::Failure, clock.now());
                            Err(AttemptError::Timeout)
                        }
                    }
                }
            };
            match policy.on_outcome_at(clock.now(), &result, None) {
                Decision::Done => return Ok(attempt),
                Decision::Retry { after, .. } => tokio::time::sleep(after).await,
                Decision::GiveUp { reason } => {
                    return Err(PipelineError::GaveUp {
                        last: result.err().unwrap_or(AttemptError::Timeout),
                        reason,
                        attempts: attempt,
                    });
                }
            }
        }
        Err(PipelineError::GaveUp {
            last: AttemptError::Timeout,
            reason: GiveUpReason::AttemptsExhausted,
            attempts: MAX_ATTEMPTS,
        })
    };
    match tokio::time::timeout(OVERALL_TIMEOUT, inner).await {
        Ok(result) => result,
        Err(_elapsed) => Err(PipelineError::Timeout),
    }
}

/// What happened to every call.
#[derive(Debug)]
pub struct CombinedRun {
    /// Per call: its arrival and its result.
    pub calls: Vec<(Instant, Result<u32, PipelineError<DownstreamError>>)>,
    /// The breaker's events.
    pub events: Vec<Event>,
    /// Calls that reached the downstream (attempts).
    pub downstream_calls: u32,
    /// Attempts cut short by the attempt timeout.
    pub attempt_timeouts: u32,
}

impl CombinedRun {
    /// How many calls the layer refused (`None` counts successes).
    pub fn count(&self, layer: Option<Layer>) -> usize {
        self.calls
            .iter()
            .filter(|(_, r)| r.as_ref().err().map(|e| e.layer()) == layer)
            .count()
    }

    /// Calls that succeeded after at least one retry.
    pub fn succeeded_after_retry(&self) -> usize {
        self.calls
            .iter()
            .filter(|(_, r)| matches!(r, Ok(n) if *n > 1))
            .count()
    }

    /// Calls the retry layer gave up on, for `reason`.
    pub fn gave_up(&self, reason: GiveUpReason) -> usize {
        self.calls
            .iter()
            .filter(
                |(_, r)| matches!(r, Err(PipelineError::GaveUp { reason: r, .. }) if *r == reason),
            )
            .count()
    }
}

/// Runs the scenario on a paused tokio runtime.
pub fn simulate() -> CombinedRun {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let recorder = Recorder::default();
        let config = BreakerConfig::new()
            .failure_rate_threshold(50)
            .minimum_calls(10)
            .permitted_calls_in_half_open(3);
        let shared = Rc::new(Shared {
            clock: TokioClock::starting_now(),
            limiter: TokenBucket::new(
                Quota::per_second(20)
                    .and_then(|q| q.with_burst(10))
                    .expect("valid quota"),
            ),
            bulkhead: Bulkhead::new(MAX_CONCURRENT).expect("valid bulkhead"),
            breaker: CircuitBreaker::from_parts(
                config,
                CountWindow::new().expect("valid window"),
                FixedOpenDuration(Duration::from_secs(2)),
                SEED,
                recorder.clone(),
            )
            .expect("valid breaker"),
            budget: RatioBudget::new(Duration::from_secs(10), Ratio::percent(10), 3)
                .expect("valid budget"),
            downstream_calls: Cell::new(0),
            attempt_timeouts: Cell::new(0),
        });
        let results = Rc::new(RefCell::new(Vec::new()));
        let mut tasks = Vec::new();
        let epoch = shared.clock.epoch();
        for id in 0..REQUESTS {
            tokio::time::sleep_until(epoch + ARRIVAL_EVERY * id).await;
            let (shared, results) = (shared.clone(), results.clone());
            tasks.push(tokio::task::spawn_local(async move {
                let arrived = shared.clock.now();
                let result = call(&shared, id).await;
                results.borrow_mut().push((id, arrived, result));
            }));
        }
        for task in tasks {
            task.await.expect("a call task completed");
        }
        let mut calls = results.take();
        calls.sort_by_key(|(id, _, _)| *id);
        CombinedRun {
            calls: calls.into_iter().map(|(_, t, r)| (t, r)).collect(),
            events: recorder.take(),
            downstream_calls: shared.downstream_calls.get(),
            attempt_timeouts: shared.attempt_timeouts.get(),
        }
    })
}

/// Prints the refusals per layer, in pipeline order (the tour prints this alone).
pub fn print_layers(run: &CombinedRun) {
    let mut table = Table::new(&["#", "layer", "refused", "why"])
        .align(1, Align::Left)
        .align(3, Align::Left);
    for (i, layer) in Layer::ORDER
        .iter()
        .filter(|l| **l != Layer::FaultInjection)
        .enumerate()
    {
        let why = match layer {
            Layer::OverallTimeout => format!("the caller's {} ran out", secs(OVERALL_TIMEOUT)),
            Layer::RateLimit => "over 20 per second (burst 10)".to_string(),
            Layer::Bulkhead => format!("{MAX_CONCURRENT} calls already in flight"),
            Layer::CircuitBreaker => "open: failed fast, downstream not called".to_string(),
            Layer::Retry => format!(
                "gave up: {} attempts exhausted, {} budget, {} deadline, {} breaker opened",
                run.gave_up(GiveUpReason::AttemptsExhausted),
                run.gave_up(GiveUpReason::BudgetExhausted),
                run.gave_up(GiveUpReason::Deadline),
                run.gave_up(GiveUpReason::Permanent),
            ),
            Layer::AttemptTimeout => format!(
                "refuses no call: {} attempts timed out after {} and counted as failures",
                run.attempt_timeouts,
                secs(ATTEMPT_TIMEOUT)
            ),
            // Not in this example's pipeline (fault injection), or not a pipeline position
            // (the throttle).
            Layer::FaultInjection | Layer::Throttle => String::new(),
        };
        let refused = match layer {
            Layer::AttemptTimeout => "-".to_string(),
            _ => run.count(Some(*layer)).to_string(),
        };
        table.row([(i + 1).to_string(), layer.name().to_string(), refused, why]);
    }
    table.row([
        String::new(),
        "succeeded".to_string(),
        run.count(None).to_string(),
        format!("{} of them after a retry", run.succeeded_after_retry()),
    ]);
    table.print();
}

/// The whole example.
pub fn run() {
    crate::say!("Combined patterns: every layer in front of one flaky downstream");
    crate::say!("(tokio's paused clock: 24 s of traffic, no wall time)");
    heading("1. The setup");
    note(&format!(
        "{REQUESTS} requests, one every 40 ms (25 per second). The downstream is healthy \
         (40 ms, one call in 25 fails) until t=6s, slow (1.5 s) until t=10s, down (fails at \
         once) until t=14s, degraded (350 ms, one call in 3 fails) until t=18s, then healthy. Layers, outermost first ({}): overall timeout {}; \
         token bucket 20/s, burst 10; bulkhead of {MAX_CONCURRENT}; circuit breaker over the \
         last 20 attempts, open at 50%, 2 s open, 3 probes; retry up to {MAX_ATTEMPTS} \
         attempts, exponential from 100 ms with full jitter, a budget of 3 retries plus 10% of \
         the last 10 s of requests; attempt timeout {}.",
        Layer::ORDER
            .iter()
            .filter(|l| **l != Layer::FaultInjection)
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(" > "),
        secs(OVERALL_TIMEOUT),
        secs(ATTEMPT_TIMEOUT),
    ));
    let run = simulate();

    heading("2. Second by second");
    crate::say!();
    let mut table = Table::new(&[
        "second",
        "downstream",
        "offered",
        "ok",
        "rate limited",
        "bulkhead full",
        "breaker open",
        "gave up",
        "overall timeout",
        "breaker",
    ])
    .align(1, Align::Left)
    .align(9, Align::Left);
    let seconds = (REQUESTS * ARRIVAL_EVERY.as_millis() as u32).div_ceil(1_000);
    for s in 0..u64::from(seconds) {
        let in_second: Vec<_> = run
            .calls
            .iter()
            .filter(|(t, _)| t.as_nanos() / 1_000_000_000 == s)
            .collect();
        let count = |layer: Option<Layer>| {
            in_second
                .iter()
                .filter(|(_, r)| r.as_ref().err().map(|e| e.layer()) == layer)
                .count()
                .to_string()
        };
        let transitions: Vec<String> = run
            .events
            .iter()
            .filter_map(|e| match *e {
                Event::Transition { from, to, at: t } if t.as_nanos() / 1_000_000_000 == s => {
                    Some(format!("{from:?} -> {to:?} at {}", at(t)))
                }
                _ => None,
            })
            .collect();
        table.row([
            format!("{s:>2}-{:<2}", s + 1),
            downstream_at(Instant::from_secs(s)).0.to_string(),
            in_second.len().to_string(),
            count(None),
            count(Some(Layer::RateLimit)),
            count(Some(Layer::Bulkhead)),
            count(Some(Layer::CircuitBreaker)),
            count(Some(Layer::Retry)),
            count(Some(Layer::OverallTimeout)),
            transitions.join(", "),
        ]);
    }
    table.print();

    heading("3. Which layer refused how many calls, in pipeline order");
    crate::say!();
    print_layers(&run);
    crate::say!();
    note(&format!(
        "{REQUESTS} requests made {} calls to the downstream. The rate limiter refuses the \
         same 5 a second throughout, whatever the downstream does. While the downstream is \
         slow, each attempt holds its bulkhead slot until the {} attempt timeout, so the \
         bulkhead fills until the breaker has seen enough failures to open, and a retry that \
         cannot finish inside the caller's {} is cut by the overall timeout. While it is \
         down, the breaker fails calls fast and its probes, every 2 s, find it still down. \
         While it is degraded, retries of the failed third run into the overall timeout. \
         The retry budget refused {} retries in all: retries never multiplied the load.",
        run.downstream_calls,
        secs(ATTEMPT_TIMEOUT),
        secs(OVERALL_TIMEOUT),
        run.gave_up(GiveUpReason::BudgetExhausted),
    ));
}
