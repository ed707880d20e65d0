//! The registry of named instances (feature `config`): building from a document, errors
//! with their place, environment overrides, reload.

use std::sync::Arc;
use std::time::Duration;

use stanchion::Clock;
use stanchion::breaker::{AfterMaxWait, BreakerConfig, State};
use stanchion::rate::Quota;
use stanchion_std::TokioClock;
use stanchion_std::registry::{Document, Registry, RegistryError};

const POLICIES: &str = r#"# policies of the service
[rate_limit.api]
burst = 10
period = "100ms"

[breaker.downstream]
failure_rate_threshold = 50
minimum_calls = 20
open_duration = "30s"
window = { count = { size = 50 } }

[retry.downstream]
max_attempts = 3
backoff = { constant = { delay = "200ms" } }

[bulkhead.downstream]
max_concurrent = 4
"#;

fn doc(text: &str) -> Document {
    Document::parse("policies.toml", text).unwrap()
}

fn build(text: &str) -> Result<Registry, RegistryError> {
    Registry::new(&Document::parse("policies.toml", text)?)
}

fn error(text: &str) -> String {
    build(text).unwrap_err().to_string()
}

#[test]
fn builds_named_instances_and_hands_out_shared_handles() {
    let registry = build(POLICIES).unwrap();
    assert_eq!(
        registry.names(),
        [
            "rate_limit.api",
            "breaker.downstream",
            "retry.downstream",
            "bulkhead.downstream"
        ]
    );
    let api = registry.rate_limiter("api").unwrap();
    assert!(Arc::ptr_eq(&api, &registry.rate_limiter("api").unwrap()));
    assert_eq!(
        api.limiter().quota(),
        Quota::new(10, Duration::from_millis(100)).unwrap()
    );
    let breaker = registry.breaker("downstream").unwrap();
    assert_eq!(
        breaker.config(),
        BreakerConfig::new()
            .failure_rate_threshold(50)
            .minimum_calls(20)
            .open_duration(Duration::from_secs(30))
    );
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.listener().name(), "downstream");
    let retry = registry.retry("downstream").unwrap();
    assert_eq!(retry.settings().max_attempts, 3);
    assert_eq!(registry.bulkhead("downstream").unwrap().max_concurrent(), 4);
    assert!(registry.rate_limiter("downstream").is_none());
    assert!(registry.breaker("api").is_none());
}

#[test]
fn a_breaker_window_above_the_capacity_names_the_capacity() {
    let text = POLICIES.replace("size = 50", "size = 100");
    let small: Result<Registry<_, 64>, _> =
        Registry::with_clock(&doc(&text), stanchion_std::TokioClock::new());
    assert_eq!(
        small.unwrap_err().to_string(),
        "policies.toml:10:29: breaker `downstream`, field `window.count.size`: invalid \
         configuration: `size` must be in 1..=CAP (the window's capacity) (this registry's CAP is 64)"
    );
    assert!(build(&text).is_ok());
}

/// Each refused document, and the error: the file, line and column of the value, the
/// instance, the field, and why.
#[test]
fn errors_name_the_place_the_instance_and_the_field() {
    let cases = [
        (
            POLICIES.replace("burst = 10", "burst = 0"),
            "policies.toml:3:9: rate_limit `api`, field `burst`: invalid configuration: `burst` must be at least 1",
        ),
        (
            POLICIES.replace("burst = 10", "burst = \"ten\""),
            "policies.toml:3:9: rate_limit `api`, field `burst`: invalid type: string \"ten\", expected u32",
        ),
        (
            POLICIES.replace("period = \"100ms\"", "period = \"100 parsecs\""),
            "policies.toml:4:10: rate_limit `api`, field `period`: invalid configuration: `period` must be a duration such as \"250ms\" or \"1m30s\" (whole numbers, each with a unit)",
        ),
        (
            POLICIES.replace(
                "failure_rate_threshold = 50",
                "failure_rate_threshold = 150",
            ),
            "policies.toml:7:26: breaker `downstream`, field `failure_rate_threshold`: invalid configuration: `failure_rate_threshold` must be in 1..=100 percent",
        ),
        (
            POLICIES.replace("size = 50", "size = 0"),
            "policies.toml:10:29: breaker `downstream`, field `window.count.size`: invalid configuration: `size` must be in 1..=CAP (the window's capacity)",
        ),
        (
            POLICIES.replace("size = 50", "size = 500"),
            "policies.toml:10:29: breaker `downstream`, field `window.count.size`: invalid configuration: `size` must be in 1..=CAP (the window's capacity) (this registry's CAP is 128)",
        ),
        (
            POLICIES.replace("{ count = { size = 50 } }", "{ counted = { size = 5 } }"),
            "policies.toml:10:22: breaker `downstream`, field `window.counted`: unknown variant `counted`, expected one of `consecutive`, `count`, `time`",
        ),
        (
            POLICIES.replace("window = { count = { size = 50 } }", ""),
            "policies.toml:6:1: breaker `downstream`, field `window`: missing field `window` (such as `window = { count = { size = 100 } }`)",
        ),
        (
            POLICIES.replace("minimum_calls = 20", "minimum_call = 20"),
            "policies.toml:8:16: breaker `downstream`, field `minimum_call`: unknown field `minimum_call`, expected one of `failure_rate_threshold`, `slow_call_rate_threshold`, `slow_call_duration`, `minimum_calls`, `permitted_calls_in_half_open`, `max_wait_in_half_open`, `after_max_wait`, `open_duration`",
        ),
        (
            POLICIES.replace("max_attempts = 3", "max_attempts = 0"),
            "policies.toml:13:16: retry `downstream`, field `max_attempts`: invalid configuration: `max_attempts` must be at least 1",
        ),
        (
            POLICIES.replace("delay = \"200ms\"", "delay = \"2xx\""),
            "policies.toml:14:34: retry `downstream`, field `backoff.constant.delay`: invalid configuration: `delay` must be a duration whose units are ns, us, ms, s, m, h or d (such as \"250ms\")",
        ),
        (
            POLICIES.replace("max_concurrent = 4", "max_concurrent = -1"),
            "policies.toml:17:18: bulkhead `downstream`, field `max_concurrent`: invalid value: integer `-1`, expected u32",
        ),
        (
            POLICIES.replace("[bulkhead.downstream]", "[bulkheads.downstream]"),
            "policies.toml:16:2: unknown section `bulkheads`, expected one of `rate_limit`, `breaker`, `retry`, `bulkhead`, `retry_budget`, `hedge`, `fallback`, `pipeline`",
        ),
        (
            POLICIES.replace("burst = 10", "burst = = 10"),
            "policies.toml:3:9: extra `=`, expected nothing",
        ),
        (
            "rate_limit = 5\n".to_owned(),
            "policies.toml:1:14: `rate_limit` must be a table of named instances, as `[rate_limit.NAME]`",
        ),
        (
            "[rate_limit]\napi = 5\n".to_owned(),
            "policies.toml:2:7: rate_limit `api`: an instance must be a table of its settings, as `[rate_limit.api]`",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(&text), expected);
    }
    let err = build(&POLICIES.replace("burst = 10", "burst = 0")).unwrap_err();
    assert_eq!(err.line_column(), Some((3, 9)));
    assert_eq!(err.instance_name(), Some(("rate_limit", "api")));
    assert_eq!(err.field_path(), Some("burst"));
    assert_eq!(
        err.message(),
        "invalid configuration: `burst` must be at least 1"
    );
}

