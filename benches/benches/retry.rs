//! Retry: stanchion's backoff and policy decisions against backon, in the same run.
//!
//! - `retry/next_delay`: one delay from a long-lived exponential backoff (steady state at
//!   the cap), without and with jitter.
//! - `retry/failing_operation`: a fresh per-operation state and the 3 decisions of an
//!   operation that fails 4 times (backon: build + 3 `next()`; stanchion: a
//!   `RetryPolicy` with 4 attempts, 3 `on_failure_at` decisions and the give-up).
//! - `retry/succeeds_at_once`: a retry wrapper whose operation succeeds at once, sync
//!   (backon's `BlockingRetry`) and async on tokio (backon's `Retry` future).
//!
//! Writes the table `retry` of `BENCHMARKS.md` (see `stanchion_benches::report`).
//!
//! Run: `cargo bench -p stanchion-benches --bench retry -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use backon::{BackoffBuilder, BlockingRetryable, ExponentialBuilder, Retryable};
use criterion::{Criterion, criterion_group};
use stanchion::retry::{Backoff, Decision, Exponential, Jitter, Ratio, RetryPolicy};
use stanchion::{Clock, Instant};
use stanchion_benches::report::{self, Table};
use stanchion_std::StdClock;

const MIN: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(10);

fn exponential() -> Exponential {
    match Exponential::new(MIN, Ratio::TWO, MAX) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

fn backon_builder() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(MIN)
        .with_max_delay(MAX)
        .with_factor(2.0)
}

fn next_delay(c: &mut Criterion) {
    let mut g = c.benchmark_group("retry/next_delay");
    for jitter in [false, true] {
        let suffix = if jitter { "jitter" } else { "plain" };
        let mut b = backon_builder().without_max_times();
        if jitter {
            b = b.with_jitter().with_jitter_seed(7);
        }
        let mut backon_state = b.build();
        g.bench_function(format!("backon/{suffix}"), |bench| {
            bench.iter(|| black_box(backon_state.next()))
        });
        let mut ours = exponential().with_jitter(if jitter { Jitter::FULL } else { Jitter::NONE });
        let mut rng = fastrand::Rng::with_seed(7);
        g.bench_function(format!("stanchion/{suffix}"), |bench| {
            bench.iter(|| black_box(ours.next_delay(&mut rng)))
        });
    }
    g.finish();
}

fn failing_operation(c: &mut Criterion) {
    let mut g = c.benchmark_group("retry/failing_operation");
    let builder = backon_builder().with_max_times(3);
    g.bench_function("backon", |bench| {
        bench.iter(|| {
            let state = black_box(builder).build();
            let mut total = Duration::ZERO;
            for d in state {
                total += d;
            }
            black_box(total)
        })
    });
    let backoff = exponential();
    let now = Instant::from_secs(1_000);
    let mut seeds = fastrand::Rng::with_seed(1);
    g.bench_function("stanchion", |bench| {
        bench.iter(|| {
            let rng = fastrand::Rng::with_seed(seeds.u64(..));
            let mut policy = match RetryPolicy::new(black_box(backoff), 4, rng) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            let mut total = Duration::ZERO;
            while let Decision::Retry { after, .. } = policy.on_failure_at(black_box(now), None) {
                total += after;
            }
            black_box(total)
        })
    });
    g.finish();
}

/// The operation: succeeds at once.
fn op() -> Result<u64, &'static str> {
    Ok(black_box(42))
}

/// A minimal synchronous runner over a policy: the shape of backon's `BlockingRetry`.
fn retry_blocking<T, E, C: Clock>(
    clock: &C,
    backoff: Exponential,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut policy = match RetryPolicy::new(backoff, 4, fastrand::Rng::new()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    loop {
        let outcome = f();
        match policy.on_outcome(clock, &outcome, None) {
            Decision::Retry { after, .. } => std::thread::sleep(after),
            Decision::Done | Decision::GiveUp { .. } => return outcome,
        }
    }
}

/// The same runner on tokio: the shape of backon's `Retry` future.
async fn retry_async<T, E, C: Clock, F: std::future::Future<Output = Result<T, E>>>(
    clock: &C,
    backoff: Exponential,
    mut f: impl FnMut() -> F,
) -> Result<T, E> {
    let mut policy = match RetryPolicy::new(backoff, 4, fastrand::Rng::new()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    loop {
        let outcome = f().await;
        match policy.on_outcome(clock, &outcome, None) {
            Decision::Retry { after, .. } => tokio::time::sleep(after).await,
            Decision::Done | Decision::GiveUp { .. } => return outcome,
        }
    }
}

fn succeeds_at_once(c: &mut Criterion) {
    let mut g = c.benchmark_group("retry/succeeds_at_once");
    let builder = backon_builder().with_max_times(3);
    let clock = StdClock::new();
    let backoff = exponential();
    g.bench_function("sync/backon", |bench| {
        bench.iter(|| black_box(op.retry(black_box(builder)).call()))
    });
    g.bench_function("sync/stanchion", |bench| {
        bench.iter(|| black_box(retry_blocking(&clock, black_box(backoff), op)))
    });
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    let op_async = || async { op() };
    g.bench_function("tokio/backon", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(op_async.retry(black_box(builder)).await.ok());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("tokio/stanchion", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(retry_async(&clock, black_box(backoff), op_async).await.ok());
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, next_delay, failing_operation, succeeds_at_once);

fn main() {
    report::main(&[benches], |e| {
        let mut t = Table::new(
            "retry",
            &[
                "benchmark",
                "backon",
                "stanchion",
                "ratio (stanchion / backon)",
                "met (<= 1.0x)",
            ],
        );
        let rows = [
            (
                "`next_delay/plain`: one delay, long-lived exponential, no jitter",
                "retry/next_delay/stanchion/plain",
                "retry/next_delay/backon/plain",
            ),
            (
                "`next_delay/jitter`: the same with jitter (backon: `d + U(0,d)` in f32; stanchion: full jitter, integer)",
                "retry/next_delay/stanchion/jitter",
                "retry/next_delay/backon/jitter",
            ),
            (
                "`failing_operation`: new per-operation state + the 3 decisions of an operation failing 4 times",
                "retry/failing_operation/stanchion",
                "retry/failing_operation/backon",
            ),
            (
                "`succeeds_at_once/sync`: retry wrapper, operation succeeds at once (backon `BlockingRetry`)",
                "retry/succeeds_at_once/sync/stanchion",
                "retry/succeeds_at_once/sync/backon",
            ),
            (
                "`succeeds_at_once/tokio`: the same, async on a current-thread runtime (backon `Retry`)",
                "retry/succeeds_at_once/tokio/stanchion",
                "retry/succeeds_at_once/tokio/backon",
            ),
        ];
        for (row, ours, theirs) in rows {
            t.row(vec![
                row.into(),
                e.time(theirs),
                e.time(ours),
                e.ratio(ours, theirs),
                e.met(ours, theirs, 1.0),
            ]);
        }
        t.write(e);
        report::headline(
            e,
            "retry",
            &[
                (
                    "retry decisions of an operation failing 4 times",
                    "backon",
                    "retry/failing_operation/stanchion",
                    "retry/failing_operation/backon",
                ),
                (
                    "retry wrapper, async, first attempt succeeds",
                    "backon",
                    "retry/succeeds_at_once/tokio/stanchion",
                    "retry/succeeds_at_once/tokio/backon",
                ),
            ],
        );
    });
}
