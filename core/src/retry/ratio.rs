//! [`Ratio`]: an exact fraction `num / den` for the factors and ratios of retry
//! configuration (a backoff factor, a jitter spread, a budget's retry ratio), so that no
//! floating point enters a decision.
//!
//! ```
//! use stanchion::retry::Ratio;
//!
//! let one_and_a_half = Ratio::new(3, 2).unwrap();
//! assert_eq!(one_and_a_half, Ratio::new(6, 4).unwrap().reduced());
//! assert_eq!(Ratio::percent(10).reduced(), Ratio::new(1, 10).unwrap());
//! assert!(Ratio::new(1, 0).is_err());
//! ```
//!
//! Cost: two `u32` (8 bytes). Each pattern converts a `Ratio` once, at construction, to
//! the integer form its decision uses (a 32.32 fixed-point factor, milli-tokens, or the
//! exact pair), and says which way that conversion rounds.

use core::fmt;

use crate::ConfigError;

/// The fraction `num / den`, with `den >= 1`.
///
/// Equality is structural (`2/4 != 1/2`); use [`reduced`](Ratio::reduced) to compare
/// values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ratio {
    num: u32,
    den: u32,
}

impl Ratio {
    /// Zero.
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };
    /// One.
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };
    /// Two (the usual exponential backoff factor).
    pub const TWO: Ratio = Ratio { num: 2, den: 1 };

    /// `num / den`; `den` must be at least 1.
    pub const fn new(num: u32, den: u32) -> Result<Ratio, ConfigError> {
        if den == 0 {
            return Err(ConfigError::new("den", "at least 1"));
        }
        Ok(Ratio { num, den })
    }

    /// The whole number `n`.
    pub const fn integer(n: u32) -> Ratio {
        Ratio { num: n, den: 1 }
    }

    /// `p` percent (`p / 100`).
    pub const fn percent(p: u32) -> Ratio {
        Ratio { num: p, den: 100 }
    }

    /// The numerator.
    pub const fn num(self) -> u32 {
        self.num
    }

    /// The denominator (at least 1).
    pub const fn den(self) -> u32 {
        self.den
    }

    /// The same value in lowest terms.
    pub const fn reduced(self) -> Ratio {
        let (mut a, mut b) = (self.num, self.den);
        while b != 0 {
            let r = match a.checked_rem(b) {
                Some(r) => r,
                None => 0,
            };
            a = b;
            b = r;
        }
        // `a` is gcd(num, den) >= 1 because den >= 1.
        match (self.num.checked_div(a), self.den.checked_div(a)) {
            (Some(num), Some(den)) => Ratio { num, den },
            _ => self,
        }
    }

    /// Whether `self <= other`, exactly.
    pub const fn le(self, other: Ratio) -> bool {
        (self.num as u64).saturating_mul(other.den as u64)
            <= (other.num as u64).saturating_mul(self.den as u64)
    }

    /// The value as 32.32 fixed point, rounded down. Never overflows: the largest value,
    /// `u32::MAX / 1`, is below 2^32.
    pub(crate) const fn to_q32(self) -> u64 {
        // den >= 1 by construction; `checked_div` keeps the division total regardless.
        match crate::div::checked_div((self.num as u64) << 32, self.den as u64) {
            Some(q) => q,
            None => u64::MAX,
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_and_comparison() {
        assert_eq!(Ratio::new(0, 0), Err(ConfigError::new("den", "at least 1")));
        let r = Ratio::new(3, 2).unwrap();
        assert_eq!((r.num(), r.den()), (3, 2));
        assert_eq!(r.to_q32(), 3 << 31);
        assert_eq!(Ratio::TWO.to_q32(), 2 << 32);
        assert_eq!(Ratio::integer(u32::MAX).to_q32(), (u32::MAX as u64) << 32);
        assert_eq!(Ratio::new(1, 3).unwrap().to_q32(), 1_431_655_765);
        assert!(Ratio::ONE.le(r));
        assert!(!r.le(Ratio::ONE));
        assert!(Ratio::new(2, 4).unwrap().le(Ratio::new(1, 2).unwrap()));
        assert_eq!(Ratio::new(0, 7).unwrap().reduced(), Ratio::ZERO);
        assert_eq!(Ratio::percent(50).reduced(), Ratio::new(1, 2).unwrap());
    }
}
