//! Time as core sees it: an [`Instant`] is a count of nanoseconds since a clock's own
//! epoch, and spans are [`core::time::Duration`].
//!
//! Every operation here either saturates or is `checked_*`: no input, however extreme
//! (`u64::MAX`, a clock that steps backwards, a ten-year jump, a `Duration` of
//! `u64::MAX` seconds), panics, overflows or wraps. Where a result must be rounded, the
//! rounding is stated and chosen so that a waiting caller never wakes too early.

use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};
use core::time::Duration;

use crate::div::{checked_div, checked_div_rem, div_rem_nonzero};

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A point in time: nanoseconds since the epoch of the [`Clock`](crate::Clock) that read it.
///
/// Instants from different clocks are not comparable; an `Instant` carries no clock
/// identity, so keeping them apart is the caller's job (as with `std::time::Instant`
/// across processes). The range is `0..=u64::MAX` nanoseconds, about 584 years.
///
/// All arithmetic saturates at `Instant::ZERO` and `Instant::MAX`, or is `checked_*`
/// when the caller needs to know. Subtracting a later instant from an earlier one gives
/// [`Duration::ZERO`], never the absolute difference: a clock that steps backwards looks
/// like no time passed.
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
///
/// let t = Instant::from_secs(5);
/// assert_eq!(t + Duration::from_millis(1500), Instant::from_millis(6_500));
/// assert_eq!(Instant::from_secs(3) - t, Duration::ZERO); // earlier minus later saturates
/// assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
/// assert_eq!(t.checked_add(Duration::MAX), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The clock's epoch.
    pub const ZERO: Instant = Instant { nanos: 0 };
    /// The last representable instant, `u64::MAX` nanoseconds after the epoch.
    pub const MAX: Instant = Instant { nanos: u64::MAX };

    /// The instant `nanos` nanoseconds after the epoch.
    #[inline]
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant { nanos }
    }

    /// The instant `micros` microseconds after the epoch, saturating at [`Instant::MAX`].
    #[inline]
    pub const fn from_micros(micros: u64) -> Instant {
        Instant::from_nanos(micros.saturating_mul(NANOS_PER_MICRO))
    }

    /// The instant `millis` milliseconds after the epoch, saturating at [`Instant::MAX`].
    #[inline]
    pub const fn from_millis(millis: u64) -> Instant {
        Instant::from_nanos(millis.saturating_mul(NANOS_PER_MILLI))
    }

    /// The instant `secs` seconds after the epoch, saturating at [`Instant::MAX`].
    #[inline]
    pub const fn from_secs(secs: u64) -> Instant {
        Instant::from_nanos(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// Whole microseconds since the epoch (rounded down).
    #[inline]
    pub const fn as_micros(self) -> u64 {
        whole(self.nanos, NANOS_PER_MICRO)
    }

    /// Whole milliseconds since the epoch (rounded down).
    #[inline]
    pub const fn as_millis(self) -> u64 {
        whole(self.nanos, NANOS_PER_MILLI)
    }

    /// Whole seconds since the epoch (rounded down).
    #[inline]
    pub const fn as_secs(self) -> u64 {
        whole(self.nanos, NANOS_PER_SEC)
    }

    /// The span since the epoch.
    #[inline]
    pub const fn since_epoch(self) -> Duration {
        duration_from_nanos(self.nanos)
    }

    /// `self + d`, or `None` if that is past [`Instant::MAX`].
    #[inline]
    pub const fn checked_add(self, d: Duration) -> Option<Instant> {
        match duration_to_nanos(d) {
            Some(n) => match self.nanos.checked_add(n) {
                Some(nanos) => Some(Instant { nanos }),
                None => None,
            },
            None => None,
        }
    }

    /// `self - d`, or `None` if that is before [`Instant::ZERO`].
    #[inline]
    pub const fn checked_sub(self, d: Duration) -> Option<Instant> {
        match duration_to_nanos(d) {
            Some(n) => match self.nanos.checked_sub(n) {
                Some(nanos) => Some(Instant { nanos }),
                None => None,
            },
            None => None,
        }
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    // On bare metal one copy (a 64x32-bit multiplication with its checks) serves every
    // caller, which saves flash; hosts inline it.
    #[cfg_attr(not(target_os = "none"), inline)]
    #[cfg_attr(target_os = "none", inline(never))]
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant {
            nanos: self.nanos.saturating_add(duration_to_nanos_saturating(d)),
        }
    }

    /// `self - d`, saturating at [`Instant::ZERO`].
    #[inline]
    pub const fn saturating_sub(self, d: Duration) -> Instant {
        Instant {
            nanos: self.nanos.saturating_sub(duration_to_nanos_saturating(d)),
        }
    }

    /// The span from `earlier` to `self`, or `None` if `earlier` is later than `self`.
    #[inline]
    pub const fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        match self.nanos.checked_sub(earlier.nanos) {
            Some(n) => Some(duration_from_nanos(n)),
            None => None,
        }
    }

    /// The span from `earlier` to `self`, or [`Duration::ZERO`] if `earlier` is later.
    ///
    /// This is what `self - earlier` computes: time that ran backwards counts as none.
    #[inline]
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        duration_from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }

    /// The later of two instants.
    #[inline]
    pub const fn max(self, other: Instant) -> Instant {
        if self.nanos >= other.nanos {
            self
        } else {
            other
        }
    }

    /// The earlier of two instants.
    #[inline]
    pub const fn min(self, other: Instant) -> Instant {
        if self.nanos <= other.nanos {
            self
        } else {
            other
        }
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({:?})", ShowDuration(self.since_epoch()))
    }
}

