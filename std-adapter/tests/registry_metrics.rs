//! The registry's metrics (feature `metrics`): every name and label it exports through the
//! `metrics` facade, with their values after a known sequence of calls (a golden list).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use stanchion::Clock;
use stanchion::rate::RateLimiter;
use stanchion_std::registry::{Document, Registry};
use stanchion_std::tower::BoxError;
use tower::{ServiceBuilder, ServiceExt};

/// A recorder that keeps every counter and gauge registered, by kind, name and labels.
#[derive(Default)]
struct Recorded {
    slots: Mutex<BTreeMap<(String, &'static str), Arc<AtomicU64>>>,
}

impl Recorded {
    fn slot(&self, key: &Key, kind: &'static str) -> Arc<AtomicU64> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.slots.lock().unwrap().entry((name, kind)).or_default())
    }

    /// Every metric, as `kind name{labels} value`, sorted by name and labels.
    fn lines(&self) -> Vec<String> {
        self.slots
            .lock()
            .unwrap()
            .iter()
            .map(|((name, kind), value)| {
                let value = value.load(Ordering::Relaxed);
                match *kind {
                    "gauge" => format!("gauge {name} {}", f64::from_bits(value)),
                    _ => format!("counter {name} {value}"),
                }
            })
            .collect()
    }
}

impl Recorder for Recorded {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key, "counter"))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key, "gauge"))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

const POLICIES: &str = r#"
[rate_limit.api]
burst = 2
period = "1s"

[breaker.downstream]
window = { consecutive = { length = 1 } }
open_duration = "30s"

[retry.downstream]
max_attempts = 3
backoff = "immediate"
budget = "downstream"

[retry_budget.downstream]
max_tokens = 10
token_ratio = "0.1"

[bulkhead.downstream]
max_concurrent = 1

[hedge.downstream]
delay = "10ms"
max_attempts = 3

[fallback.downstream]
on = "everything"
"#;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_instance_reports_through_the_metrics_facade() {
    let recorded = Recorded::default();
    // The handles are registered when the registry is built, with the recorder of that
    // moment (here a local one; in a program, the exporter installed before).
    let registry = metrics::with_local_recorder(&recorded, || {
        Registry::new(&Document::parse("policies.toml", POLICIES).unwrap()).unwrap()
    });

    // The rate limiter: 2 grants, 1 over the quota, 1 above the burst.
    let api = registry.rate_limiter("api").unwrap();
    let now = api.clock().now();
    assert!(api.acquire_at(1, now).is_ok());
    assert!(api.acquire_at(1, now).is_ok());
    assert!(api.acquire_at(1, now).is_err());
    assert!(api.acquire_at(3, now).is_err());

    // The bulkhead: one permit, one refusal while it is out, then released.
    let bulkhead = registry.bulkhead("downstream").unwrap();
    let permit = bulkhead.try_acquire().unwrap();
    assert!(bulkhead.try_acquire().is_err());
    drop(permit);

    // Retry over the breaker: the first attempt fails and opens the breaker (a window of
    // one failure in a row); the 2 retries are refused by it.
    let failing = ServiceBuilder::new()
        .layer(registry.retry_layer("downstream").unwrap().retry_refusals())
        .layer(registry.breaker_layer("downstream").unwrap())
        .service_fn(|_: ()| async { Err::<(), BoxError>("down".into()) });
    assert!(failing.oneshot(()).await.is_err());

    // The hedge: the first attempt is stuck, the second (10 ms later) too, the third
    // (20 ms) answers: 2 hedges.
    let attempts = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&attempts);
    let hedged = ServiceBuilder::new()
        .layer(registry.hedge_layer("downstream").unwrap())
        .service_fn(move |_: ()| {
            let attempt = counted.fetch_add(1, Ordering::Relaxed);
            async move {
                let latency = if attempt < 2 { 1_000 } else { 5 };
                tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
                Ok::<_, BoxError>(attempt)
            }
        });
    assert_eq!(hedged.oneshot(()).await.unwrap(), 2);

    // The fallback answers a failure: 1 answer; a success is not one.
    let fallback = |ok: bool| {
        ServiceBuilder::new()
            .layer(
                registry
                    .fallback_layer("downstream", |_: BoxError| "cached")
                    .unwrap(),
            )
            .service_fn(move |_: ()| async move {
                if ok {
                    Ok("fresh")
                } else {
                    Err::<_, BoxError>("down".into())
                }
            })
    };
    assert_eq!(fallback(false).oneshot(()).await.unwrap(), "cached");
    assert_eq!(fallback(true).oneshot(()).await.unwrap(), "fresh");

    assert_eq!(
        recorded.lines(),
        [
            "counter stanchion_breaker_rejected_total{name=\"downstream\",reason=\"forced_open\"} 0",
            "counter stanchion_breaker_rejected_total{name=\"downstream\",reason=\"half_open\"} 0",
            "counter stanchion_breaker_rejected_total{name=\"downstream\",reason=\"open\"} 2",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"closed\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"disabled\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"forced_open\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"half_open\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"metrics_only\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"open\"} 1",
            "counter stanchion_bulkhead_admitted_total{name=\"downstream\"} 1",
            "gauge stanchion_bulkhead_in_use{name=\"downstream\"} 0",
            "gauge stanchion_bulkhead_max_concurrent{name=\"downstream\"} 1",
            "counter stanchion_bulkhead_rejected_total{name=\"downstream\",reason=\"full\"} 1",
            "counter stanchion_fallback_answers_total{name=\"downstream\"} 1",
            "counter stanchion_hedge_hedges_total{name=\"downstream\"} 2",
            "counter stanchion_rate_limit_admitted_total{name=\"api\"} 2",
            "counter stanchion_rate_limit_rejected_total{name=\"api\",reason=\"above_burst\"} 1",
            "counter stanchion_rate_limit_rejected_total{name=\"api\",reason=\"over_quota\"} 1",
            "gauge stanchion_retry_budget_tokens{name=\"downstream\"} 8",
            "counter stanchion_retry_retries_total{name=\"downstream\"} 2",
        ]
    );
}

