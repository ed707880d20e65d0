//! A service stack written with `stanchion_std` alone: the prelude and the re-exports of
//! core and fastrand, no other stanchion import.
#![cfg(feature = "axum")]

use std::sync::Arc;
use std::time::Duration;

use stanchion_std::prelude::*;
use stanchion_std::stanchion;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn a_stack_from_the_prelude_alone() -> Result<(), BoxError> {
    let clock = TokioClock::new();
    let limiter = WithClock::new(TokenBucket::new(Quota::per_second(1)?), clock);
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(5)?)?;
    let budget = SharedBudget::new(TokenBudget::new(10, Ratio::percent(10))?);
    let service = ServiceBuilder::new()
        .layer(TimeoutLayer::overall(Duration::from_secs(5)))
        .layer(RateLimitLayer::new(Arc::new(limiter)))
        .layer(BulkheadLayer::new(Arc::new(Bulkhead::new(8)?)))
        .layer(RetryLayer::new(move |_clock| {
            let backoff = Constant::new(Duration::from_millis(100)).with_jitter(Jitter::FULL);
            RetryPolicy::new(backoff, 3, stanchion_std::fastrand::Rng::new())
                .expect("3 attempts is valid")
                .with_budget(budget.clone())
        }))
        .layer(CircuitBreakerLayer::new(Arc::new(breaker)))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(service_fn(|x: u32| async move { Ok::<_, BoxError>(x * 2) }));

    assert_eq!(service.clone().oneshot(21).await?, 42);
    let err = service.oneshot(21).await.unwrap_err();
    let refused = refusal(&*err).expect("the quota is spent");
    assert_eq!(refused.layer, stanchion::pipeline::Layer::RateLimit);
    assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
    let response: axum::response::Response = refusal_response(&*err).expect("a refusal");
    assert_eq!(response.status(), 429);
    Ok(())
}
