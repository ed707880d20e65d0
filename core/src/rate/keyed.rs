//! [`KeyedTokenBucket`]: one GCRA token bucket per key, in a fixed-capacity table.

use core::hash::{Hash, Hasher};

use crate::error::ConfigError;
use crate::sync::RawMutex;
use crate::time::Instant;

use super::gcra::{FRESH, Params};
use super::{Quota, RateLimitError, SharedLimiter};

/// What a [`KeyedTokenBucket`] does with a new key when every slot it could take holds a
/// key whose bucket is not yet full again.
///
/// Slots whose bucket is full again (state equal to a fresh key's) are always reused
/// first: that changes no decision. Only when none is left does the policy apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum FullTablePolicy {
    /// Deny the new key, with `retry_after` = the time until one of its candidate slots
    /// is full again. Never admits more than the quota for any key, at the price of
    /// refusing new keys under a flood of distinct keys. The default: it fails closed.
    #[default]
    DenyNewKeys,
    /// Evict the least recently used of the candidate slots. New keys are always served,
    /// but the evicted key comes back to a full bucket: it may get up to one extra burst.
    EvictLeastRecentlyUsed,
}

/// SipHash-1-3 with a 128-bit key: the hasher of [`KeyedTokenBucket`] (the same function
/// as std's `HashMap` default, without `std`).
///
/// With a secret, random key, an attacker cannot choose keys that collide, in the table
/// or in the stored 64-bit tags. The key is the caller's to choose (no `std`, so no
/// randomness here): derive it from a hardware RNG or `getrandom` at start-up. With a
/// fixed or guessable key, an attacker who can choose keys can crowd one probe window
/// (degrading that window to the [`FullTablePolicy`]) but still needs about 2^32 tries
/// to find two keys with the same 64-bit tag.
#[derive(Clone, Debug)]
pub struct KeyHasher {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
    tail: u64,
    tail_bits: u32,
    length: u64,
}

