//! Circuit breaker, closed path: acquire + record one outcome, against failsafe and
//! recloser, single thread and two threads, in the same run.
//!
//! Like for like: each pair uses the same kind of window and the same clock reads.
//! - consecutive failures: stanchion `ConsecutiveWindow` vs failsafe
//!   `consecutive_failures` (neither reads a clock on the closed path);
//! - last 100 calls: stanchion `CountWindow<100>` vs recloser `closed_len(100)` (neither
//!   reads a clock);
//! - last 10 s: stanchion `TimeWindow<10>` reading `StdClock` once per call vs failsafe
//!   `success_rate_over_time_window` (reads `Instant::now` per outcome).
//!
//! And what a user can do that failsafe cannot, against the same failsafe row: the time
//! window given the time the caller already has (`time_10s/stanchion_caller_time`, a
//! precomputed instant, no clock read) or read from the TSC (`time_10s/stanchion_quanta`,
//! `QuantaClock`). `clock/std` and `clock/quanta` time one clock read alone, to show where
//! the time of the like-for-like row goes.
//!
//! One call in 16 fails, below every threshold, so the breakers stay closed.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant as StdInstant};

use criterion::{Criterion, criterion_group};
use stanchion::breaker::window::{ConsecutiveWindow, CountWindow, TimeWindow};
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::sync::NoopRawMutex;
use stanchion::{Clock, Instant};
use stanchion_benches::report::{self, Table};
use stanchion_std::{QuantaClock, StdClock, StdRawMutex};

/// The duration every stanchion call reports (below the slow-call duration).
const CALL: Duration = Duration::from_micros(50);

fn fails(i: u64) -> bool {
    i % 16 == 15
}

fn config() -> BreakerConfig {
    BreakerConfig::new()
        .minimum_calls(10)
        .failure_rate_threshold(50)
}

type FailsafeConsecutive = failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
>;
type FailsafeTimeWindow = failsafe::StateMachine<
    failsafe::failure_policy::SuccessRateOverTimeWindow<failsafe::backoff::Constant>,
    (),
>;

fn failsafe_consecutive() -> FailsafeConsecutive {
    let backoff = failsafe::backoff::constant(Duration::from_secs(60));
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(5, backoff))
        .build()
}

fn failsafe_time_window() -> FailsafeTimeWindow {
    let backoff = failsafe::backoff::constant(Duration::from_secs(60));
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::success_rate_over_time_window(
            0.5,
            10,
            Duration::from_secs(10),
            backoff,
        ))
        .build()
}

fn recloser_count() -> recloser::Recloser {
    recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .half_open_len(10)
        .open_wait(Duration::from_secs(60))
        .build()
}

/// One call through a failsafe breaker: the same two steps as stanchion's
/// acquire-then-record.
fn failsafe_call<P: failsafe::failure_policy::FailurePolicy>(
    b: &failsafe::StateMachine<P, ()>,
    i: u64,
) {
    if b.is_call_permitted() {
        if fails(i) {
            b.on_error();
        } else {
            b.on_success();
        }
    }
}

fn recloser_call(r: &recloser::Recloser, i: u64) {
    let _ = black_box(r.call(|| if fails(black_box(i)) { Err(()) } else { Ok(()) }));
}

