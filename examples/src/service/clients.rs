//! Per-client rate limits: who a request is from, and its quota.
//!
//! A request with a configured API key (`X-Api-Key`) is limited by that key's own quota.
//! A request with no key, or with a key nobody configured, is limited by its client IP
//! (the TCP peer's address; `X-Forwarded-For` is not trusted, as the service is not
//! behind a proxy): inventing keys buys nothing, as every invented key lands on the same
//! IP bucket.
//!
//! The IP table has a fixed number of slots ([`ShardedKeyedLimiter`]): `--max-clients`
//! rounded up to shards of 256. An IP can live in 8 slots of its shard (its set, chosen
//! by a keyed hash). A new IP takes a never-used slot of its set, or one whose bucket is
//! full again (forgetting that client changes no decision, so this is lossless); only when
//! all 8 hold a bucket still refilling is it refused (core's
//! [`FullTablePolicy::DenyNewKeys`]), so a flood of distinct clients can neither grow
//! memory nor buy anyone a fresh bucket. With a quota that refills slowly (1 an hour)
//! sets fill unevenly: a table of 256 slots refuses its first IP after about 150 IPs, the
//! default 16,384 after about 5,000; with a quota that refills within seconds, slots are
//! reused as fast as clients come. Such a refusal is not a spent quota: it is answered
//! with a 503 that says the table is full (with `Retry-After`: when a slot of its set
//! is free again, and no `RateLimit` fields), and counted in
//! `stanchion_clients_untracked_total`.
//!
//! Each configured key, and the IPs, is a tier of stanchion-std's
//! `TieredRateLimitLayer` ([`ClientLimits::tiers`]), with its own limiter
//! ([`ClientLimiter`]) and its own policy (`key-NAME`, `ip`) in the `RateLimit` fields.
//!
//! With `--redis-url` the buckets live in Redis, shared by every instance; while Redis is
//! out of reach each limiter answers from the `--redis-fallback` the operator chose
//! (stanchion-std's `redis::Fallback`, feature `redis`: deny, or a local bucket
//! holding a share or the whole of each quota). Entering and leaving the fallback is
//! logged on stderr and shown in `/metrics` ([`ClientLimits::fallback_status`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
#[cfg(feature = "redis")]
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use stanchion::rate::{FullTablePolicy, RateLimitError, TokenBucket, WithClock};
use stanchion::{Clock, ConfigError};
use stanchion_std::tower::{RateLimitPolicy, TierId, Tiers};
use stanchion_std::{
    Admission, AsyncKeyedRateLimiter, AsyncRateLimiter, CoarseClock, ShardedKeyedLimiter,
};

#[cfg(feature = "redis")]
use super::config::RedisFallback;
use super::config::{ApiKey, QuotaSpec};

/// The longest API key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 128;

/// Slots per shard of the IP table.
const SLOTS_PER_SHARD: usize = 256;

/// Whether `key` could be an API key: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
pub fn is_well_formed_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Who a request is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// The configured API key at this index.
    Key(usize),
    /// No key, or an unknown one: the client's IP address.
    Ip(IpAddr),
}

/// A bad `X-Api-Key`: the request gets a 400 with this message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedKey;

impl std::fmt::Display for MalformedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "malformed X-Api-Key: a key is 1 to {MAX_KEY_LEN} visible ASCII characters"
        )
    }
}

/// Where the per-client buckets live.
#[derive(Clone, Copy, Debug)]
enum Store {
    /// In this process: one GCRA word per API key, a sharded fixed-size table of IPs.
    Local,
    /// In Redis, shared by every instance of the service.
    #[cfg(feature = "redis")]
    Redis {
        fallback: RedisFallback,
        instances: u32,
    },
}

/// One tier's limiter (see [`ClientLimits::tiers`]): an API key's own bucket or the table
/// of IPs, in this process or in Redis. One type for every tier, as
/// `stanchion_std::tower::TieredRateLimitLayer` wants, so an enum of the kinds.
///
/// `C` is the clock the in-process buckets read: the service's shared
/// [`CoarseClock`] (see [`ClientLimits::local`]); the unit tests give them
/// `stanchion_std::TokioClock`, which reads tokio's paused time exactly.
pub enum ClientLimiter<C = CoarseClock> {
    /// An API key's bucket, in this process (one GCRA word).
    Key(WithClock<TokenBucket, C>),
    /// The IPs, in a sharded table of fixed size in this process.
    Ips(WithClock<ShardedKeyedLimiter<SLOTS_PER_SHARD>, C>),
    /// An API key's bucket or the IPs' buckets, in Redis. Boxed: a Redis limiter (with
    /// its local fallback table) is much larger than the in-process variants.
    #[cfg(feature = "redis")]
    Redis(Box<Shared>),
}

