//! Rate limiting: stanchion against governor 0.10, like for like, in the same run.
//!
//! Rows (each with both sides):
//! - `caller_time/{grant,deny}`: the decision alone. stanchion takes `now` from the
//!   caller; governor reads its `FakeRelativeClock` (one atomic load), its cheapest way
//!   to be handed a time.
//! - `with_clock/{grant,deny}`: a real clock read per check. stanchion on
//!   `stanchion_std::QuantaClock` and `CoarseClock` (and, for orientation, `StdClock`,
//!   `TokioClock`);
//!   governor on its default clock (quanta).
//! - `contended/grant`: two threads checking one limiter.
//! - `keyed/1M_keys`: one check per key over 1,000,000 distinct keys; the bytes each
//!   side holds afterwards are in the table (counted by a global allocator here).
//!
//! Writes the table `rate` of `BENCHMARKS.md` (see `stanchion_benches::report`).
//!
//! Run: `cargo bench -p stanchion-benches --bench rate -- --warm-up-time 1 --measurement-time 3`
#![allow(unsafe_code)] // the counting allocator below
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant as StdInstant};

use criterion::{Criterion, criterion_group};
use governor::clock::FakeRelativeClock;
use governor::{Quota as GQuota, RateLimiter as GLimiter};
use stanchion::Instant;
use stanchion::rate::{
    FullTablePolicy, KeyedRateLimiter, KeyedTokenBucket, Quota, SharedLimiter, TokenBucket,
    WithClock,
};
use stanchion_benches::report::{self, Table};
use stanchion_std::{CoarseClock, QuantaClock, StdClock, StdRawMutex, TokioClock};

/// Counts the bytes currently allocated, to report what the keyed limiters hold.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout (via `alloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(new_size, Ordering::Relaxed);
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Checks per fresh limiter in the grant rows: a burst this large never runs out.
const CHUNK: u64 = 1 << 20;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A quota whose burst covers a whole chunk of grants at one instant.
fn roomy() -> (GQuota, Quota) {
    let period = Duration::from_nanos(1);
    (
        GQuota::with_period(period)
            .unwrap()
            .allow_burst(nz(CHUNK as u32 * 2)),
        Quota::per_period(period)
            .unwrap()
            .with_burst(CHUNK as u32 * 2)
            .unwrap(),
    )
}

/// A quota that, once its one permit is taken, denies for an hour.
fn stingy() -> (GQuota, Quota) {
    (GQuota::per_hour(nz(1)), Quota::per_hour(1).unwrap())
}

/// Runs `iters` checks in chunks, building fresh state for each chunk outside the timing.
fn chunked<S>(iters: u64, mut fresh: impl FnMut() -> S, mut check: impl FnMut(&S)) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let state = fresh();
        let start = StdInstant::now();
        for _ in 0..n {
            check(&state);
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn caller_time(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate/caller_time");
    let now = Instant::from_secs(1);
    g.bench_function("grant/stanchion", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                || TokenBucket::new(roomy().1),
                |l| {
                    black_box(l.acquire_at(black_box(1), black_box(now))).unwrap();
                },
            )
        })
    });
    g.bench_function("grant/governor", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                || GLimiter::direct_with_clock(roomy().0, FakeRelativeClock::default()),
                |l| {
                    black_box(l.check()).unwrap();
                },
            )
        })
    });
    let ours = TokenBucket::new(stingy().1);
    ours.acquire_at(1, now).unwrap();
    g.bench_function("deny/stanchion", |b| {
        b.iter(|| black_box(ours.acquire_at(black_box(1), black_box(now))).unwrap_err())
    });
    let theirs = GLimiter::direct_with_clock(stingy().0, FakeRelativeClock::default());
    theirs.check().unwrap();
    g.bench_function("deny/governor", |b| {
        b.iter(|| black_box(theirs.check()).unwrap_err())
    });
    g.finish();
}

