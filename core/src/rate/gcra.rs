//! The generic cell rate algorithm's arithmetic, shared by [`TokenBucket`],
//! [`LeakyBucket`] and [`KeyedTokenBucket`], and [`QuotaCell`], a quota that can change
//! at runtime while lock-free readers keep reading consistent pairs.
//!
//! [`TokenBucket`]: super::TokenBucket
//! [`LeakyBucket`]: super::LeakyBucket
//! [`KeyedTokenBucket`]: super::KeyedTokenBucket

use core::time::Duration;

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::time::Instant;

use super::RateLimitError;

/// The state of a bucket that has never been used (or is full again). Any theoretical
/// arrival time at or before `now` means the same: a full bucket.
pub(crate) const FRESH: u64 = 0;

/// GCRA parameters in nanoseconds: `t`, the emission interval (period per permit), and
/// `tau`, the tolerance (`t * (burst - 1)` for a token bucket, the maximum queue delay
/// for a leaky bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) t: u64,
    pub(crate) tau: u64,
}

impl Params {
    /// The most permits one request may take: `tau / t + 1`, saturating at `u32::MAX`.
    #[inline]
    pub(crate) const fn max_n(self) -> u32 {
        let m = match crate::div::checked_div(self.tau, self.t) {
            Some(m) => m,
            None => 0,
        };
        if m >= u32::MAX as u64 {
            u32::MAX
        } else {
            (m as u32).saturating_add(1)
        }
    }

    /// The decision for `n >= 1` permits at `now` on state `tat`: `Ok(new tat)`, or the
    /// error. Identical to governor's `test_n_all_and_update` for every input that does
    /// not overflow there; here nothing overflows: a grant whose new theoretical arrival
    /// time would pass `u64::MAX` is denied (it could only be granted after the end of
    /// time).
    #[inline]
    pub(crate) const fn decide(self, tat: u64, now: u64, n: u32) -> Result<u64, RateLimitError> {
        // (n - 1) * t <= tau fits u64 whenever n fits at all.
        let extra = match (self.t as u128).checked_mul(n.saturating_sub(1) as u128) {
            Some(e) if e <= self.tau as u128 => e as u64,
            _ => return Err(RateLimitError::too_large(self.max_n())),
        };
        let earliest = tat.saturating_add(extra).saturating_sub(self.tau);
        if now < earliest {
            return Err(RateLimitError::until(earliest, now));
        }
        let start = if tat > now { tat } else { now };
        match start.checked_add(extra) {
            Some(s) => match s.checked_add(self.t) {
                Some(next) => Ok(next),
                None => Err(RateLimitError::until(u64::MAX, now)),
            },
            None => Err(RateLimitError::until(u64::MAX, now)),
        }
    }

    /// [`decide`](Params::decide) for `n = 1`, the common case, without the `n - 1`
    /// multiplication.
    #[inline(always)]
    pub(crate) const fn decide_one(self, tat: u64, now: u64) -> Result<u64, RateLimitError> {
        let earliest = tat.saturating_sub(self.tau);
        if now < earliest {
            return Err(RateLimitError::until(earliest, now));
        }
        let start = if tat > now { tat } else { now };
        match start.checked_add(self.t) {
            Some(next) => Ok(next),
            None => Err(RateLimitError::until(u64::MAX, now)),
        }
    }

    /// How many permits one request could take at `now` on state `tat`.
    #[inline]
    pub(crate) const fn remaining(self, tat: u64, now: u64) -> u32 {
        // n fits iff (n - 1) * t <= now + tau - tat.
        let slack = (now as u128).saturating_add(self.tau as u128);
        if slack < tat as u128 {
            return 0;
        }
        let room = slack.saturating_sub(tat as u128);
        let m = match room.checked_div(self.t as u128) {
            Some(m) => m,
            None => 0,
        };
        let max = self.max_n();
        let n = if m >= u32::MAX as u128 {
            u32::MAX
        } else {
            (m as u32).saturating_add(1)
        };
        let n = if n > max { max } else { n };
        // A grant that would carry the state past the end of time is not available.
        let start = if tat > now { tat } else { now };
        let fit = match u64::MAX.saturating_sub(start).checked_div(self.t) {
            Some(f) => f,
            None => 0,
        };
        if (n as u64) > fit { fit as u32 } else { n }
    }
}