impl<C> std::fmt::Debug for ClientLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientLimiter::Key(_) => "ClientLimiter::Key",
            ClientLimiter::Ips(_) => "ClientLimiter::Ips",
            #[cfg(feature = "redis")]
            ClientLimiter::Redis(_) => "ClientLimiter::Redis",
        })
    }
}

impl<C: Clock + Send + Sync> AsyncKeyedRateLimiter<Client> for ClientLimiter<C> {
    async fn admit(&self, client: &Client, n: u32) -> Result<Admission, RateLimitError> {
        match (self, client) {
            (ClientLimiter::Key(bucket), Client::Key(_)) => bucket.admit(n).await,
            (ClientLimiter::Ips(table), Client::Ip(ip)) => table.admit(ip, n).await,
            #[cfg(feature = "redis")]
            (ClientLimiter::Redis(shared), client) => {
                // One Redis limiter per API key (its bucket under one Redis key), and
                // one for every IP.
                let key = match client {
                    Client::Key(_) => "k".to_owned(),
                    Client::Ip(ip) => ip.to_string(),
                };
                let answer = shared.limiter.admit(key.as_str(), n).await;
                shared.observe();
                answer
            }
            _ => Err(never()),
        }
    }

    fn max_acquire(&self) -> u32 {
        match self {
            ClientLimiter::Key(bucket) => AsyncRateLimiter::max_acquire(bucket),
            ClientLimiter::Ips(table) => table.limiter().quota().burst(),
            #[cfg(feature = "redis")]
            ClientLimiter::Redis(shared) => shared.limiter.quota().burst(),
        }
    }

    fn admit_now(&self, client: &Client, n: u32) -> Option<Result<Admission, RateLimitError>> {
        match (self, client) {
            (ClientLimiter::Key(bucket), Client::Key(_)) => bucket.admit_now(n),
            (ClientLimiter::Ips(table), Client::Ip(ip)) => table.admit_now(ip, n),
            // A round trip: awaited.
            #[cfg(feature = "redis")]
            (ClientLimiter::Redis(_), _) => None,
            _ => Some(Err(never())),
        }
    }
}

/// A Redis limiter, and what the service last saw of its fallback.
#[cfg(feature = "redis")]
pub struct Shared {
    limiter: stanchion_std::redis::RedisRateLimiter,
    /// The policy name of its limit (`ip`, `key-NAME`), for the log.
    name: &'static str,
    /// What its fallback does, for the log.
    fallback: String,
    /// Whether it answered from the fallback when last looked at.
    falling_back: AtomicBool,
    /// Times it entered the fallback.
    entered: AtomicU64,
    /// Fallback answers given to the start-up probe, not to a client.
    probe_answers: AtomicU64,
}

#[cfg(feature = "redis")]
impl Shared {
    /// Logs a change of the fallback state since the last look, and returns the state.
    fn observe(&self) -> bool {
        let now = self.limiter.is_falling_back();
        if self.falling_back.swap(now, Ordering::Relaxed) != now {
            if now {
                self.entered.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "service: redis is out of reach: limiter {} answers from the fallback ({})",
                    self.name, self.fallback
                );
            } else {
                eprintln!(
                    "service: redis answers again: limiter {} is shared again ({} answers from the fallback so far)",
                    self.name,
                    self.answers()
                );
            }
        }
        now
    }

    /// Answers the fallback gave to clients.
    fn answers(&self) -> u64 {
        self.limiter
            .fallback_answers()
            .saturating_sub(self.probe_answers.load(Ordering::Relaxed))
    }
}

/// One shared limiter's fallback, for `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FallbackStatus {
    /// The limiter's policy name (`ip`, `key-NAME`).
    pub limiter: &'static str,
    /// Whether it answers from the fallback now.
    pub falling_back: bool,
    /// Requests the fallback answered.
    pub answers: u64,
    /// Times it entered the fallback.
    pub entered: u64,
}

