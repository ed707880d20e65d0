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
//! - `stdrun/keyed`: one check per key, keys cycling over 1,000,000 distinct `u64`s, at
//!   one instant, every check a grant: `ShardedKeyedLimiter<4096>` x 16 shards (65,536
//!   slots) against governor's keyed limiter (dashmap, itself sharded) and core's single
//!   `KeyedTokenBucket<65536>` behind one lock; on one thread, and on two threads (wall
//!   time per check, the threads splitting the checks).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use criterion::{Criterion, criterion_group, criterion_main};
use governor::clock::FakeRelativeClock;
use governor::{Quota as GQuota, RateLimiter as GLimiter};
use stanchion::Instant;
use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::rate::{
    FullTablePolicy, KeyedRateLimiter, KeyedTokenBucket, Quota, SharedLimiter, TokenBucket,
    WithClock,
};
use stanchion::retry::{Exponential, Ratio, RetryPolicy};
use stanchion_std::{
    BulkheadQueue, Pipeline, QuantaClock, RateLimitQueue, ShardedKeyedLimiter, StdRawMutex,
    TokioClock,
};

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

async fn op() -> Result<u64, &'static str> {
    Ok(black_box(7))
}

const OVERALL: Duration = Duration::from_secs(10);
const ATTEMPT: Duration = Duration::from_secs(2);

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("stdrun/pipeline");
    let rt = ok(tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build());

    g.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(op().await.ok());
                }
                start.elapsed()
            })
        })
    });

    let ours = rt.block_on(async {
        let clock = TokioClock::new();
        let backoff = ok(Exponential::new(
            Duration::from_millis(10),
            Ratio::TWO,
            Duration::from_secs(1),
        ));
        let breaker: CircuitBreaker<_, StdRawMutex> = ok(CircuitBreaker::new(
            BreakerConfig::new(),
            ok(ConsecutiveWindow::new(5)),
        ));
        Pipeline::new(clock)
            .overall_timeout(OVERALL)
            .rate_limit(RateLimitQueue::new(
                WithClock::new(
                    TokenBucket::new(ok(Quota::per_second(1_000_000_000))),
                    QuantaClock::new(),
                ),
                clock,
            ))
            .bulkhead(ok(BulkheadQueue::new(64, 1024, clock)))
            .circuit_breaker(breaker)
            .retry(ok(RetryPolicy::new(
                backoff,
                3,
                fastrand::Rng::with_seed(1),
            )))
            .attempt_timeout(ATTEMPT)
    });
    g.bench_function("stanchion", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(ours.call(|_| op()).await.ok());
                }
                start.elapsed()
            })
        })
    });

    let limiter = GLimiter::direct(GQuota::per_second(nz(1_000_000_000)));
    let semaphore = tokio::sync::Semaphore::new(64);
    let backoff = failsafe::backoff::constant(Duration::from_secs(60));
    let breaker: failsafe::StateMachine<_, ()> = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(5, backoff))
        .build();
    let retry = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_secs(1))
        .with_max_times(2);
    g.bench_function("peers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    let call = async {
                        limiter.until_ready().await;
                        let _slot = semaphore.acquire().await.map_err(|_| "closed")?;
                        let attempt = || async {
                            if !breaker.is_call_permitted() {
                                return Err("open");
                            }
                            match tokio::time::timeout(ATTEMPT, op()).await {
                                Ok(Ok(v)) => {
                                    breaker.on_success();
                                    Ok(v)
                                }
                                Ok(Err(e)) => {
                                    breaker.on_error();
                                    Err(e)
                                }
                                Err(_) => {
                                    breaker.on_error();
                                    Err("attempt timed out")
                                }
                            }
                        };
                        attempt.retry(retry).await
                    };
                    black_box(tokio::time::timeout(OVERALL, call).await.ok());
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
criterion_main!(benches);