impl KeyHasher {
    /// A hasher keyed with `(k0, k1)`.
    pub const fn new(k0: u64, k1: u64) -> KeyHasher {
        KeyHasher {
            v0: k0 ^ 0x736f_6d65_7073_6575,
            v1: k1 ^ 0x646f_7261_6e64_6f6d,
            v2: k0 ^ 0x6c79_6765_6e65_7261,
            v3: k1 ^ 0x7465_6462_7974_6573,
            tail: 0,
            tail_bits: 0,
            length: 0,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    #[inline(always)]
    fn compress<const C: usize>(&mut self, m: u64) {
        self.v3 ^= m;
        for _ in 0..C {
            self.round();
        }
        self.v0 ^= m;
    }

    #[inline]
    fn write_with<const C: usize>(&mut self, bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len() as u64);
        let mut rest = bytes;
        if self.tail_bits == 0 {
            let mut chunks = rest.chunks_exact(8);
            for chunk in &mut chunks {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                self.compress::<C>(u64::from_le_bytes(word));
            }
            rest = chunks.remainder();
        }
        for &b in rest {
            self.tail |= (b as u64).wrapping_shl(self.tail_bits);
            self.tail_bits = self.tail_bits.wrapping_add(8);
            if self.tail_bits == 64 {
                let m = self.tail;
                self.compress::<C>(m);
                self.tail = 0;
                self.tail_bits = 0;
            }
        }
    }

    #[inline]
    fn finish_with<const C: usize, const D: usize>(&self) -> u64 {
        let mut s = self.clone();
        let b = (self.length & 0xff).wrapping_shl(56) | self.tail;
        s.compress::<C>(b);
        s.v2 ^= 0xff;
        for _ in 0..D {
            s.round();
        }
        s.v0 ^ s.v1 ^ s.v2 ^ s.v3
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.write_with::<1>(bytes);
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        if self.tail_bits == 0 {
            self.length = self.length.wrapping_add(8);
            self.compress::<1>(x.to_le());
        } else {
            self.write(&x.to_le_bytes());
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.finish_with::<1, 3>()
    }
}

/// One key's slot: its 64-bit tag (0 = never used), its theoretical arrival time, and
/// when it was last used (for [`FullTablePolicy::EvictLeastRecentlyUsed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Slot {
    tag: u64,
    tat: u64,
    used: u64,
}

const EMPTY: Slot = Slot {
    tag: 0,
    tat: FRESH,
    used: 0,
};

/// How many consecutive slots, from the key's home slot, a key may occupy.
const PROBE: usize = 8;

/// A token bucket per key, with the [`TokenBucket`](super::TokenBucket)'s exact
/// semantics for each key, in a table of `N` slots fixed at compile time.
///
/// # What it does
///
/// Each key (any `Hash` type, including unsized ones such as `str` or `[u8]`) gets its
/// own GCRA bucket with one shared [`Quota`]. A key never seen, or whose bucket is full
/// again, behaves as a full bucket. Keys are hashed with [`KeyHasher`] (keyed SipHash-1-3)
/// to a 64-bit tag and a home slot; a key lives in one of the [`PROBE`](Self::PROBE_WINDOW)
/// slots from its home. The table stores tags, not keys: two distinct keys with the same
/// 64-bit tag (odds 2^-64 per pair with a secret hasher key) would share one bucket,
/// which can only deny more, never admit more.
///
/// A new key takes, in order: a never-used slot, or a slot whose bucket is full again
/// (evicting it changes no decision); otherwise the [`FullTablePolicy`] decides. Memory
/// is `N` slots, whatever the number of distinct keys seen.
///
/// # When to choose it
///
/// Per client, per IP, per API key limits on a device or in a service, when memory must
/// be bounded up front (a flood of spoofed keys cannot grow it) and size the table for
/// the number of keys active within one burst refill time.
///
/// # Example
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{FullTablePolicy, KeyedTokenBucket, Quota};
///
/// let mut limiter: KeyedTokenBucket<1024> = KeyedTokenBucket::new(
///     Quota::per_second(2)?,
///     FullTablePolicy::DenyNewKeys,
///     (0x5eed, 0xfeed), // take it from an RNG in production
/// );
/// let t = Instant::from_secs(1);
/// assert!(limiter.acquire_at("alice", 2, t).is_ok());
/// assert!(limiter.acquire_at("bob", 2, t).is_ok()); // separate buckets
/// let err = limiter.acquire_at("alice", 1, t).unwrap_err();
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
/// assert_eq!(KeyedTokenBucket::<1024>::BYTES_PER_KEY, 24);
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
///
/// # Sharing
///
/// A plain `&mut self` state machine (a table does not fit one word); share it with
/// [`SharedLimiter`], which implements [`KeyedRateLimiter`].
///
/// # Cost
///
/// [`BYTES_PER_KEY`](Self::BYTES_PER_KEY) = 24 bytes per slot, `24 * N + 32` in all. A
/// call hashes the key (SipHash-1-3: one round per 8 bytes, three to finish), then scans
/// at most 8 consecutive slots (up to the first never-used one), with no division.
///
/// # Where it comes from
///
/// GCRA per key as in governor's keyed limiters, in a bounded open-addressing table with
/// a probe window (as in hopscotch hashing) instead of a growing map; SipHash-1-3 as in
/// Rust's standard `HashMap`.
#[derive(Clone, Debug)]
pub struct KeyedTokenBucket<const N: usize> {
    slots: [Slot; N],
    params: Params,
    policy: FullTablePolicy,
    hash_key: (u64, u64),
}

/// Where a key is, or could go.
enum Lookup {
    /// The key's slot, and its state.
    Found(usize, u64),
    /// A slot the key can take without evicting anything that matters.
    Free(usize),
    /// Every candidate slot is busy: the least recently used one, and the earliest
    /// instant at which any of them is full again.
    Full { lru: usize, free_at: u64 },
}

impl<const N: usize> KeyedTokenBucket<N> {
    /// Bytes per key slot.
    pub const BYTES_PER_KEY: usize = core::mem::size_of::<Slot>();

    /// How many consecutive slots from its home slot a key may take.
    pub const PROBE_WINDOW: usize = if N < PROBE { N } else { PROBE };

    /// An empty table of `N` slots (`N` at least 1: checked at compile time) with one
    /// `quota` for every key, the `policy` for a full table, and the hasher's key.
    pub const fn new(quota: Quota, policy: FullTablePolicy, hash_key: (u64, u64)) -> Self {
        const { assert!(N > 0, "a KeyedTokenBucket needs N >= 1 slots") };
        KeyedTokenBucket {
            slots: [EMPTY; N],
            params: Params {
                t: quota.period_nanos(),
                tau: quota.tolerance_nanos(),
            },
            policy,
            hash_key,
        }
    }

    /// [`new`](Self::new), with `N` checked at run time instead.
    pub const fn try_new(
        quota: Quota,
        policy: FullTablePolicy,
        hash_key: (u64, u64),
    ) -> Result<Self, ConfigError> {
        if N == 0 {
            return Err(ConfigError::new("N", "at least 1"));
        }
        Ok(KeyedTokenBucket {
            slots: [EMPTY; N],
            params: Params {
                t: quota.period_nanos(),
                tau: quota.tolerance_nanos(),
            },
            policy,
            hash_key,
        })
    }