/// GCRA's decision on a state kept elsewhere: the arithmetic of [`TokenBucket`], for a
/// store that holds the theoretical arrival time itself (a Redis key, a database row, a
/// message).
///
/// # What it does
///
/// The state is one [`Instant`], the theoretical arrival time `tat`; a never-used (or
/// full again) bucket is any `tat` at or before `now`, such as [`Instant::ZERO`].
/// [`decide_at`](Gcra::decide_at) answers for `n` permits at `now` exactly as
/// [`TokenBucket::acquire_at`] would on that state, and returns the state to store on a
/// grant; [`remaining_at`](Gcra::remaining_at) and [`time_to_full_at`](Gcra::time_to_full_at)
/// answer the header questions. Nothing here touches memory shared with anyone: storing
/// the new state atomically is the caller's (a compare-and-swap, a script).
///
/// # When to choose it
///
/// When the state cannot live in this process: a limit shared by a fleet (the Redis
/// limiter of `stanchion-std` checks every reply of its server-side script against it), or
/// a state persisted between runs. In process, use [`TokenBucket`].
///
/// # Example
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{Gcra, Quota};
///
/// let gcra = Gcra::new(Quota::per_second(10)?.with_burst(2)?);
/// let now = Instant::from_secs(5);
/// let tat = gcra.decide_at(Instant::ZERO, 2, now)?; // a fresh bucket gives its burst
/// assert_eq!(tat, now + Duration::from_millis(200));
/// assert_eq!(gcra.remaining_at(tat, now), 0);
/// let err = gcra.decide_at(tat, 1, now).unwrap_err();
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(100)));
/// assert_eq!(gcra.time_to_full_at(tat, now), Duration::from_millis(200));
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
///
/// # Cost
///
/// 16 bytes (the period and the tolerance, in nanoseconds); a decision is a handful of
/// integer operations and no division; `remaining_at` has two divisions.
///
/// # Where it comes from
///
/// The same GCRA as [`TokenBucket`] (ITU-T I.371's virtual scheduling algorithm), with the
/// state passed in rather than held.
///
/// [`TokenBucket`]: super::TokenBucket
/// [`TokenBucket::acquire_at`]: super::TokenBucket::acquire_at
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Gcra {
    t: u64,
    tau: u64,
}

impl Gcra {
    /// The decision for `quota`.
    pub const fn new(quota: super::Quota) -> Gcra {
        Gcra {
            t: quota.period_nanos(),
            tau: quota.tolerance_nanos(),
        }
    }

    const fn params(&self) -> Params {
        Params {
            t: self.t,
            tau: self.tau,
        }
    }

    /// The quota this decides for.
    pub const fn quota(&self) -> super::Quota {
        super::Quota::from_params(self.t, self.params().max_n())
    }

    /// The decision for `n` permits at `now` on state `tat`: `Ok(new tat)` to store on a
    /// grant (for `n = 0`, `tat` unchanged), or the error, exactly as
    /// [`TokenBucket::acquire_at`](super::TokenBucket::acquire_at) on that state. A
    /// denial leaves the state as it was: store nothing.
    #[inline]
    pub const fn decide_at(
        &self,
        tat: Instant,
        n: u32,
        now: Instant,
    ) -> Result<Instant, RateLimitError> {
        if n == 0 {
            return Ok(tat);
        }
        match self.params().decide(tat.as_nanos(), now.as_nanos(), n) {
            Ok(next) => Ok(Instant::from_nanos(next)),
            Err(e) => Err(e),
        }
    }

    /// How many permits one request could take at `now` on state `tat`.
    #[inline]
    pub const fn remaining_at(&self, tat: Instant, now: Instant) -> u32 {
        self.params().remaining(tat.as_nanos(), now.as_nanos())
    }

    /// The time until state `tat` is a full bucket again, seen from `now` (zero if it is):
    /// after that, the stored state may be forgotten without changing any decision.
    #[inline]
    pub const fn time_to_full_at(&self, tat: Instant, now: Instant) -> Duration {
        crate::time::duration_from_nanos(tat.as_nanos().saturating_sub(now.as_nanos()))
    }