#[test]
fn environment_variables_override_single_fields() {
    let env = [
        (
            "STANCHION__BREAKER__DOWNSTREAM__FAILURE_RATE_THRESHOLD",
            "60",
        ),
        ("STANCHION__BREAKER__DOWNSTREAM__WINDOW__COUNT__SIZE", "100"),
        ("STANCHION__RATE_LIMIT__API__PERIOD", "50ms"),
        ("STANCHION__BULKHEAD__USER_API__MAX_CONCURRENT", "2"),
        ("OTHER__RATE_LIMIT__API__BURST", "0"),
        ("STANCHION_PORT", "8080"),
    ];
    let document = doc(POLICIES).with_env("STANCHION", env).unwrap();
    let registry = Registry::new(&document).unwrap();
    assert_eq!(
        registry
            .breaker("downstream")
            .unwrap()
            .config()
            .get_failure_rate_threshold(),
        60
    );
    assert_eq!(
        registry.rate_limiter("api").unwrap().limiter().quota(),
        Quota::new(10, Duration::from_millis(50)).unwrap()
    );
    assert_eq!(registry.bulkhead("user_api").unwrap().max_concurrent(), 2);

    // An existing key is matched whatever its case, and `_` matches `-`.
    let text = POLICIES.replace("[bulkhead.downstream]", "[bulkhead.user-api]");
    let document = doc(&text)
        .with_env(
            "STANCHION",
            [("STANCHION__BULKHEAD__USER_API__MAX_CONCURRENT", "7")],
        )
        .unwrap();
    let registry = Registry::new(&document).unwrap();
    assert_eq!(registry.bulkhead("user-api").unwrap().max_concurrent(), 7);
    assert!(registry.bulkhead("user_api").is_none());

    // An error about a value a variable set names the variable.
    let bad = doc(POLICIES)
        .with_env("STANCHION", [("STANCHION__RATE_LIMIT__API__BURST", "0")])
        .unwrap();
    assert_eq!(
        Registry::new(&bad).unwrap_err().to_string(),
        "environment variable STANCHION__RATE_LIMIT__API__BURST: rate_limit `api`, field \
         `burst`: invalid configuration: `burst` must be at least 1"
    );
    let bad = doc(POLICIES)
        .with_env(
            "STANCHION",
            [(
                "STANCHION__BREAKER__DOWNSTREAM__WINDOW",
                "{ count = { size = 0 } }",
            )],
        )
        .unwrap();
    assert_eq!(
        Registry::new(&bad).unwrap_err().to_string(),
        "environment variable STANCHION__BREAKER__DOWNSTREAM__WINDOW: breaker `downstream`, \
         field `window.count.size`: invalid configuration: `size` must be in 1..=CAP (the \
         window's capacity)"
    );
    assert_eq!(
        doc(POLICIES)
            .with_env(
                "STANCHION",
                [("STANCHION__RATE_LIMIT__API__BURST__MAX", "1")]
            )
            .unwrap_err()
            .to_string(),
        "environment variable STANCHION__RATE_LIMIT__API__BURST__MAX: `rate_limit.api.burst` \
         is not a table, so it has no field `max`"
    );
    assert_eq!(
        doc(POLICIES)
            .with_env("STANCHION", [("STANCHION__RATE_LIMIT____BURST", "1")])
            .unwrap_err()
            .to_string(),
        "environment variable STANCHION__RATE_LIMIT____BURST: expected \
         PREFIX__SECTION__NAME__FIELD, with no empty key"
    );
}

/// The layers by name share the registry's instances: what one layer's requests take, a
/// handle sees, and a layer made twice shares one quota.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn layers_by_name_share_the_named_instances() {
    use stanchion_std::tower::BoxError;
    use tower::{ServiceBuilder, ServiceExt};

    let text = POLICIES.replace("burst = 10", "burst = 2");
    let registry = build(&text).unwrap();
    let service = |registry: &Registry| {
        ServiceBuilder::new()
            .layer(registry.rate_limit_layer("api").unwrap())
            .layer(registry.bulkhead_layer("downstream").unwrap())
            .layer(registry.retry_layer("downstream").unwrap())
            .layer(registry.breaker_layer("downstream").unwrap())
            .service_fn(|n: u32| async move { Ok::<_, BoxError>(n) })
    };
    assert_eq!(service(&registry).oneshot(1).await.unwrap(), 1);
    assert_eq!(service(&registry).oneshot(2).await.unwrap(), 2);
    let refused = service(&registry).oneshot(3).await.unwrap_err();
    assert!(
        refused.is::<stanchion_std::tower::RateLimited>(),
        "{refused}"
    );
    let api = registry.rate_limiter("api").unwrap();
    assert_eq!(api.limiter().remaining_at(api.clock().now()), 0);
    let breaker = registry.breaker("downstream").unwrap();
    assert_eq!(breaker.metrics(&TokioClock::new()).successes, 2);
    assert!(registry.rate_limit_layer("nope").is_none());
}

#[test]
fn reload_changes_live_instances_in_place_and_adds_new_names() {
    let registry = build(POLICIES).unwrap();
    let api = registry.rate_limiter("api").unwrap();
    let bulkhead = registry.bulkhead("downstream").unwrap();
    let retry = registry.retry("downstream").unwrap();
    let breaker = registry.breaker("downstream").unwrap();
    let held = bulkhead.try_acquire().unwrap();

    // Unchanged: nothing to do.
    assert_eq!(registry.reload(&doc(POLICIES)).unwrap(), Default::default());

    let text = POLICIES
        .replace("burst = 10", "burst = 20")
        .replace("max_attempts = 3", "max_attempts = 5")
        .replace("max_concurrent = 4", "max_concurrent = 1")
        + "\n[rate_limit.admin]\nburst = 1\nperiod = \"1s\"\n";
    let reloaded = registry.reload(&doc(&text)).unwrap();
    assert_eq!(
        reloaded.changed,
        ["rate_limit.api", "retry.downstream", "bulkhead.downstream"]
    );
    assert_eq!(reloaded.added, ["rate_limit.admin"]);
    // The handles are the live instances: they see the change.
    assert_eq!(api.limiter().quota().burst(), 20);
    assert_eq!(retry.settings().max_attempts, 5);
    assert_eq!(
        retry
            .policy(fastrand::Rng::with_seed(1), stanchion::Instant::ZERO)
            .max_attempts(),
        5
    );
    // The permit out stays out: at the new maximum of 1, none is left.
    assert_eq!(bulkhead.max_concurrent(), 1);
    assert!(bulkhead.try_acquire().is_err());
    drop(held);
    assert!(bulkhead.try_acquire().is_ok());
    assert!(Arc::ptr_eq(
        &breaker,
        &registry.breaker("downstream").unwrap()
    ));
    assert_eq!(
        registry.rate_limiter("admin").unwrap().limiter().quota(),
        Quota::per_second(1).unwrap()
    );
}

