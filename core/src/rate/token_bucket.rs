//! [`TokenBucket`]: a token bucket implemented as GCRA, in one atomic word.

use core::time::Duration;

use crate::sync::{AtomicU64, Ordering};
use crate::time::Instant;

use super::gcra::{FRESH, Params, QuotaCell};
use super::{Quota, QuotaChangeConflict, RateLimitError, RateLimiter};

/// A token bucket: at most `burst` permits at once, refilled continuously at one per
/// `period`; implemented as the generic cell rate algorithm (GCRA) on one `u64`.
///
/// # What it does
///
/// The bucket starts full and never holds more than the burst. A request for `n`
/// permits is all or nothing and is granted exactly at the instant all `n` fit
/// (inclusive). `n` above the burst can never succeed
/// ([`InsufficientCapacity`](super::InsufficientCapacity)). A denial changes nothing and
/// says how long until the same request would be granted, to the nanosecond. For the
/// same [`Quota`] and arrivals, every decision and every wait equals
/// [governor](https://docs.rs/governor)'s (its `check_n` on a direct limiter), which the
/// benches crate checks side by side.
///
/// # When to choose it
///
/// The default limiter: smooth (no window boundaries), exact, one word of state, the
/// cheapest per call. Choose a window limiter only when "n per calendar window" is the
/// contract you must honour; choose the [`LeakyBucket`](super::LeakyBucket) to space
/// requests rather than reject them.
///
/// # Example
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{Quota, RateLimitError, TokenBucket};
///
/// // 10 per second, bursts of up to 5.
/// let bucket = TokenBucket::new(Quota::per_second(10)?.with_burst(5)?);
/// let t0 = Instant::from_secs(1);
/// assert!(bucket.acquire_at(5, t0).is_ok()); // the full burst
/// let err = bucket.acquire_at(2, t0).unwrap_err(); // two more: 200 ms of refill
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(200)));
/// assert!(bucket.acquire_at(2, t0 + Duration::from_millis(200)).is_ok()); // inclusive
/// assert!(matches!(
///     bucket.acquire_at(6, t0),
///     Err(RateLimitError::InsufficientCapacity(e)) if e.max() == 5
/// ));
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
///
/// A `static` in firmware:
///
/// ```
/// use stanchion::rate::{Quota, TokenBucket};
///
/// // A bad constant fails the build (see `const_config!`).
/// static UPLINK: TokenBucket = TokenBucket::new(stanchion::const_config!(Quota::per_second(50)));
/// # assert!(UPLINK.acquire_at(1, stanchion::Instant::ZERO).is_ok());
/// ```
///
/// # Sharing
///
/// Shared by `&` across threads, tasks and interrupt handlers through atomics: the whole
/// state is one `u64` (the theoretical arrival time), so a grant is one compare-and-swap
/// loop and a denial writes nothing. The quota can change at runtime through `&self`
/// ([`set_quota`](TokenBucket::set_quota)) without a lock (see its docs).
///
/// With an interrupt handler on a microcontroller: a `static` bucket can be taken from in
/// thread mode and in the handler at once (`acquire_at`, `peek_at`, `remaining_at` and
/// `reset` never wait, so they are fine in a handler; the adapters' async waits are not). The words are 64-bit, which Cortex-M chips
/// emulate: enable this crate's `critical-section` or `single-core` feature (see the crate
/// docs, "Firmware"; a bare-metal build with neither does not compile), and every word
/// stays sound against the handler. The firmware example hammers one bucket from both at
/// once under QEMU, in each set-up.
///
/// # Cost
///
/// 48 bytes: the state word, and the quota in two slots plus a version word. A call is
/// four loads (version, quota pair, version) plus one load and, on a grant, one
/// compare-and-swap, with a handful of integer operations and no division; `remaining`
/// has one division. On targets without 64-bit atomics each 64-bit load or
/// compare-and-swap is emulated by masking interrupts for a few instructions (the
/// `critical-section` or `single-core` feature).
///
/// # Where it comes from
///
/// GCRA, the virtual scheduling algorithm of the ATM Forum's traffic management
/// specification (ITU-T I.371), in the form governor and `redis-cell` use: the state is
/// the theoretical arrival time `tat`; with emission interval `t` (the period) and
/// tolerance `tau = t * (burst - 1)`, `n` permits are granted at `now` iff
/// `now >= tat + (n - 1) * t - tau`, and then `tat = max(tat, now) + n * t`.
#[derive(Debug)]
pub struct TokenBucket {
    tat: AtomicU64,
    params: QuotaCell,
}

const fn params(quota: Quota) -> Params {
    Params {
        t: quota.period_nanos(),
        tau: quota.tolerance_nanos(),
    }
}

impl TokenBucket {
    crate::sync::const_fn_unless_loom! {
        /// A full bucket with `quota`.
        pub fn new(quota: Quota) -> TokenBucket {
            TokenBucket {
                tat: AtomicU64::new(FRESH),
                params: QuotaCell::new(params(quota)),
            }
        }
    }

