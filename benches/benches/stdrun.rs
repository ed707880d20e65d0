//! The std adapter's runners: the pipeline's cost per call, and the sharded keyed
//! limiter, against the peers a tokio service would compose instead, in the same run.
//!
//! - `stdrun/pipeline`: one successful call through every layer. stanchion's `Pipeline`
//!   (overall timeout, `RateLimitQueue` over a token bucket on `QuantaClock`,
//!   `BulkheadQueue`, a consecutive-failures breaker, a retry policy of 3 attempts, an
//!   attempt timeout) against the same layers from the peers, composed by hand the usual
//!   way: `tokio::time::timeout`, governor's `until_ready` (its waiting form, on quanta),
//!   `tokio::sync::Semaphore::acquire` (the fair, waiting bulkhead), failsafe's
//!   consecutive-failures breaker, backon's retry, `tokio::time::timeout` per attempt.
//!   `bare` is the operation alone. Current-thread runtime, real time, nothing waits.
//!   The stacks and their configuration are `stanchion_benches::pipeline`'s, shared with
//!   the `pipeline` bench (which adds the tower stacks and counts allocations).
//! - `stdrun/keyed`: one check per key, keys cycling over 1,000,000 distinct `u64`s, at
//!   one instant, every check a grant: `ShardedKeyedLimiter<4096>` x 16 shards (65,536
//!   slots) against governor's keyed limiter (dashmap, itself sharded) and core's single
//!   `KeyedTokenBucket<65536>` behind one lock; on one thread, and on two threads (wall
//!   time per check, the threads splitting the checks).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use governor::clock::FakeRelativeClock;
use governor::{Quota as GQuota, RateLimiter as GLimiter};
use stanchion::Instant;
use stanchion::rate::{FullTablePolicy, KeyedRateLimiter, KeyedTokenBucket, Quota, SharedLimiter};
use stanchion_benches::pipeline::{self as setup, op};
use stanchion_benches::report::{self, Table};
use stanchion_std::{ShardedKeyedLimiter, StdRawMutex};

fn nz(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("zero"),
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("stdrun/pipeline");
    let rt = ok(tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build());

    g.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for i in 0..iters {
                    black_box(op(black_box(i)).await.ok());
                }
                start.elapsed()
            })
        })
    });

    let ours = rt.block_on(async { setup::stanchion_pipeline() });
    g.bench_function("stanchion", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for i in 0..iters {
                    let x = black_box(i);
                    black_box(ours.call(|_| op(x)).await.ok());
                }
                start.elapsed()
            })
        })
    });

    let peers = setup::HandComposed::new();
    g.bench_function("peers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for i in 0..iters {
                    black_box(peers.call(black_box(i)).await.ok());
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

const KEYS: u64 = 1_000_000;

/// The i-th of a million distinct keys, spread over the u64 range.
fn key(i: u64) -> u64 {
    (i % KEYS).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Wall time for `iters` checks split between `threads` threads.
fn split(iters: u64, threads: u64, check: impl Fn(u64) + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(threads as usize);
    let per = iters / threads;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (check, barrier) = (&check, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let start = std::time::Instant::now();
                    for i in 0..per {
                        check(t * 7_919_993 + i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(d) => d,
                Err(_) => panic!("bench thread panicked"),
            })
            .max()
            .unwrap_or_default()
    })
}

fn keyed(c: &mut Criterion) {
    let mut g = c.benchmark_group("stdrun/keyed");
    let quota = ok(Quota::per_second(1000));
    let now = Instant::from_secs(1);
    let policy = FullTablePolicy::EvictLeastRecentlyUsed;
    let sharded = ok(ShardedKeyedLimiter::<4096>::new(quota, policy, 16));
    let single: Box<SharedLimiter<StdRawMutex, KeyedTokenBucket<65_536>>> = Box::new(
        SharedLimiter::new(KeyedTokenBucket::new(quota, policy, (3, 5))),
    );
    let governor =
        GLimiter::dashmap_with_clock(GQuota::per_second(nz(1000)), FakeRelativeClock::default());

    let sharded_check = |i: u64| {
        ok(black_box(KeyedRateLimiter::acquire_at(
            &sharded,
            &key(i),
            1,
            black_box(now),
        )));
    };
    let single_check = |i: u64| {
        ok(black_box(KeyedRateLimiter::acquire_at(
            &*single,
            &key(i),
            1,
            black_box(now),
        )));
    };
    let governor_check = |i: u64| {
        if black_box(governor.check_key(&key(i))).is_err() {
            panic!("governor denied");
        }
    };
    for threads in [1u64, 2] {
        g.bench_function(format!("{threads}_threads/sharded"), |b| {
            b.iter_custom(|iters| split(iters, threads, sharded_check))
        });
        g.bench_function(format!("{threads}_threads/single_lock"), |b| {
            b.iter_custom(|iters| split(iters, threads, single_check))
        });
        g.bench_function(format!("{threads}_threads/governor"), |b| {
            b.iter_custom(|iters| split(iters, threads, governor_check))
        });
    }
    g.finish();
}

criterion_group!(benches, pipeline, keyed);

fn main() {
    // Unoptimised (`cargo test --benches`), core's 1.5 MiB keyed table is built on the
    // stack before it is boxed, more than the main thread's 8 MiB allows once copied.
    let run = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(run_benches);
    match run.map(std::thread::JoinHandle::join) {
        Ok(Ok(())) => {}
        _ => std::process::exit(1),
    }
}

fn run_benches() {
    report::main(&[benches], |e| {
        let mut t = Table::new(
            "stdrun",
            &[
                "row",
                "stanchion",
                "peer",
                "peer time",
                "ratio (stanchion / peer)",
                "target <= 1.0x met",
            ],
        );
        t.row(vec![
            "pipeline, one successful call through every layer".into(),
            e.time("stdrun/pipeline/stanchion"),
            "governor + `Semaphore` + failsafe + backon + tokio timeouts".into(),
            e.time("stdrun/pipeline/peers"),
            e.ratio("stdrun/pipeline/stanchion", "stdrun/pipeline/peers"),
            e.met("stdrun/pipeline/stanchion", "stdrun/pipeline/peers", 1.0),
        ]);
        t.row(vec![
            "the operation alone (`bare`), for scale".into(),
            e.time("stdrun/pipeline/bare"),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
        ]);
        for threads in [1, 2] {
            let ours = format!("stdrun/keyed/{threads}_threads/sharded");
            for (peer, peer_id, target) in [
                ("governor keyed (dashmap)", "governor", true),
                ("core's single table behind one lock", "single_lock", false),
            ] {
                let theirs = format!("stdrun/keyed/{threads}_threads/{peer_id}");
                t.row(vec![
                    format!(
                        "keyed, 1,000,000 distinct keys, {threads} thread{}, sharded 16 x 4096",
                        if threads == 1 {
                            ""
                        } else {
                            "s (wall time per check)"
                        }
                    ),
                    e.time(&ours),
                    peer.into(),
                    e.time(&theirs),
                    e.ratio(&ours, &theirs),
                    if target {
                        e.met(&ours, &theirs, 1.0)
                    } else {
                        "— (see note 2)".into()
                    },
                ]);
            }
        }
        t.write(e);
        report::headline(
            e,
            "stdrun",
            &[(
                "std `Pipeline`, one call through every layer",
                "governor + Semaphore + failsafe + backon, composed by hand",
                "stdrun/pipeline/stanchion",
                "stdrun/pipeline/peers",
            )],
        );
    });
}
