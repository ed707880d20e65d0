//! serde for the configuration types: round trips through JSON and TOML, and the exact
//! errors of bad documents.

extern crate std;

use core::fmt::Debug;
use core::time::Duration;
use std::string::{String, ToString};

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    AnyBackoff, BreakerWindow, BulkheadSettings, RatioBudgetSettings, RetrySettings,
    ThrottleSettings, TokenBudgetSettings,
};
use crate::adaptive::{AimdConfig, VegasConfig};
use crate::breaker::{AfterMaxWait, BreakerConfig};
use crate::hedge::{Hedge, HedgeConfig};
use crate::rate::{FullTablePolicy, Quota, Spacing, WindowQuota};
use crate::retry::{
    Backoff, Constant, DecorrelatedJitter, DecorrelatedJitterV2, Exponential, Jitter, Linear, Ratio,
};

/// TOML documents are tables: each value sits under a key.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Doc<T> {
    value: T,
}

/// Writes `value` to JSON and to TOML, reads both back, and checks they equal it.
fn round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Clone,
{
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value, "{}", json);
    let doc = Doc {
        value: value.clone(),
    };
    let text = toml::to_string(&doc).unwrap();
    let back: Doc<T> = toml::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, &doc, "{}", text);
    Ok(())
}

fn json_err<T: DeserializeOwned + Debug>(text: &str) -> String {
    serde_json::from_str::<T>(text).unwrap_err().to_string()
}

fn json<T: DeserializeOwned>(text: &str) -> T {
    serde_json::from_str::<T>(text).unwrap()
}

fn nanos() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..10_000_000_000).prop_map(Duration::from_nanos),
        any::<u64>().prop_map(Duration::from_nanos),
        (0u64..100_000).prop_map(Duration::from_millis),
        (0u64..100_000).prop_map(Duration::from_secs),
    ]
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        nanos(),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn ratio() -> impl Strategy<Value = Ratio> {
    prop_oneof![
        (any::<u32>(), 1u32..).prop_map(|(n, d)| Ratio::new(n, d).unwrap()),
        (
            0u32..1000,
            prop::sample::select(&[1u32, 2, 3, 10, 100, 1000][..])
        )
            .prop_map(|(n, d)| Ratio::new(n, d).unwrap()),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::NONE),
        Just(Jitter::FULL),
        Just(Jitter::EQUAL),
        ratio().prop_filter_map("a spread above 1", |r| Jitter::proportional(r).ok()),
    ]
}

fn backoff() -> impl Strategy<Value = AnyBackoff> {
    prop_oneof![
        Just(AnyBackoff::Immediate),
        (nanos(), jitter())
            .prop_map(|(d, j)| AnyBackoff::Constant(Constant::new(d).with_jitter(j))),
        (nanos(), nanos(), nanos(), jitter()).prop_filter_map(
            "cap below initial",
            |(i, s, c, j)| {
                Linear::new(i, s, c)
                    .ok()
                    .map(|b| AnyBackoff::Linear(b.with_jitter(j)))
            }
        ),
        (nanos(), ratio(), nanos(), jitter()).prop_filter_map(
            "bad factor or cap",
            |(b, f, c, j)| {
                Exponential::new(b, f, c)
                    .ok()
                    .map(|b| AnyBackoff::Exponential(b.with_jitter(j)))
            }
        ),
        (nanos(), nanos()).prop_filter_map("cap below base", |(b, c)| {
            DecorrelatedJitter::new(b, c)
                .ok()
                .map(AnyBackoff::DecorrelatedJitter)
        }),
        (nanos(), nanos()).prop_filter_map("cap below median", |(m, c)| {
            DecorrelatedJitterV2::new(m, c)
                .ok()
                .map(AnyBackoff::DecorrelatedJitterV2)
        }),
    ]
}

