//! The fallback tower layer: which errors it answers, and what it hands the closure.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::time::Duration;

use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
use stanchion::fallback::FallbackOn;
use stanchion::pipeline::Layer;
use stanchion_std::StdRawMutex;
use stanchion_std::tower::{
    BoxError, CircuitBreakerLayer, CircuitOpen, FallbackLayer, TimeoutLayer, refusal,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// What the fallback answers: the layer the error counted as, and the error's text.
fn answer(error: BoxError) -> String {
    let layer = refusal(&*error).map_or("own error", |r| r.layer.name());
    format!("fallback for {layer}: {error}")
}

#[tokio::test(start_paused = true)]
async fn refusals_are_answered_and_the_services_own_errors_by_the_retry_layer() {
    // A breaker that opens after one failure, over a service that always fails.
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> = CircuitBreaker::new(
        BreakerConfig::new()
            .minimum_calls(1)
            .open_duration(Duration::from_secs(30)),
        ConsecutiveWindow::new(1).unwrap(),
    )
    .unwrap();
    let breaker = Arc::new(breaker);
    let failing = service_fn(|_: u32| async { Err::<String, BoxError>("down".into()) });
    let stack = |when: FallbackOn| {
        ServiceBuilder::new()
            .layer(FallbackLayer::new(when, answer))
            .layer(CircuitBreakerLayer::new(Arc::clone(&breaker)))
            .service(failing)
    };

    // Refusals only: the service's own error goes through, unchanged.
    let own = stack(FallbackOn::REFUSALS).oneshot(1).await.unwrap_err();
    assert_eq!(own.to_string(), "down");
    // Now open: the refusal is answered, and the closure had the refusal itself.
    assert_eq!(
        stack(FallbackOn::REFUSALS).oneshot(2).await.unwrap(),
        "fallback for circuit_breaker: circuit breaker open: retry after 30s"
    );
    // Without the breaker in the set, the refusal goes through as it was.
    let open = stack(FallbackOn::REFUSALS.except(Layer::CircuitBreaker))
        .oneshot(3)
        .await
        .unwrap_err();
    assert!(open.downcast_ref::<CircuitOpen>().is_some());
    // The service's own error counts as the retry layer's.
    breaker.reset_at(stanchion::Instant::ZERO);
    assert_eq!(
        stack(FallbackOn::NOTHING.layer(Layer::Retry))
            .oneshot(4)
            .await
            .unwrap(),
        "fallback for own error: down"
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempts_timeout_counts_as_the_retry_layers_and_the_overall_as_its_own() {
    let slow = service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<String, BoxError>("late".into())
    });
    let attempt = ServiceBuilder::new()
        .layer(FallbackLayer::new(
            FallbackOn::NOTHING.layer(Layer::Retry),
            answer,
        ))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(slow);
    assert_eq!(
        attempt.oneshot(1).await.unwrap(),
        "fallback for attempt_timeout: attempt_timeout of 1s elapsed"
    );
    let overall = ServiceBuilder::new()
        .layer(FallbackLayer::new(FallbackOn::REFUSALS, answer))
        .layer(TimeoutLayer::overall(Duration::from_secs(1)))
        .service(slow);
    assert_eq!(
        overall.oneshot(1).await.unwrap(),
        "fallback for overall_timeout: overall_timeout of 1s elapsed"
    );
    // An attempt's timeout is not a refusal for the fallback: REFUSALS lets it through.
    let through = ServiceBuilder::new()
        .layer(FallbackLayer::new(FallbackOn::REFUSALS, answer))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(slow);
    assert!(through.oneshot(1).await.is_err());
}
