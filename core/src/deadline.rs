//! [`Deadline`]: one time budget that a whole call chain shares.
//!
//! Retry policies, bulkhead waits and the adapters' timeouts all take a `Deadline`, so an
//! operation that retries, waits for a permit and times out per attempt still finishes by
//! the one instant its caller allowed.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::{Deadline, Instant};
//!
//! let now = Instant::from_secs(10);
//! let overall = Deadline::after(now, Duration::from_secs(5));
//! let attempt = Deadline::after(now, Duration::from_secs(2));
//! assert_eq!(overall.earliest(attempt), attempt);
//! assert_eq!(overall.remaining(Instant::from_secs(13)), Duration::from_secs(2));
//! assert!(overall.is_expired(Instant::from_secs(15)));
//! assert!(!Deadline::NEVER.is_expired(Instant::MAX));
//! ```
//!
//! Cost: one [`Instant`] (8 bytes); every operation is a comparison or a saturating
//! subtraction.

use core::time::Duration;

use crate::time::Instant;

/// An instant by which something must be done.
///
/// A deadline is expired at and after its instant (`now >= at`). [`Deadline::NEVER`]
/// never expires: it stands at [`Instant::MAX`], which no clock reaches in 584 years, and
/// is special-cased so that even a clock reading `Instant::MAX` does not expire it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline that never expires.
    pub const NEVER: Deadline = Deadline { at: Instant::MAX };

    /// The deadline `budget` after `now`, saturating at [`Deadline::NEVER`].
    pub const fn after(now: Instant, budget: Duration) -> Deadline {
        Deadline {
            at: now.saturating_add(budget),
        }
    }

    /// The deadline at `at`.
    pub const fn at(at: Instant) -> Deadline {
        Deadline { at }
    }

    /// The instant of the deadline.
    pub const fn instant(self) -> Instant {
        self.at
    }

    /// Whether this is [`Deadline::NEVER`].
    pub const fn is_never(self) -> bool {
        self.at.as_nanos() == u64::MAX
    }

    /// Time left at `now`: zero once expired (and when `now` is past it).
    // On bare metal, one copy (a 64-bit division) serves every caller; hosts inline it.
    #[cfg_attr(target_os = "none", inline(never))]
    pub const fn remaining(self, now: Instant) -> Duration {
        if self.is_never() {
            return Duration::from_nanos(u64::MAX);
        }
        self.at.saturating_duration_since(now)
    }

    /// Whether the deadline has passed at `now` (inclusive: expired at its instant).
    pub const fn is_expired(self, now: Instant) -> bool {
        !self.is_never() && now.as_nanos() >= self.at.as_nanos()
    }

    /// The earlier of two deadlines.
    pub const fn earliest(self, other: Deadline) -> Deadline {
        if self.at.as_nanos() <= other.at.as_nanos() {
            self
        } else {
            other
        }
    }

    /// `wait`, shortened so that waiting from `now` does not pass the deadline.
    pub const fn clamp_wait(self, now: Instant, wait: Duration) -> Duration {
        let left = self.remaining(now);
        // `wait.min(left)`, in a `const fn`: `Duration`s compare by seconds, then by
        // nanoseconds (cheaper than comparing their 128-bit nanosecond counts).
        let (ws, ls) = (wait.as_secs(), left.as_secs());
        if ws < ls || (ws == ls && wait.subsec_nanos() <= left.subsec_nanos()) {
            wait
        } else {
            left
        }
    }
}

