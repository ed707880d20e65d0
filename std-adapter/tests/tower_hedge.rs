//! The hedging tower layer on tokio's paused clock.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use stanchion::hedge::{Hedge, HedgeConfig};
use stanchion::retry::{NoBudget, Ratio, RatioBudget, RetryBudget};
use stanchion_std::TokioClock;
use stanchion_std::hedge::Hedging;
use stanchion_std::tower::{BoxError, HedgeLayer, refusal};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Counts the drops of attempts that had not answered.
struct OnCancel(Arc<AtomicU32>, bool);

impl Drop for OnCancel {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A service whose `n`th call (from 0) answers after `plan[n]` ms with `n`, or fails
/// when the plan's latency is odd. Counts its calls and its cancelled calls.
fn downstream(
    plan: &'static [u64],
    calls: Arc<AtomicU32>,
    cancelled: Arc<AtomicU32>,
) -> impl Service<&'static str, Response = u32, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(move |_request: &'static str| {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        let ms = plan.get(n as usize).copied().unwrap_or(100);
        let mut guard = OnCancel(Arc::clone(&cancelled), false);
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            guard.1 = true;
            drop(guard);
            if ms % 2 == 1 {
                Err::<u32, BoxError>(format!("attempt {n} failed").into())
            } else {
                Ok(n)
            }
        }
    })
}

fn layer<Bu: RetryBudget>(budget: Bu, max_attempts: u32) -> HedgeLayer<Bu> {
    let config = HedgeConfig::fixed(Duration::from_millis(10), max_attempts).unwrap();
    // A clock of its own epoch, so that the budget's 1 s buckets start with the test.
    let hedge = Hedge::new(config, budget).unwrap();
    HedgeLayer::new(Arc::new(Hedging::with_clock(
        hedge,
        TokioClock::starting_now(),
    )))
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_is_hedged_and_the_loser_is_cancelled() {
    let (calls, cancelled) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let service = ServiceBuilder::new()
        .layer(layer(NoBudget, 3))
        .service(downstream(
            &[1_000, 4, 2, 1_000, 1_000, 100],
            Arc::clone(&calls),
            Arc::clone(&cancelled),
        ));
    // The first call is stuck; the hedge at 10 ms answers at 14 ms.
    let start = Instant::now();
    assert_eq!(service.clone().oneshot("key").await.unwrap(), 1);
    assert_eq!(start.elapsed(), Duration::from_millis(14));
    assert_eq!(cancelled.load(Ordering::Relaxed), 1);
    // A fast call: no hedge.
    let start = Instant::now();
    assert_eq!(service.clone().oneshot("key").await.unwrap(), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(2));
    // Three attempts, at 0, 10 and 20 ms: the third answers first, at 120 ms.
    let start = Instant::now();
    assert_eq!(service.clone().oneshot("key").await.unwrap(), 5);
    assert_eq!(start.elapsed(), Duration::from_millis(120));
    assert_eq!(cancelled.load(Ordering::Relaxed), 3);
    assert_eq!(calls.load(Ordering::Relaxed), 6);
}

#[tokio::test(start_paused = true)]
async fn errors_wait_for_the_hedge_and_all_failed_passes_the_last_one_through() {
    let (calls, cancelled) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let service = ServiceBuilder::new()
        .layer(layer(NoBudget, 2))
        .service(downstream(
            &[15, 20, 25, 9, 3],
            Arc::clone(&calls),
            Arc::clone(&cancelled),
        ));
    // The first fails at 15 ms; the hedge started at 10 answers at 30.
    let start = Instant::now();
    assert_eq!(service.clone().oneshot("key").await.unwrap(), 1);
    assert_eq!(start.elapsed(), Duration::from_millis(30));
    // Both fail (at 25 and 10 + 9 ms): the last error, unwrapped, not a refusal.
    let start = Instant::now();
    let error = service.clone().oneshot("key").await.unwrap_err();
    assert_eq!(error.to_string(), "attempt 2 failed");
    assert_eq!(refusal(&*error), None);
    assert_eq!(start.elapsed(), Duration::from_millis(25));
    // A failure before the delay: answered at once, no hedge.
    let start = Instant::now();
    let error = service.clone().oneshot("key").await.unwrap_err();
    assert_eq!(error.to_string(), "attempt 4 failed");
    assert_eq!(start.elapsed(), Duration::from_millis(3));
    assert_eq!(calls.load(Ordering::Relaxed), 5);
    assert_eq!(cancelled.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_budget() {
    let (calls, cancelled) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    // 10% of requests, no floor: every request is slow (100 ms), so every one asks for a
    // hedge; the 10 s window holds all 50.
    let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 0).unwrap();
    let service = ServiceBuilder::new()
        .layer(layer(budget, 2))
        .service(downstream(&[], Arc::clone(&calls), Arc::clone(&cancelled)));
    for _ in 0..50 {
        // A clone per request, as axum makes: one budget for all.
        service.clone().oneshot("key").await.unwrap();
    }
    // 50 requests, 5 hedges.
    assert_eq!(calls.load(Ordering::Relaxed), 55);
}
