//! Bulkhead and adaptive limits against tokio's `Semaphore` (what tower's
//! `ConcurrencyLimit` is built on), like for like: a non-blocking acquire and release on
//! one thread, and a refused acquire on a full semaphore. The limit algorithms have no
//! peer in Rust; their cost per sample is measured alone.
//!
//! Writes the tables `bulkhead` and `adaptive` of `BENCHMARKS.md`.
//!
//! ```text
//! cargo bench -p stanchion-benches --bench bulkhead -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use stanchion::Instant;
use stanchion::adaptive::{
    AdaptiveBulkhead, Aimd, AimdConfig, LimitAlgorithm, Outcome, Sample, Vegas, VegasConfig,
};
use stanchion::bulkhead::Bulkhead;
use stanchion_benches::report::{self, Table};
use stanchion_std::StdRawMutex;

fn acquire_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulkhead/acquire_release");
    let ours = Bulkhead::new(64).unwrap();
    group.bench_function("stanchion::Bulkhead", |b| {
        b.iter(|| drop(black_box(ours.try_acquire().unwrap())))
    });
    let tokio_sem = tokio::sync::Semaphore::new(64);
    group.bench_function("tokio::sync::Semaphore", |b| {
        b.iter(|| drop(black_box(tokio_sem.try_acquire().unwrap())))
    });
    group.finish();
}

fn refused(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulkhead/refused_when_full");
    let ours = Bulkhead::new(1).unwrap();
    let _held = ours.try_acquire().unwrap();
    group.bench_function("stanchion::Bulkhead", |b| {
        b.iter(|| black_box(ours.try_acquire().is_err()))
    });
    let tokio_sem = tokio::sync::Semaphore::new(1);
    let _tokio_held = tokio_sem.try_acquire().unwrap();
    group.bench_function("tokio::sync::Semaphore", |b| {
        b.iter(|| black_box(tokio_sem.try_acquire().is_err()))
    });
    group.finish();
}

fn sample(i: u64) -> Sample {
    Sample {
        started_at: Instant::from_micros(i * 100),
        // 10 ms +/- a little, so Vegas takes every branch of its table over time.
        rtt: Duration::from_micros(10_000 + (i * 7919) % 1_500),
        in_flight: 100,
        dropped: i.is_multiple_of(1_000),
    }
}

fn algorithms(c: &mut Criterion) {
    let mut group = c.benchmark_group("adaptive/on_sample");
    let mut aimd = Aimd::new(AimdConfig {
        initial_limit: 100,
        max_limit: 1000,
        timeout: Duration::from_millis(11),
        ..AimdConfig::DEFAULT
    })
    .unwrap();
    let mut i = 0u64;
    group.bench_function("Aimd", |b| {
        b.iter(|| {
            i += 1;
            black_box(aimd.on_sample(black_box(sample(i))))
        })
    });
    let mut vegas = Vegas::new(VegasConfig {
        initial_limit: 100,
        ..VegasConfig::DEFAULT
    })
    .unwrap();
    let mut j = 0u64;
    group.bench_function("Vegas", |b| {
        b.iter(|| {
            j += 1;
            black_box(vegas.on_sample(black_box(sample(j))))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("adaptive/acquire_record");
    let bulkhead: AdaptiveBulkhead<StdRawMutex, Vegas> = AdaptiveBulkhead::new(
        Vegas::new(VegasConfig {
            initial_limit: 100,
            ..VegasConfig::DEFAULT
        })
        .unwrap(),
    );
    let mut k = 0u64;
    group.bench_function("AdaptiveBulkhead<StdRawMutex, Vegas>", |b| {
        b.iter(|| {
            k += 1;
            let s = sample(k);
            let permit = bulkhead.try_acquire_at(s.started_at).unwrap();
            black_box(permit.record_at(s.started_at + s.rtt, Outcome::Success))
        })
    });
    group.finish();
}

criterion_group!(benches, acquire_release, refused, algorithms);

fn main() {
    report::main(&[benches], |e| {
        let mut t = Table::new(
            "bulkhead",
            &[
                "operation",
                "stanchion `Bulkhead`",
                "tokio `Semaphore`",
                "ratio (stanchion / tokio)",
                "met (<= 1.0x)",
            ],
        );
        for (row, group) in [
            (
                "`try_acquire` + drop of the permit (granted)",
                "bulkhead/acquire_release",
            ),
            (
                "`try_acquire` on a full semaphore (refused)",
                "bulkhead/refused_when_full",
            ),
        ] {
            let (ours, theirs) = (
                format!("{group}/stanchion::Bulkhead"),
                format!("{group}/tokio::sync::Semaphore"),
            );
            t.row(vec![
                row.into(),
                e.time(&ours),
                e.time(&theirs),
                e.ratio(&ours, &theirs),
                e.met(&ours, &theirs, 1.0),
            ]);
        }
        t.write(e);
        let mut t = Table::new("adaptive", &["operation", "time"]);
        for (row, id) in [
            ("`Aimd::on_sample`", "adaptive/on_sample/Aimd"),
            ("`Vegas::on_sample`", "adaptive/on_sample/Vegas"),
            (
                "`AdaptiveBulkhead<StdRawMutex, Vegas>`: `try_acquire_at` + `record_at` (one sample, one lock)",
                "adaptive/acquire_record/AdaptiveBulkhead<StdRawMutex, Vegas>",
            ),
        ] {
            t.row(vec![row.into(), e.time(id)]);
        }
        t.write(e);
        report::headline(
            e,
            "bulkhead",
            &[(
                "bulkhead acquire + release",
                "tokio `Semaphore`",
                "bulkhead/acquire_release/stanchion::Bulkhead",
                "bulkhead/acquire_release/tokio::sync::Semaphore",
            )],
        );
    });
}
