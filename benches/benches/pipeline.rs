//! The whole pipeline (issue 11): one call of an operation that succeeds at once
//! through every layer (overall timeout, rate limit, bulkhead, retry, circuit breaker,
//! attempt timeout), against the tower stacks a user would assemble instead, in the
//! same run, and against calling the operation bare. Heap allocations per call are
//! counted for every row with a counting global allocator, outside criterion's timing.
//!
//! Rows (configuration in `stanchion_benches::pipeline`, the same on every side):
//!
//! - `bare`: `op(x).await`.
//! - `stanchion Pipeline`: `stanchion_std::Pipeline`.
//! - `stanchion tower layers`: stanchion's six tower layers in a `ServiceBuilder` around
//!   `service_fn(op)` (a waiting bulkhead, as the pipeline's).
//! - `tower-resilience`: tower-resilience 0.13's time limiter, rate limiter, bulkhead,
//!   retry, circuit breaker and time limiter, around `service_fn(op)`.
//! - `tower + tower-resilience breaker`: tower 0.5's own `timeout`, `rate_limit`,
//!   `concurrency_limit`, `retry` (a 3-attempt exponential policy written here: tower has
//!   none ready-made without `rand`), tower-resilience's breaker (tower has none), and
//!   `timeout`.
//! - `hand-composed`: governor + `Semaphore` + failsafe + backon + tokio timeouts, as in
//!   the `stdrun` bench.
//!
//! Every row is driven the same way: a loop of `iters` calls inside one `block_on` of a
//! current-thread tokio runtime with time enabled (the timeouts need its timer); tower
//! rows call `ready().await` then `call(x).await` on one service, as a server's
//! connection task does.
//!
//! ```sh
//! cargo bench -p stanchion-benches --bench pipeline -- --warm-up-time 1 --measurement-time 3
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use stanchion_benches::alloc::{self, Counted, CountingAllocator};
use stanchion_benches::pipeline::{self as setup, ATTEMPT, OVERALL, op};
use stanchion_benches::report::{self, Estimates, Table, format_ns, format_ratio};
use stanchion_std::TokioClock;
use stanchion_std::tower as st;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_resilience::bulkhead::BulkheadLayer as TrBulkhead;
use tower_resilience::circuitbreaker::CircuitBreakerLayer as TrBreaker;
use tower_resilience::ratelimiter::RateLimiterLayer as TrRateLimiter;
use tower_resilience::retry::{ExponentialBackoff as TrExponential, RetryLayer as TrRetry};
use tower_resilience::timelimiter::TimeLimiterLayer as TrTimeLimiter;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Calls counted for the allocation columns (after [`WARM_UP`] calls: tokio's timer
/// wheel and the stacks' lazily built parts allocate on first use).
const CALLS: u64 = 10_000;
const WARM_UP: u64 = 1_000;

const GROUP: &str = "pipeline";
const BARE: &str = "bare";
const PIPELINE: &str = "stanchion Pipeline";
const ST_TOWER: &str = "stanchion tower layers";
const TR: &str = "tower-resilience";
const TOWER: &str = "tower + tower-resilience breaker";
const HAND: &str = "hand-composed";
const ROWS: [&str; 6] = [BARE, PIPELINE, ST_TOWER, TR, TOWER, HAND];

/// Allocations counted per row, by row name.
type Allocs = HashMap<&'static str, Counted>;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Bench `$call` (an expression of `$x: u64` giving a future of a `Result`) as row `$id`,
/// then count its allocations over `CALLS` calls; every counted call must succeed.
macro_rules! row {
    ($g:expr, $rt:expr, $allocs:expr, $id:expr, |$x:ident| $call:expr) => {{
        $g.bench_function($id, |b| {
            b.iter_custom(|iters| {
                $rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        let $x = black_box(i);
                        black_box($call.await.is_ok());
                    }
                    start.elapsed()
                })
            })
        });
        let counted = $rt.block_on(async {
            for i in 0..WARM_UP {
                let $x = i;
                assert!($call.await.is_ok(), "{} failed", $id);
            }
            alloc::start();
            for i in 0..CALLS {
                let $x = i;
                let ok = $call.await.is_ok();
                if !ok {
                    alloc::stop();
                    panic!("{} failed", $id);
                }
            }
            alloc::stop()
        });
        $allocs.insert($id, counted);
    }};
}

