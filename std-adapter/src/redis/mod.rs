//! A GCRA rate limiter whose per-key state lives in Redis, so that a fleet of service
//! instances shares one limit per key (feature `redis`).
//!
//! # What it does
//!
//! [`RedisRateLimiter`] keeps, for each key, the token bucket's one word of state (the
//! theoretical arrival time) in a Redis key, and takes each decision in one Lua script,
//! atomically, loaded once and called by its hash (`EVALSHA`; reloaded by itself after a
//! server restart). The script reads the **server's** clock (`TIME`), so instances whose
//! own clocks disagree by seconds still agree on every decision. For the same quota and
//! arrivals (at the server's instants), every decision and `retry_after` equals core's
//! [`TokenBucket`](stanchion::rate::TokenBucket): the script's reply is checked against
//! core's [`Gcra`] on the same state and server time, and a reply that disagrees is an
//! error, never a silent grant. Requests take `n` permits, all or nothing; a denial writes
//! nothing; a grant stores the new state with an expiry at the instant the bucket is full
//! again (`SET ... PX`), after which a missing key *is* the fresh state: Redis holds only
//! the keys active within one burst refill time, whatever the number of clients.
//!
//! It implements [`AsyncKeyedRateLimiter<str>`](crate::AsyncKeyedRateLimiter) (and, for one
//! key, [`RedisKeyLimiter`] implements [`AsyncRateLimiter`]), the
//! interface of the in-process limiters, so the tower layer, the waiting runner and the
//! service take either. [`decide`](RedisRateLimiter::decide) is the decision without
//! fallback, with `remaining`, `reset` and the server's time.
//!
//! Redis calls go through `redis`'s reconnecting
//! [`ConnectionManager`] and each is bounded by the
//! configured call timeout. When a call fails or times out, that request and every request
//! for the next probe interval are answered by the configured [`Fallback`] (allow, deny, or
//! an in-process [`KeyedTokenBucket`] holding a share of the quota) without waiting on
//! Redis; then one request probes Redis, and once it succeeds the limiter is shared again,
//! by itself. (The switching is core's [`CircuitBreaker`] with a window of consecutive
//! failures.) `admit` always resolves to a decision; it never panics, on any reply.
//!
//! # When to choose it
//!
//! When one limit must hold across several processes or machines (an API quota per
//! customer across a fleet). Within one process, core's limiters are a thousand times
//! cheaper: a round trip to Redis is the cost of sharing.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use stanchion::rate::Quota;
//! use stanchion_std::AsyncKeyedRateLimiter;
//! use stanchion_std::redis::{Fallback, RedisLimiterConfig, RedisRateLimiter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisLimiterConfig::new(
//!     "ratelimit:api:",
//!     Quota::per_second(100)?,
//!     // Four instances: each holds a quarter of the quota while Redis is down.
//!     Fallback::Local { numerator: 1, denominator: 4 },
//! )?
//! .with_call_timeout(Duration::from_millis(20));
//! let limiter: RedisRateLimiter = RedisRateLimiter::from_url("redis://127.0.0.1:6379/", config)?;
//! match limiter.admit("customer-42", 1).await {
//!     Ok(admission) => println!("go, {} left", admission.remaining),
//!     Err(e) => println!("429, retry after {:?}", e.retry_after()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Redis Cluster
//!
//! With the feature `redis-cluster`, `RedisRateLimiter::cluster` takes the same
//! decisions on a Redis Cluster through `redis`'s cluster client: each decision reads and
//! writes one key, so every key works on every slot, and a failover is followed by
//! itself (the client learns the new primary). [`HashTag::Key`] names the key of client
//! `k` `prefix{k}`, in the slot of the application's own keys tagged `{k}`. The switch to
//! the fallback is per group of 256 slots, so a primary's outage sends only the keys of
//! its own slots to the fallback; keys on the other primaries are still decided in Redis.
//!
//! # Failure accounting
//!
//! What each failure may cost, per key, for a fleet of `N` instances sharing a quota of
//! burst `b` and one permit every `t`, during an outage of length `D`. Each row is
//! measured by the test named.
//!
//! | What goes wrong | What the fleet grants on the key | Test |
//! |---|---|---|
//! | Redis out of reach, [`Fallback::Deny`] (the default; the service's `--redis-fallback deny`) | nothing: every request is refused until Redis answers | `redis_faults`: `outage_grants_match_each_fallbacks_promise` |
//! | Redis out of reach, `Fallback::Local { 1, N }` (the service's `share`) | each instance a fresh bucket of the share: `N × (⌊b/N⌋ + D/(N·t))`, at most `b + D/t` (one quota over the outage) on top of what Redis had granted, whatever was spent; more only when `b < N` (each share's burst is at least 1) | same |
//! | Redis out of reach, `Fallback::Local { 1, 1 }` (the service's `full`) | `N × (b + D/t)`: a whole quota at each instance | same |
//! | Redis out of reach, [`Fallback::Allow`] | every request | same |
//! | A cluster primary killed; its replica promoted | for the keys of its slots, while they have no primary, what the fallback grants (above); then the grants the dead primary acknowledged but had not yet sent to its replica, granted again: at most one per connection with a call in flight at the kill (Redis writes to its replicas in the event-loop pass that writes the reply). Measured: 0 to 3 added, 0 to 1 lost, of 600, with 4 instances | `redis_cluster`: `primary_killed_under_load_replica_promoted_grants_accounted` |
//! | A reply later than the call timeout (a stalled or slow server) | fewer, not more: the request is answered by the fallback, but Redis runs the decision when it can, so its permits are charged to nobody (40 of 40 decisions sent into a 400 ms stall with a 50 ms timeout). [`with_refund_unanswered`](RedisLimiterConfig::with_refund_unanswered) gives back each whose key saw no grant after it (there, 21 of 40: every one on its own key, the last of 20 on a shared key) | `redis_faults`: `stalled_server_charges_unanswered_decisions_and_refunds_give_back_the_exact_ones` |
//!
//! After an outage, Redis's state is where it was: what the fallback granted was never
//! charged there.
//!
//! # Cost
//!
//! One round trip per decision (`EVALSHA`: `TIME`, `GET`, and on a grant `SET ... PX`), on
//! one multiplexed connection per limiter. In Redis: one key per active client, a string of
//! about 21 bytes. In process: the configuration, a breaker (64 on a cluster), and for [`Fallback::Local`] a
//! table of `LOCAL_KEYS` slots of 24 bytes.
//!
//! # Where it comes from
//!
//! GCRA as in `redis-cell` and the well-known "GCRA in Lua" limiters; the fallback and its
//! probing are a circuit breaker's.
//!
//! [`HashTag::Key`]: HashTag::Key
//! [`Gcra`]: stanchion::rate::Gcra
//! [`KeyedTokenBucket`]: stanchion::rate::KeyedTokenBucket
//! [`CircuitBreaker`]: stanchion::breaker::CircuitBreaker

