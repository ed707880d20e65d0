//! [`EmbassyClock`]: core's [`Clock`] over embassy-time's ticks.

use embassy_time::TICK_HZ;
use stanchion::{Clock, Instant};

const NANOS_PER_SEC: u64 = 1_000_000_000;

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
/// rates that divide 10^9, one saturating multiplication.
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
        if NANOS_PER_SEC % TICK_HZ == 0 {
            Instant::from_nanos(ticks.saturating_mul(NANOS_PER_SEC / TICK_HZ))
        } else {
            let nanos = ticks as u128 * NANOS_PER_SEC as u128 / TICK_HZ as u128;
            Instant::from_nanos(if nanos > u64::MAX as u128 {
                u64::MAX
            } else {
                nanos as u64
            })
        }
    }

    /// Converts core's nanoseconds to embassy ticks, rounding up (so that sleeping until
    /// the result never wakes early) and saturating.
    #[inline]
    pub const fn instant_to_ticks(t: Instant) -> u64 {
        let nanos = t.as_nanos();
        if NANOS_PER_SEC % TICK_HZ == 0 {
            nanos.div_ceil(NANOS_PER_SEC / TICK_HZ)
        } else {
            let ticks = (nanos as u128 * TICK_HZ as u128).div_ceil(NANOS_PER_SEC as u128);
            if ticks > u64::MAX as u128 {
                u64::MAX
            } else {
                ticks as u64
            }
        }
    }

    /// The embassy instant at or just after `t` (rounded up to a whole tick), for
    /// `embassy_time::Timer::at`.
    #[inline]
    pub fn to_embassy(t: Instant) -> embassy_time::Instant {
        embassy_time::Instant::from_ticks(Self::instant_to_ticks(t))
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
