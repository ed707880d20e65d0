//! The generic cell rate algorithm's arithmetic, shared by [`TokenBucket`],
//! [`LeakyBucket`] and [`KeyedTokenBucket`], and [`QuotaCell`], a quota that can change
//! at runtime while lock-free readers keep reading consistent pairs.
//!
//! [`TokenBucket`]: super::TokenBucket
//! [`LeakyBucket`]: super::LeakyBucket
//! [`KeyedTokenBucket`]: super::KeyedTokenBucket

use crate::sync::{AtomicU32, AtomicU64, Ordering};

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
        let m = match self.tau.checked_div(self.t) {
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
