//! The Redis-backed limiter against a real `redis-server`: its decisions equal core's
//! token bucket at the server's instants, instances share one quota exactly, local clocks
//! do not matter, keys expire, and bad configuration and bad state are errors.

mod redis_harness;

use std::sync::Arc;
use std::time::Duration;

use redis_harness::{Lcg, RedisServer, unreachable_url};
use stanchion::rate::{Quota, RateLimitError, TokenBucket};
use stanchion::{Instant, ManualClock};
use stanchion_std::redis::{Fallback, RedisLimiterConfig, RedisLimiterError, RedisRateLimiter};
use stanchion_std::{Admission, AsyncKeyedRateLimiter, AsyncRateLimiter};

fn config(prefix: &str, quota: Quota, fallback: Fallback) -> RedisLimiterConfig {
    RedisLimiterConfig::new(prefix, quota, fallback)
        .unwrap()
        .with_call_timeout(Duration::from_secs(2))
}

/// Every decision, `remaining` and `reset` equals core's `TokenBucket` fed the same
/// requests at the server's instants (which the reply carries), including requests above
/// the burst and for zero permits, with real time passing between some of them.
#[tokio::test]
async fn decisions_equal_core_token_bucket_at_server_time() {
    let server = RedisServer::start();
    let quota = Quota::per_second(40).unwrap().with_burst(5).unwrap(); // 25 ms a permit
    let limiter =
        RedisRateLimiter::new(server.client(), config("eq:", quota, Fallback::Deny)).unwrap();
    let bucket = TokenBucket::new(quota);
    let mut rng = Lcg(0x5eed_1234);
    let (mut granted, mut denied, mut too_large) = (0, 0, 0);
    let mut last = Instant::ZERO;
    for i in 0..60 {
        let n = [0, 1, 1, 1, 2, 3, 5, 6][rng.below(8) as usize];
        let d = limiter.decide("client", n).await.unwrap();
        assert!(d.server_time >= last, "the server clock went back");
        last = d.server_time;
        let expected = bucket.acquire_at(n, d.server_time);
        assert_eq!(d.result, expected, "request {i}: n = {n}");
        assert_eq!(
            d.remaining,
            bucket.remaining_at(d.server_time),
            "request {i}"
        );
        assert_eq!(
            d.reset,
            bucket.time_to_full_at(d.server_time),
            "request {i}"
        );
        match d.result {
            Ok(()) => granted += 1,
            Err(RateLimitError::Denied(_)) => denied += 1,
            Err(RateLimitError::InsufficientCapacity(e)) => {
                assert_eq!(e.max(), 5);
                too_large += 1;
            }
        }
        if rng.below(3) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
        }
    }
    // The run exercised every kind of answer (the schedule is fixed, not lucky: the
    // assertions above hold whatever the timing).
    assert!(
        granted > 0 && denied > 0 && too_large > 0,
        "{granted} {denied} {too_large}"
    );
}

/// Four instances, each with its own connection and its own thread, hammer one key (and
/// another with 3-permit requests); with no refill during the run (1 permit every 36 s),
/// the total admitted equals the burst exactly.
#[test]
fn instances_in_parallel_share_one_quota_exactly() {
    let server = RedisServer::start();
    let url = server.url();
    let quota = Quota::per_hour(100).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let limiter =
                        RedisRateLimiter::from_url(&url, config("shared:", quota, Fallback::Deny))
                            .unwrap();
                    let (mut ones, mut threes) = (0u32, 0u32);
                    for _ in 0..60 {
                        if limiter.admit("one", 1).await.is_ok() {
                            ones += 1;
                        }
                        if limiter.admit("three", 3).await.is_ok() {
                            threes += 3;
                        }
                    }
                    assert_eq!(limiter.fallback_answers(), 0, "Redis answered every call");
                    (ones, threes)
                })
            })
        })
        .collect();
    let (ones, threes) = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    assert_eq!(ones, 100);
    assert_eq!(threes, 99);
}

/// Instances whose local clocks disagree by hours agree on every decision: only the
/// server's clock decides. Their alternating requests are, together, one bucket's.
#[tokio::test]
async fn instances_with_skewed_clocks_agree() {
    let server = RedisServer::start();
    let quota = Quota::per_minute(6).unwrap().with_burst(4).unwrap();
    let clocks = [
        ManualClock::starting_at(Instant::from_secs(5)),
        ManualClock::starting_at(Instant::from_secs(3 * 3600)),
    ];
    let limiters = clocks.map(|clock| {
        RedisRateLimiter::<_>::with_clock(
            server.client(),
            config("skew:", quota, Fallback::Deny),
            clock,
        )
        .unwrap()
    });
    let bucket = TokenBucket::new(quota);
    let mut granted = 0;
    for i in 0..12 {
        let d = limiters[i % 2].decide("k", 1).await.unwrap();
        assert_eq!(d.result, bucket.acquire_at(1, d.server_time), "request {i}");
        granted += u32::from(d.result.is_ok());
    }
    assert_eq!(granted, 4);
    // Through the limiter interface too: one more from either side is denied, with the
    // same wait (10 s a permit, less the few milliseconds the run took).
    let waits: Vec<Duration> = futures_two(&limiters).await;
    for wait in &waits {
        assert!(
            *wait > Duration::from_secs(9) && *wait <= Duration::from_secs(10),
            "{wait:?}"
        );
    }
}

