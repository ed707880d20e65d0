//! No heap allocation per pipeline call: a counting global allocator (its own test
//! binary) counts the allocations made on the runtime's thread across many calls,
//! after a warm-up, on a current-thread runtime with paused time. The calls go through
//! every layer and every path that waits or sleeps: rate-limit waits, bulkhead waits,
//! retries with backoff, attempt timeouts, breaker rejections.
// A global allocator is an `unsafe impl`; each block below says why it is sound.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use stanchion::Clock;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
use stanchion::pipeline::PipelineError;
use stanchion::rate::{Quota, TokenBucket, WithClock};
use stanchion::retry::{Exponential, Jitter, Ratio, RetryPolicy};
use stanchion_std::{BulkheadQueue, Pipeline, RateLimitQueue, StdRawMutex, TokioClock};

struct Counting;

thread_local! {
    /// Whether this thread counts its allocations now.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// This thread's count (per thread: tests run in parallel threads).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counting touches only `const`-initialised thread-locals (which do not allocate).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above; `ptr` was allocated by `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_sees_an_allocation() {
    let n = allocations_in(|| drop(std::hint::black_box(Box::new(5u64))));
    assert_eq!(n, 1);
}

#[test]
fn pipeline_calls_allocate_nothing_after_warm_up() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = TokioClock::new();
        let backoff = Exponential::new(
            Duration::from_millis(10),
            Ratio::TWO,
            Duration::from_millis(80),
        )
        .unwrap()
        .with_jitter(Jitter::FULL);
        let config = BreakerConfig::new()
            .open_duration(Duration::from_millis(50))
            .minimum_calls(1);
        let breaker: CircuitBreaker<_, StdRawMutex> =
            CircuitBreaker::new(config, ConsecutiveWindow::new(3).unwrap()).unwrap();
        let pipeline = Pipeline::new(clock)
            .overall_timeout(Duration::from_secs(5))
            .rate_limit(RateLimitQueue::new(
                WithClock::new(
                    TokenBucket::new(Quota::per_second(100).unwrap().with_burst(2).unwrap()),
                    clock,
                ),
                clock,
            ))
            .bulkhead(BulkheadQueue::new(2, 16, clock).unwrap())
            .circuit_breaker(breaker)
            .retry(RetryPolicy::new(backoff, 3, fastrand::Rng::with_seed(5)).unwrap())
            .attempt_timeout(Duration::from_millis(30));

        // Calls of every kind: quick successes, flaky ones that retry, slow ones that
        // time out (and open the breaker now and then), in bursts over the rate limit.
        let one_call = |i: u32| {
            let pipeline = &pipeline;
            async move {
                let result = pipeline
                    .call(|attempt| async move {
                        match i % 5 {
                            0 | 1 => Ok(i),
                            2 if attempt > 1 => Ok(i),
                            2 => Err(i),
                            3 => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                Ok(i)
                            }
                            _ => {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                Ok(i)
                            }
                        }
                    })
                    .await;
                match result {
                    Ok(_) => [1, 0, 0],
                    Err(PipelineError::GaveUp { .. }) => [0, 1, 0],
                    Err(PipelineError::CircuitOpen(_)) => [0, 0, 1],
                    Err(other) => panic!("unexpected refusal: {other:?}"),
                }
            }
        };
        let batch = |from: u32| async move {
            // Three calls at once: they queue at the rate limit and the bulkhead.
            let (a, b, c) = tokio::join!(one_call(from), one_call(from + 1), one_call(from + 2));
            [0, 1, 2].map(|k| a[k] + b[k] + c[k])
        };
        let add = |total: &mut [u32; 3], more: [u32; 3]| (0..3).for_each(|k| total[k] += more[k]);

        let mut done = [0; 3];
        for i in 0..50 {
            add(&mut done, batch(i * 3).await);
        }
        let mut calls = [0; 3];
        let start = clock.now();
        let allocations = {
            let before = ALLOCATIONS.with(Cell::get);
            COUNTING.with(|c| c.set(true));
            for i in 50..550 {
                add(&mut calls, batch(i * 3).await);
            }
            COUNTING.with(|c| c.set(false));
            ALLOCATIONS.with(Cell::get) - before
        };
        // Every path ran: successes, calls given up, calls the open breaker refused; and
        // the rate limit and the bulkhead made callers wait (3 at once, burst 2, 2 slots).
        assert_eq!(done.iter().sum::<u32>(), 150);
        assert_eq!(calls.iter().sum::<u32>(), 1500);
        assert!(calls.iter().all(|&n| n > 0), "{calls:?}");
        let elapsed = clock.now().saturating_duration_since(start);
        assert!(elapsed >= Duration::from_millis(500 * 10), "{elapsed:?}");
        assert_eq!(allocations, 0, "allocations in 1500 pipeline calls");
    });
}