/// Calls through a `[pipeline.NAME]` are counted by its instances' metrics, as calls
/// through their other handles and layers are.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_pipelines_calls_are_counted_by_its_instances() {
    use stanchion::pipeline::PipelineError;

    let text = r#"
[rate_limit.api]
burst = 1
period = "1s"

[breaker.downstream]
window = { consecutive = { length = 5 } }

[retry.downstream]
max_attempts = 3
backoff = "immediate"

[bulkhead.downstream]
max_concurrent = 1

[pipeline.downstream]
timeout = "500ms"
rate_limit = "api"
bulkhead = "downstream"
breaker = "downstream"
retry = "downstream"
"#;
    let recorded = Recorded::default();
    let registry = metrics::with_local_recorder(&recorded, || {
        Registry::new(&Document::parse("policies.toml", text).unwrap()).unwrap()
    });
    let pipeline = registry.pipeline("downstream").unwrap();

    // Two failed attempts, then a success: 1 grant, 1 slot, 2 retries.
    let flaky = pipeline
        .call(|attempt| async move {
            if attempt < 3 {
                Err("flaky")
            } else {
                Ok(attempt)
            }
        })
        .await;
    assert_eq!(flaky, Ok(3));
    // The quota's next grant is 1 s away, past the call's 500 ms: 1 refusal.
    let refused: Result<u32, _> = pipeline.call(|_| async { Ok::<_, &str>(1) }).await;
    assert!(matches!(refused, Err(PipelineError::RateLimited(_))));
    // A second later, the slot is held elsewhere: 1 grant, 1 bulkhead refusal.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let bulkhead = registry.bulkhead("downstream").unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let full: Result<u32, _> = pipeline.call(|_| async { Ok::<_, &str>(1) }).await;
    assert!(matches!(full, Err(PipelineError::BulkheadFull(_))));
    drop(held);

    assert_eq!(
        recorded.lines(),
        [
            "counter stanchion_breaker_rejected_total{name=\"downstream\",reason=\"forced_open\"} 0",
            "counter stanchion_breaker_rejected_total{name=\"downstream\",reason=\"half_open\"} 0",
            "counter stanchion_breaker_rejected_total{name=\"downstream\",reason=\"open\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"closed\"} 1",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"disabled\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"forced_open\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"half_open\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"metrics_only\"} 0",
            "gauge stanchion_breaker_state{name=\"downstream\",state=\"open\"} 0",
            "counter stanchion_bulkhead_admitted_total{name=\"downstream\"} 2",
            "gauge stanchion_bulkhead_in_use{name=\"downstream\"} 0",
            "gauge stanchion_bulkhead_max_concurrent{name=\"downstream\"} 1",
            "counter stanchion_bulkhead_rejected_total{name=\"downstream\",reason=\"full\"} 1",
            "counter stanchion_rate_limit_admitted_total{name=\"api\"} 2",
            "counter stanchion_rate_limit_rejected_total{name=\"api\",reason=\"above_burst\"} 0",
            "counter stanchion_rate_limit_rejected_total{name=\"api\",reason=\"over_quota\"} 1",
            "counter stanchion_retry_retries_total{name=\"downstream\"} 2",
        ]
    );
}