/// The policies of the configured keys and of the IPs, and the keys' index by secret.
struct Policies {
    keys: Vec<RateLimitPolicy>,
    by_key: HashMap<String, usize>,
    ip: RateLimitPolicy,
}

impl Policies {
    /// # Errors
    ///
    /// Two keys with the same name or secret.
    fn new(keys: &[ApiKey], ip_quota: QuotaSpec) -> Result<Policies, String> {
        let mut names = std::collections::HashSet::new();
        for k in keys {
            if !names.insert(k.name.as_str()) {
                // Two keys of one name would share one bucket in Redis, and one policy name.
                return Err(format!("API key name `{}` is given twice", k.name));
            }
        }
        let mut by_key = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            if by_key.insert(k.key.clone(), i).is_some() {
                return Err(format!(
                    "API key `{}` has the same secret as another key",
                    k.name
                ));
            }
        }
        Ok(Policies {
            keys: keys
                .iter()
                .map(|k| {
                    // Policy names are `&'static str` in the HTTP helpers: one small
                    // string per configured key, once, for the life of the process.
                    let name: &'static str = Box::leak(format!("key-{}", k.name).into_boxed_str());
                    RateLimitPolicy::new(name)
                        .quota(k.quota.n)
                        .window(k.quota.period)
                })
                .collect(),
            by_key,
            ip: RateLimitPolicy::new("ip")
                .quota(ip_quota.n)
                .window(ip_quota.period),
        })
    }
}

/// The per-client limits: one tier per configured API key, with that key's quota, and
/// one for the IPs (see [`ClientLimits::tiers`]), the in-process ones reading clock `C`
/// (see [`ClientLimiter`]).
pub struct ClientLimits<C = CoarseClock> {
    policies: Policies,
    store: Store,
    /// The keys' limiters (in the order of the keys), then the IPs'.
    tiers: Tiers<ClientLimiter<C>>,
    /// The keys' tiers, in the order of the keys.
    key_tiers: Vec<TierId>,
    /// The IPs' tier.
    ip_tier: TierId,
    capacity: usize,
}

