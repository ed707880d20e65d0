//! Feature `tracing`: the runners, the pipeline and the listeners report what happens as
//! `tracing` events (`cargo test -p stanchion-std --features tracing`, run by
//! `cargo xtask test`).
#![cfg(feature = "tracing")]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stanchion::breaker::{
    BreakerConfig, CircuitBreaker, FixedOpenDuration, window::ConsecutiveWindow,
};
use stanchion::rate::{Quota, TokenBucket, WithClock};
use stanchion::retry::{Constant, RetryPolicy};
use stanchion::{Clock, Deadline};
use stanchion_std::{
    BulkheadQueue, ErrorsAreFailures, Pipeline, RateLimitQueue, StdRawMutex, TokioClock,
    TracingBreakerListener, TracingBulkheadListener, retry, with_breaker,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every event as `LEVEL message field=value ...`.
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String, String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            let _ = write!(self.1, " {}={:?}", field.name(), value);
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new(), String::new());
        event.record(&mut line);
        assert_eq!(event.metadata().target(), "stanchion");
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}{}", event.metadata().level(), line.0, line.1));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn has(lines: &[String], wanted: &str) -> bool {
    lines.iter().any(|l| l.contains(wanted))
}

#[tokio::test(start_paused = true)]
async fn state_changes_refusals_and_retries_are_tracing_events() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let _guard = tracing::subscriber::set_default(Capture(Arc::clone(&lines)));
    let clock = TokioClock::new();

    // A breaker's transitions and rejections.
    let config = BreakerConfig::new();
    let breaker: CircuitBreaker<_, StdRawMutex, _, _> = CircuitBreaker::from_parts(
        config,
        ConsecutiveWindow::new(1).unwrap(),
        FixedOpenDuration(Duration::from_secs(5)),
        1,
        TracingBreakerListener::new("db"),
    )
    .unwrap();
    let _ = with_breaker(&breaker, clock, &ErrorsAreFailures, async {
        Err::<(), _>("x")
    })
    .await;
    let _ = with_breaker(&breaker, clock, &ErrorsAreFailures, async {
        Ok::<_, ()>(())
    })
    .await;

    // Retries and giving up.
    let mut policy = RetryPolicy::new(
        Constant::new(Duration::from_millis(10)),
        2,
        fastrand::Rng::with_seed(1),
    )
    .unwrap();
    let _ = retry(clock, &mut policy, |_| async { Err::<(), _>("down") }).await;

    // A bulkhead's refusal, and the pipeline naming the refusing layer.
    let pool =
        BulkheadQueue::with_listener(1, 0, TracingBulkheadListener::new("pool"), clock).unwrap();
    let held = pool.acquire(Deadline::NEVER).await.unwrap();
    assert!(pool.acquire(Deadline::NEVER).await.is_err());
    drop(held);
    let pipeline = Pipeline::new(clock).rate_limit(
        RateLimitQueue::new(
            WithClock::new(TokenBucket::new(Quota::per_second(1).unwrap()), clock),
            clock,
        )
        .with_max_waiting(0),
    );
    assert!(pipeline.call(|_| async { Ok::<_, ()>(()) }).await.is_ok());
    assert!(pipeline.call(|_| async { Ok::<_, ()>(()) }).await.is_err());

    let lines = lines.lock().unwrap().clone();
    let expect = [
        "INFO circuit breaker state changed breaker=\"db\" from=closed to=open",
        "DEBUG circuit breaker rejected a call breaker=\"db\" state=open",
        "DEBUG circuit breaker refused the call state=open",
        "DEBUG retrying failed_attempt=1 next_attempt=2 after_ms=10",
        "WARN retries given up attempts=2 reason=attempts exhausted",
        "DEBUG bulkhead full bulkhead=\"pool\" in_use=1 max_concurrent=1",
        "DEBUG pipeline refused the call layer=\"rate_limit\"",
    ];
    for wanted in expect {
        assert!(has(&lines, wanted), "no event {wanted:?} in {lines:#?}");
    }
    assert!(!has(&lines, "to=half-open"), "{lines:#?}");
    let _ = clock.now();
}
