//! The fault-injection tower layer on tokio's paused clock.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use stanchion::fault::{Fault, FaultInjector, Share};
use stanchion_std::fault::FaultInjection;
use stanchion_std::tower::{BoxError, FaultInjectionLayer, refusal};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A healthy service that answers each request with its number, counting the requests
/// that reach it.
fn healthy(
    calls: Arc<AtomicU32>,
) -> impl Service<u32, Response = String, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(move |n: u32| {
        calls.fetch_add(1, Ordering::Relaxed);
        async move { Ok::<_, BoxError>(format!("answer {n}")) }
    })
}

fn injection(
    share: Share,
    fault: Fault<String, &'static str>,
    seed: u64,
) -> Arc<FaultInjection<String, &'static str>> {
    Arc::new(FaultInjection::new(
        FaultInjector::new(share),
        fault,
        fastrand::Rng::with_seed(seed),
    ))
}

#[tokio::test(start_paused = true)]
async fn a_seed_picks_the_same_requests_and_they_never_reach_the_service() {
    let faults = injection(Share::percent(10).unwrap(), Fault::Error("injected"), 42);
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(FaultInjectionLayer::new(Arc::clone(&faults)))
        .service(healthy(Arc::clone(&calls)));
    let mut failed = Vec::new();
    for n in 0..50 {
        // Each request on a clone, as axum does: the clones share the injection.
        match service.clone().oneshot(n).await {
            Ok(answer) => assert_eq!(answer, format!("answer {n}")),
            Err(e) => {
                assert_eq!(e.to_string(), "injected");
                assert_eq!(refusal(&*e), None, "an injected error is not a refusal");
                failed.push(n);
            }
        }
    }
    // The requests core's decision picks with seed 42, one draw per request.
    assert_eq!(failed, [3, 25, 28, 36, 42]);
    assert_eq!(calls.load(Ordering::Relaxed), 45);
}

#[tokio::test(start_paused = true)]
async fn an_outcome_answers_and_latency_delays_exactly() {
    let calls = Arc::new(AtomicU32::new(0));
    let stale = injection(Share::ALL, Fault::Outcome("stale".to_owned()), 1);
    let mut service = ServiceBuilder::new()
        .layer(FaultInjectionLayer::new(Arc::clone(&stale)))
        .service(healthy(Arc::clone(&calls)));
    assert_eq!(
        service.ready().await.unwrap().call(1).await.unwrap(),
        "stale"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0);

    let slow = injection(
        Share::percent(25).unwrap(),
        Fault::Latency(Duration::from_millis(300)),
        7,
    );
    let service = ServiceBuilder::new()
        .layer(FaultInjectionLayer::new(Arc::clone(&slow)))
        .service(healthy(Arc::clone(&calls)));
    let mut took = Vec::new();
    for n in 0..8 {
        let start = Instant::now();
        assert_eq!(
            service.clone().oneshot(n).await.unwrap(),
            format!("answer {n}")
        );
        took.push(start.elapsed().as_millis());
    }
    // Seed 7 at 25%: the same requests as the runner's test, each exactly 300 ms late.
    assert_eq!(took, [0, 300, 0, 0, 300, 300, 0, 300]);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        8,
        "a delayed request still runs"
    );
}

#[tokio::test(start_paused = true)]
async fn switched_off_mid_run_every_later_request_passes() {
    let faults = injection(Share::ALL, Fault::Error("injected"), 9);
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(FaultInjectionLayer::new(Arc::clone(&faults)))
        .service(healthy(Arc::clone(&calls)));
    let mut answers = Vec::new();
    for n in 0..10 {
        if n == 4 {
            faults.injector().set_enabled(false);
        }
        answers.push(service.clone().oneshot(n).await.is_ok());
    }
    assert_eq!(
        answers,
        [
            false, false, false, false, true, true, true, true, true, true
        ]
    );
    assert_eq!(calls.load(Ordering::Relaxed), 6);
}

#[test]
fn a_zero_latency_takes_no_timer() {
    // Outside a tokio runtime a timer would panic: a zero latency must not take one.
    let calls = Arc::new(AtomicU32::new(0));
    let mut service = ServiceBuilder::new()
        .layer(FaultInjectionLayer::new(injection(
            Share::ALL,
            Fault::Latency(Duration::ZERO),
            7,
        )))
        .service(healthy(Arc::clone(&calls)));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let answer = std::pin::pin!(service.call(3));
    match answer.poll(&mut cx) {
        std::task::Poll::Ready(Ok(answer)) => assert_eq!(answer, "answer 3"),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}