/// A change the registry cannot apply is refused, saying which instance, which field and
/// why, and nothing of the document is applied (here, its quota change).
#[test]
fn reload_refuses_what_it_cannot_apply_and_then_applies_nothing() {
    let registry = build(POLICIES).unwrap();
    let api = registry.rate_limiter("api").unwrap();
    let raised = POLICIES.replace("burst = 10", "burst = 20");
    let cases = [
        (
            // With a threshold change, which alone would be applied.
            raised
                .replace("minimum_calls = 20", "minimum_calls = 30")
                .replace("open_duration = \"30s\"", "open_duration = \"1m\""),
            "policies.toml:9:17: breaker `downstream`, field `open_duration`: cannot change this \
             field of a live circuit breaker: core's CircuitBreaker changes only \
             failure_rate_threshold, slow_call_rate_threshold, minimum_calls, \
             max_wait_in_half_open and after_max_wait in place, and rebuilding it would lose \
             its window and state (restart to apply it)",
        ),
        (
            raised.replace("open_duration = \"30s\"\n", ""),
            "policies.toml:6:1: breaker `downstream`, field `open_duration`: cannot change this \
             field of a live circuit breaker: core's CircuitBreaker changes only \
             failure_rate_threshold, slow_call_rate_threshold, minimum_calls, \
             max_wait_in_half_open and after_max_wait in place, and rebuilding it would lose \
             its window and state (restart to apply it)",
        ),
        (
            raised.replace("size = 50", "size = 60"),
            "policies.toml:10:10: breaker `downstream`, field `window`: cannot change a live \
             circuit breaker's window: the window is the breaker's state, which rebuilding it \
             would lose (restart to apply it)",
        ),
        (
            raised.replace("[bulkhead.downstream]\nmax_concurrent = 4\n", ""),
            "policies.toml: bulkhead `downstream`: cannot remove a live instance: handles to it \
             may be in use (keep it in the document, or restart)",
        ),
        (
            raised.replace("max_attempts = 3", "max_attempts = 0"),
            "policies.toml:13:16: retry `downstream`, field `max_attempts`: invalid \
             configuration: `max_attempts` must be at least 1",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            registry.reload(&doc(&text)).unwrap_err().to_string(),
            expected
        );
        assert_eq!(api.limiter().quota().burst(), 10);
    }
    // A variable that sets a breaker's field is named as the place.
    let document = doc(&raised)
        .with_env(
            "STANCHION",
            [("STANCHION__BREAKER__DOWNSTREAM__SLOW_CALL_DURATION", "5s")],
        )
        .unwrap();
    assert_eq!(
        registry.reload(&document).unwrap_err().to_string(),
        "environment variable STANCHION__BREAKER__DOWNSTREAM__SLOW_CALL_DURATION: breaker \
         `downstream`, field `slow_call_duration`: cannot change this field of a live circuit \
         breaker: core's CircuitBreaker changes only failure_rate_threshold, \
         slow_call_rate_threshold, minimum_calls, max_wait_in_half_open and after_max_wait in \
         place, and rebuilding it would lose its window and state (restart to apply it)"
    );
    let breaker = registry.breaker("downstream").unwrap();
    assert_eq!(breaker.config().get_minimum_calls(), 20);
    assert_eq!(api.limiter().quota().burst(), 10);
    assert_eq!(
        registry.reload(&doc(&raised)).unwrap().changed,
        ["rate_limit.api"]
    );
    assert_eq!(api.limiter().quota().burst(), 20);
}

/// Issue 21: a reload that lowers a live breaker's failure-rate threshold changes the
/// breaker handed out in place. It keeps its window (6 failures of 20, 30 %), and the next
/// failure (7 of 21, 33 %) opens it at the new 31 %, where 50 % would have kept it closed.
/// A reload that also changes a field the breaker cannot change in place is refused,
/// naming it, and changes nothing.
#[tokio::test(start_paused = true)]
async fn a_reload_lowers_a_live_breakers_threshold_and_keeps_its_window() {
    let registry = build(POLICIES).unwrap();
    let breaker = registry.breaker("downstream").unwrap();
    let built = breaker.config();
    let clock = TokioClock::new();
    let record = |failed: bool| {
        let permit = breaker.try_acquire(&clock).unwrap();
        if failed {
            permit.failure(Duration::from_millis(1));
        } else {
            permit.success(Duration::from_millis(1));
        }
    };
    for call in 0..20 {
        record(call % 10 < 3);
    }
    tokio::time::advance(Duration::from_secs(1)).await;

    let lowered = POLICIES.replace("failure_rate_threshold = 50", "failure_rate_threshold = 31");
    let refused = lowered.replace("open_duration = \"30s\"", "open_duration = \"10s\"");
    assert_eq!(
        registry.reload(&doc(&refused)).unwrap_err().to_string(),
        "policies.toml:9:17: breaker `downstream`, field `open_duration`: cannot change this \
         field of a live circuit breaker: core's CircuitBreaker changes only \
         failure_rate_threshold, slow_call_rate_threshold, minimum_calls, \
         max_wait_in_half_open and after_max_wait in place, and rebuilding it would lose its \
         window and state (restart to apply it)"
    );
    assert_eq!(breaker.config(), built);
    assert_eq!(registry.breaker_settings("downstream").unwrap().0, built);

    assert_eq!(
        registry.reload(&doc(&lowered)).unwrap().changed,
        ["breaker.downstream"]
    );
    assert_eq!(breaker.config(), built.failure_rate_threshold(31));
    assert_eq!(
        registry.breaker_settings("downstream").unwrap().0,
        built.failure_rate_threshold(31)
    );
    let m = breaker.metrics(&clock);
    assert_eq!((m.state, m.calls, m.failures), (State::Closed, 20, 6));
    // The same document again changes nothing.
    assert_eq!(registry.reload(&doc(&lowered)).unwrap(), Default::default());
    // The maximum wait in half-open changes in place too.
    let waiting = lowered.replace(
        "open_duration = \"30s\"",
        "open_duration = \"30s\"\nmax_wait_in_half_open = \"5s\"",
    );
    assert_eq!(
        registry.reload(&doc(&waiting)).unwrap().changed,
        ["breaker.downstream"]
    );
    assert_eq!(
        breaker.config().get_max_wait_in_half_open(),
        Some((Duration::from_secs(5), AfterMaxWait::Open))
    );
    let m = breaker.metrics(&clock);
    assert_eq!((m.state, m.calls, m.failures), (State::Closed, 20, 6));

    record(true);
    let m = breaker.metrics(&clock);
    assert_eq!((m.state, m.calls, m.failures), (State::Open, 21, 7));
    // Opened at the failure's end, 1 ms after now: rejected until 30 s after it.
    assert_eq!(
        breaker.try_acquire(&clock).unwrap_err().retry_after,
        Some(Duration::from_nanos(30_001_000_001))
    );
}

