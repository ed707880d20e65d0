//! The registry of named instances (feature `config`): building from a document, errors
//! with their place, environment overrides, reload.

use std::sync::Arc;
use std::time::Duration;

use stanchion::Clock;
use stanchion::breaker::{BreakerConfig, State};
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
        *breaker.config(),
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
            "policies.toml:16:2: unknown section `bulkheads`, expected one of `rate_limit`, `breaker`, `retry`, `bulkhead`",
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