/// A [`Duration`] printed as core's `Debug` prints it without flags (`30s`, `1.5s`,
/// `15.000001ms`, `250µs`, `7ns`), in a fraction of its code: core's also handles width,
/// precision and rounding, about 2 KB of flash on a Cortex-M. stanchion's types print
/// their durations with it (`Debug` and `Display`); width and precision flags are ignored.
#[derive(Clone, Copy)]
pub(crate) struct ShowDuration(pub(crate) Duration);

impl fmt::Debug for ShowDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        // The whole part, the fraction and its number of digits, and the unit.
        let (whole, fraction, digits, unit) = if secs > 0 {
            (secs, nanos, 9u32, "s")
        } else if nanos >= 1_000_000 {
            (u64::from(nanos / 1_000_000), nanos % 1_000_000, 6, "ms")
        } else if nanos >= 1_000 {
            (u64::from(nanos / 1_000), nanos % 1_000, 3, "µs")
        } else {
            (u64::from(nanos), 0, 0, "ns")
        };
        write!(f, "{whole}")?;
        if fraction > 0 {
            // Without trailing zeros, and with the leading ones the width needs.
            let (mut fraction, mut digits) = (fraction, digits);
            while fraction.is_multiple_of(10) {
                fraction /= 10;
                digits = digits.saturating_sub(1);
            }
            let mut length = 0u32;
            let mut rest = fraction;
            while rest > 0 {
                rest /= 10;
                length = length.saturating_add(1);
            }
            f.write_str(".")?;
            for _ in length..digits {
                f.write_str("0")?;
            }
            write!(f, "{fraction}")?;
        }
        f.write_str(unit)
    }
}

impl fmt::Display for ShowDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Display for Instant {
    /// Seconds since the epoch, with nanosecond precision: `t=12.000000345s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={}.{:09}s",
            self.nanos / NANOS_PER_SEC,
            self.nanos % NANOS_PER_SEC
        )
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at [`Instant::MAX`].
    #[inline]
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Instant {
    #[inline]
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturates at [`Instant::ZERO`].
    #[inline]
    fn sub(self, d: Duration) -> Instant {
        self.saturating_sub(d)
    }
}