mod config;
mod error;
mod script;
mod slot;

use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, State};
use stanchion::rate::{
    Denied, FullTablePolicy, Gcra, InsufficientCapacity, KeyedRateLimiter, KeyedTokenBucket, Quota,
    RateLimitError, SharedLimiter,
};
use stanchion::{Clock, Instant};

use crate::{Admission, AsyncKeyedRateLimiter, AsyncRateLimiter, StdRawMutex, TokioClock};

pub use config::{Fallback, HashTag, RedisLimiterConfig};
pub use error::RedisLimiterError;

/// A refund is sent again until this many times the larger of the call timeout and the
/// probe interval have passed.
const REFUND_PATIENCE: u32 = 10;

/// On a cluster, the slots that share one breaker (64 breakers): a primary's slots are
/// contiguous ranges, usually thousands of slots each, so its outage opens the breakers of
/// its own range (and of at most one group it shares with each neighbour).
const SLOTS_PER_BREAKER: u16 = 256;

/// The number of keys the in-process fallback table holds by default.
pub const DEFAULT_LOCAL_KEYS: usize = 1024;

/// What [`RedisRateLimiter::decide`] learned from Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisDecision {
    /// Granted, or why not (with `retry_after`), exactly as core's GCRA decides.
    pub result: Result<(), RateLimitError>,
    /// Permits one request could take right after this decision.
    pub remaining: u32,
    /// The time until the key's bucket is full again (the `RateLimit` header's reset).
    pub reset: Duration,
    /// The server's clock at the decision, in nanoseconds since the Unix epoch.
    pub server_time: Instant,
}