async fn futures_two(limiters: &[RedisRateLimiter<ManualClock>; 2]) -> Vec<Duration> {
    let mut waits = Vec::new();
    for limiter in limiters {
        let err = limiter.admit("k", 1).await.unwrap_err();
        waits.push(err.retry_after().unwrap());
    }
    waits
}

/// Every key expires once its bucket is full again (never before: rounded up to the
/// millisecond, plus one), so under a stream of distinct clients Redis holds only those
/// active within one refill time.
#[tokio::test]
async fn keys_expire_once_full_again_so_memory_stays_bounded() {
    let server = RedisServer::start();
    let mut con = server.connection();
    // 10 per second, burst 2: one permit fills in 100 ms, two in 200 ms.
    let quota = Quota::per_second(10).unwrap().with_burst(2).unwrap();
    let limiter =
        RedisRateLimiter::new(server.client(), config("exp:", quota, Fallback::Deny)).unwrap();
    const CLIENTS: u32 = 200;
    for round in 0..4 {
        // Every key of the earlier rounds is gone (SCAN drops expired keys as it meets
        // them): at most one round's keys exist at once, however many clients came.
        assert_eq!(scan_count(&mut con, "exp:*"), 0, "round {round}");
        for c in 0..CLIENTS {
            let key = format!("r{round}c{c}");
            let n = 1 + c % 2;
            let before = std::time::Instant::now();
            let d = limiter.decide(&key, n).await.unwrap();
            assert_eq!(d.result, Ok(()));
            assert_eq!(d.reset, Duration::from_millis(100 * u64::from(n)));
            let ttl: i64 = redis::cmd("PTTL")
                .arg(format!("exp:{key}"))
                .query(&mut con)
                .unwrap();
            let elapsed = before.elapsed().as_millis();
            let reset = d.reset.as_millis();
            if ttl == -2 {
                // Gone already: only once the bucket was full again.
                assert!(elapsed >= reset, "{key}: gone after {elapsed} ms");
            } else {
                // Expires at most 1 ms after the bucket is full again, and not before.
                let ttl = u128::try_from(ttl).unwrap();
                assert!(ttl <= reset + 1, "{key}: PTTL {ttl} ms");
                assert!(
                    ttl + elapsed >= reset,
                    "{key}: PTTL {ttl} ms after {elapsed} ms"
                );
            }
        }
        // All of this round's buckets are full again 201 ms after its last grant.
        tokio::time::sleep(Duration::from_millis(210)).await;
    }
    assert_eq!(scan_count(&mut con, "exp:*"), 0);
    let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);
    // A denial writes nothing: neither the state nor its expiry moves.
    assert!(limiter.admit("full", 2).await.is_ok());
    let state: String = redis::cmd("GET").arg("exp:full").query(&mut con).unwrap();
    for n in [1, 2, 3] {
        assert!(limiter.admit("full", n).await.is_err());
    }
    let after: String = redis::cmd("GET").arg("exp:full").query(&mut con).unwrap();
    assert_eq!(after, state);
    tokio::time::sleep(Duration::from_millis(210)).await;
    assert_eq!(scan_count(&mut con, "exp:*"), 0);
}

fn scan_count(con: &mut redis::Connection, pattern: &str) -> usize {
    let keys: Result<Vec<String>, _> = con.scan_match::<_, String>(pattern).unwrap().collect();
    keys.unwrap().len()
}

use redis::TypedCommands as _;

