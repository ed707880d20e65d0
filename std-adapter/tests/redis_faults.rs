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