fn with_clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate/with_clock");
    let quanta = QuantaClock::new();
    g.bench_function("grant/stanchion_quanta", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                || WithClock::new(TokenBucket::new(roomy().1), quanta.clone()),
                |l| {
                    black_box(l.acquire(black_box(1))).unwrap();
                },
            )
        })
    });
    g.bench_function("grant/governor_quanta", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                || GLimiter::direct(roomy().0),
                |l| {
                    black_box(l.check()).unwrap();
                },
            )
        })
    });
    let ours = WithClock::new(TokenBucket::new(stingy().1), quanta.clone());
    ours.acquire(1).unwrap();
    g.bench_function("deny/stanchion_quanta", |b| {
        b.iter(|| black_box(ours.acquire(black_box(1))).unwrap_err())
    });
    let theirs = GLimiter::direct(stingy().0);
    theirs.check().unwrap();
    g.bench_function("deny/governor_quanta", |b| {
        b.iter(|| black_box(theirs.check()).unwrap_err())
    });
    // For orientation: the same grant on the other clocks.
    let std_clock = StdClock::new();
    g.bench_function("grant/stanchion_std_clock", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                || WithClock::new(TokenBucket::new(roomy().1), std_clock),
                |l| {
                    black_box(l.acquire(black_box(1))).unwrap();
                },
            )
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    // The servers' clock: one atomic load. Its refresher task is spawned on this runtime,
    // which nothing drives here, so the reading stays put: what is measured is the read.
    let coarse = CoarseClock::start();
    g.bench_function("grant/stanchion_coarse_clock", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                || WithClock::new(TokenBucket::new(roomy().1), coarse),
                |l| {
                    black_box(l.acquire(black_box(1))).unwrap();
                },
            )
        })
    });
    // The floor of any grant by a limiter that threads share: one load and one
    // compare-and-swap of an uncontended word (the state word's, with the increment of a
    // grant), no clock and no decision.
    // Written as the token bucket's loop is (relaxed, weak), with nothing else in the loop.
    g.bench_function("floor/load_and_compare_and_swap", |b| {
        b.iter_custom(|iters| {
            let word = black_box(std::sync::atomic::AtomicU64::new(0));
            let start = StdInstant::now();
            for _ in 0..iters {
                let seen = word.load(Ordering::Relaxed);
                let _ = word.compare_exchange_weak(
                    seen,
                    seen.wrapping_add(1_000),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            let elapsed = start.elapsed();
            black_box(word.into_inner());
            elapsed
        })
    });
    let tokio_clock = TokioClock::new();
    g.bench_function("grant/stanchion_tokio_clock", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                || WithClock::new(TokenBucket::new(roomy().1), tokio_clock),
                |l| {
                    black_box(l.acquire(black_box(1))).unwrap();
                },
            )
        })
    });
    g.finish();
}

/// Two threads, `iters / 2` checks each, on one limiter: wall time per check.
fn two_threads(iters: u64, check: &(impl Fn() + Sync)) -> Duration {
    let per_thread = iters.div_ceil(2);
    let start = StdInstant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    check();
                }
            });
        }
    });
    start.elapsed()
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate/contended");
    let now = Instant::from_secs(1);
    g.bench_function("grant/stanchion", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let l = TokenBucket::new(roomy().1);
                total += two_threads(n, &|| {
                    black_box(l.acquire_at(black_box(1), black_box(now))).unwrap();
                });
                left -= n;
            }
            total
        })
    });
    g.bench_function("grant/governor", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let l = GLimiter::direct_with_clock(roomy().0, FakeRelativeClock::default());
                total += two_threads(n, &|| {
                    black_box(l.check()).unwrap();
                });
                left -= n;
            }
            total
        })
    });
    g.finish();
}

const KEYS: u64 = 1_000_000;
/// stanchion's table: 65,536 slots of 24 bytes (1.5 MiB), whatever the keys seen.
const SLOTS: usize = 1 << 16;