/// Eight requests every 2 ms from four tasks, through the registry's limiter, while the
/// quota is raised at 301 ms and lowered at 801 ms: the grants are exactly those of the
/// GCRA rule with the bucket's state (its theoretical arrival time) kept across each
/// change.
///
/// - 0 to 300 ms, 10/s (burst 5, one every 100 ms): 5 at 0, then 100, 200, 300; the
///   theoretical arrival time is then 800 ms.
/// - 301 ms, raised to 20/s (burst 5, one every 50 ms; tolerance 200 ms): the debt stays,
///   so the next grant is at 800 - 200 = 600 ms, then every 50 ms: 600 to 800 (five); the
///   arrival time is then 1050 ms.
/// - 801 ms, lowered to 5/s (burst 2, one every 200 ms; tolerance 200 ms): 850, 1050,
///   1250.
///
/// A bucket rebuilt at each change (its state lost) would grant 5 at 302 ms and 2 at
/// 802 ms instead.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_quota_changed_under_load_grants_exactly_what_gcra_allows() {
    use stanchion_std::AsyncRateLimiter;
    use tokio::sync::Mutex;
    use tokio::time::{Instant, sleep, sleep_until};

    let text = POLICIES.replace("burst = 10", "burst = 5");
    let registry = Arc::new(build(&text).unwrap());
    let start = Instant::now();
    let grants = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let limiter = registry.rate_limiter("api").unwrap();
        let grants = Arc::clone(&grants);
        tasks.push(tokio::spawn(async move {
            for _ in 0..700 {
                for _ in 0..2 {
                    if limiter.admit(1).await.is_ok() {
                        grants.lock().await.push(start.elapsed().as_millis());
                    }
                }
                sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let reloads = {
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            sleep_until(start + Duration::from_millis(301)).await;
            let raised = POLICIES
                .replace("burst = 10", "burst = 5")
                .replace("100ms", "50ms");
            assert_eq!(
                registry.reload(&doc(&raised)).unwrap().changed,
                ["rate_limit.api"]
            );
            sleep_until(start + Duration::from_millis(801)).await;
            let lowered = POLICIES
                .replace("burst = 10", "burst = 2")
                .replace("100ms", "200ms");
            assert_eq!(
                registry.reload(&doc(&lowered)).unwrap().changed,
                ["rate_limit.api"]
            );
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    reloads.await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(1400));
    assert_eq!(
        *grants.lock().await,
        [
            0, 0, 0, 0, 0, 100, 200, 300, 600, 650, 700, 750, 800, 850, 1050, 1250
        ]
    );
}

/// A program's own overrides (command-line flags) over the document: errors name them.
#[test]
fn overrides_set_fields_and_errors_name_them() {
    let document = doc(POLICIES)
        .with_value(
            &["bulkhead", "downstream", "max_concurrent"],
            "9",
            "flag --max-concurrent",
        )
        .unwrap()
        .with_value(
            &["retry", "upstream", "max_attempts"],
            "2",
            "flag --upstream-attempts",
        )
        .unwrap()
        .with_value(
            &["retry", "upstream", "backoff"],
            "\"immediate\"",
            "flag --upstream-backoff",
        )
        .unwrap();
    assert_eq!(
        document.get(&["bulkhead", "downstream", "max_concurrent"]),
        Some(&toml::Value::Integer(9))
    );
    assert_eq!(document.get(&["bulkhead", "nothing"]), None);
    let registry = Registry::new(&document).unwrap();
    assert_eq!(registry.bulkhead("downstream").unwrap().max_concurrent(), 9);
    assert_eq!(
        registry.retry("upstream").unwrap().settings().max_attempts,
        2
    );

    let bad = doc(POLICIES)
        .with_value(
            &["breaker", "downstream", "open_duration"],
            "5",
            "flag --open-wait",
        )
        .unwrap();
    assert_eq!(
        Registry::new(&bad).unwrap_err().to_string(),
        "flag --open-wait: breaker `downstream`, field `open_duration`: invalid configuration: \
         `open_duration` must be a duration such as \"250ms\" or \"1m30s\" (whole numbers, each \
         with a unit)"
    );
    assert_eq!(
        doc(POLICIES)
            .with_value(&["rate_limit", "api", "burst", "max"], "1", "flag --x")
            .unwrap_err()
            .to_string(),
        "flag --x: `rate_limit.api.burst` is not a table, so it has no field `max`"
    );
    let missing = Document::read_file("/nonexistent/policies.toml").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "/nonexistent/policies.toml: cannot read the file: No such file or directory (os error 2)"
    );
}

mod round_trip {
    use proptest::prelude::*;
    use stanchion::breaker::BreakerConfig;
    use stanchion::config::{AnyBackoff, BreakerWindow, RetrySettings, TokenBudgetSettings};
    use stanchion::fallback::FallbackOn;
    use stanchion::hedge::HedgeConfig;
    use stanchion::pipeline::Layer;
    use stanchion::rate::Quota;
    use stanchion::retry::{Constant, Exponential, Jitter, Ratio};
    use stanchion_std::registry::PipelineSettings;
    use std::time::Duration;

    use super::*;

    fn quota() -> impl Strategy<Value = Quota> {
        (1u32..100_000, 1u64..10_000_000_000_000).prop_filter_map("refused", |(b, p)| {
            Quota::new(b, Duration::from_nanos(p)).ok()
        })
    }

    fn breaker() -> impl Strategy<Value = (BreakerConfig, BreakerWindow)> {
        let window = prop_oneof![
            (1u32..=128).prop_map(|size| BreakerWindow::Count { size }),
            (1u32..1_000_000).prop_map(|length| BreakerWindow::Consecutive { length }),
            (1u64..100_000, 1u32..=128).prop_map(|(ms, buckets)| BreakerWindow::Time {
                span: Duration::from_millis(ms.max(u64::from(buckets))),
                buckets
            }),
        ];
        (
            1u8..=100,
            1u32..10_000,
            1u16..1000,
            1u64..10_000_000_000,
            window,
        )
            .prop_filter_map(
                "refused",
                |(threshold, minimum, permitted, open, window)| {
                    let config = BreakerConfig::new()
                        .failure_rate_threshold(threshold)
                        .minimum_calls(minimum)
                        .permitted_calls_in_half_open(permitted)
                        .open_duration(Duration::from_micros(open));
                    config.validate().ok().map(|()| (config, window))
                },
            )
    }

    fn retry() -> impl Strategy<Value = RetrySettings> {
        let backoff = prop_oneof![
            Just(AnyBackoff::Immediate),
            (1u64..10_000_000_000).prop_map(|d| AnyBackoff::Constant(
                Constant::new(Duration::from_nanos(d)).with_jitter(Jitter::FULL)
            )),
            (1u64..1_000_000, 1u32..10).prop_filter_map("refused", |(base, f)| {
                let base = Duration::from_micros(base);
                Exponential::new(base, Ratio::new(f, 1).ok()?, base * 100)
                    .ok()
                    .map(AnyBackoff::Exponential)
            }),
        ];
        (backoff, 1u32..100, proptest::option::of(1u64..100_000)).prop_map(
            |(backoff, max_attempts, timeout)| RetrySettings {
                timeout: timeout.map(Duration::from_millis),
                ..RetrySettings::new(backoff, max_attempts)
            },
        )
    }

    fn budget() -> impl Strategy<Value = TokenBudgetSettings> {
        (1u32..=1_000_000, 1u32..=1000, 1u32..=1000).prop_filter_map(
            "refused",
            |(max_tokens, num, den)| {
                let settings = TokenBudgetSettings {
                    max_tokens,
                    token_ratio: Ratio::new(num, den).ok()?,
                };
                settings.build().ok().map(|_| settings)
            },
        )
    }

    fn hedge() -> impl Strategy<Value = HedgeConfig> {
        prop_oneof![
            (1u64..100_000, 2u32..=16).prop_filter_map("refused", |(ms, attempts)| {
                HedgeConfig::fixed(Duration::from_millis(ms), attempts).ok()
            }),
            (1u16..=999, 2u32..=16).prop_filter_map("refused", |(per_mille, attempts)| {
                HedgeConfig::learned(per_mille, attempts).ok()
            }),
        ]
    }

    /// The layers a fallback may cover: those that refuse or give up.
    fn fallback_layers() -> Vec<Layer> {
        let layers = Layer::ORDER.into_iter().chain([Layer::Throttle]);
        layers
            .filter(|layer| FallbackOn::EVERYTHING.covers_layer(*layer))
            .collect()
    }

    /// A fallback's `on`, as a document writes it, and what it means.
    fn fallback() -> impl Strategy<Value = (toml::Value, FallbackOn)> {
        prop_oneof![
            Just(("refusals".into(), FallbackOn::REFUSALS)),
            Just(("everything".into(), FallbackOn::EVERYTHING)),
            proptest::sample::subsequence(fallback_layers(), 1..=6).prop_map(|layers| {
                let names = layers.iter().map(|l| toml::Value::from(l.name()));
                let on = layers
                    .iter()
                    .fold(FallbackOn::NOTHING, |on, l| on.layer(*l));
                (toml::Value::Array(names.collect()), on)
            }),
        ]
    }

    /// A pipeline of the instances named `x`, each layer and timeout there or not.
    fn pipeline() -> impl Strategy<Value = PipelineSettings> {
        let timeout = || proptest::option::of((1u64..100_000).prop_map(Duration::from_millis));
        let layer = || proptest::option::of(Just("x".to_owned()));
        (timeout(), layer(), layer(), layer(), layer(), timeout()).prop_map(
            |(timeout, rate_limit, bulkhead, breaker, retry, attempt_timeout)| PipelineSettings {
                timeout,
                rate_limit,
                bulkhead,
                breaker,
                retry,
                attempt_timeout,
            },
        )
    }

    /// `settings` as a `[pipeline.NAME]`'s fields.
    fn pipeline_fields(settings: &PipelineSettings) -> toml::Value {
        let mut fields = toml::Table::new();
        let durations = [
            ("timeout", settings.timeout),
            ("attempt_timeout", settings.attempt_timeout),
        ];
        for (field, d) in durations {
            if let Some(d) = d {
                fields.insert(field.into(), format!("{}ms", d.as_millis()).into());
            }
        }
        let layers = [
            ("rate_limit", &settings.rate_limit),
            ("bulkhead", &settings.bulkhead),
            ("breaker", &settings.breaker),
            ("retry", &settings.retry),
        ];
        for (field, name) in layers {
            if let Some(name) = name {
                fields.insert(field.into(), name.clone().into());
            }
        }
        toml::Value::Table(fields)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any valid configuration, written as a document and read back, builds
        /// instances with exactly that configuration.
        #[test]
        fn any_valid_document_builds_what_it_says(
            quota in quota(),
            (config, window) in breaker(),
            retry in retry(),
            max_concurrent in 1u32..1_000_000,
            budget in budget(),
            (hedge, hedge_budget) in (hedge(), proptest::option::of(Just("x".to_owned()))),
            (on_text, on) in fallback(),
            pipeline in pipeline(),
        ) {
            let mut breaker = toml::Table::try_from(config).unwrap();
            breaker.insert("window".into(), toml::Value::try_from(window).unwrap());
            let mut document = toml::Table::new();
            let mut section = |name: &str, value: toml::Value| {
                let mut instances = toml::Table::new();
                instances.insert("x".into(), value);
                document.insert(name.into(), toml::Value::Table(instances));
            };
            section("rate_limit", toml::Value::try_from(quota).unwrap());
            section("breaker", toml::Value::Table(breaker));
            section("retry", toml::Value::try_from(retry).unwrap());
            section("bulkhead", toml::toml! { max_concurrent = max_concurrent }.into());
            section("retry_budget", toml::Value::try_from(budget).unwrap());
            let mut hedge_fields = toml::Table::try_from(hedge).unwrap();
            if let Some(name) = &hedge_budget {
                hedge_fields.insert("budget".into(), name.clone().into());
            }
            section("hedge", toml::Value::Table(hedge_fields));
            section("fallback", toml::toml! { on = on_text }.into());
            section("pipeline", pipeline_fields(&pipeline));
            let text = toml::to_string(&document).unwrap();
            let registry = Registry::new(&doc(&text)).unwrap();
            prop_assert_eq!(registry.rate_limiter("x").unwrap().limiter().quota(), quota);
            prop_assert_eq!(registry.breaker_settings("x"), Some((config, window)));
            prop_assert_eq!(registry.breaker("x").unwrap().config(), config);
            prop_assert_eq!(registry.retry("x").unwrap().settings(), retry);
            prop_assert_eq!(registry.bulkhead("x").unwrap().max_concurrent(), max_concurrent);
            prop_assert_eq!(registry.retry_budget("x").unwrap().settings(), budget);
            prop_assert_eq!(registry.hedge_settings("x"), Some((hedge, hedge_budget)));
            prop_assert_eq!(registry.fallback("x").unwrap().on(), on);
            prop_assert_eq!(registry.pipeline_settings("x"), Some(pipeline));
            // The same document again changes nothing.
            prop_assert_eq!(registry.reload(&doc(&text)).unwrap(), Default::default());
        }
    }
}

/// Retry settings may name a retry budget (gRPC's retry throttling), shared by every
/// operation of those settings.
#[test]
fn retry_settings_draw_on_a_named_budget() {
    use stanchion::retry::{Decision, GiveUpReason, Verdict};

    let text = POLICIES.replace(
        "max_attempts = 3\n",
        "max_attempts = 5\nbudget = \"shared\"\n",
    ) + "\n[retry_budget.shared]\nmax_tokens = 4\ntoken_ratio = \"0.5\"\n";
    let registry = build(&text).unwrap();
    assert_eq!(
        registry.names().last().map(String::as_str),
        Some("retry_budget.shared")
    );
    let retry = registry.retry("downstream").unwrap();
    assert_eq!(retry.budget_name().as_deref(), Some("shared"));
    let budget = registry.retry_budget("shared").unwrap();
    assert_eq!(budget.milli_tokens(), 4000);
    // 4 tokens: a retry is allowed while more than 2 are left after it.
    let now = stanchion::Instant::ZERO;
    let mut policy = retry.policy(fastrand::Rng::with_seed(1), now);
    assert!(
        policy
            .next_attempt_at(now, Verdict::Transient, None)
            .is_ok()
    );
    assert_eq!(
        policy.next_attempt_at(now, Verdict::Transient, None),
        Err(Decision::GiveUp {
            reason: GiveUpReason::BudgetExhausted
        })
    );
    assert_eq!(budget.milli_tokens(), 2000);
    // Another operation shares the budget.
    let mut other = retry.policy(fastrand::Rng::with_seed(2), now);
    assert!(
        other
            .next_attempt_at(now, Verdict::Transient, None)
            .is_err()
    );
    // (A failure takes a token even when the retry is refused, as gRPC's throttling does.)
    assert_eq!(budget.milli_tokens(), 1000);

    // Errors: a budget that is not a name, or not in the document.
    assert_eq!(
        error(&text.replace("budget = \"shared\"", "budget = 5")),
        "policies.toml:14:10: retry `downstream`, field `budget`: `budget` must be the name of \
         a retry budget, as `budget = \"downstream\"`"
    );
    assert_eq!(
        error(&text.replace("budget = \"shared\"", "budget = \"other\"")),
        "policies.toml:14:10: retry `downstream`, field `budget`: no retry budget named `other` \
         (a `[retry_budget.other]`)"
    );

    // Reload: a budget's settings change in place, keeping its tokens (1 of now 8: a
    // retry needs more than 4 left); a bad value is refused and changes nothing.
    let err = registry
        .reload(&doc(&text.replace("max_tokens = 4", "max_tokens = 0")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "policies.toml:21:14: retry_budget `shared`, field `max_tokens`: invalid configuration: \
         `max_tokens` must be in 1..=1000000"
    );
    assert_eq!(budget.settings().max_tokens, 4);
    let text = text.replace("max_tokens = 4", "max_tokens = 8");
    let reloaded = registry.reload(&doc(&text)).unwrap();
    assert_eq!(reloaded.changed, ["retry_budget.shared"]);
    assert_eq!(budget.settings().max_tokens, 8);
    assert_eq!(budget.milli_tokens(), 1000);
    let mut policy = retry.policy(fastrand::Rng::with_seed(3), now);
    assert!(
        policy
            .next_attempt_at(now, Verdict::Transient, None)
            .is_err()
    );
    assert_eq!(budget.milli_tokens(), 0);

    // A retry may switch to a new budget.
    let switched = text.replace("budget = \"shared\"", "budget = \"fresh\"")
        + "\n[retry_budget.fresh]\nmax_tokens = 10\ntoken_ratio = 1\n";
    let reloaded = registry.reload(&doc(&switched)).unwrap();
    assert_eq!(reloaded.changed, ["retry.downstream"]);
    assert_eq!(reloaded.added, ["retry_budget.fresh"]);
    let mut policy = retry.policy(fastrand::Rng::with_seed(4), now);
    assert!(
        policy
            .next_attempt_at(now, Verdict::Transient, None)
            .is_ok()
    );
    assert_eq!(registry.retry_budget("fresh").unwrap().milli_tokens(), 9000);
    assert_eq!(budget.milli_tokens(), 0);
}

/// `POLICIES` with a hedge drawing on a budget, and a fallback.
fn with_hedge_and_fallback() -> String {
    POLICIES.to_owned()
        + r#"
[retry_budget.hedges]
max_tokens = 4
token_ratio = "0.5"

[hedge.downstream]
delay = "10ms"
max_attempts = 3
budget = "hedges"

[fallback.downstream]
on = ["circuit_breaker", "retry"]
"#
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hedges_and_fallbacks_by_name() {
    use stanchion::fallback::FallbackOn;
    use stanchion::hedge::HedgeConfig;
    use stanchion::pipeline::Layer;
    use stanchion_std::tower::BoxError;
    use tower::{ServiceBuilder, ServiceExt};

    let text = with_hedge_and_fallback();
    let registry = build(&text).unwrap();
    assert_eq!(
        registry.names()[4..],
        [
            "retry_budget.hedges",
            "hedge.downstream",
            "fallback.downstream"
        ]
    );
    assert_eq!(
        registry.hedge_settings("downstream"),
        Some((
            HedgeConfig::fixed(Duration::from_millis(10), 3).unwrap(),
            Some("hedges".to_owned())
        ))
    );
    assert_eq!(
        registry.fallback("downstream").unwrap().on(),
        FallbackOn::NOTHING
            .layer(Layer::CircuitBreaker)
            .layer(Layer::Retry)
    );

    // The hedge: the first attempt is stuck, the hedge 10 ms later answers in 5 ms; the
    // hedge took a token from the named budget.
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&attempts);
    let hedged = ServiceBuilder::new()
        .layer(registry.hedge_layer("downstream").unwrap())
        .service_fn(move |n: u32| {
            let attempt = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let latency = if attempt == 0 { 1_000 } else { 5 };
                tokio::time::sleep(Duration::from_millis(latency)).await;
                Ok::<_, BoxError>(n + attempt)
            }
        });
    let start = tokio::time::Instant::now();
    assert_eq!(hedged.oneshot(40).await.unwrap(), 41);
    assert_eq!(start.elapsed(), Duration::from_millis(15));
    assert_eq!(attempts.load(std::sync::atomic::Ordering::Relaxed), 2);
    let budget = registry.retry_budget("hedges").unwrap();
    // One token for the hedge, half a token back for the success.
    assert_eq!(budget.milli_tokens(), 3500);

    // The fallback answers what it covers, and lets the rest through.
    let fallback = |error: &'static str| {
        ServiceBuilder::new()
            .layer(
                registry
                    .fallback_layer("downstream", |e: BoxError| format!("fallback for {e}"))
                    .unwrap(),
            )
            .service_fn(move |_: ()| async move { Err::<String, BoxError>(error.into()) })
    };
    assert_eq!(
        fallback("down").oneshot(()).await.unwrap(),
        "fallback for down"
    );
    assert!(registry.fallback_layer("nope", |e: BoxError| e).is_none());
    assert!(registry.hedge_layer("nope").is_none());
}

#[test]
fn hedge_and_fallback_errors_and_reloads() {
    let text = with_hedge_and_fallback();
    let cases = [
        (
            text.replace("max_attempts = 3\nbudget", "max_attempts = 1\nbudget"),
            "policies.toml:25:16: hedge `downstream`, field `max_attempts`: invalid configuration: `max_attempts` must be in 2..=16",
        ),
        (
            text.replace("delay = \"10ms\"", "per_mille = 900\nwindow = 10"),
            "policies.toml:25:10: hedge `downstream`, field `window`: invalid configuration: `window` must be in 2..=1000000 records, at least min_samples",
        ),
        (
            text.replace("budget = \"hedges\"", "budget = \"other\""),
            "policies.toml:26:10: hedge `downstream`, field `budget`: no retry budget named `other` (a `[retry_budget.other]`)",
        ),
        (
            text.replace(
                "on = [\"circuit_breaker\", \"retry\"]",
                "on = [\"circuit_breaker\", \"fault_injection\"]",
            ),
            "policies.toml:29:6: fallback `downstream`, field `on`: `on` must be \"refusals\", \"everything\" or a list of layers among `overall_timeout`, `rate_limit`, `bulkhead`, `circuit_breaker`, `retry`, `throttle`, not \"fault_injection\"",
        ),
        (
            text.replace(
                "on = [\"circuit_breaker\", \"retry\"]",
                "on = \"sometimes\"",
            ),
            "policies.toml:29:6: fallback `downstream`, field `on`: `on` must be \"refusals\", \"everything\" or a list of layers among `overall_timeout`, `rate_limit`, `bulkhead`, `circuit_breaker`, `retry`, `throttle`, not \"sometimes\"",
        ),
        (
            text.replace(
                "on = [\"circuit_breaker\", \"retry\"]",
                "when = \"refusals\"",
            ),
            "policies.toml:29:8: fallback `downstream`, field `when`: unknown field `when`, expected `on`",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(&text), expected);
    }

    // Reload: a hedge's settings, its budget and a fallback's `on` cannot change; a new
    // hedge is added.
    let registry = build(&text).unwrap();
    let refused = [
        (
            text.replace("delay = \"10ms\"", "delay = \"20ms\""),
            "policies.toml:24:9: hedge `downstream`, field `delay`: cannot change a live hedge's \
             settings: core's Hedge has no way to change them in place, and rebuilding it would \
             lose its learned latencies (restart to apply them)",
        ),
        (
            text.replace("budget = \"hedges\"\n", ""),
            "policies.toml:23:1: hedge `downstream`, field `budget`: cannot change a live hedge's \
             settings: core's Hedge has no way to change them in place, and rebuilding it would \
             lose its learned latencies (restart to apply them)",
        ),
        (
            text.replace(
                "on = [\"circuit_breaker\", \"retry\"]",
                "on = \"everything\"",
            ),
            "policies.toml:29:6: fallback `downstream`, field `on`: cannot change a live \
             fallback's `on`: the tower layers handed out hold it (restart to apply it)",
        ),
        (
            text.replace(
                "[fallback.downstream]\non = [\"circuit_breaker\", \"retry\"]\n",
                "",
            ),
            "policies.toml: fallback `downstream`: cannot remove a live instance: handles to it \
             may be in use (keep it in the document, or restart)",
        ),
    ];
    for (changed, expected) in refused {
        assert_eq!(
            registry.reload(&doc(&changed)).unwrap_err().to_string(),
            expected
        );
    }
    let more = text.clone() + "\n[hedge.search]\nper_mille = 950\nmax_attempts = 2\n";
    let reloaded = registry.reload(&doc(&more)).unwrap();
    assert_eq!(reloaded.added, ["hedge.search"]);
    assert!(reloaded.changed.is_empty());
    assert_eq!(
        registry.hedge("search").unwrap().hedge().config(),
        &stanchion::hedge::HedgeConfig::learned(950, 2).unwrap()
    );
}

/// `POLICIES` with a slow quota of its own and a pipeline of every named layer.
fn with_pipeline() -> String {
    POLICIES.to_owned()
        + r#"
[rate_limit.slow]
burst = 2
period = "10s"

[pipeline.downstream]
timeout = "5s"
rate_limit = "slow"
bulkhead = "downstream"
breaker = "downstream"
retry = "downstream"
attempt_timeout = "1s"
"#
}

/// The virtual time since `start`.
fn since(start: tokio::time::Instant) -> Duration {
    tokio::time::Instant::now() - start
}

/// A `[pipeline.NAME]` composes the named instances in the pipeline's order: a call
/// takes one grant of the named quota and one slot of the named bulkhead for all its
/// attempts, each attempt asks the named breaker and is cut by the attempt timeout, and
/// failed attempts are retried as the named retry settings say.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_pipeline_by_name_runs_calls_through_the_named_instances() {
    use stanchion::pipeline::{AttemptError, Layer, PipelineError};
    use stanchion::retry::GiveUpReason;

    let registry = build(&with_pipeline()).unwrap();
    assert_eq!(
        registry.names().last().map(String::as_str),
        Some("pipeline.downstream")
    );
    let pipeline = registry.pipeline("downstream").unwrap();
    assert!(Arc::ptr_eq(
        &pipeline,
        &registry.pipeline("downstream").unwrap()
    ));
    assert!(registry.pipeline("slow").is_none());
    let slow = registry.rate_limiter("slow").unwrap();
    let bulkhead = registry.bulkhead("downstream").unwrap();
    let breaker = registry.breaker("downstream").unwrap();
    let clock = TokioClock::new();

    // Two failures, then a success: 3 attempts, 200 ms apart (the constant backoff),
    // each holding the call's one bulkhead slot; one grant of the quota for the call.
    let start = tokio::time::Instant::now();
    let in_use = std::sync::Mutex::new(Vec::new());
    let answer = pipeline
        .call(|attempt| {
            in_use.lock().unwrap().push(bulkhead.in_use());
            async move {
                if attempt < 3 {
                    Err("flaky")
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
    assert_eq!(answer, Ok(3));
    assert_eq!(since(start), Duration::from_millis(400));
    assert_eq!(*in_use.lock().unwrap(), [1, 1, 1]);
    assert_eq!(bulkhead.in_use(), 0);
    let metrics = breaker.metrics(&clock);
    assert_eq!((metrics.successes, metrics.failures), (1, 2));
    assert_eq!(slow.limiter().remaining_at(slow.clock().now()), 1);

    // Every attempt 2 s late: each cut at 1 s, a failure for the breaker, retried.
    let start = tokio::time::Instant::now();
    let late: Result<u32, _> = pipeline
        .call(|_| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, &str>(1)
        })
        .await;
    assert_eq!(
        late,
        Err(PipelineError::GaveUp {
            last: AttemptError::Timeout,
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 3
        })
    );
    assert_eq!(since(start), Duration::from_millis(3400));
    let metrics = breaker.metrics(&clock);
    assert_eq!((metrics.successes, metrics.failures), (1, 5));

    // The quota's 2 grants are taken and the next comes in 10 s, after the call's 5 s:
    // refused at once by the rate limit layer, without a bulkhead slot or an attempt.
    let start = tokio::time::Instant::now();
    let refused: Result<u32, PipelineError<&str>> =
        pipeline.call(|_| async { unreachable!() }).await;
    let refused = refused.unwrap_err();
    assert!(
        matches!(refused, PipelineError::RateLimited(_)),
        "{refused:?}"
    );
    assert_eq!(refused.layer(), Layer::RateLimit);
    assert_eq!(since(start), Duration::ZERO);
    assert_eq!(breaker.metrics(&clock).calls, 6);

    // The bulkhead is the named one: full, it refuses the call at once.
    slow.limiter().reset();
    let held: Vec<_> = (0..4).map(|_| bulkhead.try_acquire().unwrap()).collect();
    let full: Result<u32, PipelineError<&str>> = pipeline.call(|_| async { Ok(1) }).await;
    assert!(
        matches!(full, Err(PipelineError::BulkheadFull(_))),
        "{full:?}"
    );
    drop(held);
    assert_eq!(pipeline.call(|_| async { Ok::<_, &str>(7) }).await, Ok(7));
}

/// A reload of the pipeline's instances is seen by its next call: a raised quota admits
/// exactly what GCRA allows after the change, new retry settings set its attempts.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_pipeline_sees_a_reload_of_its_instances_at_its_next_call() {
    use stanchion::pipeline::PipelineError;

    let text = with_pipeline();
    let registry = build(&text).unwrap();
    let pipeline = registry.pipeline("downstream").unwrap();
    let ok = || pipeline.call(|_| async { Ok::<u32, &str>(1) });
    assert_eq!(ok().await, Ok(1));
    assert_eq!(ok().await, Ok(1));
    assert!(matches!(ok().await, Err(PipelineError::RateLimited(_))));

    // Burst 2 -> 4 at the same period: the bucket keeps its debt (2 grants, 20 s), so
    // exactly 2 more are granted now.
    let raised = text.replace("burst = 2\n", "burst = 4\n");
    let reloaded = registry.reload(&doc(&raised)).unwrap();
    assert_eq!(reloaded.changed, ["rate_limit.slow"]);
    assert_eq!(ok().await, Ok(1));
    assert_eq!(ok().await, Ok(1));
    assert!(matches!(ok().await, Err(PipelineError::RateLimited(_))));

    // 3 attempts -> 2, 200 ms -> 50 ms apart: the next call's policy has them.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let fewer = raised.replace(
        "max_attempts = 3\nbackoff = { constant = { delay = \"200ms\" } }",
        "max_attempts = 2\nbackoff = { constant = { delay = \"50ms\" } }",
    );
    let reloaded = registry.reload(&doc(&fewer)).unwrap();
    assert_eq!(reloaded.changed, ["retry.downstream"]);
    let start = tokio::time::Instant::now();
    let down: Result<u32, _> = pipeline.call(|_| async { Err("down") }).await;
    assert!(
        matches!(down, Err(PipelineError::GaveUp { attempts: 2, .. })),
        "{down:?}"
    );
    assert_eq!(since(start), Duration::from_millis(50));

    // A timeout in the retry settings bounds each call's retries within its 5 s: with
    // 200 ms between attempts and 300 ms in all, the third attempt would start too late.
    let bounded = raised.replace(
        "max_attempts = 3\n",
        "max_attempts = 5\ntimeout = \"300ms\"\n",
    );
    registry.reload(&doc(&bounded)).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await; // a grant of the quota again
    let start = tokio::time::Instant::now();
    let down: Result<u32, _> = pipeline.call(|_| async { Err("down") }).await;
    assert_eq!(
        down,
        Err(PipelineError::GaveUp {
            last: stanchion::pipeline::AttemptError::Operation("down"),
            reason: stanchion::retry::GiveUpReason::Deadline,
            attempts: 2
        })
    );
    assert_eq!(since(start), Duration::from_millis(200));
}

/// A pipeline's fields are checked: the instances it names are in the document, its
/// timeouts are durations above zero, and nothing else is there.
#[test]
fn pipeline_errors_name_the_pipeline_the_field_and_the_missing_name() {
    let text = with_pipeline();
    assert_eq!(
        error(&text.replace("rate_limit = \"slow\"", "rate_limit = \"fast\"")),
        "policies.toml:25:14: pipeline `downstream`, field `rate_limit`: no rate limit named \
         `fast` (a `[rate_limit.fast]`)"
    );
    assert_eq!(
        error(&text.replace("breaker = \"downstream\"", "breaker = \"upstream\"")),
        "policies.toml:27:11: pipeline `downstream`, field `breaker`: no circuit breaker named \
         `upstream` (a `[breaker.upstream]`)"
    );
    assert_eq!(
        error(&text.replace(
            "bulkhead = \"downstream\"\nbreaker",
            "bulkhead = \"pool\"\nbreaker"
        )),
        "policies.toml:26:12: pipeline `downstream`, field `bulkhead`: no bulkhead named \
         `pool` (a `[bulkhead.pool]`)"
    );
    assert_eq!(
        error(&text.replace("retry = \"downstream\"", "retry = \"again\"")),
        "policies.toml:28:9: pipeline `downstream`, field `retry`: no retry settings named \
         `again` (a `[retry.again]`)"
    );
    assert_eq!(
        error(&text.replace("retry = \"downstream\"", "retry = 3")),
        "policies.toml:28:9: pipeline `downstream`, field `retry`: `retry` must be the name of \
         a `[retry.NAME]`, as `retry = \"downstream\"`, not 3"
    );
    assert_eq!(
        error(&text.replace("attempt_timeout = \"1s\"", "attempt_timeout = \"1.5s\"")),
        "policies.toml:29:19: pipeline `downstream`, field `attempt_timeout`: \
         `attempt_timeout` must be a duration such as \"250ms\" or \"1m30s\" (whole numbers, \
         each with a unit), not \"1.5s\""
    );
    assert_eq!(
        error(&text.replace("timeout = \"5s\"", "timeout = \"0s\"")),
        "policies.toml:24:11: pipeline `downstream`, field `timeout`: `timeout` must be above \
         zero (a zero timeout would refuse every call)"
    );
    assert_eq!(
        error(&text.replace("timeout = \"5s\"", "fallback = \"page\"")),
        "policies.toml:24:12: pipeline `downstream`, field `fallback`: unknown field \
         `fallback`, expected one of `timeout`, `rate_limit`, `bulkhead`, `breaker`, `retry`, \
         `attempt_timeout`"
    );
    // An environment variable names itself.
    let err = Registry::new(
        &doc(&text)
            .with_env(
                "STANCHION",
                [("STANCHION__PIPELINE__DOWNSTREAM__RETRY", "nope")],
            )
            .unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable STANCHION__PIPELINE__DOWNSTREAM__RETRY: pipeline `downstream`, \
         field `retry`: no retry settings named `nope` (a `[retry.nope]`)"
    );
    // A pipeline with no layer runs the operation once.
    let registry = build("[pipeline.bare]\n").unwrap();
    assert!(registry.pipeline("bare").is_some());
}

/// A reload that changes a pipeline's composition is refused (the pipeline handed out
/// holds its layers); an unchanged pipeline is kept, a new one added.
#[test]
fn a_reload_refuses_a_changed_pipeline_and_keeps_an_unchanged_one() {
    let text = with_pipeline();
    let registry = build(&text).unwrap();
    let pipeline = registry.pipeline("downstream").unwrap();
    let refusal = |text: &str| registry.reload(&doc(text)).unwrap_err().to_string();
    assert_eq!(
        refusal(&text.replace("attempt_timeout = \"1s\"", "attempt_timeout = \"2s\"")),
        "policies.toml:29:19: pipeline `downstream`, field `attempt_timeout`: cannot change a \
         live pipeline's composition: the pipeline handed out holds its layers and timeouts, \
         and handles to it may be in use (restart to apply it, or compose the new one under a \
         new name)"
    );
    // A layer taken out is named at the pipeline's table; another instance, at its value.
    let composition = "cannot change a live pipeline's composition: the pipeline handed out \
                       holds its layers and timeouts, and handles to it may be in use \
                       (restart to apply it, or compose the new one under a new name)";
    assert_eq!(
        refusal(&text.replace("breaker = \"downstream\"\n", "")),
        format!("policies.toml:23:1: pipeline `downstream`, field `breaker`: {composition}")
    );
    assert_eq!(
        refusal(&text.replace("rate_limit = \"slow\"", "rate_limit = \"api\"")),
        format!("policies.toml:25:14: pipeline `downstream`, field `rate_limit`: {composition}")
    );
    // A missing name is reported as such, before the change is.
    assert_eq!(
        refusal(&text.replace("retry = \"downstream\"", "retry = \"again\"")),
        "policies.toml:28:9: pipeline `downstream`, field `retry`: no retry settings named \
         `again` (a `[retry.again]`)"
    );
    let without = text.replace("[pipeline.downstream]", "[pipeline.renamed]");
    assert_eq!(
        refusal(&without),
        "policies.toml: pipeline `downstream`: cannot remove a live instance: handles to it \
         may be in use (keep it in the document, or restart)"
    );
    // Unchanged, with a new pipeline (over a new bulkhead): kept, and the new one added.
    let more =
        text + "\n[bulkhead.pool]\nmax_concurrent = 1\n\n[pipeline.pooled]\nbulkhead = \"pool\"\n";
    let reloaded = registry.reload(&doc(&more)).unwrap();
    assert_eq!(reloaded.changed, Vec::<String>::new());
    assert_eq!(reloaded.added, ["bulkhead.pool", "pipeline.pooled"]);
    assert!(Arc::ptr_eq(
        &pipeline,
        &registry.pipeline("downstream").unwrap()
    ));
    assert!(registry.pipeline("pooled").is_some());
}
