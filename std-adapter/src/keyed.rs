//! [`ShardedKeyedLimiter`]: one token bucket per key for a server, in shards that many
//! threads can use at once, in memory fixed by configuration.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};

use stanchion::rate::{
    FullTablePolicy, KeyHasher, KeyedRateLimiter, KeyedTokenBucket, Quota, RateLimitError,
    SharedLimiter,
};
use stanchion::{ConfigError, Instant};

use crate::StdRawMutex;

/// A keyed rate limiter (one GCRA token bucket per key, one [`Quota`] for all) split
/// into `shards` independent tables of `N` slots, each behind its own lock.
///
/// # What it does
///
/// A key (any `Hash` type: a client id, an IP address, an API key as `str`) is hashed to
/// a shard with a keyed SipHash whose key differs from the tables' own, and its decision
/// is that shard's [`KeyedTokenBucket`]: the token bucket's exact semantics per key, and
/// the table's rules for a full table ([`FullTablePolicy`]). Threads working on keys of
/// different shards never contend; one shard's lock is held for one decision.
///
/// Memory is `shards * (N * 24 + 64)` bytes or so, fixed at construction, whatever the
/// number of distinct keys seen: size `shards * N` for the keys active within one burst
/// refill time, and pick `shards` around four times the number of threads.
///
/// # When to choose it
///
/// Per-client limits in a multi-threaded server (per API key, per IP), where one table
/// behind one lock would make every request thread queue on that lock. On one thread, or
/// in firmware, core's [`KeyedTokenBucket`] in a [`SharedLimiter`] is the same decision
/// with one hash fewer.
///
/// Implements core's [`KeyedRateLimiter`]; bound to a clock with
/// [`WithClock`](stanchion::rate::WithClock) it is an
/// [`AsyncKeyedRateLimiter`](crate::AsyncKeyedRateLimiter), as the tower layers and the
/// service example take.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use stanchion::rate::{FullTablePolicy, KeyedRateLimiter, Quota, WithClock};
/// use stanchion_std::{AsyncKeyedRateLimiter, ShardedKeyedLimiter, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // 16 shards of 1024 keys: about 400 KB, for up to 16 384 active clients.
/// let table = ShardedKeyedLimiter::<1024>::new(
///     Quota::per_second(5)?,
///     FullTablePolicy::DenyNewKeys,
///     16,
/// )?;
/// assert_eq!(table.capacity(), 16 * 1024);
/// let limiter = WithClock::new(table, TokioClock::new());
/// for _ in 0..5 {
///     limiter.admit("alice", 1).await?;
/// }
/// let denied = limiter.admit("alice", 1).await.unwrap_err();
/// assert_eq!(denied.retry_after(), Some(Duration::from_millis(200)));
/// assert!(limiter.admit("bob", 1).await.is_ok());
/// # Ok(())
/// # }
/// ```
///
/// # Cost
///
/// Per decision: two keyed SipHash-1-3 of the key (one picks the shard, one the slot),
/// one uncontended `std::sync::Mutex` lock and the table's probe of at most 8 slots.
/// Construction allocates the shards once; decisions never allocate.
///
/// # Where it comes from
///
/// Lock striping, as in Java's `ConcurrentHashMap` (before 8) and dashmap (which
/// governor's keyed limiters use), over core's fixed-capacity GCRA table instead of a
/// growing map.
pub struct ShardedKeyedLimiter<const N: usize> {
    shards: Box<[SharedLimiter<StdRawMutex, KeyedTokenBucket<N>>]>,
    shard_key: (u64, u64),
    /// The quota's burst, for `max_acquire` without a shard's lock (the tower layers ask
    /// it on requests whose policy gives no quota).
    burst: AtomicU32,
}

impl<const N: usize> ShardedKeyedLimiter<N> {
    /// The most shards.
    pub const MAX_SHARDS: usize = 1 << 16;

