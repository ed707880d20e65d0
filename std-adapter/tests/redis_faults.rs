//! The Redis-backed limiter when Redis fails: stopped mid-run and restarted, unreachable
//! from the start, or too slow. The configured fallback answers, nothing panics, and
//! shared limiting resumes by itself.
//!
//! Real time passes here only where Redis needs it (a restart, a paused server, the probe
//! interval), in small amounts, and every wait is a bounded loop on a condition.

mod redis_harness;

use std::time::{Duration, Instant};

use redis_harness::{RedisServer, unreachable_url};
use stanchion::rate::{Quota, RateLimitError};
use stanchion_std::redis::{Fallback, RedisLimiterConfig, RedisRateLimiter};
use stanchion_std::{Admission, AsyncKeyedRateLimiter};

const PROBE: Duration = Duration::from_millis(100);

fn config(prefix: &str, quota: Quota, fallback: Fallback) -> RedisLimiterConfig {
    RedisLimiterConfig::new(prefix, quota, fallback)
        .unwrap()
        .with_call_timeout(Duration::from_millis(250))
        .with_probe_interval(PROBE)
}

/// Admits on `probe_key` until Redis answers again (the limiter is no longer falling
/// back), within a bound.
async fn until_shared(limiter: &RedisRateLimiter, probe_key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = limiter.admit(probe_key, 1).await;
        if !limiter.is_falling_back() {
            return;
        }
        assert!(Instant::now() < deadline, "shared limiting did not resume");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server is killed mid-run and restarted (empty, as after a crash without
/// persistence). While it is down, each instance's local table holds half the quota; after
/// it is back, the two instances share one quota in Redis again.
#[tokio::test]
async fn server_stopped_mid_run_then_restarted() {
    let mut server = RedisServer::start();
    let quota = Quota::per_hour(10).unwrap(); // no refill during the test
    let local_half = Fallback::Local {
        numerator: 1,
        denominator: 2,
    };
    let a = RedisRateLimiter::new(server.client(), config("f:", quota, local_half)).unwrap();
    let b = RedisRateLimiter::new(server.client(), config("f:", quota, local_half)).unwrap();
    for i in 0..3 {
        assert_eq!(a.admit("user", 1).await, Ok(Admission { remaining: 9 - i }));
    }
    assert_eq!(b.admit("user", 3).await, Ok(Admission { remaining: 4 }));

    server.stop();
    // Down: the local halves answer (a burst of 5 per instance and key), nothing panics.
    for limiter in [&a, &b] {
        for i in 0..5 {
            assert_eq!(
                limiter.admit("user", 1).await,
                Ok(Admission { remaining: 4 - i })
            );
        }
        let denied = limiter.admit("user", 1).await.unwrap_err();
        assert!(denied.is_retryable());
        assert!(limiter.is_falling_back());
        assert_eq!(limiter.fallback_answers(), 6);
    }

    server.restart();
    until_shared(&a, "probe-a").await;
    until_shared(&b, "probe-b").await;
    // Shared again, in the restarted (empty) server: 10 for "user" between the two.
    let mut granted = 0;
    for _ in 0..8 {
        for limiter in [&a, &b] {
            granted += u32::from(limiter.admit("user", 1).await.is_ok());
        }
    }
    assert_eq!(granted, 10);
    let d = a.decide("user", 1).await.unwrap();
    assert!(d.result.is_err());
    assert_eq!(d.remaining, 0);
}

/// Unreachable from the start (the limiter connects lazily): `Deny` denies with the time
/// until the next probe, `Allow` admits, and neither waits on Redis between probes.
#[tokio::test]
async fn unreachable_redis_gets_the_configured_policy() {
    let quota = Quota::per_second(5).unwrap();
    let url = unreachable_url();
    let deny = RedisRateLimiter::from_url(&url, config("u:", quota, Fallback::Deny)).unwrap();
    let first = deny.admit("k", 1).await.unwrap_err();
    assert_eq!(first.retry_after(), Some(PROBE));
    assert!(deny.is_falling_back());
    let second = deny.admit("k", 1).await.unwrap_err();
    assert!(second.retry_after().unwrap() <= PROBE);
    assert_eq!(deny.fallback_answers(), 2);
    // Above the burst is never granted, and needs no Redis to say so.
    assert!(matches!(
        deny.admit("k", 6).await,
        Err(RateLimitError::InsufficientCapacity(_))
    ));
    assert_eq!(deny.fallback_answers(), 2);
    assert!(deny.decide("k", 1).await.is_err());

    // With a streak of 3 to switch, the first two failures are answered by the fallback
    // each, but the next request still tries Redis.
    let patient = RedisRateLimiter::from_url(
        &url,
        config("u:", quota, Fallback::Deny).with_failures_before_fallback(3),
    )
    .unwrap();
    for (i, switched) in [false, false, true].into_iter().enumerate() {
        assert_eq!(
            patient.admit("k", 1).await.unwrap_err().retry_after(),
            Some(PROBE)
        );
        assert_eq!(patient.is_falling_back(), switched, "after failure {i}");
    }

    let allow = RedisRateLimiter::from_url(&url, config("u:", quota, Fallback::Allow)).unwrap();
    for _ in 0..20 {
        assert_eq!(allow.admit("k", 5).await, Ok(Admission { remaining: 0 }));
    }
    assert_eq!(allow.fallback_answers(), 20);
    assert_eq!(AsyncKeyedRateLimiter::<str>::max_acquire(&allow), 5);
}

/// A server that stops answering (paused) is bounded by the call timeout: the call
/// returns the fallback's answer long before the pause ends, and Redis is used again once
/// it answers.
#[tokio::test]
async fn slow_redis_is_bounded_by_the_call_timeout() {
    let server = RedisServer::start();
    let quota = Quota::per_hour(10).unwrap();
    let limiter = RedisRateLimiter::new(
        server.client(),
        config("slow:", quota, Fallback::Deny).with_call_timeout(Duration::from_millis(50)),
    )
    .unwrap();
    assert_eq!(limiter.admit("k", 1).await, Ok(Admission { remaining: 9 }));
    let mut con = server.connection();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(600)
        .arg("ALL")
        .query(&mut con)
        .unwrap();
    let started = Instant::now();
    let answer = limiter.admit("k", 1).await;
    let took = started.elapsed();
    assert_eq!(answer.unwrap_err().retry_after(), Some(PROBE));
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert!(limiter.is_falling_back());
    until_shared(&limiter, "probe").await;
    // The pause ends by itself (600 ms).
    // The timed-out call may or may not have run in Redis once unpaused (its reply was
    // dropped): at most one more permit is gone, never the state corrupted.
    let d = limiter.decide("k", 0).await.unwrap();
    assert!((8..=9).contains(&d.remaining), "{}", d.remaining);
}

/// What each fallback grants during an outage, against what it promises (the table in the
/// module docs, "Failure accounting"): three instances, Redis out of reach for 2 s of
/// their (manual) clocks, one request of one permit every 10 ms on one key at each.
/// The quota, 12 a second (burst 12), admits 12 + 23 = 35 over those 1990 ms. Per
/// instance and key, `Local { 1, n }` is a fresh bucket of the share: `Local { 1, 3 }`
/// (4 a second, burst 4) grants 4 + 7 = 11 at each instance, 33 in all, at most one quota
/// between the three; `Local { 1, 1 }` grants 35 at each, three quotas; `Deny` nothing;
/// `Allow` every request.
#[tokio::test]
async fn outage_grants_match_each_fallbacks_promise() {
    const INSTANCES: u32 = 3;
    const STEP: Duration = Duration::from_millis(10);
    const STEPS: u32 = 200; // 0 to 1990 ms
    let quota = Quota::per_second(12).unwrap(); // burst 12
    let url = unreachable_url();
    let local = |numerator, denominator| Fallback::Local {
        numerator,
        denominator,
    };
    let rows = [
        (Fallback::Deny, 0),
        (local(1, 3), 33),
        (local(1, 1), 105),
        (Fallback::Allow, STEPS * INSTANCES),
    ];
    for (fallback, expected) in rows {
        let clock: &'static stanchion::ManualClock =
            Box::leak(Box::new(stanchion::ManualClock::new()));
        let config = RedisLimiterConfig::new("outage:", quota, fallback)
            .unwrap()
            .with_call_timeout(Duration::from_millis(250));
        let instances: Vec<RedisRateLimiter<&stanchion::ManualClock>> = (0..INSTANCES)
            .map(|_| {
                RedisRateLimiter::with_clock(
                    redis::Client::open(url.as_str()).unwrap(),
                    config.clone(),
                    clock,
                )
                .unwrap()
            })
            .collect();
        let mut granted = 0;
        for _ in 0..STEPS {
            for instance in &instances {
                granted += u32::from(instance.admit("k", 1).await.is_ok());
            }
            clock.advance(STEP);
        }
        for instance in &instances {
            assert_eq!(
                instance.fallback_answers(),
                u64::from(STEPS),
                "{fallback:?}"
            );
        }
        assert_eq!(granted, expected, "{fallback:?}");
        // The promise of a share: at each instance, at most the share's burst plus one
        // permit per share period elapsed.
        if let Some(share) = config.local_quota() {
            let elapsed = (STEP * (STEPS - 1)).as_nanos();
            let bound = u128::from(share.burst()) + elapsed / share.period().as_nanos();
            assert_eq!(u128::from(granted / INSTANCES), bound, "{fallback:?}");
        }
    }
}

/// Sends `CLIENT PAUSE <ms> ALL`: the server runs no client's command until then, and
/// then every queued one in order (a stalled server, as under `DEBUG SLEEP`, without
/// enabling `DEBUG`).
fn pause(server: &RedisServer, ms: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query(&mut server.connection())
        .unwrap();
}

/// `decide(key, 0)` (a read) until Redis answers, within a bound: the remaining permits.
async fn remaining_once_answered(limiter: &RedisRateLimiter, key: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(d) = limiter.decide(key, 0).await {
            return d.remaining;
        }
        assert!(Instant::now() < deadline, "Redis did not answer again");
    }
}

/// Charged but unanswered: 40 decisions sent together to a stalled server (20 on one
/// key, one on each of 20 others) all time out (50 ms) and are refused by the fallback
/// (`Deny`), yet Redis runs every one once the stall ends: 40 permits charged that nobody
/// got. With refunds, each timed-out decision is followed by a refund on the same
/// connection, which Redis runs after every decision sent before it. A refund is exact
/// only while nothing was granted on the key after its decision: each of the 20 keys gets
/// its permit back, the shared key only its last grant's (the 19 before it were followed
/// by other grants), so 21 refunds, and 19 permits stay charged.
#[tokio::test]
async fn stalled_server_charges_unanswered_decisions_and_refunds_give_back_the_exact_ones() {
    const CALLS: u32 = 20;
    const STALL_PROBE: Duration = Duration::from_millis(500);
    let server = RedisServer::start();
    let quota = Quota::per_hour(1).unwrap().with_burst(100).unwrap(); // no refill
    for refund in [false, true] {
        let limiter = std::sync::Arc::new(
            RedisRateLimiter::new(
                server.client(),
                config(&format!("stall-{refund}:"), quota, Fallback::Deny)
                    .with_call_timeout(Duration::from_millis(50))
                    // Refunds are sent again for up to ten probe intervals: 5 s, far
                    // beyond the stall, however loaded the machine.
                    .with_probe_interval(STALL_PROBE)
                    .with_refund_unanswered(refund),
            )
            .unwrap(),
        );
        // Connected, the script loaded, one permit of the shared key taken.
        assert_eq!(
            limiter.admit("hot", 1).await,
            Ok(Admission { remaining: 99 })
        );
        pause(&server, 400);
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..CALLS {
            for key in ["hot".to_owned(), format!("c{i}")] {
                let limiter = limiter.clone();
                calls.spawn(async move { limiter.admit(&key, 1).await });
            }
        }
        while let Some(answer) = calls.join_next().await {
            let refused = answer.unwrap().unwrap_err();
            assert_eq!(
                refused.retry_after(),
                Some(STALL_PROBE),
                "the fallback's answer"
            );
        }
        assert_eq!(limiter.fallback_answers(), u64::from(2 * CALLS));
        let expected_refunds = if refund { CALLS + 1 } else { 0 };
        let deadline = Instant::now() + Duration::from_secs(10);
        while limiter.refunds() < u64::from(expected_refunds) {
            assert!(Instant::now() < deadline, "{} refunds", limiter.refunds());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let hot = remaining_once_answered(&limiter, "hot").await;
        let mut others = Vec::new();
        for i in 0..CALLS {
            others.push(remaining_once_answered(&limiter, &format!("c{i}")).await);
        }
        println!(
            "stalled server, refunds {refund}: {} timed-out decisions, {} refunded; \
             the shared key has {hot} of 99 left",
            2 * CALLS,
            limiter.refunds()
        );
        assert_eq!(limiter.refunds(), u64::from(expected_refunds));
        if refund {
            assert_eq!(hot, 99 - (CALLS - 1));
            assert_eq!(others, vec![100; CALLS as usize]);
        } else {
            assert_eq!(hot, 99 - CALLS);
            assert_eq!(others, vec![99; CALLS as usize]);
        }
    }
}
