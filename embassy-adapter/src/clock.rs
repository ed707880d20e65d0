//! [`EmbassyClock`]: core's [`Clock`] over embassy-time's ticks.

use core::time::Duration;

use embassy_time::TICK_HZ;
use stanchion::time::TickRate;
use stanchion::{Clock, Deadline, Instant};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// embassy-time's tick rate, for core's exact conversions (without 64- or 128-bit division
/// routines, which would cost a firmware about a kilobyte of flash).
const RATE: TickRate = match TickRate::hz(TICK_HZ) {
    Ok(rate) => rate,
    Err(_) => panic!("embassy-time's TICK_HZ is above stanchion's TickRate::MAX_HZ"),
};

/// A clock on `embassy_time::Instant`: the tick counter of the firmware's time driver
/// (or of embassy-time's mock driver in tests).
///
/// Its epoch is the driver's: tick zero, usually boot. Ticks are converted to nanoseconds
/// exactly when the tick rate divides 10^9 (1 kHz, 32 kHz, 1 MHz), and rounded down
/// otherwise (32 768 Hz), so that `now` never runs ahead of the driver.
/// [`EmbassyClock::to_embassy`] rounds the other way (up), so a task that sleeps until an
/// instant never wakes before it.
///
/// Cost: a zero-sized type; `now` is one `embassy_time::Instant::now()` and, for tick
/// rates that divide 10^9, one saturating multiplication (otherwise a few steps of long
/// division, see [`TickRate`]).
///
/// ```standalone_crate
/// use stanchion::{Clock, Instant};
/// use stanchion_embassy::EmbassyClock;
/// # let driver = embassy_time::MockDriver::get();
/// # driver.reset();
///
/// let start = EmbassyClock.now();
/// embassy_time::MockDriver::get().advance(embassy_time::Duration::from_millis(5));
/// assert_eq!(EmbassyClock.now() - start, core::time::Duration::from_millis(5));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EmbassyClock;

impl EmbassyClock {
    /// Converts embassy ticks to core's nanoseconds, rounding down and saturating.
    #[inline]
    pub const fn ticks_to_instant(ticks: u64) -> Instant {
        RATE.instant(ticks)
    }

    /// Converts core's nanoseconds to embassy ticks, rounding up (so that sleeping until
    /// the result never wakes early) and saturating.
    #[inline]
    pub const fn instant_to_ticks(t: Instant) -> u64 {
        RATE.ticks_at(t)
    }

    /// The embassy instant at or just after `t` (rounded up to a whole tick), for
    /// `embassy_time::Timer::at`.
    #[inline(never)]
    pub fn to_embassy(t: Instant) -> embassy_time::Instant {
        embassy_time::Instant::from_ticks(Self::instant_to_ticks(t))
    }

    /// The embassy instant of the deadline `budget` from now: `None` where
    /// [`Deadline::after`] gives [`Deadline::NEVER`], else [`to_embassy`](Self::to_embassy)
    /// of it.
    #[inline]
    pub(crate) fn deadline_after(budget: Duration) -> Option<embassy_time::Instant> {
        Self::deadline_ticks(embassy_time::Instant::now().as_ticks(), budget)
            .map(embassy_time::Instant::from_ticks)
    }

    /// The tick of the deadline `budget` after tick `now`, as `deadline_after` says.
    /// When the tick rate divides 10^9 it is computed in ticks: no 64-bit division, and
    /// one multiplication to find whether the deadline in nanoseconds saturates.
    #[inline]
    const fn deadline_ticks(now: u64, budget: Duration) -> Option<u64> {
        if NANOS_PER_SEC.is_multiple_of(TICK_HZ) {
            const K: u64 = NANOS_PER_SEC / TICK_HZ;
            // The deadline in nanoseconds is exactly `t * K + s`: `now * K`, plus the
            // whole seconds (a whole number of ticks each), plus the rest `s`. Any
            // overflow on the way means it saturates: NEVER.
            let Some(secs) = budget.as_secs().checked_mul(TICK_HZ) else {
                return None;
            };
            let Some(t) = now.checked_add(secs) else {
                return None;
            };
            let s = budget.subsec_nanos();
            let Some(tk) = t.checked_mul(K) else {
                return None;
            };
            match tk.checked_add(s as u64) {
                Some(at) if at != u64::MAX => {
                    // `ceil(at / K)`; `K` fits a `u32` (it divides 10^9), and the sum
                    // cannot overflow (`ceil(s / K) <= s`, and `t * K + s` fits).
                    Some(t + s.div_ceil(K as u32) as u64)
                }
                _ => None,
            }
        } else {
            let deadline = Deadline::after(Self::ticks_to_instant(now), budget);
            if deadline.is_never() {
                None
            } else {
                Some(Self::instant_to_ticks(deadline.instant()))
            }
        }
    }

    /// Core's instant for an embassy instant (rounded down to a whole nanosecond).
    #[inline]
    pub fn from_embassy(t: embassy_time::Instant) -> Instant {
        Self::ticks_to_instant(t.as_ticks())
    }
}

impl Clock for EmbassyClock {
    /// Out of line: the driver's read and the conversion are some 80 bytes on a
    /// Cortex-M, and a firmware reads the clock in many places (each runner, each
    /// deadline).
    #[inline(never)]
    fn now(&self) -> Instant {
        Self::from_embassy(embassy_time::Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `deadline_ticks` must equal: the deadline in nanoseconds, then its tick.
    fn reference(now: u64, budget: Duration) -> Option<u64> {
        let deadline = Deadline::after(EmbassyClock::ticks_to_instant(now), budget);
        (!deadline.is_never()).then(|| EmbassyClock::instant_to_ticks(deadline.instant()))
    }

    #[test]
    fn deadline_ticks_agree_with_the_deadline_in_nanoseconds() {
        let k = NANOS_PER_SEC / TICK_HZ;
        let nows = [
            0,
            1,
            7,
            1_000_003,
            u64::MAX / k - 1,
            u64::MAX / k,
            u64::MAX / k + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        let budgets = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(k - 1),
            Duration::from_nanos(k),
            Duration::from_nanos(k + 1),
            Duration::new(3, 999_999_999),
            Duration::from_millis(10),
            Duration::from_nanos(u64::MAX - 1),
            Duration::from_nanos(u64::MAX),
            Duration::new(u64::MAX / 1_000_000_000, 0),
            Duration::MAX,
        ];
        for now in nows {
            for budget in budgets {
                assert_eq!(
                    EmbassyClock::deadline_ticks(now, budget),
                    reference(now, budget),
                    "now {now}, budget {budget:?}"
                );
            }
        }
        // Just before and at the edge where the deadline saturates to NEVER.
        for now in [0, 5, 1_000_000] {
            let left = u64::MAX - now * k;
            let near = [left - k - 1, left - k, left - 2, left - 1, left];
            for budget in near
                .map(Duration::from_nanos)
                .into_iter()
                .chain([Duration::from_nanos(left) + Duration::from_nanos(1)])
            {
                let b = budget.as_nanos();
                assert_eq!(
                    EmbassyClock::deadline_ticks(now, budget),
                    reference(now, budget),
                    "now {now}, budget {b} ns"
                );
            }
        }
    }
}