    /// `shards` tables of `N` slots (`N` at least 1), every key with `quota`, `policy`
    /// for a full table, hash keys drawn from the operating system's randomness (as
    /// std's `HashMap` does), so that clients cannot choose colliding keys.
    ///
    /// # Errors
    ///
    /// `shards` outside `1..=65536`, or `N` of 0.
    pub fn new(quota: Quota, policy: FullTablePolicy, shards: usize) -> Result<Self, ConfigError> {
        let random = RandomState::new();
        let key = (random.hash_one(0x5eed_u64), random.hash_one(0xfeed_u64));
        Self::with_hash_key(quota, policy, shards, key)
    }

    /// [`new`](Self::new) with a fixed hash key (for reproducible tests, or a key shared
    /// by a fleet).
    ///
    /// # Errors
    ///
    /// `shards` outside `1..=65536`, or `N` of 0.
    pub fn with_hash_key(
        quota: Quota,
        policy: FullTablePolicy,
        shards: usize,
        hash_key: (u64, u64),
    ) -> Result<Self, ConfigError> {
        if shards == 0 || shards > Self::MAX_SHARDS {
            return Err(ConfigError::new("shards", "in 1..=65536"));
        }
        let mut tables = Vec::with_capacity(shards);
        for _ in 0..shards {
            let table = KeyedTokenBucket::<N>::try_new(quota, policy, hash_key)?;
            tables.push(SharedLimiter::new(table));
        }
        Ok(ShardedKeyedLimiter {
            shards: tables.into_boxed_slice(),
            // A different key from the tables': the shard and the slot in it are then
            // independent, so every slot of every shard is used.
            shard_key: (
                hash_key.0 ^ 0x9E37_79B9_7F4A_7C15,
                hash_key.1.rotate_left(32) ^ 0xC2B2_AE3D_27D4_EB4F,
            ),
            burst: AtomicU32::new(quota.burst()),
        })
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Key slots in all: `shards * N`.
    pub fn capacity(&self) -> usize {
        self.shards.len().saturating_mul(N)
    }

    /// The quota every key has.
    pub fn quota(&self) -> Quota {
        // There is always at least one shard (checked at construction).
        self.shards[0].with(|t| t.quota())
    }

    /// Replaces the quota of every key, keeping each key's state (shard by shard: a
    /// decision in between sees the old quota or the new one, never a mix).
    pub fn set_quota(&self, quota: Quota) {
        for shard in self.shards.iter() {
            shard.with(|t| t.set_quota(quota));
        }
        self.burst.store(quota.burst(), Ordering::Relaxed);
    }

    /// Whether `key`'s shard can hold it at `now` (see core's
    /// [`KeyedTokenBucket::can_track_at`]): `false` when a refusal of `key` means "too many
    /// keys to track" rather than "this key spent its quota".
    pub fn can_track_at<K: Hash + ?Sized>(&self, key: &K, now: Instant) -> bool {
        self.shard(key).with(|t| t.can_track_at(key, now))
    }

    /// Keys whose bucket is not full at `now`, over all shards.
    pub fn active_at(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|s| s.with(|t| t.active_at(now)))
            .sum()
    }

    #[inline]
    fn shard<K: Hash + ?Sized>(&self, key: &K) -> &SharedLimiter<StdRawMutex, KeyedTokenBucket<N>> {
        let mut hasher = KeyHasher::new(self.shard_key.0, self.shard_key.1);
        key.hash(&mut hasher);
        let hash = hasher.finish();
        // The hash scaled into 0..shards, without a division.
        let index = ((u128::from(hash) * self.shards.len() as u128) >> 64) as usize;
        &self.shards[index]
    }
}

impl<K: Hash + ?Sized, const N: usize> KeyedRateLimiter<K> for ShardedKeyedLimiter<N> {
    #[inline]
    fn acquire_at(&self, key: &K, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.shard(key).acquire_at(key, n, now)
    }

    #[inline]
    fn peek_at(&self, key: &K, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.shard(key).peek_at(key, n, now)
    }

    #[inline]
    fn remaining_at(&self, key: &K, now: Instant) -> u32 {
        self.shard(key).remaining_at(key, now)
    }

