//! [`Exponential`]: a delay multiplied by a factor per retry, up to a cap.
//!
//! Nominal delay before retry `n` (from 0): `min(cap, base * factor^n)`, then jitter,
//! then the cap again: the first retry waits `base`, as Polly's and backon's do. With
//! [`Jitter::FULL`] this is the AWS article's "full jitter" backoff; with
//! [`Jitter::EQUAL`] its "equal jitter". The article's formula, `base * 2^attempt`, counts
//! attempts from one, so its first wait is twice its base: to reproduce its numbers, give
//! twice its `base` here.
//!
//! Choose it by default for calls to a shared service: the delay grows fast enough that
//! many clients back off from a struggling peer, and the cap bounds the longest wait.
//! Add jitter whenever more than one client may fail at the same moment.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::retry::{Backoff, Exponential, Jitter, Ratio};
//!
//! let mut rng = fastrand::Rng::with_seed(1);
//! let factor = Ratio::new(3, 2).unwrap();
//! let mut b = Exponential::new(Duration::from_secs(1), factor, Duration::from_secs(4)).unwrap();
//! let ms: Vec<u128> = b.delays(&mut rng).take(5).map(|d| d.as_millis()).collect();
//! assert_eq!(ms, [1000, 1500, 2250, 3375, 4000]);
//!
//! let mut jittered = b.with_jitter(Jitter::FULL);
//! jittered.reset();
//! assert!(jittered.next_delay(&mut rng) <= Duration::from_secs(1));
//! ```
//!
//! The factor is a [`Ratio`], held as 32.32 fixed point (exact for factors such as 2 or
//! 3/2; others are rounded down by less than 2^-32). The sequence is computed step by
//! step, `next = min(cap, current * factor)`, each step rounded down to the nanosecond;
//! once at the cap it stays there, so retry 10,000 costs what retry 1 does and nothing
//! overflows.
//!
//! Cost: 40 bytes; `next_delay` is one 64x64-bit multiply, a shift and two comparisons,
//! plus one bounded random draw with jitter.
//!
//! Source: binary exponential backoff (Ethernet, IEEE 802.3); with a cap and jitter as in
//! Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog (2015).

use core::time::Duration;

use super::jitter::mul_q32;
use super::{Backoff, Jitter, Ratio};
use crate::ConfigError;
use crate::time::duration_to_nanos_saturating;

/// Exponential backoff: `base`, `base * factor`, `base * factor^2`, ... up to `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Exponential {
    pub(crate) base: u64,
    /// 32.32 fixed point, at least `1 << 32`.
    pub(crate) factor: u64,
    pub(crate) cap: u64,
    pub(crate) jitter: Jitter,
    next: u64,
}

impl Exponential {
    /// Exponential backoff from `base`, multiplied by `factor` (at least 1) per retry,
    /// capped at `cap` (at least `base`), without jitter. Durations saturate at
    /// `u64::MAX` nanoseconds.
    pub const fn new(
        base: Duration,
        factor: Ratio,
        cap: Duration,
    ) -> Result<Exponential, ConfigError> {
        if !Ratio::ONE.le(factor) {
            return Err(ConfigError::new("factor", "at least 1"));
        }
        let base = duration_to_nanos_saturating(base);
        let cap = duration_to_nanos_saturating(cap);
        if cap < base {
            return Err(ConfigError::new("cap", "at least the base delay"));
        }
        Ok(Exponential {
            base,
            factor: factor.to_q32(),
            cap,
            jitter: Jitter::NONE,
            next: base,
        })
    }

    /// The same, with `jitter` applied to every delay (before the cap).
    pub const fn with_jitter(self, jitter: Jitter) -> Exponential {
        Exponential { jitter, ..self }
    }
}