    /// Takes `n` permits at `now`, all or nothing. `n = 0` is always granted.
    #[inline]
    pub fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        if cfg!(target_os = "none") {
            return self.decide_at(n, now, true);
        }
        if n == 0 {
            return Ok(());
        }
        let p = self.params.load();
        let now = now.as_nanos();
        // Relaxed is enough: the limiter's word is its own, and no other memory is
        // published through it. Coherence of the one location orders the updates.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            // `n = 1`, the common case, skips a multiplication.
            let next = if n == 1 {
                p.decide_one(tat, now)?
            } else {
                p.decide(tat, now, n)?
            };
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// What [`acquire_at`](TokenBucket::acquire_at) would answer, without consuming.
    #[inline]
    pub fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        if cfg!(target_os = "none") {
            return self.decide_at(n, now, false);
        }
        if n == 0 {
            return Ok(());
        }
        let p = self.params.load();
        p.decide(self.tat.load(Ordering::Relaxed), now.as_nanos(), n)
            .map(|_| ())
    }

    /// On firmware (`target_os = "none"`), [`acquire_at`](TokenBucket::acquire_at) and
    /// [`peek_at`](TokenBucket::peek_at) in one function, out of line: the decision for
    /// `n` permits at `now`, taking them if `take`. A waiting runner both peeks and takes,
    /// and one copy of the decision serves both. (Hosts keep the two apart, each with its
    /// own shortcuts; the answers are the same: `decide` for `n = 1` is `decide_one`.)
    #[inline(never)]
    pub(super) fn decide_at(&self, n: u32, now: Instant, take: bool) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        let p = self.params.load();
        let now = now.as_nanos();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = p.decide(tat, now, n)?;
            if !take {
                return Ok(());
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// How many permits one request could take at `now`.
    pub fn remaining_at(&self, now: Instant) -> u32 {
        self.params
            .load()
            .remaining(self.tat.load(Ordering::Relaxed), now.as_nanos())
    }

    /// The time until the bucket is full again, seen from `now` (zero if it is full).
    pub fn time_to_full_at(&self, now: Instant) -> Duration {
        crate::time::duration_from_nanos(
            self.tat
                .load(Ordering::Relaxed)
                .saturating_sub(now.as_nanos()),
        )
    }

    /// Fills the bucket: as if just built.
    pub fn reset(&self) {
        self.tat.store(FRESH, Ordering::Relaxed);
    }

    /// The most permits one request may take ([`Quota::burst`]): a larger `n` is refused
    /// with [`InsufficientCapacity`](super::InsufficientCapacity), never granted. The same
    /// as [`RateLimiter::max_acquire`](super::RateLimiter::max_acquire), without importing
    /// the trait.
    pub fn max_acquire(&self) -> u32 {
        self.params.load().max_n()
    }

    /// The quota in force.
    pub fn quota(&self) -> Quota {
        let p = self.params.load();
        Quota::from_params(p.t, p.max_n())
    }

    /// Replaces the quota, keeping the state: the theoretical arrival time stays, so the
    /// time debt carries over (a full bucket stays full; one that would have been full
    /// again in 300 ms is, under the new quota, full again in 300 ms too, then refills
    /// at the new rate). Decisions already under way finish under the old quota.
    ///
    /// Lock-free and never blocking: decisions on other threads or interrupt handlers
    /// always read a whole quota, old or new. Fails only if another `set_quota` on the
    /// same bucket is in progress at that moment (which then wins).
    pub fn set_quota(&self, quota: Quota) -> Result<(), QuotaChangeConflict> {
        self.params.store(params(quota))
    }
}

impl RateLimiter for TokenBucket {
    #[inline]
    fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        TokenBucket::acquire_at(self, n, now)
    }
    #[inline]
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        TokenBucket::peek_at(self, n, now)
    }
    fn remaining_at(&self, now: Instant) -> u32 {
        TokenBucket::remaining_at(self, now)
    }
    fn max_acquire(&self) -> u32 {
        TokenBucket::max_acquire(self)
    }
    fn reset(&self) {
        TokenBucket::reset(self)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_token_bucket_grants_exactly_the_burst() {
        loom::model(|| {
            let quota = match Quota::per_second(1) {
                Ok(q) => q.with_burst(2).unwrap(),
                Err(e) => panic!("{e}"),
            };
            let bucket = Arc::new(TokenBucket::new(quota));
            let now = Instant::from_secs(1);
            let threads: [_; 2] = core::array::from_fn(|_| {
                let bucket = bucket.clone();
                loom::thread::spawn(move || {
                    let a = bucket.acquire_at(1, now).is_ok() as u32;
                    let b = bucket.acquire_at(1, now).is_ok() as u32;
                    a + b
                })
            });
            let granted: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(granted, 2);
            assert_eq!(bucket.remaining_at(now), 0);
        });
    }

    #[test]
    fn loom_token_bucket_quota_change_during_grants() {
        loom::model(|| {
            let small = Quota::per_second(1).unwrap();
            let large = Quota::per_second(1).unwrap().with_burst(3).unwrap();
            let bucket = Arc::new(TokenBucket::new(small));
            let now = Instant::from_secs(1);
            let writer = {
                let bucket = bucket.clone();
                loom::thread::spawn(move || bucket.set_quota(large).is_ok())
            };
            let mut granted = 0;
            for _ in 0..3 {
                granted += bucket.acquire_at(1, now).is_ok() as u32;
            }
            assert!(writer.join().unwrap());
            // Whole quotas only: at most the larger burst, at least the smaller.
            assert!((1..=3).contains(&granted), "granted {granted}");
        });
    }
}