macro_rules! stanchion_call {
    ($b:expr, $now:expr, $i:expr) => {
        if let Ok(permit) = $b.try_acquire_at($now) {
            if fails($i) {
                permit.failure(CALL)
            } else {
                permit.success(CALL)
            }
        }
    };
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_closed/1_thread");
    let mut i = 0u64;
    let now = Instant::from_secs(1);

    let consecutive: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(config(), ConsecutiveWindow::new(5).unwrap()).unwrap();
    g.bench_function("consecutive/stanchion", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            stanchion_call!(consecutive, black_box(now), i);
        })
    });
    let fs = failsafe_consecutive();
    g.bench_function("consecutive/failsafe", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            failsafe_call(&fs, i);
        })
    });

    let count: CircuitBreaker<CountWindow<100>, StdRawMutex> =
        CircuitBreaker::new(config(), CountWindow::new().unwrap()).unwrap();
    g.bench_function("count_100/stanchion", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            stanchion_call!(count, black_box(now), i);
        })
    });
    let single: CircuitBreaker<CountWindow<100>, NoopRawMutex> =
        CircuitBreaker::new(config(), CountWindow::new().unwrap()).unwrap();
    g.bench_function("count_100/stanchion_noop_mutex", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            stanchion_call!(single, black_box(now), i);
        })
    });
    let rc = recloser_count();
    g.bench_function("count_100/recloser", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            recloser_call(&rc, i);
        })
    });

    let clock = StdClock::new();
    let time: CircuitBreaker<TimeWindow<10>, StdRawMutex> =
        CircuitBreaker::new(config(), TimeWindow::new(Duration::from_secs(10)).unwrap()).unwrap();
    g.bench_function("time_10s/stanchion", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            stanchion_call!(time, clock.now(), i);
        })
    });
    let caller: CircuitBreaker<TimeWindow<10>, StdRawMutex> =
        CircuitBreaker::new(config(), TimeWindow::new(Duration::from_secs(10)).unwrap()).unwrap();
    g.bench_function("time_10s/stanchion_caller_time", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            stanchion_call!(caller, black_box(now), i);
        })
    });
    let quanta = QuantaClock::new();
    let tsc: CircuitBreaker<TimeWindow<10>, StdRawMutex> =
        CircuitBreaker::new(config(), TimeWindow::new(Duration::from_secs(10)).unwrap()).unwrap();
    g.bench_function("time_10s/stanchion_quanta", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            stanchion_call!(tsc, quanta.now(), i);
        })
    });
    let fs = failsafe_time_window();
    g.bench_function("time_10s/failsafe", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            failsafe_call(&fs, i);
        })
    });
    g.bench_function("clock/std", |b| b.iter(|| black_box(clock.now())));
    g.bench_function("clock/quanta", |b| b.iter(|| black_box(quanta.now())));
    g.finish();
}

/// Runs `call` `iters` times on each of two spawned threads at once, as a service's worker
/// pool runs calls; returns the wall time from the start until both are done.
fn two_threads(iters: u64, call: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    for i in 0..iters {
                        call(i);
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = StdInstant::now();
        for worker in workers {
            worker.join().unwrap();
        }
        start.elapsed()
    })
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_closed/2_threads");
    let now = Instant::from_secs(1);

    let consecutive: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(config(), ConsecutiveWindow::new(5).unwrap()).unwrap();
    g.bench_function("consecutive/stanchion", |b| {
        b.iter_custom(|n| two_threads(n, |i| stanchion_call!(consecutive, black_box(now), i)))
    });
    let fs = failsafe_consecutive();
    g.bench_function("consecutive/failsafe", |b| {
        b.iter_custom(|n| two_threads(n, |i| failsafe_call(&fs, i)))
    });

    let count: CircuitBreaker<CountWindow<100>, StdRawMutex> =
        CircuitBreaker::new(config(), CountWindow::new().unwrap()).unwrap();
    g.bench_function("count_100/stanchion", |b| {
        b.iter_custom(|n| two_threads(n, |i| stanchion_call!(count, black_box(now), i)))
    });
    let rc = recloser_count();
    g.bench_function("count_100/recloser", |b| {
        b.iter_custom(|n| two_threads(n, |i| recloser_call(&rc, i)))
    });

    let clock = StdClock::new();
    let time: CircuitBreaker<TimeWindow<10>, StdRawMutex> =
        CircuitBreaker::new(config(), TimeWindow::new(Duration::from_secs(10)).unwrap()).unwrap();
    g.bench_function("time_10s/stanchion", |b| {
        b.iter_custom(|n| two_threads(n, |i| stanchion_call!(time, clock.now(), i)))
    });
    let caller: CircuitBreaker<TimeWindow<10>, StdRawMutex> =
        CircuitBreaker::new(config(), TimeWindow::new(Duration::from_secs(10)).unwrap()).unwrap();
    g.bench_function("time_10s/stanchion_caller_time", |b| {
        b.iter_custom(|n| two_threads(n, |i| stanchion_call!(caller, black_box(now), i)))
    });
    let quanta = QuantaClock::new();
    let tsc: CircuitBreaker<TimeWindow<10>, StdRawMutex> =
        CircuitBreaker::new(config(), TimeWindow::new(Duration::from_secs(10)).unwrap()).unwrap();
    g.bench_function("time_10s/stanchion_quanta", |b| {
        b.iter_custom(|n| two_threads(n, |i| stanchion_call!(tsc, quanta.now(), i)))
    });
    let fs = failsafe_time_window();
    g.bench_function("time_10s/failsafe", |b| {
        b.iter_custom(|n| two_threads(n, |i| failsafe_call(&fs, i)))
    });
    g.finish();
}