impl Backoff for Exponential {
    #[inline]
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        crate::time::duration_from_nanos(self.next_delay_nanos(rng))
    }

    #[inline]
    fn next_delay_nanos(&mut self, rng: &mut fastrand::Rng) -> u64 {
        let nominal = self.next;
        let grown = mul_q32(nominal, self.factor);
        self.next = if grown < self.cap { grown } else { self.cap };
        self.jitter.apply(nominal, self.cap, rng)
    }

    #[inline]
    fn reset(&mut self) {
        self.next = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos<B: Backoff>(b: &mut B, n: usize) -> std::vec::Vec<u64> {
        let mut rng = fastrand::Rng::with_seed(1);
        b.delays(&mut rng)
            .take(n)
            .map(|d| d.as_nanos() as u64)
            .collect()
    }
    extern crate std;

    #[test]
    fn exact_sequences() {
        let mut b = Exponential::new(
            Duration::from_nanos(3),
            Ratio::TWO,
            Duration::from_nanos(100),
        )
        .unwrap();
        assert_eq!(nanos(&mut b, 8), [3, 6, 12, 24, 48, 96, 100, 100]);
        b.reset();
        assert_eq!(nanos(&mut b, 2), [3, 6]);
        let third = Ratio::new(4, 3).unwrap();
        let mut b =
            Exponential::new(Duration::from_secs(9), third, Duration::from_secs(30)).unwrap();
        // 9, 12, 16, 21.333.., 28.444.., 30 (each step rounded down to the nanosecond,
        // the factor 4/3 to 32.32 fixed point).
        assert_eq!(
            nanos(&mut b, 6),
            [
                9_000_000_000,
                11_999_999_999,
                15_999_999_997,
                21_333_333_328,
                28_444_444_435,
                30_000_000_000
            ]
        );
        let mut one = Exponential::new(Duration::from_nanos(5), Ratio::ONE, Duration::MAX).unwrap();
        assert_eq!(nanos(&mut one, 3), [5, 5, 5]);
    }

    #[test]
    fn attempt_ten_thousand_is_the_cap_without_overflow() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Exponential::new(
            Duration::from_millis(1),
            Ratio::integer(u32::MAX),
            Duration::MAX,
        )
        .unwrap();
        assert_eq!(
            b.delays(&mut rng).nth(10_000),
            Some(Duration::from_nanos(u64::MAX))
        );
        let mut b = Exponential::new(
            Duration::from_millis(100),
            Ratio::TWO,
            Duration::from_secs(60),
        )
        .unwrap()
        .with_jitter(Jitter::EQUAL);
        for _ in 0..10_000 {
            assert!(b.next_delay(&mut rng) <= Duration::from_secs(60));
        }
        let d = b.next_delay(&mut rng);
        assert!(d >= Duration::from_secs(30) && d <= Duration::from_secs(60));
    }

    #[test]
    fn bad_configuration() {
        let half = Ratio::new(1, 2).unwrap();
        assert_eq!(
            Exponential::new(Duration::from_secs(1), half, Duration::from_secs(2)),
            Err(ConfigError::new("factor", "at least 1"))
        );
        assert_eq!(
            Exponential::new(Duration::from_secs(3), Ratio::TWO, Duration::from_secs(2)),
            Err(ConfigError::new("cap", "at least the base delay"))
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "100 000 draws of safe arithmetic: too slow under Miri")]
    fn full_jitter_mean_over_the_sequence() {
        // Retry n has nominal 2^n ms (n < 10, below the cap); full jitter's mean is half.
        let mut rng = fastrand::Rng::with_seed(21);
        let mut b = Exponential::new(
            Duration::from_millis(1),
            Ratio::TWO,
            Duration::from_secs(10),
        )
        .unwrap()
        .with_jitter(Jitter::FULL);
        let (mut sum, mut expected) = (0u128, 0u128);
        for i in 0..100_000u32 {
            if i % 10 == 0 {
                b.reset();
            }
            let nominal = 1_000_000u64 << (i % 10);
            let d = b.next_delay(&mut rng).as_nanos();
            assert!(d <= u128::from(nominal));
            sum += d;
            expected += u128::from(nominal) / 2;
        }
        let err = (sum as f64 - expected as f64).abs() / expected as f64;
        assert!(err < 0.02, "{err}");
    }
}
