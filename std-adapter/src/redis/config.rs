//! [`RedisLimiterConfig`] and [`Fallback`]: what a [`RedisRateLimiter`](super::RedisRateLimiter)
//! limits, and what it does when Redis is out of reach.

use std::time::Duration;

use stanchion::ConfigError;
use stanchion::rate::Quota;

/// What a [`RedisRateLimiter`](super::RedisRateLimiter) answers while Redis is unreachable
/// or slower than the call timeout. Each choice fails differently (the worst case of each
/// is in the [module docs](super#failure-accounting)); the default is the safe one,
/// [`Deny`](Fallback::Deny), which never admits more than the quota.
///
/// ```
/// use stanchion_std::redis::Fallback;
///
/// assert_eq!(Fallback::default(), Fallback::Deny);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// Admit every request that could ever fit (fail open). The limit does not hold while
    /// Redis is down; the service stays up. `remaining` is reported as 0, since nothing is
    /// known.
    Allow,
    /// Deny every request (fail closed), with `retry_after` = the time until Redis is
    /// tried again. The limit holds; the service is down for limited callers. The default.
    #[default]
    Deny,
    /// Limit in process: each instance holds `numerator / denominator` of the quota per
    /// key (see [`Quota::share`]), in a table of a fixed number of keys. With
    /// `denominator` = the number of instances, the fleet admits about the quota in all
    /// while Redis is down.
    Local {
        /// The share's numerator, in `1..=denominator`.
        numerator: u32,
        /// The share's denominator, at least 1.
        denominator: u32,
    },
}

/// How a [`RedisRateLimiter`](super::RedisRateLimiter) names key `k` in Redis, which
/// decides its Redis Cluster slot (the slot of a key is the hash of its first `{...}`
/// section, its hash tag, if it has one; of the whole key otherwise). Each decision
/// touches one key, so every choice works on a cluster; the choice only places keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HashTag {
    /// `prefix` + `k`: keys spread over every slot by their whole name (a `{` in the
    /// prefix or the key makes a tag of its own, as Redis reads it).
    #[default]
    None,
    /// `prefix` + `{` + `k` + `}`: the limiter's key for client `k` lives in the slot of
    /// every other key tagged `{k}` (`{customer-42}:profile`), so that a script or
    /// transaction of the application can touch both. The prefix must not hold a `{`: its
    /// tag would win.
    Key,
}

/// The configuration of a [`RedisRateLimiter`](super::RedisRateLimiter).
///
/// ```
/// use std::time::Duration;
/// use stanchion::rate::Quota;
/// use stanchion_std::redis::{Fallback, RedisLimiterConfig};
///
/// let config = RedisLimiterConfig::new(
///     "ratelimit:api:",
///     Quota::per_second(100)?,
///     Fallback::Local { numerator: 1, denominator: 4 },
/// )?
/// .with_call_timeout(Duration::from_millis(20))
/// .with_probe_interval(Duration::from_millis(500));
/// assert_eq!(config.local_quota().map(|q| q.burst()), Some(25));
/// assert!(RedisLimiterConfig::new("", Quota::per_second(1)?, Fallback::Deny).is_err());
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisLimiterConfig {
    key_prefix: String,
    quota: Quota,
    fallback: Fallback,
    local_quota: Option<Quota>,
    hash_tag: HashTag,
    refund_unanswered: bool,
    call_timeout: Duration,
    probe_interval: Duration,
    failures_before_fallback: u32,
}

impl RedisLimiterConfig {
    /// The default bound on one Redis call: 50 ms.
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(50);
    /// The default time between tries of an unreachable Redis: 1 s.
    pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

    /// Limits every key to `quota`, storing key `k` under `key_prefix` followed by `k`
    /// (the prefix must not be empty: it keeps the limiter's keys apart from everything
    /// else in the database), and answers with `fallback` while Redis is out of reach.
    pub fn new(
        key_prefix: impl Into<String>,
        quota: Quota,
        fallback: Fallback,
    ) -> Result<RedisLimiterConfig, ConfigError> {
        let key_prefix = key_prefix.into();
        if key_prefix.is_empty() {
            return Err(ConfigError::new("key_prefix", "not empty"));
        }
        let local_quota = match fallback {
            Fallback::Local {
                numerator,
                denominator,
            } => Some(quota.share(numerator, denominator)?),
            Fallback::Allow | Fallback::Deny => None,
        };
        Ok(RedisLimiterConfig {
            key_prefix,
            quota,
            fallback,
            local_quota,
            hash_tag: HashTag::None,
            refund_unanswered: false,
            call_timeout: Self::DEFAULT_CALL_TIMEOUT,
            probe_interval: Self::DEFAULT_PROBE_INTERVAL,
            failures_before_fallback: 1,
        })
    }