/// The i-th of a million distinct keys, spread over the u64 range.
fn key(i: u64) -> u64 {
    (i % KEYS).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn keyed(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate/keyed");
    let quota = Quota::per_second(1000).unwrap();
    let gquota = GQuota::per_second(nz(1000));
    let now = Instant::from_secs(1);

    let before = HELD.load(Ordering::Relaxed);
    let ours: Box<SharedLimiter<StdRawMutex, KeyedTokenBucket<SLOTS>>> =
        Box::new(SharedLimiter::new(KeyedTokenBucket::new(
            quota,
            FullTablePolicy::EvictLeastRecentlyUsed,
            (fastrand::u64(..), fastrand::u64(..)),
        )));
    let ours_bytes = HELD.load(Ordering::Relaxed) - before;
    let mut i = 0u64;
    g.bench_function("1M_keys/stanchion", |b| {
        b.iter(|| {
            i += 1;
            black_box(KeyedRateLimiter::acquire_at(
                &*ours,
                &key(i),
                1,
                black_box(now),
            ))
            .unwrap()
        })
    });

    let before = HELD.load(Ordering::Relaxed);
    let theirs = GLimiter::dashmap_with_clock(gquota, FakeRelativeClock::default());
    let mut j = 0u64;
    g.bench_function("1M_keys/governor", |b| {
        b.iter(|| {
            j += 1;
            black_box(theirs.check_key(&key(j))).unwrap()
        })
    });
    // Make sure every key was seen once, then count what governor holds.
    for k in 0..KEYS {
        let _ = theirs.check_key(&key(k));
    }
    let theirs_bytes = HELD.load(Ordering::Relaxed) - before;
    g.finish();
    let _ = KEYED_BYTES.set((ours_bytes, theirs_bytes, theirs.len()));
    drop(ours);
}

/// Bytes held after every key was seen once: stanchion, governor, governor's key count.
static KEYED_BYTES: OnceLock<(usize, usize, usize)> = OnceLock::new();

criterion_group!(benches, caller_time, with_clock, contended, keyed);

fn main() {
    report::main(&[benches], |e| {
        let mut t = Table::new(
            "rate",
            &["row", "stanchion", "governor", "ratio", "target", "met"],
        );
        let pair = |t: &mut Table, row: &str, ours: &str, theirs: &str, target: Option<f64>| {
            t.row(vec![
                row.into(),
                e.time(ours),
                e.time(theirs),
                e.ratio(ours, theirs),
                target.map_or("—".into(), |x| format!("<= {x:.1}x")),
                target.map_or("—".into(), |x| e.met(ours, theirs, x)),
            ]);
        };
        let g = "rate/caller_time";
        pair(
            &mut t,
            "caller-supplied time, grant",
            &format!("{g}/grant/stanchion"),
            &format!("{g}/grant/governor"),
            Some(0.8),
        );
        pair(
            &mut t,
            "caller-supplied time, denial",
            &format!("{g}/deny/stanchion"),
            &format!("{g}/deny/governor"),
            Some(0.8),
        );
        let g = "rate/with_clock";
        pair(
            &mut t,
            "with a clock (quanta, TSC), grant",
            &format!("{g}/grant/stanchion_quanta"),
            &format!("{g}/grant/governor_quanta"),
            Some(1.0),
        );
        pair(
            &mut t,
            "with a clock (quanta, TSC), denial",
            &format!("{g}/deny/stanchion_quanta"),
            &format!("{g}/deny/governor_quanta"),
            Some(1.0),
        );
        pair(
            &mut t,
            "on `CoarseClock` (one atomic load), grant, against governor on quanta",
            &format!("{g}/grant/stanchion_coarse_clock"),
            &format!("{g}/grant/governor_quanta"),
            Some(0.5),
        );
        pair(
            &mut t,
            "floor: one load and one compare-and-swap of an uncontended `AtomicU64`, no clock, no decision (what a grant of any limiter shared by threads pays), against governor on quanta",
            &format!("{g}/floor/load_and_compare_and_swap"),
            &format!("{g}/grant/governor_quanta"),
            None,
        );
        for (clock, id) in [
            ("`StdClock`", "stanchion_std_clock"),
            ("`TokioClock`", "stanchion_tokio_clock"),
        ] {
            t.row(vec![
                format!("with {clock}, grant (for orientation: the clock read is the cost)"),
                e.time(&format!("{g}/grant/{id}")),
                "—".into(),
                "—".into(),
                "—".into(),
                "—".into(),
            ]);
        }
        pair(
            &mut t,
            "two threads on one limiter, grant (wall time per check)",
            "rate/contended/grant/stanchion",
            "rate/contended/grant/governor",
            None,
        );
        pair(
            &mut t,
            "keyed, 1,000,000 distinct `u64` keys, grant",
            "rate/keyed/1M_keys/stanchion",
            "rate/keyed/1M_keys/governor",
            Some(1.0),
        );
        if let Some(&(ours, theirs, keys)) = KEYED_BYTES.get() {
            let per_key = theirs as f64 / keys.max(1) as f64;
            let ratio = ours as f64 / theirs.max(1) as f64;
            t.row(vec![
                "keyed, bytes held after 1,000,000 keys".into(),
                format!(
                    "{ours} B ({} B per slot x {SLOTS}, fixed)",
                    KeyedTokenBucket::<SLOTS>::BYTES_PER_KEY
                ),
                format!("{theirs} B ({per_key:.1} B per key, grows with keys)"),
                format!("{ratio:.3}x"),
                "<= 32 B per key, fixed".into(),
                if KeyedTokenBucket::<SLOTS>::BYTES_PER_KEY <= 32 {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            ]);
        }
        t.write(e);
        report::headline(
            e,
            "rate",
            &[
                (
                    "rate limit check (GCRA), caller-supplied time",
                    "governor",
                    "rate/caller_time/grant/stanchion",
                    "rate/caller_time/grant/governor",
                ),
                (
                    "rate limit check with a clock (quanta)",
                    "governor",
                    "rate/with_clock/grant/stanchion_quanta",
                    "rate/with_clock/grant/governor_quanta",
                ),
                (
                    "keyed rate limit, 1,000,000 keys",
                    "governor (dashmap)",
                    "rate/keyed/1M_keys/stanchion",
                    "rate/keyed/1M_keys/governor",
                ),
            ],
        );
    });
}