    #[inline]
    fn max_acquire(&self) -> u32 {
        self.burst.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        for shard in self.shards.iter() {
            KeyedRateLimiter::<K>::reset(shard);
        }
    }
}

impl<const N: usize> fmt::Debug for ShardedKeyedLimiter<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedKeyedLimiter")
            .field("shards", &self.shards.len())
            .field("slots_per_shard", &N)
            .field("quota", &self.quota())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(shards: usize) -> ShardedKeyedLimiter<64> {
        ShardedKeyedLimiter::with_hash_key(
            Quota::per_second(2).unwrap(),
            FullTablePolicy::DenyNewKeys,
            shards,
            (1, 2),
        )
        .unwrap()
    }

    #[test]
    fn configuration_is_checked() {
        let q = Quota::per_second(1).unwrap();
        let p = FullTablePolicy::DenyNewKeys;
        assert_eq!(
            ShardedKeyedLimiter::<8>::new(q, p, 0).unwrap_err(),
            ConfigError::new("shards", "in 1..=65536")
        );
        assert!(ShardedKeyedLimiter::<8>::new(q, p, 65_537).is_err());
        assert_eq!(
            ShardedKeyedLimiter::<0>::new(q, p, 1).unwrap_err(),
            ConfigError::new("N", "at least 1")
        );
        let one = ShardedKeyedLimiter::<8>::new(q, p, 1).unwrap();
        assert_eq!((one.shards(), one.capacity()), (1, 8));
    }

    #[test]
    fn each_key_gets_exactly_its_quota() {
        let l = limiter(8);
        let t = Instant::from_secs(1);
        for key in 0u32..200 {
            assert_eq!(l.remaining_at(&key, t), 2);
            assert!(l.acquire_at(&key, 2, t).is_ok(), "key {key}");
            let denied = l.acquire_at(&key, 1, t).unwrap_err();
            assert_eq!(denied.retry_after(), Some(Duration::from_millis(500)));
            assert!(l.peek_at(&key, 1, t + Duration::from_millis(500)).is_ok());
        }
        assert_eq!(l.active_at(t), 200);
        assert_eq!(KeyedRateLimiter::<u32>::max_acquire(&l), 2);
        assert!(l.acquire_at(&7u32, 3, t).is_err());
        KeyedRateLimiter::<u32>::reset(&l);
        assert_eq!(l.active_at(t), 0);
    }

    #[test]
    fn keys_spread_over_every_shard_and_slot() {
        // 8 shards x 64 slots = 512 slots; 256 distinct keys (half full) all fit. A shard
        // pick correlated with the slot pick (the same hash's high bits) would put every
        // key of a shard into 8 of its 64 slots, and deny most of them.
        let l = limiter(8);
        let t = Instant::from_secs(1);
        let admitted = (0u64..256)
            .filter(|k| l.acquire_at(k, 1, t).is_ok())
            .count();
        assert_eq!(admitted, 256);
        let per_shard: Vec<usize> = l
            .shards
            .iter()
            .map(|s| s.with(|t2| t2.active_at(t)))
            .collect();
        assert!(
            per_shard.iter().all(|&n| (16..=48).contains(&n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn quota_changes_reach_every_shard() {
        let l = limiter(4);
        assert_eq!(KeyedRateLimiter::<str>::max_acquire(&l), 2);
        l.set_quota(Quota::per_second(10).unwrap());
        assert_eq!(l.quota().burst(), 10);
        assert_eq!(KeyedRateLimiter::<str>::max_acquire(&l), 10);
        assert!(l.acquire_at("x", 10, Instant::ZERO).is_ok());
        assert!(format!("{l:?}").contains("shards: 4"));
    }

    #[test]
    fn many_threads_never_exceed_any_quota() {
        let l = limiter(16);
        let t = Instant::from_secs(3);
        let granted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0u64..100)
                            .flat_map(|k| std::iter::repeat_n(k, 3))
                            .filter(|k| l.acquire_at(k, 1, t).is_ok())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        // 100 keys, a burst of 2 each, at one instant: exactly 200 grants, whatever the
        // interleaving.
        assert_eq!(granted, 200);
    }
}