/// One request through a tower service: `ready`, then `call`.
async fn through<S: Service<u64>>(svc: &mut S, x: u64) -> Result<S::Response, S::Error> {
    svc.ready().await?.call(x).await
}

/// tower's retry policy for the `tower` row: up to 3 attempts, exponential delays.
#[derive(Clone, Copy)]
struct Exponential3 {
    left: u32,
    delay: Duration,
}

impl Exponential3 {
    const fn new() -> Self {
        Self {
            left: setup::ATTEMPTS - 1,
            delay: setup::FIRST_DELAY,
        }
    }
}

impl<E> tower::retry::Policy<u64, u64, E> for Exponential3 {
    type Future = Pin<Box<tokio::time::Sleep>>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        if result.is_ok() || self.left == 0 {
            return None;
        }
        self.left -= 1;
        let sleep = Box::pin(tokio::time::sleep(self.delay));
        self.delay = (self.delay * 2).min(setup::MAX_DELAY);
        Some(sleep)
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn rows(g: &mut BenchmarkGroup<'_, WallTime>, allocs: &mut Allocs) {
    let rt = ok(tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build());

    row!(g, rt, allocs, BARE, |x| op(x));

    let pipeline = rt.block_on(async { setup::stanchion_pipeline() });
    row!(g, rt, allocs, PIPELINE, |x| pipeline.call(|_| op(x)));

    let mut ours = rt.block_on(async {
        let clock = TokioClock::new();
        ServiceBuilder::new()
            .layer(st::TimeoutLayer::overall(OVERALL))
            .layer(st::RateLimitLayer::new(Arc::new(setup::limiter())))
            .layer(st::QueuedBulkheadLayer::new(
                Arc::new(setup::bulkhead_queue(clock)),
                None,
            ))
            .layer(st::RetryLayer::with_clock(
                |_: &TokioClock| setup::retry_policy(1),
                clock,
            ))
            .layer(st::CircuitBreakerLayer::with_clock(
                Arc::new(setup::breaker()),
                clock,
            ))
            .layer(st::TimeoutLayer::new(ATTEMPT))
            .service(service_fn(op))
    });
    row!(g, rt, allocs, ST_TOWER, |x| through(&mut ours, x));

    let mut resilience = rt.block_on(async {
        ServiceBuilder::new()
            .layer(TrTimeLimiter::builder().timeout_duration(OVERALL).build())
            .layer(ok(TrRateLimiter::builder()
                .limit_for_period(setup::RATE_PER_SECOND as usize)
                .refresh_period(Duration::from_secs(1))
                .build()))
            .layer(ok(TrBulkhead::builder()
                .max_concurrent_calls(setup::BULKHEAD as usize)
                .build()))
            .layer(
                TrRetry::builder()
                    .max_attempts(setup::ATTEMPTS as usize)
                    .backoff(TrExponential::new(setup::FIRST_DELAY).max_interval(setup::MAX_DELAY))
                    .build(),
            )
            .layer(ok(TrBreaker::builder()
                .consecutive_failures(setup::BREAKER_FAILURES as usize)
                .build()))
            .layer(TrTimeLimiter::builder().timeout_duration(ATTEMPT).build())
            .service(service_fn(op))
    });
    row!(g, rt, allocs, TR, |x| through(&mut resilience, x));

    let mut tower_own = rt.block_on(async {
        ServiceBuilder::new()
            .timeout(OVERALL)
            .rate_limit(u64::from(setup::RATE_PER_SECOND), Duration::from_secs(1))
            .concurrency_limit(setup::BULKHEAD as usize)
            .retry(Exponential3::new())
            .layer(ok(TrBreaker::builder()
                .consecutive_failures(setup::BREAKER_FAILURES as usize)
                .build()))
            .timeout(ATTEMPT)
            .service(service_fn(op))
    });
    row!(g, rt, allocs, TOWER, |x| through(&mut tower_own, x));

    let hand = setup::HandComposed::new();
    row!(g, rt, allocs, HAND, |x| hand.call(x));
}

fn id(row: &str) -> String {
    format!("{GROUP}/{row}")
}

/// The table: time per call, overhead over `bare`, that overhead against the cheaper
/// tower stack's, allocations and bytes per call.
fn tables(e: &Estimates, allocs: &Allocs) {
    let times: Vec<Option<f64>> = ROWS.iter().map(|r| e.ns(&id(r))).collect();
    let bare = times[0];
    let overhead = |i: usize| Some((times[i]? - bare?).max(0.0));
    // The peer: the cheaper of the two tower stacks, in this run.
    let tower_rows = [3, 4];
    let peer = tower_rows
        .iter()
        .filter_map(|&i| Some((i, overhead(i)?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let mut t = Table::new(
        "pipeline",
        &[
            "stack",
            "time per call",
            "overhead per call (- bare)",
            "overhead / cheaper tower stack's",
            "heap allocations per call",
            "bytes allocated per call",
        ],
    );
    for (i, name) in ROWS.iter().enumerate() {
        let counted = allocs.get(name).copied().unwrap_or_default();
        let vs_peer = match (overhead(i), peer) {
            _ if i == 0 => "".to_owned(),
            (Some(o), Some((_, p))) if p > 0.0 => format_ratio(o / p),
            _ => "—".to_owned(),
        };
        t.row(vec![
            (*name).to_owned(),
            times[i].map_or_else(|| "—".into(), format_ns),
            if i == 0 {
                "".to_owned()
            } else {
                overhead(i).map_or_else(|| "—".into(), format_ns)
            },
            vs_peer,
            counted.allocations_per_call(CALLS),
            counted.bytes_per_call(CALLS),
        ]);
    }
    t.write(e);

    let (Some(ours), Some((peer_row, theirs))) = (overhead(1), peer) else {
        println!("headline pipeline: not written, not measured in this run");
        return;
    };
    let zero = allocs.get(PIPELINE).is_some_and(|c| c.allocations == 0);
    let ratio = ours / theirs;
    let verdict = if zero {
        report::verdict(ratio)
    } else {
        "behind: it allocates"
    };
    report::write_fragment(
        "headline-pipeline",
        &format!(
            "| whole pipeline (6 layers), overhead per call; {} heap allocations per call | {} | {} ({verdict}) |\n",
            allocs
                .get(PIPELINE)
                .map_or_else(|| "—".into(), |c| c.allocations_per_call(CALLS)),
            ROWS[peer_row],
            format_ratio(ratio),
        ),
    );
}

/// Allocations counted by the group, for the table written after it.
static ALLOCS: Mutex<Vec<(&str, Counted)>> = Mutex::new(Vec::new());

fn group() {
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group(GROUP);
    let mut allocs = Allocs::new();
    rows(&mut g, &mut allocs);
    g.finish();
    let mut kept = ALLOCS.lock().unwrap_or_else(|e| e.into_inner());
    kept.clear();
    kept.extend(allocs);
}

fn main() {
    // The counter must see an allocation, or every "0" below means nothing.
    alloc::start();
    drop(black_box(Box::new(black_box(5u64))));
    let seen = alloc::stop();
    assert_eq!(seen.allocations, 1, "the counting allocator counts nothing");

    report::main(&[group], |e| {
        let allocs: Allocs = ALLOCS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        tables(e, &allocs);
    });
}