/// A GCRA token bucket per key, whose state lives in Redis and is shared by every
/// instance that uses the same key prefix; see the [module docs](self).
///
/// `C` is the local clock, used only for the fallback (the probe interval and the
/// in-process table), never for a shared decision. `LOCAL_KEYS` is the size of the
/// fallback's table. Built inside a tokio runtime (the connection manager spawns its
/// tasks there; elsewhere the constructors return [`RedisLimiterError::NoRuntime`]);
/// shared by `&` (put it in an `Arc`).
pub struct RedisRateLimiter<C = TokioClock, const LOCAL_KEYS: usize = DEFAULT_LOCAL_KEYS> {
    connection: Connection,
    script: redis::Script,
    refunds: Option<Refunds>,
    config: RedisLimiterConfig,
    gcra: Gcra,
    /// One breaker on one server; on a cluster, one per group of [`SLOTS_PER_BREAKER`]
    /// consecutive slots, so that a primary's outage sends only its own slots' keys to the
    /// fallback.
    breakers: Box<[CircuitBreaker<ConsecutiveWindow, StdRawMutex>]>,
    local: Option<Box<SharedLimiter<StdRawMutex, KeyedTokenBucket<LOCAL_KEYS>>>>,
    fallback_answers: AtomicU64,
    clock: C,
}

impl RedisRateLimiter {
    /// A limiter on `client`'s server, with the local clock [`TokioClock`]. Connects
    /// lazily: a server that is down at start only means the fallback answers first.
    pub fn new(
        client: redis::Client,
        config: RedisLimiterConfig,
    ) -> Result<RedisRateLimiter, RedisLimiterError> {
        RedisRateLimiter::with_clock(client, config, TokioClock::new())
    }

    /// A limiter on the server at `url` (`redis://host:port/db`, `rediss://` for TLS if
    /// `redis` has a TLS feature, `redis+unix:///path`).
    pub fn from_url(
        url: &str,
        config: RedisLimiterConfig,
    ) -> Result<RedisRateLimiter, RedisLimiterError> {
        RedisRateLimiter::new(redis::Client::open(url)?, config)
    }

    /// A limiter on a Redis Cluster (feature `redis-cluster`), with the local clock
    /// [`TokioClock`]. Connects in the background: a cluster that is down at start only
    /// means the fallback answers first.
    ///
    /// Each decision reads and writes one key, so any key works on any slot, and the
    /// cluster client follows the slot to its primary (`MOVED`, `ASK`, a replica promoted
    /// after a failover). The limiter bounds each call, redirections and the client's
    /// retries included, by the call timeout; the client's `retries` (its builder's; 16 by
    /// default) only matter within that bound. To place every key of one client in the
    /// same slot as that client's other keys, see [`HashTag`].
    ///
    /// The switch to the fallback is per group of 256 consecutive slots (64 groups): a
    /// primary's outage sends the keys of its own slots to the fallback (and those of a
    /// group it shares with a neighbour), while keys on the other primaries are still
    /// decided in Redis; each group probes its slots again on its own.
    ///
    /// ```no_run
    /// use stanchion::rate::Quota;
    /// use stanchion_std::redis::{Fallback, RedisLimiterConfig, RedisRateLimiter};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let nodes = ["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"];
    /// let client = redis::cluster::ClusterClient::builder(nodes).retries(3).build()?;
    /// let config = RedisLimiterConfig::new("rl:", Quota::per_second(100)?, Fallback::Deny)?;
    /// let limiter: RedisRateLimiter = RedisRateLimiter::cluster(&client, config)?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis-cluster")]
    pub fn cluster(
        client: &redis::cluster::ClusterClient,
        config: RedisLimiterConfig,
    ) -> Result<RedisRateLimiter, RedisLimiterError> {
        RedisRateLimiter::cluster_with_clock(client, config, TokioClock::new())
    }
}