fn breaker_config() -> impl Strategy<Value = BreakerConfig> {
    (
        (1u8..=100, 1u8..=100, nanos(), 1u32..),
        (
            1u16..,
            proptest::option::of((nanos(), any::<bool>())),
            any::<bool>(),
        ),
        proptest::option::of(any_duration()),
    )
        .prop_filter_map(
            "zero max wait",
            |((failure, slow, slow_call, minimum), (permitted, wait, after), open)| {
                let then = |closed| {
                    if closed {
                        AfterMaxWait::Closed
                    } else {
                        AfterMaxWait::Open
                    }
                };
                let mut c = BreakerConfig::new()
                    .failure_rate_threshold(failure)
                    .slow_call_rate_threshold(slow)
                    .slow_call_duration(slow_call)
                    .minimum_calls(minimum)
                    .permitted_calls_in_half_open(permitted);
                if let Some((wait, closed)) = wait {
                    c = c.max_wait_in_half_open(wait, then(closed));
                }
                // Where the maximum wait goes is kept even with no wait set.
                c.after_max_wait = then(after ^ wait.is_some());
                if let Some(open) = open {
                    c = c.open_duration(open);
                }
                c.validate().ok().map(|()| c)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(300)))]

    #[test]
    fn quotas_round_trip(burst in 1u32.., period in nanos(), limit in 1u32.., window in nanos(),
                         max_delay in any_duration()) {
        if let Ok(q) = Quota::new(burst, period) {
            round_trip(&q)?;
        }
        if let Ok(q) = Quota::new(burst.min(1000), period) {
            round_trip(&q)?;
        }
        if let Ok(q) = WindowQuota::new(limit, window) {
            round_trip(&q)?;
        }
        if let Ok(s) = Spacing::new(window, max_delay) {
            round_trip(&s)?;
        }
    }

    #[test]
    fn breaker_configs_round_trip(config in breaker_config()) {
        round_trip(&config)?;
    }

    #[test]
    fn breaker_windows_round_trip_and_build_the_same_window(
        length in 1u32.., size in 1u32..=128, span in nanos(), buckets in 1u32..=60,
    ) {
        let consecutive = BreakerWindow::Consecutive { length };
        round_trip(&consecutive)?;
        let count = BreakerWindow::Count { size };
        round_trip(&count)?;
        let back: BreakerWindow = json(&serde_json::to_string(&count).unwrap());
        prop_assert_eq!(back.count::<128>(), count.count::<128>());
        let time = BreakerWindow::Time { span, buckets };
        if time.validate().is_ok() {
            round_trip(&time)?;
            let back: BreakerWindow = json(&serde_json::to_string(&time).unwrap());
            prop_assert_eq!(back.time::<60>(), time.time::<60>());
        }
    }

    #[test]
    fn backoffs_round_trip_and_draw_the_same_delays(b in backoff(), seed: u64) {
        round_trip(&b)?;
        let mut back: AnyBackoff = json(&serde_json::to_string(&b).unwrap());
        let mut original = b;
        let (mut r1, mut r2) = (fastrand::Rng::with_seed(seed), fastrand::Rng::with_seed(seed));
        for _ in 0..8 {
            prop_assert_eq!(original.next_delay(&mut r1), back.next_delay(&mut r2));
        }
        // Each kind round-trips on its own too.
        match b {
            AnyBackoff::Immediate => round_trip(&crate::retry::Immediate)?,
            AnyBackoff::Constant(b) => round_trip(&b)?,
            AnyBackoff::Linear(b) => round_trip(&b)?,
            AnyBackoff::Exponential(b) => round_trip(&b)?,
            AnyBackoff::DecorrelatedJitter(b) => round_trip(&b)?,
            AnyBackoff::DecorrelatedJitterV2(b) => round_trip(&b)?,
        }
    }

    #[test]
    fn ratios_and_jitter_round_trip(r in ratio(), j in jitter()) {
        round_trip(&r)?;
        round_trip(&j)?;
    }

    #[test]
    fn retry_settings_round_trip_and_build_the_same_policy(
        backoff in backoff(), max_attempts in 1u32.., max_retry_after in any_duration(),
        timeout in proptest::option::of(any_duration()), now: u64,
    ) {
        let settings = RetrySettings { backoff, max_attempts, max_retry_after, timeout };
        round_trip(&settings)?;
        let back: RetrySettings = json(&serde_json::to_string(&settings).unwrap());
        let now = crate::Instant::from_nanos(now);
        let (a, b) = (
            settings.build(fastrand::Rng::with_seed(3), now).unwrap(),
            back.build(fastrand::Rng::with_seed(3), now).unwrap(),
        );
        prop_assert_eq!(std::format!("{a:?}"), std::format!("{b:?}"));
    }

    #[test]
    fn budget_throttle_and_bulkhead_settings_round_trip_and_build_the_same(
        max_tokens in 1u32..=1_000_000, token_ratio in ratio(), window in nanos(),
        share in ratio(), floor: u32, k in ratio(), max_concurrent in 1u32..,
    ) {
        let token = TokenBudgetSettings { max_tokens, token_ratio };
        if let Ok(budget) = token.build() {
            round_trip(&token)?;
            let back: TokenBudgetSettings = json(&serde_json::to_string(&token).unwrap());
            prop_assert_eq!(std::format!("{:?}", back.build().unwrap()), std::format!("{budget:?}"));
        }
        let ratio_budget = RatioBudgetSettings { window, ratio: share, floor };
        if let Ok(budget) = ratio_budget.build::<1>() {
            round_trip(&ratio_budget)?;
            let back: RatioBudgetSettings = json(&serde_json::to_string(&ratio_budget).unwrap());
            prop_assert_eq!(
                std::format!("{:?}", back.build::<1>().unwrap()),
                std::format!("{budget:?}")
            );
        }
        let throttle = ThrottleSettings { window, k };
        if let Ok(built) = throttle.build::<1>() {
            round_trip(&throttle)?;
            let back: ThrottleSettings = json(&serde_json::to_string(&throttle).unwrap());
            prop_assert_eq!(
                std::format!("{:?}", back.build::<1>().unwrap()),
                std::format!("{built:?}")
            );
        }
        round_trip(&BulkheadSettings { max_concurrent })?;
    }

    #[test]
    fn hedge_configs_round_trip_and_build_the_same_hedge(
        delay in nanos(), per_mille in 1u16..=999, max_attempts in 2u32..=16,
        window in 2u32..=1_000_000, min_samples in 1u32..=1_000_000,
    ) {
        let fixed = HedgeConfig::fixed(delay, max_attempts);
        // Any window, and any minimum of samples up to it.
        let min_samples = 1 + min_samples % window;
        let learned = HedgeConfig::learned(per_mille, max_attempts)
            .and_then(|c| c.with_min_samples(1))
            .and_then(|c| c.with_window(window))
            .and_then(|c| c.with_min_samples(min_samples));
        prop_assert!(learned.is_ok(), "{:?}", learned);
        for config in [fixed, learned].into_iter().flatten() {
            round_trip(&config)?;
            let back: HedgeConfig = json(&serde_json::to_string(&config).unwrap());
            let (a, b): (Hedge<_, 16>, Hedge<_, 16>) = (
                Hedge::new(config, crate::retry::NoBudget).unwrap(),
                Hedge::new(back, crate::retry::NoBudget).unwrap(),
            );
            prop_assert_eq!(a.config(), b.config());
            prop_assert_eq!(a.delay(), b.delay());
        }
    }

    #[test]
    fn adaptive_configs_round_trip(
        min in 1u32..1000, span in 0u32..1000, start in 0u32..1000, backoff in 512u32..=1023,
        timeout in nanos(), alpha in 1u32..100, beta_more in 1u32..100, smoothing in 1u32..=1024,
        probe: u32,
    ) {
        let max = min + span;
        let initial = min + start % (span + 1);
        let aimd = AimdConfig { initial_limit: initial, min_limit: min, max_limit: max,
            backoff_per_1024: backoff, timeout: timeout.max(Duration::from_nanos(1)) };
        round_trip(&aimd)?;
        let vegas = VegasConfig { initial_limit: initial, min_limit: min, max_limit: max,
            alpha_factor: alpha, beta_factor: alpha + beta_more, smoothing_per_1024: smoothing,
            probe_multiplier: probe };
        round_trip(&vegas)?;
    }
}