    /// The quota every key has.
    pub const fn quota(&self) -> Quota {
        Quota::from_params(self.params.t, self.params.max_n())
    }

    /// Replaces the quota for every key, keeping each key's state (see
    /// [`TokenBucket::set_quota`](super::TokenBucket::set_quota)).
    pub fn set_quota(&mut self, quota: Quota) {
        self.params = Params {
            t: quota.period_nanos(),
            tau: quota.tolerance_nanos(),
        };
    }

    /// The full-table policy.
    pub const fn policy(&self) -> FullTablePolicy {
        self.policy
    }

    /// Replaces the full-table policy.
    pub fn set_policy(&mut self, policy: FullTablePolicy) {
        self.policy = policy;
    }

    /// The number of slots (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// How many keys hold a bucket that is not full at `now` (the others' slots are
    /// free to reuse).
    pub fn active_at(&self, now: Instant) -> usize {
        let now = now.as_nanos();
        self.slots
            .iter()
            .filter(|s| s.tag != 0 && s.tat > now)
            .count()
    }

    #[inline]
    fn tag<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        let mut h = KeyHasher::new(self.hash_key.0, self.hash_key.1);
        key.hash(&mut h);
        match h.finish() {
            0 => 1,
            t => t,
        }
    }

    #[inline]
    fn lookup(&self, tag: u64, now: u64) -> Lookup {
        // Home slot: the tag scaled into 0..N (no division).
        let home = ((tag as u128).wrapping_mul(N as u128)).wrapping_shr(64) as usize;
        let mut free = None;
        let mut lru = home;
        let mut lru_used = u64::MAX;
        let mut free_at = u64::MAX;
        let mut idx = home;
        for _ in 0..Self::PROBE_WINDOW {
            let Some(slot) = self.slots.get(idx) else {
                break;
            };
            if slot.tag == tag {
                return Lookup::Found(idx, slot.tat);
            }
            if slot.tag == 0 {
                // Slots are never emptied (only reused), so the key is not further on.
                return Lookup::Free(free.unwrap_or(idx));
            }
            if slot.tat <= now {
                if free.is_none() {
                    free = Some(idx);
                }
            } else {
                if slot.used < lru_used {
                    lru_used = slot.used;
                    lru = idx;
                }
                if slot.tat < free_at {
                    free_at = slot.tat;
                }
            }
            idx = idx.wrapping_add(1);
            if idx >= N {
                idx = 0;
            }
        }
        match free {
            Some(i) => Lookup::Free(i),
            None => Lookup::Full { lru, free_at },
        }
    }

    /// The decision for `key` without writing: where to write, and the new state.
    #[inline]
    fn decide<K: Hash + ?Sized>(
        &self,
        key: &K,
        n: u32,
        now: u64,
    ) -> Result<(usize, u64, u64), RateLimitError> {
        let tag = self.tag(key);
        match self.lookup(tag, now) {
            Lookup::Found(i, tat) => self.params.decide(tat, now, n).map(|next| (i, tag, next)),
            Lookup::Free(i) => self.params.decide(FRESH, now, n).map(|next| (i, tag, next)),
            Lookup::Full { lru, free_at } => {
                let next = self.params.decide(FRESH, now, n)?;
                match self.policy {
                    FullTablePolicy::DenyNewKeys => Err(RateLimitError::until(free_at, now)),
                    FullTablePolicy::EvictLeastRecentlyUsed => Ok((lru, tag, next)),
                }
            }
        }
    }

