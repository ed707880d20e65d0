//! The Redis-backed limiter on a real Redis Cluster (three primaries, one replica each, on
//! loopback; see `redis_harness/cluster.rs`): decisions on every primary equal core's
//! token bucket, instances share one quota exactly, hash tags place keys, and a primary
//! killed under load costs or adds a counted, bounded number of grants.

mod redis_harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_harness::cluster::{NODE_TIMEOUT, RedisCluster};
use stanchion::rate::{Quota, TokenBucket};
use stanchion_std::AsyncKeyedRateLimiter;
use stanchion_std::redis::{Fallback, HashTag, RedisLimiterConfig, RedisRateLimiter};

fn config(prefix: &str, quota: Quota) -> RedisLimiterConfig {
    RedisLimiterConfig::new(prefix, quota, Fallback::Deny)
        .unwrap()
        .with_call_timeout(Duration::from_secs(2))
}

/// Keys of the form `k{i}`, one on each primary.
fn one_key_per_primary(cluster: &RedisCluster, prefix: &str) -> Vec<String> {
    let mut by_primary = BTreeMap::new();
    for i in 0..1000 {
        let key = format!("k{i}");
        let primary = cluster.primary_of(cluster.slot(&format!("{prefix}{key}")));
        by_primary.entry(primary).or_insert(key);
        if by_primary.len() == 3 {
            break;
        }
    }
    assert_eq!(by_primary.len(), 3, "keys on three primaries");
    by_primary.into_values().collect()
}

/// On every primary, each decision, `remaining` and `reset` equals core's `TokenBucket`
/// fed the same requests at that primary's instants; two instances (two cluster clients)
/// share each key's quota exactly; `HashTag::Key` puts a client's limiter key in the slot
/// of the client's own tagged keys.
#[tokio::test]
async fn decisions_on_every_primary_equal_core_and_instances_share_exactly() {
    let cluster = RedisCluster::start();
    // 1 permit an hour, burst 7: no refill during the test.
    let quota = Quota::per_hour(1).unwrap().with_burst(7).unwrap();
    let a = RedisRateLimiter::cluster(&cluster.client(), config("eq:", quota)).unwrap();
    let b = RedisRateLimiter::cluster(&cluster.client(), config("eq:", quota)).unwrap();
    let keys = one_key_per_primary(&cluster, "eq:");
    let buckets: Vec<TokenBucket> = keys.iter().map(|_| TokenBucket::new(quota)).collect();
    let mut granted = vec![0u32; keys.len()];
    for round in 0..6 {
        for (i, key) in keys.iter().enumerate() {
            let limiter = if (round + i) % 2 == 0 { &a } else { &b };
            let n = [1, 2, 0, 1, 4, 1][round];
            let d = limiter.decide(key, n).await.unwrap();
            assert_eq!(
                d.result,
                buckets[i].acquire_at(n, d.server_time),
                "{key}, round {round}"
            );
            assert_eq!(d.remaining, buckets[i].remaining_at(d.server_time));
            assert_eq!(d.reset, buckets[i].time_to_full_at(d.server_time));
            if d.result.is_ok() {
                granted[i] += n;
            }
        }
    }
    // 1 + 2 + 0 + 1 + 4 (denied: 3 left) + 1 = 5 on each key, on each primary.
    assert_eq!(granted, vec![5, 5, 5]);
    // Through `admit`: the last 2 permits of each key between the two instances, then
    // nothing, and Redis answered every call.
    for key in &keys {
        let mut more = 0;
        for _ in 0..3 {
            for limiter in [&a, &b] {
                more += u32::from(limiter.admit(key, 1).await.is_ok());
            }
        }
        assert_eq!(more, 2, "{key}");
    }
    assert_eq!(a.fallback_answers() + b.fallback_answers(), 0);

    // The stored key is the prefix and the key (no tag): its own slot.
    let mut con = cluster.connection_for("eq:k0");
    let _: () = redis::cmd("PING").query(&mut con).unwrap();

    // HashTag::Key: the limiter's key for a client lives in the slot of `{client}:...`.
    let tagged = RedisRateLimiter::cluster(
        &cluster.client(),
        config("tag:", quota).with_hash_tag(HashTag::Key),
    )
    .unwrap();
    for client in ["customer-42", "customer-7", "x"] {
        assert!(tagged.admit(client, 1).await.is_ok());
        let stored = format!("tag:{{{client}}}");
        assert_eq!(tagged.config().redis_key(client), stored);
        assert_eq!(
            cluster.slot(&stored),
            cluster.slot(&format!("{{{client}}}:profile"))
        );
        // The state is on that slot's primary, readable there.
        let state: Option<String> = redis::cmd("GET")
            .arg(&stored)
            .query(&mut cluster.connection_for(&stored))
            .unwrap();
        assert!(state.is_some(), "{stored}");
    }
    // A prefix with its own tag would place every key: refused, naming the field.
    let clash = RedisRateLimiter::cluster(
        &cluster.client(),
        config("{tag}:", quota).with_hash_tag(HashTag::Key),
    )
    .unwrap_err();
    assert!(clash.to_string().contains("key_prefix"), "{clash}");
}