impl Default for Deadline {
    /// [`Deadline::NEVER`].
    fn default() -> Self {
        Deadline::NEVER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_inclusive() {
        let d = Deadline::after(Instant::from_secs(1), Duration::from_secs(2));
        assert_eq!(d.instant(), Instant::from_secs(3));
        assert!(!d.is_expired(Instant::from_nanos(2_999_999_999)));
        assert!(d.is_expired(Instant::from_secs(3)));
        assert!(d.is_expired(Instant::MAX));
        assert_eq!(d.remaining(Instant::from_secs(1)), Duration::from_secs(2));
        assert_eq!(d.remaining(Instant::from_secs(3)), Duration::ZERO);
        assert_eq!(d.remaining(Instant::from_secs(99)), Duration::ZERO);
    }

    #[test]
    fn extremes_saturate() {
        assert_eq!(
            Deadline::after(Instant::MAX, Duration::MAX),
            Deadline::NEVER
        );
        assert_eq!(
            Deadline::after(Instant::from_secs(1), Duration::MAX),
            Deadline::NEVER
        );
        assert!(!Deadline::NEVER.is_expired(Instant::MAX));
        assert_eq!(
            Deadline::NEVER.remaining(Instant::MAX),
            Duration::from_nanos(u64::MAX)
        );
        assert_eq!(Deadline::default(), Deadline::NEVER);
        let zero = Deadline::after(Instant::ZERO, Duration::ZERO);
        assert!(zero.is_expired(Instant::ZERO));
        assert_eq!(zero.remaining(Instant::ZERO), Duration::ZERO);
    }

    #[test]
    fn earliest_and_clamp() {
        let a = Deadline::at(Instant::from_secs(5));
        let b = Deadline::at(Instant::from_secs(7));
        assert_eq!(a.earliest(b), a);
        assert_eq!(b.earliest(a), a);
        assert_eq!(a.earliest(Deadline::NEVER), a);
        let now = Instant::from_secs(4);
        assert_eq!(
            a.clamp_wait(now, Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            a.clamp_wait(now, Duration::from_millis(10)),
            Duration::from_millis(10)
        );
        assert_eq!(
            a.clamp_wait(Instant::from_secs(9), Duration::from_secs(1)),
            Duration::ZERO
        );
        assert_eq!(
            Deadline::NEVER.clamp_wait(now, Duration::MAX),
            Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn arithmetic_at_the_extremes() {
        // A deadline that lands exactly on Instant::MAX is NEVER: nothing is later.
        let last = Deadline::after(Instant::from_nanos(u64::MAX - 1), Duration::from_nanos(1));
        assert_eq!(last, Deadline::NEVER);
        assert!(last.is_never());
        assert!(Deadline::at(Instant::MAX).is_never());
        // One nanosecond earlier is an ordinary deadline, expired at its instant.
        let almost = Deadline::at(Instant::from_nanos(u64::MAX - 1));
        assert!(!almost.is_never());
        assert!(!almost.is_expired(Instant::from_nanos(u64::MAX - 2)));
        assert!(almost.is_expired(Instant::from_nanos(u64::MAX - 1)));
        assert!(almost.is_expired(Instant::MAX));
        assert_eq!(
            almost.remaining(Instant::ZERO),
            Duration::from_nanos(u64::MAX - 1)
        );
        assert_eq!(almost.remaining(Instant::MAX), Duration::ZERO);
        assert_eq!(
            almost.clamp_wait(Instant::ZERO, Duration::MAX),
            Duration::from_nanos(u64::MAX - 1)
        );
        // At the epoch.
        let epoch = Deadline::at(Instant::ZERO);
        assert!(epoch.is_expired(Instant::ZERO));
        assert_eq!(epoch.remaining(Instant::ZERO), Duration::ZERO);
        assert_eq!(
            epoch.clamp_wait(Instant::ZERO, Duration::MAX),
            Duration::ZERO
        );
        assert_eq!(epoch.earliest(Deadline::NEVER), epoch);
        // Budgets that overflow nanoseconds, or the instant, saturate to NEVER.
        assert_eq!(
            Deadline::after(Instant::ZERO, Duration::from_secs(u64::MAX)),
            Deadline::NEVER
        );
        assert_eq!(
            Deadline::after(Instant::from_secs(1), Duration::from_nanos(u64::MAX)),
            Deadline::NEVER
        );
        // The largest budget that fits from the epoch.
        assert_eq!(
            Deadline::after(Instant::ZERO, Duration::from_nanos(u64::MAX - 1)).instant(),
            Instant::from_nanos(u64::MAX - 1)
        );
        // Sub-nanosecond parts cannot exist; a zero budget is expired at once.
        let now = Instant::from_secs(7);
        assert!(Deadline::after(now, Duration::ZERO).is_expired(now));
        assert_eq!(Deadline::NEVER.earliest(Deadline::NEVER), Deadline::NEVER);
    }

    #[test]
    fn a_clock_that_steps_back_sees_more_time_left_never_less() {
        let d = Deadline::at(Instant::from_secs(10));
        assert_eq!(d.remaining(Instant::from_secs(8)), Duration::from_secs(2));
        // The clock steps back to 5 s: the remaining time is what the instants say; the
        // deadline itself never moves, so the budget is never extended past it.
        assert_eq!(d.remaining(Instant::from_secs(5)), Duration::from_secs(5));
        assert_eq!(d.instant(), Instant::from_secs(10));
        assert!(!d.is_expired(Instant::from_secs(5)));
    }

    #[test]
    fn ordering_follows_the_instant() {
        let a = Deadline::at(Instant::from_nanos(1));
        let b = Deadline::at(Instant::from_nanos(2));
        assert!(a < b);
        assert!(b < Deadline::NEVER);
        assert_eq!(a.earliest(a), a);
    }

    #[cfg(not(loom))]
    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn instant() -> impl Strategy<Value = Instant> {
            prop_oneof![
                Just(Instant::ZERO),
                Just(Instant::MAX),
                Just(Instant::from_nanos(u64::MAX - 1)),
                any::<u64>().prop_map(Instant::from_nanos),
                (0u64..1_000_000).prop_map(Instant::from_nanos),
            ]
        }

        fn duration() -> impl Strategy<Value = Duration> {
            prop_oneof![
                Just(Duration::ZERO),
                Just(Duration::MAX),
                any::<u64>().prop_map(Duration::from_nanos),
                (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
                (0u64..1_000_000).prop_map(Duration::from_nanos),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(2_000)))]

            #[test]
            fn remaining_expiry_and_clamp_agree(at in instant(), now in instant(), wait in duration()) {
                let d = Deadline::at(at);
                let left = d.remaining(now);
                if d.is_never() {
                    prop_assert!(!d.is_expired(now));
                    prop_assert_eq!(left, Duration::from_nanos(u64::MAX));
                } else {
                    prop_assert_eq!(left, at - now);
                    prop_assert_eq!(d.is_expired(now), left.is_zero());
                    prop_assert_eq!(d.is_expired(now), now >= at);
                }
                let clamped = d.clamp_wait(now, wait);
                prop_assert!(clamped <= wait);
                prop_assert!(clamped <= left);
                prop_assert!(clamped == wait || clamped == left);
                // Waiting the clamped time from now never passes the deadline.
                prop_assert!(now.saturating_add(clamped) <= at || now > at);
            }

            #[test]
            fn after_never_overshoots_the_budget(now in instant(), budget in duration()) {
                let d = Deadline::after(now, budget);
                prop_assert!(d.instant() >= now);
                prop_assert!(d.instant() - now <= budget);
                if !d.is_never() {
                    prop_assert_eq!(d.remaining(now), budget);
                }
            }

            #[test]
            fn earliest_is_the_minimum(a in instant(), b in instant()) {
                let (da, db) = (Deadline::at(a), Deadline::at(b));
                prop_assert_eq!(da.earliest(db), db.earliest(da));
                prop_assert_eq!(da.earliest(db).instant(), a.min(b));
                prop_assert!(da.earliest(db) <= da && da.earliest(db) <= db);
            }
        }
    }
}