impl SubAssign<Duration> for Instant {
    #[inline]
    fn sub_assign(&mut self, d: Duration) {
        *self = self.saturating_sub(d);
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at [`Duration::ZERO`]: an earlier minus a later instant is zero, never
    /// the absolute difference.
    #[inline]
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// The rate of a clock that counts ticks, to convert between its ticks and [`Instant`]s:
/// what a [`Clock`](crate::Clock) over a hardware timer needs (the embassy adapter converts
/// `embassy-time`'s ticks with it). Exact for every rate (a tick need not be a whole number
/// of nanoseconds: 32,768 Hz is 30,517.578125 ns), saturating, and without 64-bit division
/// routines on 32-bit targets.
///
/// Instants are rounded down to the nanosecond; ticks for a point in time are rounded up,
/// so that a timer set from them never fires before that point.
///
/// ```
/// use stanchion::Instant;
/// use stanchion::time::TickRate;
///
/// const RTC: TickRate = match TickRate::hz(32_768) {
///     Ok(rate) => rate,
///     Err(_) => panic!("bad tick rate"),
/// };
/// assert_eq!(RTC.instant(32_768), Instant::from_secs(1));
/// assert_eq!(RTC.instant(1), Instant::from_nanos(30_517)); // rounded down
/// assert_eq!(RTC.ticks_at(Instant::from_nanos(30_517)), 1);
/// assert_eq!(RTC.ticks_at(Instant::from_nanos(30_518)), 2); // rounded up
/// assert_eq!(RTC.ticks_at(Instant::MAX), 604_462_909_807_315); // u64::MAX ns, rounded up
/// assert!(TickRate::hz(0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TickRate {
    /// A tick is `nanos / ticks` nanoseconds, the fraction in lowest terms: `hz / g` and
    /// `10^9 / g`, `g` their greatest common divisor. Their product is at most `u64::MAX`.
    ticks: u64,
    nanos: u64,
}

impl TickRate {
    /// The highest rate: `u64::MAX / 10^9` ticks per second (about 18.4 GHz), so that a
    /// remainder times either term of the fraction fits a `u64`.
    pub const MAX_HZ: u64 = u64::MAX / NANOS_PER_SEC;

    /// A clock counting `hz` ticks per second, `1..=`[`MAX_HZ`](TickRate::MAX_HZ).
    pub const fn hz(hz: u64) -> Result<TickRate, crate::ConfigError> {
        if hz == 0 || hz > Self::MAX_HZ {
            return Err(crate::ConfigError::new("hz", "1..=18446744073"));
        }
        // Euclid's algorithm; `a` ends as the greatest common divisor (at least 1).
        let (mut a, mut b) = (hz, NANOS_PER_SEC);
        while let Some((_, r)) = checked_div_rem(a, b) {
            a = b;
            b = r;
        }
        Ok(TickRate {
            ticks: whole(hz, a),
            nanos: whole(NANOS_PER_SEC, a),
        })
    }

    /// The instant `ticks` ticks after the clock's epoch, rounded down to the nanosecond,
    /// saturating at [`Instant::MAX`].
    #[inline]
    pub const fn instant(self, ticks: u64) -> Instant {
        if self.ticks == 1 {
            // A whole number of nanoseconds per tick: no division.
            return Instant::from_nanos(ticks.saturating_mul(self.nanos));
        }
        // ticks * nanos / self.ticks = q * nanos + r * nanos / self.ticks, with r below
        // self.ticks, so `r * nanos` fits.
        let (q, r) = match checked_div_rem(ticks, self.ticks) {
            Some(qr) => qr,
            None => (0, 0), // not reached: `self.ticks` is at least 1
        };
        let part = whole(r.saturating_mul(self.nanos), self.ticks);
        Instant::from_nanos(q.saturating_mul(self.nanos).saturating_add(part))
    }

