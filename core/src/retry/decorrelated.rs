//! [`DecorrelatedJitter`]: each delay drawn from `U(base, 3 * previous)`, capped.
//!
//! Delay before retry `n`: `d_n = min(cap, U(base, 3 * d_{n-1}))`, with `d_{-1} = base`.
//! The delay grows roughly by 3/2 per retry on average, and each client's sequence is
//! decorrelated from every other's, with no separate jitter step.
//!
//! Choose it when many clients retry against one service and you want fewer total calls
//! than full jitter with a similar spread (the AWS article's comparison); prefer
//! [`DecorrelatedJitterV2`](super::DecorrelatedJitterV2) when you also want the median
//! delays to follow `base * 2^n` closely.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::retry::{Backoff, DecorrelatedJitter};
//!
//! let mut rng = fastrand::Rng::with_seed(3);
//! let mut b = DecorrelatedJitter::new(Duration::from_millis(100), Duration::from_secs(5)).unwrap();
//! let first = b.next_delay(&mut rng);
//! assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(300));
//! for d in b.delays(&mut rng).take(100) {
//!     assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(5));
//! }
//! ```
//!
//! Cost: 24 bytes; `next_delay` is one saturating multiply, one bounded random draw and
//! one comparison.
//!
//! Source: Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog (2015),
//! "Decorrelated Jitter".

use core::time::Duration;

use super::Backoff;
use crate::ConfigError;
use crate::time::duration_to_nanos_saturating;

/// AWS decorrelated jitter: `min(cap, U(base, 3 * previous))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DecorrelatedJitter {
    pub(crate) base: u64,
    pub(crate) cap: u64,
    previous: u64,
}

impl DecorrelatedJitter {
    /// Decorrelated jitter from `base`, capped at `cap` (at least `base`). Durations
    /// saturate at `u64::MAX` nanoseconds.
    pub const fn new(base: Duration, cap: Duration) -> Result<DecorrelatedJitter, ConfigError> {
        let base = duration_to_nanos_saturating(base);
        let cap = duration_to_nanos_saturating(cap);
        if cap < base {
            return Err(ConfigError::new("cap", "at least the base delay"));
        }
        Ok(DecorrelatedJitter {
            base,
            cap,
            previous: base,
        })
    }
}

impl Backoff for DecorrelatedJitter {
    #[inline]
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        crate::time::duration_from_nanos(self.next_delay_nanos(rng))
    }

    #[inline]
    fn next_delay_nanos(&mut self, rng: &mut fastrand::Rng) -> u64 {
        // `previous >= base` always (base <= cap), so the range is never empty.
        let high = self.previous.saturating_mul(3);
        let low = if self.base < high { self.base } else { high };
        let drawn = super::jitter::uniform(rng, low, high);
        let d = if drawn < self.cap { drawn } else { self.cap };
        self.previous = d;
        d
    }

    #[inline]
    fn reset(&mut self) {
        self.previous = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean of `min(cap, U(a, b))` over whole nanoseconds.
    fn capped_uniform_mean(a: u64, b: u64, cap: u64) -> f64 {
        let (a, b, c) = (a as f64, b as f64, cap as f64);
        if c >= b {
            return (a + b) / 2.0;
        }
        let n = b - a + 1.0;
        let below = c - a; // values a..c-1
        ((a + c - 1.0) / 2.0 * below + c * (n - below)) / n
    }

    #[test]
    #[cfg_attr(miri, ignore = "100 000 draws of safe arithmetic: too slow under Miri")]
    fn bounds_and_conditional_mean_over_100k_draws() {
        let (base, cap) = (1_000_000u64, 50_000_000u64);
        let mut b =
            DecorrelatedJitter::new(Duration::from_nanos(base), Duration::from_nanos(cap)).unwrap();
        let mut rng = fastrand::Rng::with_seed(31);
        let (mut sum, mut expected) = (0f64, 0f64);
        let mut previous = base;
        for i in 0..100_000 {
            if i % 20 == 0 {
                b.reset();
                previous = base;
            }
            let d = b.next_delay(&mut rng).as_nanos() as u64;
            assert!(
                d >= base && d <= cap && d <= 3 * previous,
                "{d} after {previous}"
            );
            expected += capped_uniform_mean(base, 3 * previous, cap);
            sum += d as f64;
            previous = d;
        }
        let err = (sum - expected).abs() / expected;
        assert!(err < 0.02, "{err}");
    }

    #[test]
    fn no_jitter_when_base_equals_cap_and_extremes() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b =
            DecorrelatedJitter::new(Duration::from_secs(2), Duration::from_secs(2)).unwrap();
        for _ in 0..100 {
            assert_eq!(b.next_delay(&mut rng), Duration::from_secs(2));
        }
        let mut b = DecorrelatedJitter::new(Duration::MAX, Duration::MAX).unwrap();
        assert_eq!(
            b.delays(&mut rng).nth(10_000),
            Some(Duration::from_nanos(u64::MAX))
        );
        let mut b = DecorrelatedJitter::new(Duration::ZERO, Duration::MAX).unwrap();
        assert_eq!(b.delays(&mut rng).nth(10_000), Some(Duration::ZERO));
        let mut b = DecorrelatedJitter::new(Duration::from_nanos(1), Duration::MAX).unwrap();
        for _ in 0..10_000 {
            b.next_delay(&mut rng);
        }
        assert_eq!(
            DecorrelatedJitter::new(Duration::from_secs(2), Duration::from_secs(1)),
            Err(ConfigError::new("cap", "at least the base delay"))
        );
    }
}