#[test]
fn documents_as_written_by_hand() {
    assert_eq!(
        json::<Quota>(r#"{"burst": 10, "period": "100ms"}"#),
        Quota::per_second(10).unwrap()
    );
    assert_eq!(
        json::<WindowQuota>(r#"{"limit": 600, "window": "1m"}"#),
        WindowQuota::per_minute(600).unwrap()
    );
    assert_eq!(
        json::<Spacing>(r#"{"period": "100ms", "max_delay": "1s"}"#),
        Spacing::new(Duration::from_millis(100), Duration::from_secs(1)).unwrap()
    );
    assert_eq!(
        json::<FullTablePolicy>(r#""evict_least_recently_used""#),
        FullTablePolicy::EvictLeastRecentlyUsed
    );
    assert_eq!(json::<BreakerConfig>("{}"), BreakerConfig::new());
    assert_eq!(
        json::<BreakerConfig>(
            r#"{"max_wait_in_half_open": "30s", "after_max_wait": "closed", "minimum_calls": 10}"#
        ),
        BreakerConfig::new()
            .minimum_calls(10)
            .max_wait_in_half_open(Duration::from_secs(30), AfterMaxWait::Closed)
    );
    assert_eq!(
        json::<BreakerWindow>(r#"{"time": {"span": "1m", "buckets": 60}}"#),
        BreakerWindow::Time {
            span: Duration::from_secs(60),
            buckets: 60
        }
    );
    let exponential = Exponential::new(
        Duration::from_millis(100),
        Ratio::new(3, 2).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap()
    .with_jitter(Jitter::proportional(Ratio::percent(10)).unwrap());
    // A factor and a spread read the same in each spelling.
    for (factor, spread) in [
        ("\"1.5\"", "\"10%\""),
        ("\"3/2\"", "\"0.1\""),
        ("\"150%\"", "\"1/10\""),
    ] {
        let text = std::format!(
            r#"{{"exponential": {{"base": "100ms", "factor": {factor}, "cap": "10s", "jitter": {{"proportional": {spread}}}}}}}"#
        );
        assert_eq!(
            json::<AnyBackoff>(&text),
            AnyBackoff::Exponential(exponential)
        );
    }
    // And write as the shortest decimal that reads back to the same bits.
    assert_eq!(
        serde_json::to_string(&exponential).unwrap(),
        r#"{"base":"100ms","factor":"1.5","cap":"10s","jitter":{"proportional":"0.1"}}"#
    );
    assert_eq!(json::<AnyBackoff>(r#""immediate""#), AnyBackoff::Immediate);
    assert_eq!(serde_json::to_string(&Ratio::TWO).unwrap(), "2");
    assert_eq!(
        serde_json::to_string(&Ratio::percent(5)).unwrap(),
        r#""5%""#
    );
    assert_eq!(
        serde_json::to_string(&Ratio::new(4, 3).unwrap()).unwrap(),
        r#""4/3""#
    );
    assert_eq!(json::<Jitter>(r#""full""#), Jitter::FULL);
    assert_eq!(
        json::<RatioBudgetSettings>(r#"{"window": "10s", "ratio": "20%"}"#),
        RatioBudgetSettings {
            window: Duration::from_secs(10),
            ratio: Ratio::percent(20),
            floor: 0
        }
    );
    assert_eq!(
        json::<TokenBudgetSettings>(r#"{"max_tokens": 10, "token_ratio": "0.1"}"#),
        TokenBudgetSettings {
            max_tokens: 10,
            token_ratio: Ratio::new(1, 10).unwrap()
        }
    );

    let settings: RetrySettings = toml::from_str(
        r#"
            max_attempts = 4
            timeout = "10s"
            backoff = { exponential = { base = "100ms", factor = 2, cap = "5s", jitter = "full" } }
        "#,
    )
    .unwrap();
    assert_eq!(
        settings,
        RetrySettings {
            backoff: AnyBackoff::Exponential(
                Exponential::new(
                    Duration::from_millis(100),
                    Ratio::TWO,
                    Duration::from_secs(5)
                )
                .unwrap()
                .with_jitter(Jitter::FULL)
            ),
            max_attempts: 4,
            max_retry_after: crate::retry::policy::DEFAULT_MAX_RETRY_AFTER,
            timeout: Some(Duration::from_secs(10)),
        }
    );
    assert_eq!(
        toml::to_string(&settings).unwrap(),
        "max_attempts = 4\nmax_retry_after = \"1m\"\ntimeout = \"10s\"\n\n\
         [backoff.exponential]\nbase = \"100ms\"\nfactor = 2\ncap = \"5s\"\njitter = \"full\"\n"
    );
}

#[test]
fn bad_values_name_the_field_and_the_range() {
    let cases: &[(&str, String)] = &[
        (
            "quota burst",
            json_err::<Quota>(r#"{"burst": 0, "period": "1s"}"#),
        ),
        (
            "quota period",
            json_err::<Quota>(r#"{"burst": 1, "period": "0s"}"#),
        ),
        (
            "quota unit",
            json_err::<Quota>(r#"{"burst": 1, "period": "5x"}"#),
        ),
        (
            "quota bare number",
            json_err::<Quota>(r#"{"burst": 1, "period": 5}"#),
        ),
        (
            "quota overflow",
            json_err::<Quota>(r#"{"burst": 1, "period": "18446744073709551616s"}"#),
        ),
        (
            "quota unknown field",
            json_err::<Quota>(r#"{"burst": 1, "period": "1s", "rate": 3}"#),
        ),
        ("quota missing field", json_err::<Quota>(r#"{"burst": 1}"#)),
        (
            "window limit",
            json_err::<WindowQuota>(r#"{"limit": 0, "window": "1s"}"#),
        ),
        (
            "spacing period",
            json_err::<Spacing>(r#"{"period": "0s", "max_delay": "1s"}"#),
        ),
        (
            "breaker threshold",
            json_err::<BreakerConfig>(r#"{"failure_rate_threshold": 300}"#),
        ),
        (
            "breaker slow threshold",
            json_err::<BreakerConfig>(r#"{"slow_call_rate_threshold": 0}"#),
        ),
        (
            "breaker permitted calls",
            json_err::<BreakerConfig>(r#"{"permitted_calls_in_half_open": 70000}"#),
        ),
        (
            "breaker max wait",
            json_err::<BreakerConfig>(r#"{"max_wait_in_half_open": "0ms"}"#),
        ),
        (
            "breaker duration",
            json_err::<BreakerConfig>(r#"{"open_duration": "1.5s"}"#),
        ),
        (
            "window size",
            json_err::<BreakerWindow>(r#"{"count": {"size": 0}}"#),
        ),
        (
            "window span",
            json_err::<BreakerWindow>(r#"{"time": {"span": "10ns", "buckets": 60}}"#),
        ),
        (
            "window kind",
            json_err::<BreakerWindow>(r#"{"sliding": {"size": 5}}"#),
        ),
        (
            "jitter spread",
            json_err::<Jitter>(r#"{"proportional": "150%"}"#),
        ),
        (
            "jitter float",
            json_err::<Jitter>(r#"{"proportional": 0.1}"#),
        ),
        (
            "exponential factor",
            json_err::<Exponential>(r#"{"base": "1s", "factor": "1/2", "cap": "1m"}"#),
        ),
        (
            "exponential cap",
            json_err::<Exponential>(r#"{"base": "1s", "factor": 2, "cap": "1ms"}"#),
        ),
        (
            "linear cap",
            json_err::<Linear>(r#"{"initial": "1s", "step": "1s", "cap": "1ms"}"#),
        ),
        ("ratio", json_err::<Ratio>(r#""3/0""#)),
        (
            "retry attempts",
            json_err::<RetrySettings>(r#"{"backoff": "immediate", "max_attempts": 0}"#),
        ),
        (
            "token ratio",
            json_err::<TokenBudgetSettings>(r#"{"max_tokens": 10, "token_ratio": "0.0001"}"#),
        ),
        (
            "ratio budget",
            json_err::<RatioBudgetSettings>(r#"{"window": "10s", "ratio": "1001%"}"#),
        ),
        (
            "ratio budget window",
            json_err::<RatioBudgetSettings>(r#"{"window": "999us", "ratio": "10%"}"#),
        ),
        (
            "throttle k",
            json_err::<ThrottleSettings>(r#"{"window": "2m", "k": "1/2"}"#),
        ),
        (
            "bulkhead",
            json_err::<BulkheadSettings>(r#"{"max_concurrent": 0}"#),
        ),
        (
            "aimd backoff",
            json_err::<AimdConfig>(r#"{"backoff_per_1024": 2000}"#),
        ),
        (
            "vegas beta",
            json_err::<VegasConfig>(r#"{"alpha_factor": 5, "beta_factor": 5}"#),
        ),
    ];
    let expected = [
        "invalid configuration: `burst` must be at least 1",
        "invalid configuration: `period` must be in 1 ns..=u64::MAX ns",
        "invalid configuration: `period` must be a duration whose units are ns, us, ms, s, m, h or d (such as \"250ms\")",
        "invalid configuration: `period` must be a duration such as \"250ms\" or \"1m30s\" (whole numbers, each with a unit)",
        "invalid configuration: `period` must be a duration below 18446744073709551616s (about 584 billion years)",
        "unknown field `rate`, expected `burst` or `period` at line 1 column 35",
        "missing field `period` at line 1 column 12",
        "invalid configuration: `limit` must be at least 1",
        "invalid configuration: `period` must be in 1 ns..=u64::MAX ns",
        "invalid configuration: `failure_rate_threshold` must be in 1..=100 percent",
        "invalid configuration: `slow_call_rate_threshold` must be in 1..=100 percent",
        "invalid configuration: `permitted_calls_in_half_open` must be in 1..=65535",
        "invalid configuration: `max_wait_in_half_open` must be above zero",
        "invalid configuration: `open_duration` must be a duration such as \"250ms\" or \"1m30s\" (whole numbers, each with a unit)",
        "invalid configuration: `size` must be in 1..=CAP (the window's capacity)",
        "invalid configuration: `span` must be at least one nanosecond per bucket",
        "unknown variant `sliding`, expected one of `consecutive`, `count`, `time` at line 1 column 10",
        "invalid configuration: `jitter` must be a spread in 0..=1",
        "invalid configuration: `jitter` must be a ratio such as 2, \"1.5\", \"3/2\" or \"10%\" (no floating-point numbers)",
        "invalid configuration: `factor` must be at least 1",
        "invalid configuration: `cap` must be at least the base delay",
        "invalid configuration: `cap` must be at least the initial delay",
        "invalid value: expected a ratio such as 2, \"1.5\", \"3/2\" or \"10%\" (no floating-point numbers)",
        "invalid configuration: `max_attempts` must be at least 1",
        "invalid configuration: `token_ratio` must be in 0.001..=max_tokens",
        "invalid configuration: `ratio` must be in 0..=10 (0% to 1000%)",
        "invalid configuration: `window` must be at least 1 ms per bucket",
        "invalid configuration: `k` must be at least 1",
        "invalid configuration: `max_concurrent` must be at least 1",
        "invalid configuration: `backoff_per_1024` must be in 512..=1023 (parts per 1024)",
        "invalid configuration: `beta_factor` must be more than alpha_factor",
    ];
    assert_eq!(cases.len(), expected.len());
    for ((what, got), want) in cases.iter().zip(expected) {
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn toml_errors_say_where() {
    let err = toml::from_str::<Doc<Quota>>("[value]\nburst = 0\nperiod = \"1s\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOML parse error at line 1, column 1\n  |\n1 | [value]\n  | ^^^^^^^\ninvalid configuration: `burst` must be at least 1\n"
    );
}

#[test]
fn hedge_configs_by_hand_and_their_errors() {
    assert_eq!(
        json::<HedgeConfig>(r#"{"delay": "20ms", "max_attempts": 2}"#),
        HedgeConfig::fixed(Duration::from_millis(20), 2).unwrap()
    );
    assert_eq!(
        json::<HedgeConfig>(r#"{"per_mille": 950, "max_attempts": 3}"#),
        HedgeConfig::learned(950, 3).unwrap()
    );
    // Either order of the two bounds reads: a window below the default minimum.
    assert_eq!(
        json::<HedgeConfig>(
            r#"{"per_mille": 900, "max_attempts": 2, "window": 50, "min_samples": 10}"#
        ),
        HedgeConfig::learned(900, 2)
            .and_then(|c| c.with_min_samples(10))
            .and_then(|c| c.with_window(50))
            .unwrap()
    );
    assert_eq!(
        serde_json::to_string(&HedgeConfig::learned(950, 3).unwrap()).unwrap(),
        r#"{"max_attempts":3,"per_mille":950,"min_samples":100,"window":1000}"#
    );
    assert_eq!(
        serde_json::to_string(&HedgeConfig::fixed(Duration::from_millis(20), 2).unwrap()).unwrap(),
        r#"{"max_attempts":2,"delay":"20ms"}"#
    );
    let cases = [
        (
            r#"{"delay": "0ms", "max_attempts": 2}"#,
            "invalid configuration: `delay` must be at least 1 µs",
        ),
        (
            r#"{"delay": "5", "max_attempts": 2}"#,
            "invalid configuration: `delay` must be a duration such as \"250ms\" or \"1m30s\" (whole numbers, each with a unit)",
        ),
        (
            r#"{"delay": "1ms", "max_attempts": 17}"#,
            "invalid configuration: `max_attempts` must be in 2..=16",
        ),
        (
            r#"{"per_mille": 1000, "max_attempts": 2}"#,
            "invalid configuration: `per_mille` must be in 1..=999 thousandths",
        ),
        (
            r#"{"per_mille": 70000, "max_attempts": 2}"#,
            "invalid configuration: `per_mille` must be in 1..=999 thousandths",
        ),
        (
            r#"{"per_mille": 900, "max_attempts": 2, "window": 50}"#,
            "invalid configuration: `window` must be in 2..=1000000 records, at least min_samples",
        ),
        (
            r#"{"per_mille": 900, "max_attempts": 2, "min_samples": 2000}"#,
            "invalid configuration: `min_samples` must be in 1..=window records",
        ),
        (
            r#"{"delay": "1ms", "max_attempts": 2, "window": 50}"#,
            "invalid configuration: `window` must be given only with `per_mille` (a learned delay)",
        ),
        (
            r#"{"delay": "1ms", "max_attempts": 2, "min_samples": 5}"#,
            "invalid configuration: `min_samples` must be given only with `per_mille` (a learned delay)",
        ),
        (
            r#"{"delay": "1ms", "per_mille": 900, "max_attempts": 2}"#,
            "invalid configuration: `delay` must be left out when `per_mille` is given (a fixed delay or a learned one, not both)",
        ),
        (
            r#"{"max_attempts": 2}"#,
            "invalid configuration: `delay` must be given (a fixed delay), or `per_mille` instead (a learned one)",
        ),
        (
            r#"{"delay": "1ms"}"#,
            "missing field `max_attempts` at line 1 column 16",
        ),
        (
            r#"{"delay": "1ms", "max_attempts": 2, "jitter": 1}"#,
            "unknown field `jitter`, expected one of `max_attempts`, `delay`, `per_mille`, `min_samples`, `window` at line 1 column 44",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(json_err::<HedgeConfig>(text), want, "{text}");
    }
}