    /// The first tick at or after `t`: `t` in ticks, rounded up, saturating at `u64::MAX`.
    #[inline]
    pub const fn ticks_at(self, t: Instant) -> u64 {
        // nanos * ticks / self.nanos = q * ticks + r * ticks / self.nanos, rounded up, with
        // r below self.nanos, so `r * ticks` fits.
        let (q, r) = match checked_div_rem(t.nanos, self.nanos) {
            Some(qr) => qr,
            None => (0, 0), // not reached: `self.nanos` is at least 1
        };
        let part = if r == 0 {
            0
        } else if self.ticks == 1 {
            1
        } else {
            match checked_div_rem(r.saturating_mul(self.ticks), self.nanos) {
                Some((p, 0)) => p,
                Some((p, _)) => p.saturating_add(1),
                None => 0,
            }
        };
        q.saturating_mul(self.ticks).saturating_add(part)
    }
}

/// The whole nanoseconds in `d`, or `None` if they do not fit a `u64` (about 584 years).
#[inline]
pub const fn duration_to_nanos(d: Duration) -> Option<u64> {
    let n = d.as_nanos();
    if n > u64::MAX as u128 {
        None
    } else {
        Some(n as u64)
    }
}

/// The whole nanoseconds in `d`, saturating at `u64::MAX`.
#[inline]
pub const fn duration_to_nanos_saturating(d: Duration) -> u64 {
    match duration_to_nanos(d) {
        Some(n) => n,
        None => u64::MAX,
    }
}

/// `Duration::from_nanos(nanos)`. On 64-bit targets, the same: its division by a constant
/// is a multiplication there.
#[cfg(target_pointer_width = "64")]
#[inline]
pub(crate) const fn duration_from_nanos(nanos: u64) -> Duration {
    Duration::from_nanos(nanos)
}

/// `Duration::from_nanos(nanos)`, without the 64-bit division routine (see
/// [`crate::div`]): as many steps of long division as the seconds have bits. Out of line:
/// one copy serves every caller. Compiled on 64-bit targets too, for its test.
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
#[inline(never)]
pub(crate) const fn duration_from_nanos_32(nanos: u64) -> Duration {
    let (secs, subsec) = div_rem_nonzero(nanos, NANOS_PER_SEC);
    // The remainder is below 10^9, so `Duration::new` has nothing to carry; the test
    // tells the compiler so.
    let subsec = subsec as u32;
    if subsec < NANOS_PER_SEC as u32 {
        Duration::new(secs, subsec)
    } else {
        Duration::ZERO
    }
}

#[cfg(not(target_pointer_width = "64"))]
pub(crate) use duration_from_nanos_32 as duration_from_nanos;

/// `a / b` rounded down, for a divisor that is not zero (zero if it were).
#[inline]
const fn whole(a: u64, b: u64) -> u64 {
    match checked_div(a, b) {
        Some(q) => q,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_nanos_without_division() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let edges = [
            0,
            1,
            511,
            512,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            u64::MAX,
        ];
        // Fewer under Miri, which interprets every step.
        let draws = if cfg!(miri) { 500 } else { 100_000 };
        for n in edges.into_iter().chain((0..draws).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 64)
        })) {
            assert_eq!(duration_from_nanos_32(n), Duration::from_nanos(n), "{n}");
            assert_eq!(duration_from_nanos(n), Duration::from_nanos(n), "{n}");
        }
    }

    #[test]
    fn constructors_saturate() {
        assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
        assert_eq!(Instant::from_millis(u64::MAX), Instant::MAX);
        assert_eq!(Instant::from_micros(u64::MAX), Instant::MAX);
        assert_eq!(
            Instant::from_secs(18_446_744_073),
            Instant::from_nanos(18_446_744_073_000_000_000)
        );
        assert_eq!(Instant::from_secs(18_446_744_074), Instant::MAX);
        assert_eq!(Instant::from_millis(7).as_nanos(), 7_000_000);
        assert_eq!(Instant::from_micros(7).as_nanos(), 7_000);
    }

    #[test]
    fn conversions_round_down() {
        let t = Instant::from_nanos(1_999_999_999);
        assert_eq!(t.as_secs(), 1);
        assert_eq!(t.as_millis(), 1_999);
        assert_eq!(t.as_micros(), 1_999_999);
        assert_eq!(Instant::MAX.since_epoch(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn add_saturates_at_max() {
        assert_eq!(Instant::MAX + Duration::from_nanos(1), Instant::MAX);
        assert_eq!(Instant::ZERO + Duration::MAX, Instant::MAX);
        assert_eq!(
            Instant::from_nanos(u64::MAX - 1) + Duration::from_nanos(1),
            Instant::MAX
        );
        let mut t = Instant::from_nanos(u64::MAX - 5);
        t += Duration::from_nanos(10);
        assert_eq!(t, Instant::MAX);
    }

    #[test]
    fn sub_saturates_at_zero() {
        assert_eq!(Instant::ZERO - Duration::from_nanos(1), Instant::ZERO);
        assert_eq!(Instant::MAX - Duration::MAX, Instant::ZERO);
        let mut t = Instant::from_nanos(5);
        t -= Duration::from_nanos(10);
        assert_eq!(t, Instant::ZERO);
        assert_eq!(
            Instant::from_nanos(10) - Duration::from_nanos(3),
            Instant::from_nanos(7)
        );
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(Instant::MAX.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(Instant::MAX.checked_add(Duration::ZERO), Some(Instant::MAX));
        assert_eq!(Instant::ZERO.checked_add(Duration::MAX), None);
        assert_eq!(
            Instant::ZERO.checked_add(Duration::from_nanos(u64::MAX)),
            Some(Instant::MAX)
        );
        // One nanosecond more than u64::MAX nanoseconds does not fit.
        assert_eq!(
            Instant::ZERO.checked_add(Duration::from_nanos(u64::MAX) + Duration::from_nanos(1)),
            None
        );
        assert_eq!(Instant::ZERO.checked_sub(Duration::from_nanos(1)), None);
        assert_eq!(Instant::MAX.checked_sub(Duration::MAX), None);
        assert_eq!(
            Instant::from_nanos(9).checked_sub(Duration::from_nanos(9)),
            Some(Instant::ZERO)
        );
    }

    #[test]
    fn duration_between_instants_never_goes_negative() {
        let early = Instant::from_secs(1);
        let late = Instant::from_secs(3);
        assert_eq!(late - early, Duration::from_secs(2));
        assert_eq!(early - late, Duration::ZERO);
        assert_eq!(early.checked_duration_since(late), None);
        assert_eq!(
            late.checked_duration_since(early),
            Some(Duration::from_secs(2))
        );
        assert_eq!(Instant::MAX - Instant::ZERO, Duration::from_nanos(u64::MAX));
        assert_eq!(Instant::ZERO - Instant::MAX, Duration::ZERO);
    }

    #[test]
    fn durations_that_overflow_nanoseconds_saturate() {
        assert_eq!(duration_to_nanos(Duration::MAX), None);
        assert_eq!(duration_to_nanos_saturating(Duration::MAX), u64::MAX);
        assert_eq!(duration_to_nanos(Duration::from_secs(u64::MAX)), None);
        assert_eq!(
            duration_to_nanos(Duration::from_nanos(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(duration_to_nanos(Duration::new(1, 5)), Some(1_000_000_005));
    }

    #[test]
    fn min_max_and_ordering() {
        let a = Instant::from_nanos(1);
        let b = Instant::from_nanos(2);
        assert!(a < b);
        assert_eq!(a.max(b), b);
        assert_eq!(b.max(a), b);
        assert_eq!(a.min(b), a);
        assert_eq!(Instant::default(), Instant::ZERO);
    }

    #[test]
    fn formatting() {
        extern crate std;
        use std::format;
        assert_eq!(
            format!("{}", Instant::from_nanos(12_000_000_345)),
            "t=12.000000345s"
        );
        assert_eq!(format!("{}", Instant::MAX), "t=18446744073.709551615s");
        assert_eq!(format!("{:?}", Instant::from_millis(1500)), "Instant(1.5s)");
    }

    /// `ticks * 10^9 / hz` rounded down and `nanos * hz / 10^9` rounded up, in `u128`,
    /// saturating: what `TickRate` computes without division routines.
    fn reference(hz: u64, ticks: u64, nanos: u64) -> (u64, u64) {
        let n = u128::from(ticks) * 1_000_000_000 / u128::from(hz);
        let t = (u128::from(nanos) * u128::from(hz)).div_ceil(1_000_000_000);
        (
            u64::try_from(n).unwrap_or(u64::MAX),
            u64::try_from(t).unwrap_or(u64::MAX),
        )
    }

    #[test]
    fn tick_rates_convert_exactly_and_saturate() {
        let rates = [
            1,
            3,
            7,
            1_000,
            32_768,
            1_000_000,
            16_000_000,
            80_000_000,
            999_999_999,
            1_000_000_000,
            1_000_000_007,
            5_242_880_000,
            TickRate::MAX_HZ - 1,
            TickRate::MAX_HZ,
        ];
        let values = [
            0,
            1,
            2,
            999,
            30_517,
            30_518,
            1_000_000_000,
            u64::MAX / 1_000_000_000,
            u64::MAX / 32_768,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let draws = if cfg!(miri) { 20 } else { 2_000 };
        for hz in rates {
            let rate = TickRate::hz(hz).unwrap();
            let random = (0..draws).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x >> (x % 64)
            });
            for v in values.into_iter().chain(random) {
                let (nanos, ticks) = reference(hz, v, v);
                assert_eq!(
                    rate.instant(v),
                    Instant::from_nanos(nanos),
                    "{hz} Hz, {v} ticks"
                );
                assert_eq!(
                    rate.ticks_at(Instant::from_nanos(v)),
                    ticks,
                    "{hz} Hz, {v} ns"
                );
            }
        }
        assert_eq!(
            TickRate::hz(0),
            Err(crate::ConfigError::new("hz", "1..=18446744073"))
        );
        assert!(TickRate::hz(TickRate::MAX_HZ + 1).is_err());
        assert!(TickRate::hz(u64::MAX).is_err());
    }

    #[test]
    fn durations_print_as_core_prints_them() {
        extern crate std;
        use std::format;
        let edges = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999),
            Duration::from_nanos(1_000),
            Duration::from_nanos(1_500),
            Duration::from_nanos(999_999),
            Duration::from_micros(1_000),
            Duration::from_nanos(15_000_001),
            Duration::from_nanos(999_999_999),
            Duration::from_secs(1),
            Duration::from_millis(1_500),
            Duration::new(30, 1),
            Duration::new(u64::MAX, 999_999_999),
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let draws = if cfg!(miri) { 200 } else { 20_000 };
        let random = (0..draws).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every scale: shift away a random number of bits.
            Duration::from_nanos(x >> (x % 64))
        });
        for d in edges.into_iter().chain(random) {
            assert_eq!(format!("{:?}", ShowDuration(d)), format!("{d:?}"));
            assert_eq!(format!("{}", ShowDuration(d)), format!("{d:?}"));
        }
        assert_eq!(
            format!("{:?}", Instant::from_nanos(15_000_001)),
            "Instant(15.000001ms)"
        );
    }

    #[test]
    fn types_holding_durations_debug_print_as_derived() {
        extern crate std;
        use crate::breaker::{Rejected, State, StateAt};
        use crate::retry::{Decision, GiveUpReason};
        use std::format;
        let rejected = Rejected {
            retry_after: Some(Duration::from_nanos(15_000_001)),
            state: State::Open,
        };
        assert_eq!(
            format!("{rejected:?}"),
            "Rejected { retry_after: Some(15.000001ms), state: Open }"
        );
        assert_eq!(
            format!("{rejected}"),
            "circuit breaker open: retry after 15ms"
        );
        let at = StateAt {
            state: State::Open,
            until: Some(Instant::from_secs(1)),
            retry_after: Some(Duration::from_millis(500)),
        };
        assert_eq!(
            format!("{at:?}"),
            "StateAt { state: Open, until: Some(Instant(1s)), retry_after: Some(500ms) }"
        );
        let retry = Decision::Retry {
            after: Duration::from_millis(1_500),
            attempt: 2,
        };
        assert_eq!(format!("{retry:?}"), "Retry { after: 1.5s, attempt: 2 }");
        assert_eq!(
            format!("{retry:#?}"),
            "Retry {\n    after: 1.5s,\n    attempt: 2,\n}"
        );
        assert_eq!(format!("{:?}", Decision::Done), "Done");
        let give_up = Decision::GiveUp {
            reason: GiveUpReason::Permanent,
        };
        assert_eq!(format!("{give_up:?}"), "GiveUp { reason: Permanent }");

        let sample = crate::adaptive::Sample {
            started_at: Instant::from_secs(1),
            rtt: Duration::from_micros(2_500),
            in_flight: 3,
            dropped: false,
        };
        assert_eq!(
            format!("{sample:?}"),
            "Sample { started_at: Instant(1s), rtt: 2.5ms, in_flight: 3, dropped: false }"
        );
        assert_eq!(
            format!("{:?}", crate::adaptive::AimdConfig::DEFAULT),
            "AimdConfig { initial_limit: 20, min_limit: 1, max_limit: 200, \
             backoff_per_1024: 922, timeout: 5s }"
        );
        let latency: crate::fault::Fault<u8, u8> =
            crate::fault::Fault::Latency(Duration::from_millis(200));
        assert_eq!(format!("{latency:?}"), "Latency(200ms)");
        assert_eq!(
            format!("{:?}", crate::fault::Fault::<u8, &str>::Error("down")),
            "Error(\"down\")"
        );
        assert_eq!(
            format!(
                "{:?}",
                crate::hedge::HedgeDelay::Fixed(Duration::from_millis(30))
            ),
            "Fixed(30ms)"
        );
        let learned = crate::hedge::HedgeDelay::Learned {
            per_mille: 900,
            min_samples: 20,
            window: 1000,
        };
        assert_eq!(
            format!("{learned:?}"),
            "Learned { per_mille: 900, min_samples: 20, window: 1000 }"
        );
        let config = crate::breaker::BreakerConfig::new().open_duration(Duration::from_secs(30));
        let shown = format!("{config:?}");
        assert!(
            shown.starts_with("BreakerConfig { failure_rate_threshold: 50,"),
            "{shown}"
        );
        assert!(shown.ends_with("open_duration: Some(30s) }"), "{shown}");
    }
}