impl<C> std::fmt::Debug for ClientLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys' secrets stay out of logs.
        f.debug_struct("ClientLimits")
            .field("store", &store_name(self.store))
            .field("keys", &self.policies.keys)
            .field("ip", &self.policies.ip)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<C: Clock + Clone + Send + Sync> ClientLimits<C> {
    /// In-process limits: each of `keys` with its own quota, everyone else by IP with
    /// `ip_quota`, in a table of at least `max_clients` IPs (rounded up to a multiple of
    /// 256), every bucket reading `clock`.
    ///
    /// The service gives them its one [`CoarseClock`], shared with its layers (one
    /// atomic load per check instead of a read of tokio's clock, which costs more than
    /// the GCRA decision itself): a grant comes at most one period (1 ms) later than on
    /// an exact clock, never earlier, so no client gets more than its quota.
    ///
    /// # Errors
    ///
    /// `max_clients` of 0 or above 16 777 216, or two keys with the same name or secret.
    pub fn local(
        keys: &[ApiKey],
        ip_quota: QuotaSpec,
        max_clients: usize,
        clock: C,
    ) -> Result<ClientLimits<C>, String> {
        let shards = max_clients.div_ceil(SLOTS_PER_SHARD);
        if shards == 0 || shards > ShardedKeyedLimiter::<SLOTS_PER_SHARD>::MAX_SHARDS {
            return Err(format!(
                "--max-clients {max_clients}: allowed range is 1..=16777216"
            ));
        }
        let policies = Policies::new(keys, ip_quota)?;
        let table = ShardedKeyedLimiter::new(ip_quota.quota, FullTablePolicy::DenyNewKeys, shards)
            .map_err(|e: ConfigError| e.to_string())?;
        let capacity = table.capacity();
        let limiters = keys
            .iter()
            .map(|k| {
                ClientLimiter::Key(WithClock::new(
                    TokenBucket::new(k.quota.quota),
                    clock.clone(),
                ))
            })
            .collect();
        let ips = ClientLimiter::Ips(WithClock::new(table, clock));
        ClientLimits::with_limiters(policies, Store::Local, limiters, ips, capacity)
    }

    /// Limits kept in the Redis server at `url`, under keys starting `stanchion:service:`.
    /// Connects lazily; while Redis is out of reach each limiter answers from `fallback`
    /// (with [`RedisFallback::Share`], 1/`instances` of each quota per instance).
    ///
    /// # Errors
    ///
    /// A malformed URL; [`RedisFallback::Share`] without `instances`, or with a quota
    /// smaller than `instances` (a share would round down to nothing); two keys with the
    /// same name or secret.
    #[cfg(feature = "redis")]
    pub fn redis(
        keys: &[ApiKey],
        ip_quota: QuotaSpec,
        url: &str,
        fallback: RedisFallback,
        instances: Option<u32>,
    ) -> Result<ClientLimits<C>, String> {
        use stanchion_std::redis::{Fallback, RedisLimiterConfig, RedisRateLimiter};
        let (library_fallback, instances) = match fallback {
            RedisFallback::Deny => (Fallback::Deny, 1),
            RedisFallback::Full => (
                Fallback::Local {
                    numerator: 1,
                    denominator: 1,
                },
                1,
            ),
            RedisFallback::Share => {
                let n = instances.ok_or(
                    "--redis-fallback share (the default) needs --instances N, the number of instances sharing Redis, so that each admits 1/N of each quota while Redis is out of reach; or choose --redis-fallback deny or full",
                )?;
                let quotas = keys
                    .iter()
                    .map(|k| (format!("API key `{}`", k.name), k.quota))
                    .chain([("--ip-quota".to_owned(), ip_quota)]);
                for (what, quota) in quotas {
                    if quota.n < n {
                        return Err(format!(
                            "--redis-fallback share with --instances {n}: {what}'s quota {quota} is smaller than {n}, so 1/{n} of it rounds down to nothing; raise the quota, or choose --redis-fallback deny"
                        ));
                    }
                }
                (
                    Fallback::Local {
                        numerator: 1,
                        denominator: n,
                    },
                    n,
                )
            }
        };
        let policies = Policies::new(keys, ip_quota)?;
        let store = Store::Redis {
            fallback,
            instances,
        };
        let description = fallback_description(store);
        let limiter = |prefix: String,
                       spec: QuotaSpec,
                       policy: &RateLimitPolicy|
         -> Result<ClientLimiter<C>, String> {
            let config = RedisLimiterConfig::new(prefix, spec.quota, library_fallback)
                .map_err(|e| e.to_string())?;
            Ok(ClientLimiter::Redis(Box::new(Shared {
                limiter: RedisRateLimiter::from_url(url, config)
                    .map_err(|e| format!("--redis-url: {e}"))?,
                name: policy.name,
                fallback: description.clone(),
                falling_back: AtomicBool::new(false),
                entered: AtomicU64::new(0),
                probe_answers: AtomicU64::new(0),
            })))
        };
        let limiters = keys
            .iter()
            .zip(&policies.keys)
            .map(|(k, policy)| {
                limiter(
                    format!("stanchion:service:key:{}:", k.name),
                    k.quota,
                    policy,
                )
            })
            .collect::<Result<_, _>>()?;
        let ips = limiter("stanchion:service:ip:".to_owned(), ip_quota, &policies.ip)?;
        ClientLimits::with_limiters(policies, store, limiters, ips, usize::MAX)
    }

    fn with_limiters(
        policies: Policies,
        store: Store,
        keys: Vec<ClientLimiter<C>>,
        ips: ClientLimiter<C>,
        capacity: usize,
    ) -> Result<ClientLimits<C>, String> {
        let mut tiers = Tiers::new();
        let mut key_tiers = Vec::with_capacity(keys.len());
        for (policy, limiter) in policies.keys.iter().zip(keys) {
            let tier = tiers
                .tier(*policy, Arc::new(limiter))
                .map_err(|e| format!("API key policy `{}`: {e}", policy.name))?;
            key_tiers.push(tier);
        }
        let ip_tier = tiers
            .tier(policies.ip, Arc::new(ips))
            .map_err(|e| e.to_string())?;
        Ok(ClientLimits {
            policies,
            store,
            tiers,
            key_tiers,
            ip_tier,
            capacity,
        })
    }

    /// The limits as tiers of `stanchion_std::tower::TieredRateLimitLayer`: tier `i` is
    /// the `i`th API key (its quota and `key-NAME` policy), the last the IPs (`ip`);
    /// [`ClientLimits::tier`] says which a client is in. The tiers share the limiters
    /// with these limits.
    pub fn tiers(&self) -> Tiers<ClientLimiter<C>> {
        self.tiers.clone()
    }

    /// The tier `client` is charged to.
    pub fn tier(&self, client: Client) -> TierId {
        match client {
            Client::Key(i) => self.key_tiers.get(i).copied().unwrap_or(self.ip_tier),
            Client::Ip(_) => self.ip_tier,
        }
    }

    /// The limiter of `client`'s tier.
    fn limiter(&self, client: Client) -> Option<&ClientLimiter<C>> {
        self.tiers.limiter(self.tier(client)).map(|l| &**l)
    }

    /// The Redis limiters: the keys' in order, then the IPs' (none without Redis).
    #[cfg(feature = "redis")]
    fn shared(&self) -> impl Iterator<Item = &Shared> {
        self.key_tiers
            .iter()
            .chain([&self.ip_tier])
            .filter_map(|&tier| match self.tiers.limiter(tier).map(|l| &**l) {
                Some(ClientLimiter::Redis(shared)) => Some(&**shared),
                _ => None,
            })
    }

    /// With Redis: takes one request from each limiter for a key no client has, so that
    /// each learns whether Redis answers before the first client asks. Its answers are
    /// not counted as the fallback's.
    pub async fn probe(&self) {
        #[cfg(feature = "redis")]
        for shared in self.shared() {
            let _ = shared.limiter.admit("start-up-probe", 1).await;
            shared
                .probe_answers
                .store(shared.limiter.fallback_answers(), Ordering::Relaxed);
            shared.observe();
        }
    }

    /// What the fallback does, in words (`-` without Redis).
    pub fn fallback_description(&self) -> String {
        fallback_description(self.store)
    }

    /// Each shared limiter's fallback, after logging any change since the last look
    /// (empty without Redis).
    pub fn fallback_status(&self) -> Vec<FallbackStatus> {
        #[cfg(feature = "redis")]
        return self
            .shared()
            .map(|shared| FallbackStatus {
                limiter: shared.name,
                falling_back: shared.observe(),
                answers: shared.answers(),
                entered: shared.entered.load(Ordering::Relaxed),
            })
            .collect();
        #[cfg(not(feature = "redis"))]
        Vec::new()
    }

    /// Whether `client`'s limiter refuses everything because Redis is out of reach and
    /// the fallback is `--redis-fallback deny` (a 503, not a spent quota).
    pub fn denies_in_fallback(&self, client: Client) -> bool {
        #[cfg(feature = "redis")]
        if let Store::Redis {
            fallback: RedisFallback::Deny,
            ..
        } = self.store
        {
            return matches!(
                self.limiter(client),
                Some(ClientLimiter::Redis(shared)) if shared.limiter.is_falling_back()
            );
        }
        let _ = client;
        false
    }

    /// Whether `client` was refused because the IP table cannot hold it (every slot of
    /// its set holds a client still refilling), not because it spent its quota: answered
    /// with a 503 that says so, without `RateLimit` fields that would pretend a quota.
    /// Only the in-memory table has slots; Redis keeps every key.
    pub fn untracked(&self, client: Client) -> bool {
        match (self.limiter(client), client) {
            (Some(ClientLimiter::Ips(ips)), Client::Ip(ip)) => {
                !ips.limiter().can_track_at(&ip, ips.clock().now())
            }
            _ => false,
        }
    }

    /// Whether the shared limits answer from their fallback now (any of them).
    pub fn falling_back(&self) -> bool {
        self.fallback_status().iter().any(|s| s.falling_back)
    }

    /// IPs the in-process table can track at once (`usize::MAX` with Redis).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Where the limits live: `memory` or `redis` (even while Redis is out of reach; see
    /// [`ClientLimits::falling_back`]).
    pub fn store_name(&self) -> &'static str {
        store_name(self.store)
    }

    /// Who a request with `api_key` (the `X-Api-Key` field, if any) from `ip` is
    /// charged to.
    ///
    /// # Errors
    ///
    /// A key that is not 1 to [`MAX_KEY_LEN`] visible ASCII characters.
    pub fn identify(&self, api_key: Option<&[u8]>, ip: IpAddr) -> Result<Client, MalformedKey> {
        let Some(raw) = api_key else {
            return Ok(Client::Ip(ip));
        };
        let key = std::str::from_utf8(raw).map_err(|_| MalformedKey)?;
        if !is_well_formed_key(key) {
            return Err(MalformedKey);
        }
        Ok(match self.policies.by_key.get(key) {
            Some(&i) => Client::Key(i),
            None => Client::Ip(ip),
        })
    }

    /// The policy `client` is limited by.
    pub fn policy(&self, client: Client) -> &RateLimitPolicy {
        match client {
            Client::Key(i) => self.policies.keys.get(i).unwrap_or(&self.policies.ip),
            Client::Ip(_) => &self.policies.ip,
        }
    }

    /// Takes one request from `client`'s quota (as the rate limit layer does).
    pub async fn admit(&self, client: Client) -> Result<Admission, RateLimitError> {
        match self.limiter(client) {
            Some(limiter) => limiter.admit(&client, 1).await,
            None => Err(never()),
        }
    }
}

