//! The tower layers against tower's own middleware, like for like: one request through
//! one layer over an inner service that answers at once, polled by hand (no executor in
//! the measurement), on a tokio runtime context for the timers.
//!
//! ```sh
//! cargo bench -p stanchion-benches --bench tower -- --warm-up-time 1 --measurement-time 3
//! ```

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::bulkhead::Bulkhead;
use stanchion::hedge::{Hedge, HedgeConfig};
use stanchion::rate::{Quota, TokenBucket, WithClock};
use stanchion::retry::{Constant, Exponential, Jitter, Ratio, RatioBudget, RetryPolicy};
use stanchion_benches::alloc::{self, Counted, CountingAllocator};
use stanchion_benches::report::{self, Table};
use stanchion_std::hedge::Hedging;
use stanchion_std::tower as st;
use stanchion_std::{CoarseClock, QuantaClock, StdRawMutex, TokioClock};
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::util::rng::HasherRng;
use tower::{Layer, Service};

/// The inner service: answers at once.
#[derive(Clone, Copy)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u64) -> Self::Future {
        ready(Ok(x))
    }
}

/// One request: `poll_ready`, `call`, and one poll of the response future, which must be
/// ready (every layer here answers at once over `Echo`).
fn once<S: Service<u64>>(svc: &mut S, x: u64) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => return false,
    }
    let future = pin!(svc.call(x));
    matches!(future.poll(&mut cx), Poll::Ready(Ok(_)))
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations per request of the hedging rows (ours, tower's), counted outside
/// criterion's timing.
static HEDGE_ALLOCS: std::sync::Mutex<Option<(Counted, Counted)>> = std::sync::Mutex::new(None);

/// Requests counted for [`HEDGE_ALLOCS`], after as many to warm up.
const COUNTED: u64 = 1_000;

/// The allocations of `COUNTED` requests through `svc`, after `COUNTED` to warm up.
fn allocations<S: Service<u64>>(svc: &mut S) -> Counted {
    for i in 0..COUNTED {
        assert!(once(svc, i));
    }
    alloc::start();
    for i in 0..COUNTED {
        once(svc, i);
    }
    alloc::stop()
}

/// tower's hedge policy: every request may be hedged.
#[derive(Clone, Copy)]
struct HedgeAll;

impl tower::hedge::Policy<u64> for HedgeAll {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }

    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

/// tower's retry policy that never retries: the success path only.
#[derive(Clone, Copy)]
struct NeverRetry;

impl tower::retry::Policy<u64, u64, Infallible> for NeverRetry {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, _: &mut Result<u64, Infallible>) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// tower's retry policy as a user configures one: up to 3 attempts, waiting as tower's own
/// jittered `ExponentialBackoff` says (100 ms doubling to 10 s, as stanchion's side).
/// `tower::retry::Retry` clones the service, this policy with it, for every request.
#[derive(Clone)]
struct BackoffRetry {
    attempts_left: u32,
    backoff: ExponentialBackoff,
}

impl BackoffRetry {
    fn new() -> BackoffRetry {
        let mut maker = ExponentialBackoffMaker::new(
            Duration::from_millis(100),
            Duration::from_secs(10),
            1.0,
            HasherRng::new(),
        )
        .unwrap();
        BackoffRetry {
            attempts_left: 2,
            backoff: maker.make_backoff(),
        }
    }
}

impl tower::retry::Policy<u64, u64, Infallible> for BackoffRetry {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, Infallible>) -> Option<Self::Future> {
        if result.is_ok() || self.attempts_left == 0 {
            return None;
        }
        self.attempts_left -= 1;
        Some(self.backoff.next_backoff())
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _context = rt.enter();
    let mut g = c.benchmark_group(GROUP);

    let mut ours = st::TimeoutLayer::new(Duration::from_secs(60)).layer(Echo);
    let mut theirs = tower::timeout::TimeoutLayer::new(Duration::from_secs(60)).layer(Echo);
    g.bench_function("timeout/stanchion", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    g.bench_function("timeout/tower", |b| {
        b.iter(|| once(&mut theirs, black_box(1)))
    });

    let bulkhead = Arc::new(Bulkhead::new(1_000).unwrap());
    let mut ours = st::BulkheadLayer::new(bulkhead).layer(Echo);
    let mut theirs = tower::ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(1_000)
        .service(Echo);
    g.bench_function("bulkhead (reject when full)/stanchion", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    g.bench_function("concurrency_limit + load_shed/tower", |b| {
        b.iter(|| once(&mut theirs, black_box(1)))
    });

    // A quota that a benchmark run cannot exhaust, so that both stay on the granted path.
    let limiter = WithClock::new(
        TokenBucket::new(Quota::per_second(1_000_000_000).unwrap()),
        TokioClock::new(),
    );
    let mut ours = st::RateLimitLayer::new(Arc::new(limiter)).layer(Echo);
    let mut theirs =
        tower::limit::RateLimitLayer::new(u64::MAX, Duration::from_secs(3_600)).layer(Echo);
    g.bench_function("rate limit/stanchion (GCRA)", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    // The same on the time-stamp counter: the clock read is most of the cost.
    let limiter = WithClock::new(
        TokenBucket::new(Quota::per_second(1_000_000_000).unwrap()),
        QuantaClock::new(),
    );
    let mut ours = st::RateLimitLayer::new(Arc::new(limiter)).layer(Echo);
    g.bench_function("rate limit/stanchion (GCRA, QuantaClock)", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    // And on the coarse clock the docs recommend for servers: one atomic load.
    let limiter = WithClock::new(
        TokenBucket::new(Quota::per_second(1_000_000_000).unwrap()),
        CoarseClock::start(),
    );
    let mut ours = st::RateLimitLayer::new(Arc::new(limiter)).layer(Echo);
    g.bench_function("rate limit/stanchion (GCRA, CoarseClock)", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    g.bench_function("rate limit/tower (fixed window)", |b| {
        b.iter(|| once(&mut theirs, black_box(1)))
    });

    let mut ours = st::RetryLayer::new(|_clock| {
        RetryPolicy::new(
            Constant::new(Duration::from_millis(1)),
            3,
            fastrand::Rng::with_seed(7),
        )
        .unwrap()
    })
    .layer(Echo);
    let mut theirs = tower::retry::RetryLayer::new(NeverRetry).layer(Echo);
    g.bench_function("retry (first attempt succeeds)/stanchion", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    g.bench_function("retry (first attempt succeeds)/tower", |b| {
        b.iter(|| once(&mut theirs, black_box(1)))
    });
    // Like for like: both sides configured with exponential backoff and jitter.
    let mut ours = st::RetryLayer::new(|_clock| {
        RetryPolicy::new(
            Exponential::new(
                Duration::from_millis(100),
                Ratio::TWO,
                Duration::from_secs(10),
            )
            .unwrap()
            .with_jitter(Jitter::FULL),
            3,
            fastrand::Rng::with_seed(7),
        )
        .unwrap()
    })
    .layer(Echo);
    let mut theirs = tower::retry::RetryLayer::new(BackoffRetry::new()).layer(Echo);
    g.bench_function(
        "retry with backoff (first attempt succeeds)/stanchion",
        |b| b.iter(|| once(&mut ours, black_box(1))),
    );
    g.bench_function("retry with backoff (first attempt succeeds)/tower", |b| {
        b.iter(|| once(&mut theirs, black_box(1)))
    });
    // The same on the servers' clock: the layer hands each request's future a copy.
    let mut ours = st::RetryLayer::with_clock(
        |_clock: &CoarseClock| {
            RetryPolicy::new(
                Constant::new(Duration::from_millis(1)),
                3,
                fastrand::Rng::with_seed(7),
            )
            .unwrap()
        },
        CoarseClock::start(),
    )
    .layer(Echo);
    g.bench_function(
        "retry (first attempt succeeds)/stanchion (CoarseClock)",
        |b| b.iter(|| once(&mut ours, black_box(1))),
    );

    // Hedging, when no hedge fires (the inner service answers at once): ours at the
    // learned p90 with a 10% budget, tower's `hedge` at p90 (which has no budget), both
    // after 100 data points and over a 10 s period.
    let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 1).unwrap();
    let config = HedgeConfig::learned(900, 2).unwrap();
    let hedge: Hedge<_> = Hedge::new(config, budget).unwrap();
    let mut ours = st::HedgeLayer::new(Arc::new(Hedging::new(hedge))).layer(Echo);
    let mut theirs = tower::hedge::Hedge::new(Echo, HedgeAll, 100, 0.9, Duration::from_secs(10));
    let counted = (allocations(&mut ours), allocations(&mut theirs));
    *HEDGE_ALLOCS.lock().unwrap_or_else(|e| e.into_inner()) = Some(counted);
    g.bench_function("hedge (no hedge fires)/stanchion", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    g.bench_function("hedge (no hedge fires)/tower", |b| {
        b.iter(|| once(&mut theirs, black_box(1)))
    });

    // No peer: tower has no circuit breaker.
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(5).unwrap()).unwrap();
    let mut ours = st::CircuitBreakerLayer::new(Arc::new(breaker)).layer(Echo);
    g.bench_function("circuit breaker (closed)/stanchion", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(5).unwrap()).unwrap();
    let mut ours =
        st::CircuitBreakerLayer::with_clock(Arc::new(breaker), QuantaClock::new()).layer(Echo);
    g.bench_function("circuit breaker (closed)/stanchion (QuantaClock)", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(5).unwrap()).unwrap();
    let mut ours =
        st::CircuitBreakerLayer::with_clock(Arc::new(breaker), CoarseClock::start()).layer(Echo);
    g.bench_function("circuit breaker (closed)/stanchion (CoarseClock)", |b| {
        b.iter(|| once(&mut ours, black_box(1)))
    });
    g.finish();
}

criterion_group!(benches, bench);

const GROUP: &str = "tower layer, one granted request";

fn main() {
    report::main(&[benches], |e| {
        let id = |name: &str| format!("{GROUP}/{name}");
        let mut t = Table::new(
            "tower",
            &[
                "layer",
                "stanchion",
                "tower",
                "ratio (stanchion / tower)",
                "target <= 1.0x met",
            ],
        );
        let hedge_allocs = HEDGE_ALLOCS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or_else(String::new, |(ours, theirs)| {
                format!(
                    "; allocations per request {} vs {}",
                    ours.allocations_per_call(COUNTED),
                    theirs.allocations_per_call(COUNTED)
                )
            });
        let hedge_row = format!(
            "hedging, no hedge fires (`HedgeLayer` at the learned p90 vs `tower::hedge` at p90{hedge_allocs})"
        );
        let pairs: [(&str, &str, &str); 9] = [
            (
                "timeout (`TimeoutLayer` vs `tower::timeout`)",
                "timeout/stanchion",
                "timeout/tower",
            ),
            (
                "bulkhead, reject when full (`BulkheadLayer` vs `load_shed` + `concurrency_limit`)",
                "bulkhead (reject when full)/stanchion",
                "concurrency_limit + load_shed/tower",
            ),
            (
                "rate limit, `TokenBucket` on `TokioClock` (vs `tower::limit::RateLimit`, fixed window)",
                "rate limit/stanchion (GCRA)",
                "rate limit/tower (fixed window)",
            ),
            (
                "rate limit, `TokenBucket` on `QuantaClock`",
                "rate limit/stanchion (GCRA, QuantaClock)",
                "rate limit/tower (fixed window)",
            ),
            (
                "rate limit, `TokenBucket` on `CoarseClock` (the servers' clock)",
                "rate limit/stanchion (GCRA, CoarseClock)",
                "rate limit/tower (fixed window)",
            ),
            (
                "retry, first attempt succeeds (`RetryLayer` vs `tower::retry`, a policy that never retries)",
                "retry (first attempt succeeds)/stanchion",
                "retry (first attempt succeeds)/tower",
            ),
            (
                "retry, first attempt succeeds, exponential backoff with jitter on both sides (tower's `ExponentialBackoff` in its policy)",
                "retry with backoff (first attempt succeeds)/stanchion",
                "retry with backoff (first attempt succeeds)/tower",
            ),
            (
                "retry, first attempt succeeds, on `CoarseClock`",
                "retry (first attempt succeeds)/stanchion (CoarseClock)",
                "retry (first attempt succeeds)/tower",
            ),
            (
                &hedge_row,
                "hedge (no hedge fires)/stanchion",
                "hedge (no hedge fires)/tower",
            ),
        ];
        for (layer, ours, theirs) in pairs.iter() {
            t.row(vec![
                (*layer).into(),
                e.time(&id(ours)),
                e.time(&id(theirs)),
                e.ratio(&id(ours), &id(theirs)),
                e.met(&id(ours), &id(theirs), 1.0),
            ]);
        }
        for (layer, ours) in [
            (
                "circuit breaker, closed (`ConsecutiveWindow`), on `TokioClock`",
                "circuit breaker (closed)/stanchion",
            ),
            (
                "circuit breaker, closed, on `QuantaClock`",
                "circuit breaker (closed)/stanchion (QuantaClock)",
            ),
            (
                "circuit breaker, closed, on `CoarseClock`",
                "circuit breaker (closed)/stanchion (CoarseClock)",
            ),
        ] {
            t.row(vec![
                layer.into(),
                e.time(&id(ours)),
                "none (tower has no breaker)".into(),
                "".into(),
                "".into(),
            ]);
        }
        t.write(e);
        report::headline(
            e,
            "tower",
            &[
                (
                    "tower bulkhead layer (reject when full), one request",
                    "tower `load_shed` + `concurrency_limit`",
                    &id("bulkhead (reject when full)/stanchion"),
                    &id("concurrency_limit + load_shed/tower"),
                ),
                (
                    "tower rate-limit layer on `TokioClock`, one request",
                    "tower `RateLimit` (fixed window, not shared by clones)",
                    &id("rate limit/stanchion (GCRA)"),
                    &id("rate limit/tower (fixed window)"),
                ),
                (
                    "tower rate-limit layer on `CoarseClock` (the servers' clock), one request",
                    "tower `RateLimit` (fixed window, not shared by clones)",
                    &id("rate limit/stanchion (GCRA, CoarseClock)"),
                    &id("rate limit/tower (fixed window)"),
                ),
                (
                    "tower retry layer, first attempt succeeds, one request, exponential backoff with jitter on both sides",
                    "`tower::retry` with tower's `ExponentialBackoff`",
                    &id("retry with backoff (first attempt succeeds)/stanchion"),
                    &id("retry with backoff (first attempt succeeds)/tower"),
                ),
                (
                    "tower retry layer, first attempt succeeds, one request",
                    "`tower::retry` with a policy that never retries (its floor)",
                    &id("retry (first attempt succeeds)/stanchion"),
                    &id("retry (first attempt succeeds)/tower"),
                ),
            ],
        );
    });
}