    /// The largest `n` that can ever be granted at once (the burst).
    #[inline]
    pub const fn max_acquire(&self) -> u32 {
        self.params().max_n()
    }
}

/// A [`Params`] pair that can be replaced at runtime while readers on other threads or
/// in interrupt handlers read it without locking.
///
/// Two slots and a version word: the version's bit 1 selects the active slot and bit 0
/// marks a change in progress. A writer claims bit 0, fills the *inactive* slot, then
/// flips the active bit (a release store). A reader loads the version, the active slot
/// and the version again, and retries if a flip completed in between, which is the only
/// way the slot it read can have changed. A reader never waits for a writer: a writer
/// preempted half-way (by an interrupt handler that reads) has touched only the inactive
/// slot. Two writers at once: the second returns an error rather than wait, so an
/// interrupt handler can never deadlock on a preempted writer.
#[derive(Debug)]
pub(crate) struct QuotaCell {
    version: AtomicU32,
    t: [AtomicU64; 2],
    tau: [AtomicU64; 2],
}

impl QuotaCell {
    crate::sync::const_fn_unless_loom! {
        pub(crate) fn new(p: Params) -> QuotaCell {
            QuotaCell {
                version: AtomicU32::new(0),
                t: [AtomicU64::new(p.t), AtomicU64::new(p.t)],
                tau: [AtomicU64::new(p.tau), AtomicU64::new(p.tau)],
            }
        }
    }

    /// The current parameters, a consistent pair.
    #[inline]
    pub(crate) fn load(&self) -> Params {
        let mut v1 = self.version.load(Ordering::Acquire);
        loop {
            let (t, tau) = if v1 & 2 == 0 {
                (&self.t[0], &self.tau[0])
            } else {
                (&self.t[1], &self.tau[1])
            };
            let p = Params {
                t: t.load(Ordering::Acquire),
                tau: tau.load(Ordering::Acquire),
            };
            let v2 = self.version.load(Ordering::Acquire);
            if v1 | 1 == v2 | 1 {
                return p;
            }
            v1 = v2;
        }
    }