/// Where `store`'s limits live: `memory` or `redis`.
fn store_name(store: Store) -> &'static str {
    match store {
        Store::Local => "memory",
        #[cfg(feature = "redis")]
        Store::Redis { .. } => "redis",
    }
}

/// What the fallback of `store` does, in words (`-` without Redis).
fn fallback_description(store: Store) -> String {
    match store {
        Store::Local => "-".to_owned(),
        #[cfg(feature = "redis")]
        Store::Redis {
            fallback,
            instances,
        } => match fallback {
            RedisFallback::Deny => {
                "--redis-fallback deny: every limited request refused with 503".to_owned()
            }
            RedisFallback::Share => format!(
                "--redis-fallback share: this instance admits 1/{instances} of each quota on its own"
            ),
            RedisFallback::Full => {
                "--redis-fallback full: this instance admits each whole quota on its own".to_owned()
            }
        },
    }
}

/// A refusal for a client index that does not exist (never built by `identify`).
fn never() -> RateLimitError {
    RateLimitError::InsufficientCapacity(stanchion::rate::InsufficientCapacity::new(0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stanchion_std::TokioClock;

    use super::*;
    use crate::service::config::{parse_api_key, parse_quota};

    #[tokio::test(start_paused = true)]
    async fn known_keys_have_their_own_quota_and_invented_keys_share_the_ip_one() {
        let keys = [parse_api_key("alice=a-key:2/1s").unwrap()];
        let limits =
            ClientLimits::local(&keys, parse_quota("3/1s").unwrap(), 1000, TokioClock::new())
                .unwrap();
        assert_eq!(limits.capacity(), 1024);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let alice = limits.identify(Some(b"a-key"), ip).unwrap();
        assert_eq!(alice, Client::Key(0));
        assert_eq!(limits.policy(alice).name, "key-alice");
        assert_eq!(limits.admit(alice).await.unwrap().remaining, 1);
        assert_eq!(limits.admit(alice).await.unwrap().remaining, 0);
        let denied = limits.admit(alice).await.unwrap_err();
        assert_eq!(denied.retry_after(), Some(Duration::from_millis(500)));
        // Three invented keys and a keyless request: one IP quota of 3 between them.
        let mut granted = 0;
        for key in [Some(&b"x1"[..]), Some(b"x2"), None, Some(b"x3")] {
            let client = limits.identify(key, ip).unwrap();
            assert_eq!(client, Client::Ip(ip));
            granted += u32::from(limits.admit(client).await.is_ok());
        }
        assert_eq!(granted, 3);
        assert_eq!(limits.identify(Some(b"has space"), ip), Err(MalformedKey));
        assert_eq!(limits.identify(Some(&[0xff, 0xfe]), ip), Err(MalformedKey));
        assert_eq!(limits.identify(Some(&[b'k'; 129]), ip), Err(MalformedKey));
    }

    #[tokio::test(start_paused = true)]
    async fn each_key_and_the_ips_are_a_tier_with_their_own_policy_and_limiter() {
        let keys = [
            parse_api_key("alice=a-key:2/1s").unwrap(),
            parse_api_key("bob=b-key:5/1m").unwrap(),
        ];
        let limits =
            ClientLimits::local(&keys, parse_quota("3/1s").unwrap(), 256, TokioClock::new())
                .unwrap();
        let tiers = limits.tiers();
        assert_eq!(tiers.len(), 3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        for (client, name, q) in [
            (Client::Key(0), "key-alice", 2),
            (Client::Key(1), "key-bob", 5),
            (Client::Ip(ip), "ip", 3),
        ] {
            let tier = limits.tier(client);
            let policy = tiers.policy(tier).unwrap();
            assert_eq!((policy.name, policy.quota), (name, Some(q)));
            let limiter = tiers.limiter(tier).unwrap();
            assert_eq!(AsyncKeyedRateLimiter::max_acquire(&**limiter), q);
            assert_eq!(
                limiter.admit_now(&client, 1).unwrap().unwrap().remaining,
                q - 1
            );
        }
        // A key that does not exist is charged to the IPs' tier, and never granted.
        assert_eq!(limits.tier(Client::Key(7)), limits.tier(Client::Ip(ip)));
        assert!(limits.admit(Client::Key(7)).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_distinct_ips_cannot_grow_the_table_or_buy_fresh_buckets() {
        let limits =
            ClientLimits::local(&[], parse_quota("1/1h").unwrap(), 256, TokioClock::new()).unwrap();
        assert_eq!(limits.capacity(), 256);
        let mut granted = 0;
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.wrapping_add(0x0a00_0000).to_be_bytes());
            granted += u32::from(limits.admit(Client::Ip(ip)).await.is_ok());
        }
        // At most one bucket per slot; the first 8 IPs always fit (8 slots per set).
        assert!((8..=256).contains(&granted), "{granted} granted");
        // An IP that got its request is still limited after the flood.
        let first = Client::Ip(IpAddr::from(0x0a00_0000u32.to_be_bytes()));
        assert!(limits.admit(first).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn slots_whose_bucket_is_full_again_are_reused() {
        let limits =
            ClientLimits::local(&[], parse_quota("1/1s").unwrap(), 256, TokioClock::new()).unwrap();
        let ip = |i: u32| Client::Ip(IpAddr::from(i.wrapping_add(0x0a00_0000).to_be_bytes()));
        let mut refused = None;
        for i in 0..10_000u32 {
            if let Err(e) = limits.admit(ip(i)).await {
                refused = Some((i, e.retry_after().unwrap()));
                break;
            }
        }
        let (i, wait) = refused.expect("a set filled up");
        assert!(i >= 8, "refused at IP {i}");
        // Refused because its set is full, not because it spent a quota: it has none yet.
        assert!(limits.untracked(ip(i)));
        assert!(
            !limits.untracked(ip(0)),
            "a tracked IP is refused as a spent quota"
        );
        // Once one of its slots is full again, the refused IP takes it.
        tokio::time::advance(wait).await;
        assert!(limits.admit(ip(i)).await.is_ok());
        // A second later every bucket is full again: 8 new IPs always fit.
        tokio::time::advance(Duration::from_secs(1)).await;
        for j in 0..8 {
            assert!(limits.admit(ip(20_000 + j)).await.is_ok());
        }
    }

    #[test]
    fn bad_limits_are_refused_with_a_reason() {
        let q = parse_quota("3/1s").unwrap();
        assert!(
            ClientLimits::local(&[], q, 0, TokioClock::new())
                .unwrap_err()
                .contains("--max-clients")
        );
        let twice = [
            parse_api_key("a=same:1/1s").unwrap(),
            parse_api_key("b=same:1/1s").unwrap(),
        ];
        assert!(
            ClientLimits::local(&twice, q, 10, TokioClock::new())
                .unwrap_err()
                .contains("same secret")
        );
        let same_name = [
            parse_api_key("a=one:1/1s").unwrap(),
            parse_api_key("a=two:1/1s").unwrap(),
        ];
        assert_eq!(
            ClientLimits::local(&same_name, q, 10, TokioClock::new()).unwrap_err(),
            "API key name `a` is given twice"
        );
    }
}
