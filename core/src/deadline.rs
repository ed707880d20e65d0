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
        if wait.as_nanos() <= left.as_nanos() {
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
}