    /// Replaces the parameters; fails if another replacement is in progress.
    pub(crate) fn store(&self, p: Params) -> Result<(), super::QuotaChangeConflict> {
        let v = self.version.load(Ordering::Acquire);
        if v & 1 == 1 {
            return Err(super::QuotaChangeConflict);
        }
        if self
            .version
            .compare_exchange(v, v | 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(super::QuotaChangeConflict);
        }
        let (t, tau) = if v & 2 == 0 {
            (&self.t[1], &self.tau[1])
        } else {
            (&self.t[0], &self.tau[0])
        };
        t.store(p.t, Ordering::Release);
        tau.store(p.tau, Ordering::Release);
        // Flip the active slot and clear the busy bit: v is even, so v + 2 flips bit 1.
        self.version.store(v.wrapping_add(2), Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params { t: 10, tau: 40 }; // burst 5

    #[test]
    fn decide_matches_the_formulas() {
        assert_eq!(P.max_n(), 5);
        assert_eq!(P.decide(FRESH, 100, 5), Ok(150));
        assert_eq!(P.decide(150, 100, 1), Err(RateLimitError::until(110, 100)));
        assert_eq!(P.decide(150, 110, 1), Ok(160));
        assert_eq!(P.decide(FRESH, 0, 6), Err(RateLimitError::too_large(5)));
        assert_eq!(
            P.decide(FRESH, 0, u32::MAX),
            Err(RateLimitError::too_large(5))
        );
        assert_eq!(P.remaining(150, 100), 0);
        assert_eq!(P.remaining(150, 110), 1);
        assert_eq!(P.remaining(150, 139), 3);
        assert_eq!(P.remaining(150, 150), 5);
        assert_eq!(P.remaining(FRESH, 1_000), 5);
    }

    #[test]
    fn end_of_time_is_never_granted_past() {
        let max = u64::MAX;
        assert_eq!(
            P.decide(FRESH, max, 1),
            Err(RateLimitError::until(max, max))
        );
        assert_eq!(P.remaining(FRESH, max), 0);
        assert_eq!(P.decide(FRESH, max - 10, 1), Ok(max));
        assert!(P.decide(max, max, 1).is_err());
        let huge = Params {
            t: u64::MAX,
            tau: u64::MAX,
        };
        assert_eq!(huge.max_n(), 2);
        assert_eq!(huge.decide(FRESH, 0, 1), Ok(u64::MAX));
        assert_eq!(huge.decide(FRESH, 0, 2), Err(RateLimitError::until(max, 0)));
        assert_eq!(huge.remaining(FRESH, 0), 1);
    }

    #[test]
    fn gcra_decides_as_the_token_bucket_on_an_outside_state() {
        use super::super::{Quota, TokenBucket};
        let quota = Quota::per_second(10).unwrap().with_burst(3).unwrap();
        let gcra = Gcra::new(quota);
        assert_eq!(gcra.quota(), quota);
        assert_eq!(gcra.max_acquire(), 3);
        let bucket = TokenBucket::new(quota);
        let mut tat = Instant::ZERO;
        // A fixed, varied schedule of (ms, n), including n = 0, n above the burst and a
        // clock that steps back.
        let arrivals = [
            (1_000, 2),
            (1_000, 2),
            (1_050, 1),
            (1_100, 1),
            (1_090, 1),
            (1_100, 0),
            (1_200, 4),
            (1_500, 3),
            (1_800, 3),
            (5_000, 3),
            (5_000, 1),
        ];
        let mut granted = 0;
        for (ms, n) in arrivals {
            let now = Instant::from_millis(ms);
            let expected = bucket.acquire_at(n, now);
            let got = gcra.decide_at(tat, n, now);
            assert_eq!(got.map(|_| ()), expected, "at {ms} ms, n = {n}");
            if let Ok(next) = got {
                tat = next;
                granted += n;
            }
            assert_eq!(gcra.remaining_at(tat, now), bucket.remaining_at(now));
            assert_eq!(gcra.time_to_full_at(tat, now), bucket.time_to_full_at(now));
        }
        assert_eq!(granted, 2 + 1 + 1 + 3 + 3 + 3);
        assert_eq!(gcra.decide_at(tat, 0, Instant::ZERO), Ok(tat));
    }

    #[test]
    fn quota_cell_swaps_pairs() {
        let cell = QuotaCell::new(P);
        assert_eq!(cell.load(), P);
        let q = Params { t: 1, tau: 2 };
        assert_eq!(cell.store(q), Ok(()));
        assert_eq!(cell.load(), q);
        assert_eq!(cell.store(P), Ok(()));
        assert_eq!(cell.load(), P);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_quota_cell_readers_see_whole_pairs() {
        loom::model(|| {
            let a = Params { t: 1, tau: 10 };
            let b = Params { t: 2, tau: 20 };
            let c = Params { t: 3, tau: 30 };
            let cell = Arc::new(QuotaCell::new(a));
            let writer = {
                let cell = cell.clone();
                loom::thread::spawn(move || {
                    assert_eq!(cell.store(b), Ok(()));
                    assert_eq!(cell.store(c), Ok(()));
                })
            };
            let p = cell.load();
            assert!(p == a || p == b || p == c, "torn read {p:?}");
            writer.join().unwrap();
            assert_eq!(cell.load(), c);
        });
    }

    #[test]
    fn loom_quota_cell_concurrent_writers_one_wins_whole() {
        loom::model(|| {
            let a = Params { t: 1, tau: 10 };
            let b = Params { t: 2, tau: 20 };
            let c = Params { t: 3, tau: 30 };
            let cell = Arc::new(QuotaCell::new(a));
            let other = {
                let cell = cell.clone();
                loom::thread::spawn(move || cell.store(b).is_ok())
            };
            let mine = cell.store(c).is_ok();
            let theirs = other.join().unwrap();
            assert!(mine || theirs);
            let p = cell.load();
            assert!(p == b || p == c, "torn or lost {p:?}");
        });
    }
}
