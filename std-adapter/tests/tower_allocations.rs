//! The layers' granted path allocates nothing per request (overall timeout, rate limit,
//! bulkhead, retry, breaker, per-attempt timeout, in the pipeline's order; and hedging, when
//! no hedge fires): counted with a global allocator, after a warm-up call (tokio's timer
//! wheel allocates on first use).
#![cfg(feature = "tower")]
// A global allocator is an `unsafe impl`; it only forwards to `System` and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;
use std::time::Duration;

use fastrand::Rng;
use stanchion::breaker::window::CountWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::bulkhead::Bulkhead;
use stanchion::rate::{Quota, TokenBucket, WithClock};
use stanchion::retry::{Constant, RetryPolicy};
use stanchion_std::tower::{
    BulkheadLayer, CircuitBreakerLayer, RateLimitLayer, RetryLayer, TimeoutLayer,
};
use stanchion_std::{StdRawMutex, TokioClock};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a
// thread-local `Cell` of a `u64`, whose access does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller promises.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_granted_request_through_every_layer_allocates_nothing() {
    let clock = TokioClock::new();
    let limiter = WithClock::new(
        TokenBucket::new(Quota::per_second(1_000_000).unwrap()),
        clock,
    );
    let breaker: CircuitBreaker<CountWindow<16>, StdRawMutex> =
        CircuitBreaker::new(BreakerConfig::new(), CountWindow::new().unwrap()).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutLayer::overall(Duration::from_secs(1)))
        .layer(RateLimitLayer::new(Arc::new(limiter)))
        .layer(BulkheadLayer::new(Arc::new(Bulkhead::new(8).unwrap())))
        .layer(RetryLayer::with_clock(
            |_: &TokioClock| {
                RetryPolicy::new(
                    Constant::new(Duration::from_millis(1)),
                    3,
                    Rng::with_seed(1),
                )
                .unwrap()
            },
            clock,
        ))
        .layer(CircuitBreakerLayer::with_clock(Arc::new(breaker), clock))
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(service_fn(|x: u64| ready(Ok::<_, Infallible>(x + 1))));
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 2);

    let before = allocations();
    for i in 0..100 {
        assert_eq!(svc.ready().await.unwrap().call(i).await.unwrap(), i + 1);
    }
    assert_eq!(allocations() - before, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hedged_request_answered_before_its_delay_allocates_nothing() {
    use stanchion::hedge::{Hedge, HedgeConfig};
    use stanchion::retry::{Ratio, RatioBudget};
    use stanchion_std::hedge::Hedging;
    use stanchion_std::tower::HedgeLayer;

    let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 1).unwrap();
    let config = HedgeConfig::learned(900, 2)
        .unwrap()
        .with_min_samples(1)
        .unwrap();
    let hedge: Hedge<_> = Hedge::new(config, budget).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(HedgeLayer::new(Arc::new(Hedging::new(hedge))))
        .service(service_fn(|x: u64| ready(Ok::<_, Infallible>(x + 1))));
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 2);
    // The delay is learned (so each call reads it), and no hedge is due.
    let before = allocations();
    for i in 0..100 {
        assert_eq!(svc.ready().await.unwrap().call(i).await.unwrap(), i + 1);
    }
    assert_eq!(allocations() - before, 0);
}