criterion_group!(benches, single_thread, contended);

fn main() {
    report::main(&[benches], |e| {
        let mut t = Table::new(
            "breaker",
            &[
                "window",
                "threads",
                "stanchion",
                "peer",
                "peer time",
                "ratio (stanchion / peer)",
                "met (<= 0.3x failsafe)",
            ],
        );
        let failsafe_time = "failsafe `success_rate_over_time_window`";
        let rows = [
            (
                "consecutive failures (5)",
                "consecutive/stanchion",
                "failsafe `consecutive_failures`",
                "consecutive/failsafe",
                true,
            ),
            (
                "last 100 calls",
                "count_100/stanchion",
                "recloser `closed_len(100)`",
                "count_100/recloser",
                false,
            ),
            (
                "last 10 s (10 buckets), both read `Instant::now` per call",
                "time_10s/stanchion",
                failsafe_time,
                "time_10s/failsafe",
                true,
            ),
            (
                "last 10 s, caller-supplied time (no clock read)",
                "time_10s/stanchion_caller_time",
                failsafe_time,
                "time_10s/failsafe",
                true,
            ),
            (
                "last 10 s, `QuantaClock` (TSC)",
                "time_10s/stanchion_quanta",
                failsafe_time,
                "time_10s/failsafe",
                true,
            ),
        ];
        for (row, ours, peer, theirs, target) in &rows {
            for (threads, group) in [
                ("1", "breaker_closed/1_thread"),
                ("2", "breaker_closed/2_threads"),
            ] {
                let (ours, theirs) = (format!("{group}/{ours}"), format!("{group}/{theirs}"));
                t.row(vec![
                    (*row).into(),
                    threads.into(),
                    e.time(&ours),
                    (*peer).into(),
                    e.time(&theirs),
                    e.ratio(&ours, &theirs),
                    if *target {
                        e.met(&ours, &theirs, 0.3)
                    } else {
                        "no failsafe peer".into()
                    },
                ]);
            }
        }
        let g = "breaker_closed/1_thread";
        t.row(vec![
            "last 100 calls, `NoopRawMutex` (single owner)".into(),
            "1".into(),
            e.time(&format!("{g}/count_100/stanchion_noop_mutex")),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        t.row(vec![
            "one clock read alone: `StdClock` / `QuantaClock`".into(),
            "1".into(),
            format!(
                "{} / {}",
                e.time(&format!("{g}/clock/std")),
                e.time(&format!("{g}/clock/quanta"))
            ),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        t.write(e);
        report::headline(
            e,
            "breaker",
            &[
                (
                    "circuit breaker, closed path, consecutive window",
                    "failsafe",
                    "breaker_closed/1_thread/consecutive/stanchion",
                    "breaker_closed/1_thread/consecutive/failsafe",
                ),
                (
                    "circuit breaker, closed path, time window, both read `Instant::now`",
                    "failsafe",
                    "breaker_closed/1_thread/time_10s/stanchion",
                    "breaker_closed/1_thread/time_10s/failsafe",
                ),
                (
                    "the same, two threads on one breaker",
                    "failsafe",
                    "breaker_closed/2_threads/time_10s/stanchion",
                    "breaker_closed/2_threads/time_10s/failsafe",
                ),
            ],
        );
    });
}
