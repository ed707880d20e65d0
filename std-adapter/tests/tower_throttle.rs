//! The adaptive throttle's tower layer on tokio's paused clock.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use stanchion::Clock;
use stanchion::pipeline::Layer;
use stanchion::rate::{Quota, TokenBucket};
use stanchion::retry::Ratio;
use stanchion::throttle::{AdaptiveThrottle, Throttled};
use stanchion_std::TokioClock;
use stanchion_std::tower::{BoxError, ThrottleLayer, ThrottleRejected, refusal};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// A backend that serves 30 calls a second (burst 5) and rejects the rest with an error,
/// counting the calls that reach it.
fn backend(
    calls: Arc<AtomicU32>,
    clock: TokioClock,
) -> impl tower::Service<(), Response = (), Error = BoxError, Future: Send> + Clone + Send {
    let capacity = Arc::new(TokenBucket::new(
        Quota::per_second(30).unwrap().with_burst(5).unwrap(),
    ));
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::Relaxed);
        let accepted = capacity.acquire_at(1, clock.now()).is_ok();
        async move {
            if accepted {
                Ok(())
            } else {
                Err::<(), BoxError>("overloaded".into())
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn sent_calls_fall_to_k_times_the_accepts_and_refusals_are_typed() {
    let throttle =
        Arc::new(AdaptiveThrottle::<10>::new(Duration::from_secs(10), Ratio::TWO).unwrap());
    let calls = Arc::new(AtomicU32::new(0));
    // Time zero now, so that the window's buckets start at the first request.
    let clock = TokioClock::starting_now();
    let service = ServiceBuilder::new()
        .layer(ThrottleLayer::with_clock(Arc::clone(&throttle), clock).seed(20))
        .service(backend(Arc::clone(&calls), clock));

    // 100 requests a second for a minute, each on a clone of the service (as axum does);
    // the second half is measured.
    let (mut accepted, mut refused, mut sent_before) = (0u32, 0u32, 0u32);
    for step in 0..6_000u32 {
        if step == 3_000 {
            sent_before = calls.load(Ordering::Relaxed);
        }
        match service.clone().oneshot(()).await {
            Ok(()) => accepted += u32::from(step >= 3_000),
            Err(e) => {
                if let Some(r) = e.downcast_ref::<ThrottleRejected>() {
                    let Throttled { requests, accepts } = r.throttled;
                    assert!(requests > 2 * accepts, "{requests} > 2 * {accepts}");
                    assert_eq!(
                        refusal(&*e).map(|r| (r.layer, r.retry_after)),
                        Some((Layer::Throttle, None))
                    );
                    refused += u32::from(step >= 3_000);
                }
            }
        }
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    let sent = calls.load(Ordering::Relaxed) - sent_before;
    // The backend serves its 30 a second (900 in 30 s) and sees about twice that.
    assert_eq!((sent, accepted, refused), (1_809, 900, 1_191));
    assert_eq!(sent + refused, 3_000);
    // Every request counted, sent or refused, and the backend's accepts: at 60 s the
    // window holds seconds 51 to 59 (the bucket of second 60 has just begun).
    assert_eq!(throttle.counts_at(clock.now()), (900, 270));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_records_no_accept() {
    let throttle =
        Arc::new(AdaptiveThrottle::<10>::new(Duration::from_secs(10), Ratio::ONE).unwrap());
    let clock = TokioClock::starting_now();
    let service = ServiceBuilder::new()
        .layer(ThrottleLayer::with_clock(Arc::clone(&throttle), clock).seed(1))
        .service(service_fn(|()| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<(), BoxError>(())
        }));
    let call = service.clone().oneshot(());
    let _ = tokio::time::timeout(Duration::from_millis(100), call).await;
    assert_eq!(throttle.counts_at(clock.now()), (1, 0));
    service.oneshot(()).await.unwrap();
    assert_eq!(throttle.counts_at(clock.now()), (2, 1));
}