impl<C: Clock, const LOCAL_KEYS: usize> RedisRateLimiter<C, LOCAL_KEYS> {
    /// A limiter on `client`'s server, with `clock` for the fallback.
    pub fn with_clock(
        client: redis::Client,
        config: RedisLimiterConfig,
        clock: C,
    ) -> Result<Self, RedisLimiterError> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisLimiterError::NoRuntime);
        }
        // The manager's own bounds: each connection attempt and each response within the
        // call timeout, and no long reconnection back-off (the breaker paces the probes).
        let manager = ConnectionManager::new_lazy_with_config(
            client,
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.call_timeout()))
                .set_response_timeout(Some(config.call_timeout()))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(1))
                .set_max_delay(config.probe_interval()),
        )?;
        Self::with_connection(Connection::Single(manager), config, clock)
    }

    /// A limiter on a Redis Cluster, with `clock` for the fallback (feature
    /// `redis-cluster`); see [`RedisRateLimiter::cluster`].
    #[cfg(feature = "redis-cluster")]
    pub fn cluster_with_clock(
        client: &redis::cluster::ClusterClient,
        config: RedisLimiterConfig,
        clock: C,
    ) -> Result<Self, RedisLimiterError> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisLimiterError::NoRuntime);
        }
        // Connects in the background: a cluster that is down at start only means the
        // fallback answers first. Each connection attempt and each node's response within
        // the call timeout (the limiter bounds the whole call, redirections and retries
        // included, by it too).
        let connection = client.get_pending_async_connection_with_config(
            redis::cluster::ClusterConfig::new()
                .set_connection_timeout(config.call_timeout())
                .set_response_timeout(config.call_timeout()),
        );
        Self::with_connection(Connection::Cluster(connection), config, clock)
    }

    fn with_connection(
        connection: Connection,
        config: RedisLimiterConfig,
        clock: C,
    ) -> Result<Self, RedisLimiterError> {
        let groups = match connection {
            Connection::Single(_) => 1,
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(_) => usize::from(slot::SLOTS / SLOTS_PER_BREAKER),
        };
        let breakers = (0..groups)
            .map(|_| {
                CircuitBreaker::new(
                    BreakerConfig::new()
                        .failure_rate_threshold(100)
                        .minimum_calls(1)
                        .permitted_calls_in_half_open(1)
                        .open_duration(config.probe_interval()),
                    ConsecutiveWindow::new(config.failures_before_fallback())?,
                )
            })
            .collect::<Result<Box<[_]>, _>>()?;
        let local = match config.local_quota() {
            Some(quota) => {
                let random = std::collections::hash_map::RandomState::new();
                let hash_key = (random.hash_one(0u8), random.hash_one(1u8));
                let table = KeyedTokenBucket::<LOCAL_KEYS>::try_new(
                    quota,
                    FullTablePolicy::DenyNewKeys,
                    hash_key,
                )?;
                Some(Box::new(SharedLimiter::new(table)))
            }
            None => None,
        };
        Ok(RedisRateLimiter {
            connection,
            script: redis::Script::new(script::GCRA_SCRIPT),
            refunds: config.refunds_unanswered().then(Refunds::new),
            gcra: Gcra::new(config.quota()),
            config,
            breakers,
            local,
            fallback_answers: AtomicU64::new(0),
            clock,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisLimiterConfig {
        &self.config
    }

    /// The quota of each key.
    pub fn quota(&self) -> Quota {
        self.config.quota()
    }

    /// Whether requests are being answered by the fallback (Redis failed, and has not
    /// answered a probe since); on a cluster, requests for some keys at least (those in
    /// the slots of a failed node).
    pub fn is_falling_back(&self) -> bool {
        self.breakers
            .iter()
            .any(|b| !matches!(b.state(), State::Closed))
    }

    /// The breaker that decides whether `key` goes to Redis or to the fallback.
    fn breaker(&self, key: &str) -> &CircuitBreaker<ConsecutiveWindow, StdRawMutex> {
        let group = match self.breakers.len() {
            1 => 0,
            _ => {
                let slot = slot::key_slot(self.config.redis_key(key).as_bytes());
                usize::from(slot / SLOTS_PER_BREAKER)
            }
        };
        // `group` < SLOTS / SLOTS_PER_BREAKER, the number of breakers on a cluster.
        &self.breakers[group.min(self.breakers.len() - 1)]
    }

    /// How many requests the fallback has answered so far.
    pub fn fallback_answers(&self) -> u64 {
        self.fallback_answers.load(Ordering::Relaxed)
    }

    /// How many timed-out grants Redis has confirmed refunded so far (with
    /// [`RedisLimiterConfig::with_refund_unanswered`]; 0 without).
    pub fn refunds(&self) -> u64 {
        self.refunds
            .as_ref()
            .map_or(0, |r| r.confirmed.load(Ordering::Relaxed))
    }

    /// Takes `n` permits for `key` in Redis, all or nothing, with no fallback: a failure is
    /// an error. `n` above the burst is
    /// [`InsufficientCapacity`](RateLimitError::InsufficientCapacity), after reading (not
    /// changing) the key's state.
    pub async fn decide(&self, key: &str, n: u32) -> Result<RedisDecision, RedisLimiterError> {
        let max = self.gcra.max_acquire();
        let sent = if n > max { 0 } else { n };
        let redis_key = self.config.redis_key(key);
        let mut invocation = self.script.key(&redis_key);
        let arguments = script::arguments(self.config.quota(), sent);
        for arg in arguments {
            invocation.arg(arg);
        }
        // A decision that may be refunded carries an id, stored with the state it writes.
        let id = match &self.refunds {
            Some(refunds) if sent > 0 => {
                let id = refunds.next_id();
                invocation.arg(&id);
                Some(id)
            }
            _ => None,
        };
        let timeout = self.config.call_timeout();
        let value = match tokio::time::timeout(timeout, self.connection.invoke(&invocation)).await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => {
                // Sent, maybe run, reply lost: the same case as a timeout.
                if e.is_timeout() || e.is_connection_dropped() {
                    self.refund(redis_key, id, arguments);
                }
                return Err(e.into());
            }
            Err(_) => {
                self.refund(redis_key, id, arguments);
                return Err(RedisLimiterError::Timeout(timeout));
            }
        };
        let reply = script::parse(&value, &self.gcra, sent)?;
        let result = if n > max {
            Err(InsufficientCapacity::new(max).into())
        } else {
            reply.result
        };
        Ok(RedisDecision {
            result,
            remaining: self.gcra.remaining_at(reply.tat, reply.now),
            reset: script::reset(&self.gcra, &reply),
            server_time: reply.now,
        })
    }

    /// Refunds, in the background, the decision `id` on `redis_key` whose reply never
    /// came, if it was a grant and nothing was granted on the key since (see
    /// [`RedisLimiterConfig::with_refund_unanswered`]). The refund is sent after the
    /// decision on the same connection, so Redis runs it after the decision.
    fn refund(&self, redis_key: String, id: Option<String>, arguments: [u64; 6]) {
        let (Some(refunds), Some(id)) = (&self.refunds, id) else {
            return;
        };
        let connection = self.connection.clone();
        let confirmed = Arc::clone(&refunds.confirmed);
        let timeout = self.config.call_timeout();
        let patience = timeout
            .max(self.config.probe_interval())
            .saturating_mul(REFUND_PATIENCE);
        // Past the clock's range (absurd timeouts): one try.
        let deadline = tokio::time::Instant::now().checked_add(patience);
        // The refunded state is kept at least this long (at most a day), for a copy to
        // find it done.
        let keep_ms = u64::try_from(patience.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, 86_400_000);
        let [_, _, _, _, inc_s, inc_n] = arguments;
        let mut eval = redis::cmd("EVAL");
        eval.arg(script::REFUND_SCRIPT)
            .arg(1)
            .arg(redis_key)
            .arg(id)
            .arg(inc_s)
            .arg(inc_n)
            .arg(keep_ms);
        refunds.runtime.spawn(async move {
            // Sent again until Redis answers (a copy finds the refund done and says so),
            // one call timeout apart, until the deadline.
            loop {
                match tokio::time::timeout(timeout, connection.query(&eval)).await {
                    Ok(Ok(redis::Value::Int(1))) => {
                        confirmed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(Ok(_)) => return,
                    Ok(Err(_)) | Err(_) => {}
                }
                let next = tokio::time::Instant::now().checked_add(timeout);
                if !matches!((next, deadline), (Some(next), Some(deadline)) if next < deadline) {
                    return;
                }
                tokio::time::sleep(timeout).await;
            }
        });
    }

    /// A limiter for `key` alone, implementing [`AsyncRateLimiter`].
    pub fn for_key(self: &Arc<Self>, key: impl Into<Box<str>>) -> RedisKeyLimiter<C, LOCAL_KEYS> {
        RedisKeyLimiter {
            limiter: Arc::clone(self),
            key: key.into(),
        }
    }

    /// The decision with fallback: Redis when it answers, the fallback otherwise.
    async fn admit_key(&self, key: &str, n: u32) -> Result<Admission, RateLimitError> {
        let max = self.gcra.max_acquire();
        if n > max {
            return Err(InsufficientCapacity::new(max).into());
        }
        let started = self.clock.now();
        let permit = match self.breaker(key).try_acquire_at(started) {
            Ok(permit) => permit,
            Err(rejected) => return self.fall_back(key, n, rejected.retry_after),
        };
        let decision = self.decide(key, n).await;
        let took = self.clock.now().saturating_duration_since(started);
        match decision {
            Ok(d) => {
                permit.success(took);
                d.result.map(|()| Admission {
                    remaining: d.remaining,
                })
            }
            Err(_) => {
                permit.failure(took);
                self.fall_back(key, n, None)
            }
        }
    }

    /// The fallback's answer; `retry_after` is the breaker's time until the next probe,
    /// when known.
    fn fall_back(
        &self,
        key: &str,
        n: u32,
        retry_after: Option<Duration>,
    ) -> Result<Admission, RateLimitError> {
        self.fallback_answers.fetch_add(1, Ordering::Relaxed);
        match (self.config.fallback(), &self.local) {
            (Fallback::Allow, _) => Ok(Admission { remaining: 0 }),
            (Fallback::Local { .. }, Some(local)) => {
                let now = self.clock.now();
                local.acquire_at(key, n, now).map(|()| Admission {
                    remaining: local.remaining_at(key, now),
                })
            }
            (Fallback::Deny | Fallback::Local { .. }, _) => {
                Err(Denied::new(retry_after.unwrap_or(self.config.probe_interval())).into())
            }
        }
    }
}

/// What a limiter needs to refund its unanswered grants.
struct Refunds {
    /// Refunds Redis confirmed.
    confirmed: Arc<AtomicU64>,
    /// Decision ids: a random start per limiter, then counting, so that ids of the
    /// limiters of a fleet do not meet.
    next: AtomicU64,
    /// The runtime the limiter was built in, where refunds run.
    runtime: tokio::runtime::Handle,
}

impl Refunds {
    /// Built inside a tokio runtime (the constructors check that first).
    fn new() -> Refunds {
        let random = std::collections::hash_map::RandomState::new();
        Refunds {
            confirmed: Arc::new(AtomicU64::new(0)),
            next: AtomicU64::new(random.hash_one(2u8)),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn next_id(&self) -> String {
        format!("{:016x}", self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// The connection a limiter's calls go through: one server's reconnecting manager, or a
/// cluster's client (slots, redirections, failover). Both are cheap handles to one
/// multiplexed pipeline per server, cloned for each call.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Connection {
    /// Runs one command.
    async fn query(&self, cmd: &redis::Cmd) -> Result<redis::Value, redis::RedisError> {
        match self {
            Connection::Single(manager) => cmd.query_async(&mut manager.clone()).await,
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(cluster) => cmd.query_async(&mut cluster.clone()).await,
        }
    }

    /// Runs the script invocation (`EVALSHA`, loading the script where it is missing).
    async fn invoke(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<redis::Value, redis::RedisError> {
        match self {
            Connection::Single(manager) => invocation.invoke_async(&mut manager.clone()).await,
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(cluster) => invocation.invoke_async(&mut cluster.clone()).await,
        }
    }
}

impl<C, const LOCAL_KEYS: usize> fmt::Debug for RedisRateLimiter<C, LOCAL_KEYS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("config", &self.config)
            .field(
                "falling_back",
                &self
                    .breakers
                    .iter()
                    .any(|b| !matches!(b.state(), State::Closed)),
            )
            .field(
                "fallback_answers",
                &self.fallback_answers.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl<C: Clock + Send + Sync, const LOCAL_KEYS: usize> AsyncKeyedRateLimiter<str>
    for RedisRateLimiter<C, LOCAL_KEYS>
{
    fn admit(
        &self,
        key: &str,
        n: u32,
    ) -> impl Future<Output = Result<Admission, RateLimitError>> + Send {
        self.admit_key(key, n)
    }

    fn max_acquire(&self) -> u32 {
        self.gcra.max_acquire()
    }
}

/// One key of a shared [`RedisRateLimiter`]: a limiter for one resource (a downstream
/// API, a tenant) across a fleet, implementing [`AsyncRateLimiter`].
pub struct RedisKeyLimiter<C = TokioClock, const LOCAL_KEYS: usize = DEFAULT_LOCAL_KEYS> {
    limiter: Arc<RedisRateLimiter<C, LOCAL_KEYS>>,
    key: Box<str>,
}

impl<C, const LOCAL_KEYS: usize> RedisKeyLimiter<C, LOCAL_KEYS> {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<RedisRateLimiter<C, LOCAL_KEYS>> {
        &self.limiter
    }
}

impl<C, const LOCAL_KEYS: usize> Clone for RedisKeyLimiter<C, LOCAL_KEYS> {
    fn clone(&self) -> Self {
        RedisKeyLimiter {
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
        }
    }
}

impl<C, const LOCAL_KEYS: usize> fmt::Debug for RedisKeyLimiter<C, LOCAL_KEYS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyLimiter")
            .field("key", &self.key)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<C: Clock + Send + Sync, const LOCAL_KEYS: usize> AsyncRateLimiter
    for RedisKeyLimiter<C, LOCAL_KEYS>
{
    fn admit(&self, n: u32) -> impl Future<Output = Result<Admission, RateLimitError>> + Send {
        self.limiter.admit_key(&self.key, n)
    }

    fn max_acquire(&self) -> u32 {
        self.limiter.gcra.max_acquire()
    }
}