/// One key through `AsyncRateLimiter`, and `n = 0` and `n` above the burst.
#[tokio::test]
async fn one_key_through_the_single_key_interface() {
    let server = RedisServer::start();
    let quota = Quota::per_hour(3).unwrap();
    let limiter = Arc::new(
        RedisRateLimiter::new(server.client(), config("one:", quota, Fallback::Deny)).unwrap(),
    );
    let downstream = limiter.for_key("payments-api");
    assert_eq!(downstream.key(), "payments-api");
    assert_eq!(AsyncRateLimiter::max_acquire(&downstream), 3);
    assert_eq!(downstream.admit(0).await, Ok(Admission { remaining: 3 }));
    assert_eq!(downstream.admit(2).await, Ok(Admission { remaining: 1 }));
    assert!(matches!(
        downstream.admit(4).await,
        Err(RateLimitError::InsufficientCapacity(e)) if e.max() == 3
    ));
    assert_eq!(
        downstream.clone().admit(1).await,
        Ok(Admission { remaining: 0 })
    );
    let err = downstream.admit(1).await.unwrap_err();
    assert!(err.retry_after().unwrap() > Duration::from_secs(1190));
    // The keyed interface sees the same state under the same key.
    assert!(
        AsyncKeyedRateLimiter::admit(&*limiter, "payments-api", 1)
            .await
            .is_err()
    );
    assert!(
        AsyncKeyedRateLimiter::admit(&*limiter, "other", 1)
            .await
            .is_ok()
    );
}

/// A key holding something that is not the limiter's state (another program's string, a
/// hash, an impossible instant) is read as a full bucket and replaced by the first grant:
/// it costs that key one burst at most, never its limiter's fallback for everyone.
#[tokio::test]
async fn a_foreign_value_is_a_full_bucket_replaced_by_the_first_grant() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let quota = Quota::per_second(10).unwrap();
    let limiter = RedisRateLimiter::new(
        server.client(),
        config(
            "bad:",
            quota,
            Fallback::Local {
                numerator: 1,
                denominator: 2,
            },
        ),
    )
    .unwrap();
    let set = |con: &mut redis::Connection, key: &str, value: &str| {
        let _: () = redis::cmd("SET").arg(key).arg(value).query(con).unwrap();
    };
    set(&mut con, "bad:text", "not a state");
    set(&mut con, "bad:neg", "-5 0");
    set(&mut con, "bad:nanos", "5 1000000000");
    set(&mut con, "bad:huge", "99999999999 0");
    let _: () = redis::cmd("HSET")
        .arg("bad:hash")
        .arg("f")
        .arg("v")
        .query(&mut con)
        .unwrap();
    // Each foreign value reads as a full bucket (10 at once): the grant replaces it with
    // a state of ours, which then counts as any other (9 left), and the limiter never
    // leaves Redis for its fallback.
    for key in ["text", "neg", "nanos", "huge", "hash"] {
        assert_eq!(
            limiter.admit(key, 1).await,
            Ok(Admission { remaining: 9 }),
            "{key}"
        );
        let stored: String = redis::cmd("GET")
            .arg(format!("bad:{key}"))
            .query(&mut con)
            .unwrap();
        assert!(
            stored.split_once(' ').is_some_and(|(s, n)| {
                s.parse::<u64>().is_ok() && n.parse::<u32>().is_ok_and(|n| n < 1_000_000_000)
            }),
            "{key}: {stored:?}"
        );
        assert_eq!(
            limiter.admit(key, 1).await,
            Ok(Admission { remaining: 8 }),
            "{key}"
        );
    }
    assert!(!limiter.is_falling_back());
    assert_eq!(limiter.fallback_answers(), 0);
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let config = config("p:", Quota::per_second(1).unwrap(), Fallback::Deny);
    assert!(matches!(
        RedisRateLimiter::from_url(&unreachable_url(), config),
        Err(RedisLimiterError::NoRuntime)
    ));
}

#[tokio::test]
async fn bad_configuration_is_a_config_error() {
    let quota = Quota::per_second(1).unwrap();
    let field = |r: Result<RedisLimiterConfig, stanchion::ConfigError>| r.unwrap_err().field();
    assert_eq!(
        field(RedisLimiterConfig::new("", quota, Fallback::Allow)),
        "key_prefix"
    );
    assert!(
        Quota::per_second(0).is_err(),
        "a zero quota cannot even be built"
    );
    assert_eq!(
        field(RedisLimiterConfig::new(
            "p:",
            quota,
            Fallback::Local {
                numerator: 2,
                denominator: 1
            }
        )),
        "numerator"
    );
    let ok = RedisLimiterConfig::new("p:", quota, Fallback::Allow).unwrap();
    for (config, name) in [
        (ok.clone().with_call_timeout(Duration::ZERO), "call_timeout"),
        (
            ok.clone().with_probe_interval(Duration::ZERO),
            "probe_interval",
        ),
        (
            ok.clone().with_failures_before_fallback(0),
            "failures_before_fallback",
        ),
    ] {
        match RedisRateLimiter::from_url(&unreachable_url(), config) {
            Err(RedisLimiterError::Config(e)) => assert_eq!(e.field(), name),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(
        RedisRateLimiter::from_url("not a url", ok),
        Err(RedisLimiterError::Redis(_))
    ));
}