    /// Takes `n` permits for `key` at `now`, all or nothing. `n = 0` is always granted
    /// and takes no slot.
    pub fn acquire_at<K: Hash + ?Sized>(
        &mut self,
        key: &K,
        n: u32,
        now: Instant,
    ) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        let now = now.as_nanos();
        let (i, tag, tat) = self.decide(key, n, now)?;
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Slot {
                tag,
                tat,
                used: now,
            };
        }
        Ok(())
    }

    /// What [`acquire_at`](Self::acquire_at) would answer, without consuming.
    pub fn peek_at<K: Hash + ?Sized>(
        &self,
        key: &K,
        n: u32,
        now: Instant,
    ) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        self.decide(key, n, now.as_nanos()).map(|_| ())
    }

    /// Whether the table can hold `key` at `now`: it has a slot, or can take one (never
    /// used, or holding a bucket that is full again), or the policy evicts to make room.
    /// `false` only when [`FullTablePolicy::DenyNewKeys`] would refuse `key` whatever its
    /// quota: then a refusal means "too many keys to track", not "this key spent its
    /// quota", which [`acquire_at`](Self::acquire_at)'s error alone cannot tell apart.
    pub fn can_track_at<K: Hash + ?Sized>(&self, key: &K, now: Instant) -> bool {
        self.policy == FullTablePolicy::EvictLeastRecentlyUsed
            || !matches!(
                self.lookup(self.tag(key), now.as_nanos()),
                Lookup::Full { .. }
            )
    }

    /// How many permits `key` could take at `now` (0 if it is a new key that the
    /// [`FullTablePolicy::DenyNewKeys`] policy would refuse).
    pub fn remaining_at<K: Hash + ?Sized>(&self, key: &K, now: Instant) -> u32 {
        let now = now.as_nanos();
        match self.lookup(self.tag(key), now) {
            Lookup::Found(_, tat) => self.params.remaining(tat, now),
            Lookup::Free(_) => self.params.remaining(FRESH, now),
            Lookup::Full { .. } => match self.policy {
                FullTablePolicy::DenyNewKeys => 0,
                FullTablePolicy::EvictLeastRecentlyUsed => self.params.remaining(FRESH, now),
            },
        }
    }

    /// The most permits one request can take (the burst).
    pub const fn max_acquire(&self) -> u32 {
        self.params.max_n()
    }

    /// Forgets every key.
    pub fn reset(&mut self) {
        self.slots = [EMPTY; N];
    }
}

/// A keyed rate limiter shared by `&`: the interface that keyed adapters (a tower layer
/// keyed by client) are written against. Like [`RateLimiter`](super::RateLimiter), per
/// key.
pub trait KeyedRateLimiter<K: ?Sized> {
    /// Takes `n` permits for `key` at `now`, all or nothing.
    fn acquire_at(&self, key: &K, n: u32, now: Instant) -> Result<(), RateLimitError>;
    /// What `acquire_at` would answer, without consuming.
    fn peek_at(&self, key: &K, n: u32, now: Instant) -> Result<(), RateLimitError>;
    /// How many permits `key` could take at `now`.
    fn remaining_at(&self, key: &K, now: Instant) -> u32;
    /// The most permits one request can take.
    fn max_acquire(&self) -> u32;
    /// Forgets every key.
    fn reset(&self);
}

impl<M: RawMutex, K: Hash + ?Sized, const N: usize> KeyedRateLimiter<K>
    for SharedLimiter<M, KeyedTokenBucket<N>>
{
    #[inline]
    fn acquire_at(&self, key: &K, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.with(|s| s.acquire_at(key, n, now))
    }
    #[inline]
    fn peek_at(&self, key: &K, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.with(|s| s.peek_at(key, n, now))
    }
    fn remaining_at(&self, key: &K, now: Instant) -> u32 {
        self.with(|s| s.remaining_at(key, now))
    }
    fn max_acquire(&self) -> u32 {
        self.with(|s| s.max_acquire())
    }
    fn reset(&self) {
        self.with(|s| s.reset())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn sip24(k0: u64, k1: u64, data: &[u8]) -> u64 {
        let mut h = KeyHasher::new(k0, k1);
        h.write_with::<2>(data);
        h.finish_with::<2, 4>()
    }

    #[test]
    #[allow(deprecated)]
    fn siphash_rounds_match_std_siphash24() {
        // The round function and padding are SipHash's: checked in its 2-4 variant
        // against std's implementation, for every length across two blocks.
        let data: std::vec::Vec<u8> = (0u8..40).collect();
        for len in 0..data.len() {
            let mut reference = std::hash::SipHasher::new_with_keys(7, 0x0123_4567_89ab_cdef);
            reference.write(&data[..len]);
            assert_eq!(
                sip24(7, 0x0123_4567_89ab_cdef, &data[..len]),
                reference.finish(),
                "len {len}"
            );
        }
        // Split writes hash like one write.
        let mut a = KeyHasher::new(1, 2);
        a.write(&data[..3]);
        a.write(&data[3..20]);
        a.write_u64(99);
        let mut b = KeyHasher::new(1, 2);
        b.write(&data[..20]);
        b.write(&99u64.to_le_bytes());
        assert_eq!(a.finish(), b.finish());
        let mut c = KeyHasher::new(1, 2);
        c.write_u64(99);
        let mut d = KeyHasher::new(1, 2);
        d.write(&99u64.to_le_bytes());
        assert_eq!(c.finish(), d.finish());
        assert_ne!(KeyHasher::new(1, 2).finish(), KeyHasher::new(1, 3).finish());
    }
}