/// A quota no test spends: a million permits, a hundred thousand a second.
fn quota_plenty() -> Quota {
    Quota::per_second(100_000)
        .unwrap()
        .with_burst(1_000_000)
        .unwrap()
}

/// A key whose slot lies in a group of 256 slots (the limiter's breakers' unit) served
/// wholly by primaries other than the one on port `primary`.
fn key_in_a_group_not_on(cluster: &RedisCluster, primary: u16) -> String {
    (0..1000)
        .map(|i| format!("h{i}"))
        .find(|key| {
            let first = cluster.slot(key) / 256 * 256;
            cluster.primary_of(first) != primary && cluster.primary_of(first + 255) != primary
        })
        .expect("a key on another primary")
}

/// What the failover test's load saw.
#[derive(Default)]
struct Tally {
    /// For each grant, the server's count of grants on the key it made (burst minus the
    /// `remaining` it reported): with no refill during the test, the n-th grant Redis
    /// stores on the key reports n.
    sequence: Mutex<Vec<u32>>,
    /// Answers that were refusals (Redis's, or the fallback's `Deny`).
    refused: AtomicU32,
}

/// A primary is killed (SIGKILL) while four instances, each with its own cluster client,
/// take decisions on a key it serves. The cluster promotes its replica within a few node
/// timeouts; meanwhile the limiters answer from their fallback (`Deny`: no grant), and
/// once the replica serves the slot, shared decisions continue on it until the key's
/// quota is spent.
///
/// Accounting, exact: with no refill, each grant Redis stores reports its rank n (1 to
/// the burst). A rank seen twice is a grant the failover added (the old primary
/// acknowledged it, the kill came before the replica had it, and the new primary granted
/// that rank again); a rank never seen is a grant the failover cost (charged in the
/// replica, its answer lost with the old primary or after the caller's timeout). Bounds
/// asserted: added at most one per instance (Redis sends each write to its replica in the
/// same event-loop pass as the client's reply, so only a write whose reply left in the
/// killed pass can be lost, and each instance has one call in flight); cost at most the
/// calls answered by the fallback (each unanswered charge is such a call).
#[test]
fn primary_killed_under_load_replica_promoted_grants_accounted() {
    const INSTANCES: usize = 4;
    const BURST: u32 = 600;
    let mut cluster = RedisCluster::start();
    let quota = Quota::per_hour(1).unwrap().with_burst(BURST).unwrap();
    let key = "hot";
    let doomed = cluster.primary_of(cluster.slot(&format!("fo:{key}")));
    let config = RedisLimiterConfig::new("fo:", quota, Fallback::Deny)
        .unwrap()
        .with_call_timeout(Duration::from_millis(300))
        .with_probe_interval(Duration::from_millis(50));

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let fallback_answers = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..INSTANCES)
        .map(|_| {
            let (client, config) = (cluster.client(), config.clone());
            let (tally, stop, fallback_answers) =
                (tally.clone(), stop.clone(), fallback_answers.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let limiter = RedisRateLimiter::cluster(&client, config).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        match limiter.admit(key, 1).await {
                            Ok(admission) => tally
                                .sequence
                                .lock()
                                .unwrap()
                                .push(BURST - admission.remaining),
                            Err(_) => {
                                tally.refused.fetch_add(1, Ordering::Relaxed);
                                // A refused instance does not spin: a short pause, as a
                                // client honouring a (much longer) Retry-After would.
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                        }
                    }
                    let answers = u32::try_from(limiter.fallback_answers()).unwrap();
                    fallback_answers.fetch_add(answers, Ordering::Relaxed);
                })
            })
        })
        .collect();

    let granted = || tally.sequence.lock().unwrap().len();
    let started = std::time::Instant::now();
    let bounded = |what: &str| {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // Mid-load: a third of the quota granted.
    while granted() < (BURST / 3) as usize {
        bounded("the first third of the quota");
    }
    let before_kill = granted();
    // An observer instance, from the kill until the cluster settled, alternates a key in
    // the killed primary's slot and one in a slot group wholly on another primary.
    let observer_stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let (client, stop) = (cluster.client(), observer_stop.clone());
        let config = RedisLimiterConfig::new("obs:", quota_plenty(), Fallback::Deny)
            .unwrap()
            .with_hash_tag(HashTag::Key)
            .with_call_timeout(Duration::from_millis(300))
            .with_probe_interval(Duration::from_millis(50));
        let healthy = key_in_a_group_not_on(&cluster, doomed);
        let ready = Arc::new(AtomicBool::new(false));
        let set_ready = ready.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let limiter = RedisRateLimiter::cluster(&client, config).unwrap();
                // `obs:{fo:hot}`: the slot of `fo:hot`, on the primary about to die.
                let doomed_key = "fo:hot";
                assert!(limiter.admit(doomed_key, 1).await.is_ok());
                assert!(limiter.admit(&healthy, 1).await.is_ok());
                set_ready.store(true, Ordering::Relaxed);
                let (mut doomed_refused, mut healthy_granted, mut healthy_refused) = (0, 0, 0);
                while !stop.load(Ordering::Relaxed) {
                    if limiter.admit(doomed_key, 1).await.is_err() {
                        doomed_refused += 1;
                    }
                    match limiter.admit(&healthy, 1).await {
                        Ok(_) => healthy_granted += 1,
                        Err(_) => healthy_refused += 1,
                    }
                    // Paced (a fallback answers at once), so that counts measure time.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (doomed_refused, healthy_granted, healthy_refused)
            })
        });
        while !ready.load(Ordering::Relaxed) {
            bounded("the observer");
        }
        thread
    };
    let killed_at = std::time::Instant::now();
    cluster.kill(doomed);
    cluster.wait_for_failover(doomed);
    let outage = killed_at.elapsed();
    observer_stop.store(true, Ordering::Relaxed);
    let (doomed_refused, healthy_granted, healthy_refused) = observer.join().unwrap();
    println!(
        "failover, observer: the killed primary's key refused {doomed_refused} times (the \
         fallback); a key on another primary granted {healthy_granted} times by Redis, \
         refused {healthy_refused} times"
    );
    // The outage sent only the killed primary's slots to the fallback: the other key was
    // decided in Redis nearly throughout (with `Deny` and a quota never spent, a refusal
    // can only be the fallback's). Not always: once in a while a call to a live primary
    // outlasts the call timeout while the cluster client rebuilds its slot map, and that
    // key's group falls back for a probe interval (50 ms). With one breaker for every
    // key, the other key was refused as often as the killed primary's.
    assert!(doomed_refused > 0, "the observer saw the outage");
    assert!(
        healthy_refused * 4 < healthy_granted,
        "{healthy_refused} of {} refused",
        healthy_granted + healthy_refused
    );
    let at_promotion = granted();
    // Decisions continue on the promoted replica until the quota is spent: the load
    // stops once a fresh instance's `decide` (no fallback) reads nothing remaining.
    let observer_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let observer = observer_runtime
        .block_on(async { RedisRateLimiter::cluster(&cluster.client(), config.clone()).unwrap() });
    loop {
        let spent = observer_runtime
            .block_on(async { matches!(observer.decide(key, 0).await, Ok(d) if d.remaining == 0) });
        if spent {
            break;
        }
        bounded("the quota to be spent on the promoted replica");
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }

    let mut sequence = tally.sequence.lock().unwrap().clone();
    let total = sequence.len();
    sequence.sort_unstable();
    assert!(
        sequence.iter().all(|n| (1..=BURST).contains(n)),
        "every grant's rank is within the burst"
    );
    let mut distinct = sequence.clone();
    distinct.dedup();
    let added = total - distinct.len();
    let cost = BURST as usize - distinct.len();
    let fallback_answers = fallback_answers.load(Ordering::Relaxed) as usize;
    println!(
        "failover: primary killed after {before_kill} of {BURST} grants; replica promoted \
         and the cluster settled {outage:?} later (node timeout {NODE_TIMEOUT:?}), \
         {} grants by then (on the promoted replica); {total} grants in all: {added} added by the failover, {cost} \
         cost; {fallback_answers} fallback answers, {} refusals",
        at_promotion - before_kill,
        tally.refused.load(Ordering::Relaxed),
    );
    // With `Deny`, a grant after the kill can only be the promoted replica's.
    assert!(
        total > before_kill,
        "decisions continued after the promotion"
    );
    assert!(added <= INSTANCES, "added {added}\n{}", cluster.logs());
    assert!(cost <= fallback_answers, "cost {cost}");
    assert_eq!(total, BURST as usize + added - cost);
    assert!(
        fallback_answers > 0,
        "the outage was answered by the fallback"
    );
}