    /// Bounds each Redis call (connecting included) to `timeout` (above zero); a call
    /// that takes longer counts as a failure and is answered by the fallback.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// After Redis failed, answers from the fallback without calling Redis for
    /// `interval` (above zero), then lets one call through to probe it; when the probe
    /// succeeds, every call goes to Redis again.
    pub fn with_probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// Switches to the fallback after `failures` consecutive failed calls (at least 1;
    /// default 1). Each failed call is answered by the fallback either way.
    pub fn with_failures_before_fallback(mut self, failures: u32) -> Self {
        self.failures_before_fallback = failures;
        self
    }

    /// Names key `k` in Redis as `hash_tag` says (default [`HashTag::None`]).
    pub fn with_hash_tag(mut self, hash_tag: HashTag) -> Self {
        self.hash_tag = hash_tag;
        self
    }

    /// Refunds a grant whose reply did not reach the caller in time (default off).
    ///
    /// A call that times out (or whose connection drops) after Redis received it may
    /// still run: the permits are charged, but the caller was answered by the fallback,
    /// so the fleet admits that many fewer on the key until they refill. With refunds,
    /// each decision stores an id with the state it writes, and a
    /// timed-out decision is followed, on the same connection, by a refund that takes its
    /// increment back off the state only if that state is still the one this decision
    /// wrote: nothing was granted on the key after it, and the refund restores exactly the
    /// state before it. Otherwise (a later grant, a denial, a call that never ran) the
    /// refund changes nothing: it never admits more than the quota. The refund is sent
    /// again (a copy finds it done) one call timeout apart until Redis answers, for at
    /// most ten times the larger of the call timeout and the probe interval; a stall
    /// longer than that leaves the permits charged. Cost: a few calls per timed-out
    /// decision, and 17 more bytes a key.
    ///
    /// Every instance of a fleet must run a version that reads states with an id (this
    /// one and later) before one of them turns refunds on.
    pub fn with_refund_unanswered(mut self, refund: bool) -> Self {
        self.refund_unanswered = refund;
        self
    }

    /// Checks the fields the setters took; the error names the first out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hash_tag == HashTag::Key && self.key_prefix.contains('{') {
            return Err(ConfigError::new(
                "key_prefix",
                "no '{' with HashTag::Key (the prefix's tag would place every key)",
            ));
        }
        if self.call_timeout.is_zero() {
            return Err(ConfigError::new("call_timeout", "above zero"));
        }
        if self.probe_interval.is_zero() {
            return Err(ConfigError::new("probe_interval", "above zero"));
        }
        if self.failures_before_fallback == 0 {
            return Err(ConfigError::new("failures_before_fallback", "at least 1"));
        }
        Ok(())
    }

    /// The prefix of every key the limiter stores.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Whether timed-out grants are refunded.
    pub fn refunds_unanswered(&self) -> bool {
        self.refund_unanswered
    }

    /// How keys are named in Redis.
    pub fn hash_tag(&self) -> HashTag {
        self.hash_tag
    }

    /// The Redis key that holds the state of key `key`.
    ///
    /// ```
    /// use stanchion::rate::Quota;
    /// use stanchion_std::redis::{Fallback, HashTag, RedisLimiterConfig};
    ///
    /// let config = RedisLimiterConfig::new("rl:", Quota::per_second(5)?, Fallback::Deny)?;
    /// assert_eq!(config.redis_key("customer-42"), "rl:customer-42");
    /// let tagged = config.with_hash_tag(HashTag::Key);
    /// assert_eq!(tagged.redis_key("customer-42"), "rl:{customer-42}");
    /// # Ok::<(), stanchion::ConfigError>(())
    /// ```
    pub fn redis_key(&self, key: &str) -> String {
        let mut name = String::with_capacity(self.key_prefix.len() + key.len() + 2);
        name.push_str(&self.key_prefix);
        match self.hash_tag {
            HashTag::None => name.push_str(key),
            HashTag::Key => {
                name.push('{');
                name.push_str(key);
                name.push('}');
            }
        }
        name
    }

    /// The quota of each key, shared by every instance.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The policy while Redis is out of reach.
    pub fn fallback(&self) -> Fallback {
        self.fallback
    }

    /// The quota per key of the in-process fallback, for [`Fallback::Local`].
    pub fn local_quota(&self) -> Option<Quota> {
        self.local_quota
    }

    /// The bound on one Redis call.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The time between tries of an unreachable Redis.
    pub fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    /// Consecutive failures before the switch to the fallback.
    pub fn failures_before_fallback(&self) -> u32 {
        self.failures_before_fallback
    }
}
