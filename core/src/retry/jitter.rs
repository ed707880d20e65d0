//! [`Jitter`]: randomising a nominal delay so that clients that failed together do not
//! retry together.
//!
//! | jitter | delay drawn for a nominal delay `d` | mean |
//! |---|---|---|
//! | [`Jitter::NONE`] | `d` | `d` |
//! | [`Jitter::FULL`] | `U(0, d)` | `d / 2` |
//! | [`Jitter::EQUAL`] | `d/2 + U(0, d/2)` | `3d / 4` |
//! | [`Jitter::proportional(f)`](Jitter::proportional) | `U(d - f*d, d + f*d)` | `d` |
//!
//! All draws are uniform over whole nanoseconds, both ends included. The fifth jitter of
//! the AWS article, *decorrelated* (`min(cap, U(base, 3 * prev))`), depends on the
//! previous delay rather than on a nominal one, so it is a strategy of its own:
//! [`DecorrelatedJitter`](super::DecorrelatedJitter).
//!
//! Jitter is applied before the cap: a strategy computes its nominal delay (already at
//! most the cap), jitters it, and caps the result again, so the cap always holds, even
//! for proportional jitter, whose upper half would otherwise exceed it.
//!
//! When to choose which: full jitter spreads retries most and does the least total work
//! (the AWS article's recommendation); equal jitter keeps a guaranteed minimum wait;
//! proportional jitter keeps the schedule's shape (`1s, 2s, 4s` give or take 10%), which
//! suits firmware that must keep a radio schedule.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::retry::{Backoff, Constant, Jitter, Ratio};
//!
//! let mut rng = fastrand::Rng::with_seed(7);
//! let jitter = Jitter::proportional(Ratio::percent(10)).unwrap();
//! let mut backoff = Constant::new(Duration::from_secs(1)).with_jitter(jitter);
//! let d = backoff.next_delay(&mut rng);
//! assert!(d >= Duration::from_millis(900) && d <= Duration::from_millis(1100));
//! ```
//!
//! Cost: 8 bytes; one bounded random draw (a 64x64-bit multiply, rarely two) per delay.
//!
//! Source: Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog (2015),
//! for full, equal and decorrelated jitter; proportional jitter is the "randomization
//! factor" of Google's `ExponentialBackOff` (google-http-java-client, gRPC).

use core::fmt;

use super::Ratio;
use crate::ConfigError;

/// How a nominal delay is randomised. See the [module docs](self) for the formulas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Jitter {
    pub(crate) kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum Kind {
    None,
    Full,
    Equal,
    /// A spread `f` below 1, as its 32 fractional bits (`f * 2^32`).
    Proportional(u32),
    /// The spread `f = 1`: `U(0, 2d)`. A variant of its own, so that every spread
    /// in `0..=1` fits 4 bytes and a `Jitter` 8 (a retry policy over an exponential
    /// backoff then fits 64 bytes, which bare-metal targets copy inline rather than
    /// through `memcpy`).
    Whole,
}

impl Jitter {
    /// No jitter: the nominal delay.
    pub const NONE: Jitter = Jitter { kind: Kind::None };
    /// Full jitter: `U(0, d)`.
    pub const FULL: Jitter = Jitter { kind: Kind::Full };
    /// Equal jitter: `d/2 + U(0, d/2)` (the halves are `floor(d/2)` and `ceil(d/2)`, so
    /// the largest draw is exactly `d`).
    pub const EQUAL: Jitter = Jitter { kind: Kind::Equal };

    /// Proportional jitter: `U(d - f*d, d + f*d)`, with the spread `f` in `0..=1`.
    /// `f*d` is rounded down to the nanosecond.
    pub const fn proportional(f: Ratio) -> Result<Jitter, ConfigError> {
        if !f.le(Ratio::ONE) {
            return Err(ConfigError::new("jitter", "a spread in 0..=1"));
        }
        Ok(Jitter::from_q32(f.to_q32()))
    }

    /// Proportional jitter of spread `q`, as 32.32 fixed point, at most `1 << 32`
    /// (larger is taken as `1 << 32`).
    pub(crate) const fn from_q32(q: u64) -> Jitter {
        let kind = if q >= 1 << 32 {
            Kind::Whole
        } else {
            Kind::Proportional(q as u32)
        };
        Jitter { kind }
    }

    /// A proportional jitter's spread, as 32.32 fixed point (at most `1 << 32`).
    pub(crate) const fn spread_q32(self) -> Option<u64> {
        match self.kind {
            Kind::Proportional(q) => Some(q as u64),
            Kind::Whole => Some(1 << 32),
            _ => None,
        }
    }

    /// Jitters the nominal delay `nominal` (nanoseconds), capping it first and the
    /// result after, so the result is at most `cap`.
    #[inline]
    pub(crate) fn apply(self, nominal: u64, cap: u64, rng: &mut fastrand::Rng) -> u64 {
        let d = if nominal < cap { nominal } else { cap };
        // Every jitter draws from a range `low..=high` around `d`: one draw site. Equal
        // jitter's `d/2 + U(0, d - d/2)` is `U(d/2, d)`, from the same raw draws.
        let (low, high) = match self.kind {
            Kind::None => return d,
            Kind::Full => (0, d),
            Kind::Equal => (d / 2, d),
            Kind::Proportional(f) => {
                let spread = mul_q32(d, u64::from(f));
                (d.saturating_sub(spread), d.saturating_add(spread))
            }
            Kind::Whole => (0, d.saturating_add(d)),
        };
        let jittered = uniform(rng, low, high);
        if jittered < cap { jittered } else { cap }
    }
}

impl Default for Jitter {
    /// [`Jitter::NONE`].
    fn default() -> Self {
        Jitter::NONE
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::None => f.write_str("no jitter"),
            Kind::Full => f.write_str("full jitter"),
            Kind::Equal => f.write_str("equal jitter"),
            Kind::Proportional(_) | Kind::Whole => {
                let q = self.spread_q32().unwrap_or(0);
                let per_million = (q.saturating_mul(1_000_000)) >> 32;
                write!(f, "proportional jitter of {per_million} ppm")
            }
        }
    }
}

/// A uniform draw from `low..=high` (`low <= high`): the value `rng.u64(low..=high)`
/// gives, from the same raw draws (Lemire's method: multiply a raw draw by the range's
/// length, take the high word, and draw again in the rare case the low word falls in the
/// biased sliver). Written here with a single raw-draw site in the loop, it is about a
/// third of fastrand's code on a 32-bit target, where each raw draw inlines two 64x64-bit
/// multiplications. One copy serves every caller on bare metal; hosts inline it.
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline)]
pub(crate) fn uniform(rng: &mut fastrand::Rng, low: u64, high: u64) -> u64 {
    let n = high.wrapping_sub(low).wrapping_add(1);
    loop {
        let r = rng.u64(..);
        if n == 0 {
            // The whole range of `u64`: every raw draw is uniform.
            return r;
        }
        // Cannot overflow: a product of two `u64`s fits a `u128`.
        let m = u128::from(r).wrapping_mul(u128::from(n));
        let lo = m as u64;
        // Biased only when `lo < (2^64 - n) % n`, which is below `n`: test the cheap
        // bound first, as fastrand does (`n` is not zero here).
        if lo >= n || lo >= crate::div::checked_div_rem(n.wrapping_neg(), n).map_or(0, |(_, r)| r) {
            return low.wrapping_add((m >> 64) as u64);
        }
    }
}

/// `x * q` for a 32.32 fixed-point `q`, rounded down, saturating at `u64::MAX`. On a
/// 32-bit target a 64x64-bit multiplication is several instructions: one copy serves the
/// exponential growth and the proportional spread on bare metal; hosts inline it.
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline)]
pub(crate) const fn mul_q32(x: u64, q: u64) -> u64 {
    let p = (x as u128).saturating_mul(q as u128) >> 32;
    if p > u64::MAX as u128 {
        u64::MAX
    } else {
        p as u64
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    const DRAWS: u64 = 100_000;

    /// Draws `DRAWS` jittered delays of nominal `d` under `cap`, checks each against
    /// `[lo, hi]`, and returns the mean.
    fn draws(j: Jitter, d: u64, cap: u64, lo: u64, hi: u64, seed: u64) -> f64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut sum: u128 = 0;
        for _ in 0..DRAWS {
            let x = j.apply(d, cap, &mut rng);
            assert!(x >= lo && x <= hi, "{j}: {x} outside [{lo}, {hi}]");
            sum += u128::from(x);
        }
        sum as f64 / DRAWS as f64
    }

    fn assert_mean(mean: f64, expected: f64) {
        let err = (mean - expected).abs() / expected;
        assert!(err < 0.02, "mean {mean} vs {expected}: {err}");
    }

    #[test]
    fn uniform_draws_what_fastrand_draws() {
        let ranges = [
            (0, 0),
            (0, 1),
            (0, 9),
            (5, 5),
            (1_000, 1_999),
            (0, 1_000_000_000),
            (0, u64::MAX / 3),
            (0, u64::MAX / 2 + 7),
            (1, u64::MAX),
            (0, u64::MAX - 1),
            (0, u64::MAX),
            (u64::MAX - 3, u64::MAX),
        ];
        for (seed, (low, high)) in ranges.into_iter().enumerate() {
            let mut ours = fastrand::Rng::with_seed(seed as u64);
            let mut theirs = ours.clone();
            for _ in 0..if cfg!(miri) { 50 } else { 2_000 } {
                assert_eq!(uniform(&mut ours, low, high), theirs.u64(low..=high));
            }
            assert_eq!(ours, theirs, "the same number of raw draws");
        }
    }

    #[test]
    fn none_is_the_nominal_delay_capped() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(Jitter::NONE.apply(5, 10, &mut rng), 5);
        assert_eq!(Jitter::NONE.apply(50, 10, &mut rng), 10);
        assert_eq!(Jitter::NONE.apply(u64::MAX, u64::MAX, &mut rng), u64::MAX);
    }

    #[test]
    #[cfg_attr(miri, ignore = "100 000 draws of safe arithmetic: too slow under Miri")]
    fn full_jitter_bounds_and_mean() {
        let d = 1_000_000_000;
        assert_mean(draws(Jitter::FULL, d, u64::MAX, 0, d, 11), d as f64 / 2.0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "100 000 draws of safe arithmetic: too slow under Miri")]
    fn equal_jitter_bounds_and_mean() {
        let d = 1_000_000_001;
        let m = draws(Jitter::EQUAL, d, u64::MAX, d / 2, d, 12);
        assert_mean(m, 0.75 * d as f64);
    }

    #[test]
    #[cfg_attr(miri, ignore = "100 000 draws of safe arithmetic: too slow under Miri")]
    fn proportional_jitter_bounds_and_mean() {
        let d = 2_000_000_000;
        let j = Jitter::proportional(Ratio::percent(25)).unwrap();
        let m = draws(j, d, u64::MAX, 1_500_000_000, 2_500_000_000, 13);
        assert_mean(m, d as f64);
        // Spread 1: U(0, 2d).
        let j = Jitter::proportional(Ratio::ONE).unwrap();
        assert_mean(draws(j, d, u64::MAX, 0, 2 * d, 14), d as f64);
    }

    #[test]
    fn proportional_jitter_never_exceeds_the_cap() {
        let j = Jitter::proportional(Ratio::percent(50)).unwrap();
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..10_000 {
            assert!(j.apply(100, 120, &mut rng) <= 120);
            assert!(j.apply(u64::MAX, u64::MAX, &mut rng) >= u64::MAX / 2);
        }
        assert_eq!(
            Jitter::proportional(Ratio::new(101, 100).unwrap()),
            Err(ConfigError::new("jitter", "a spread in 0..=1"))
        );
        assert_eq!(std::format!("{j}"), "proportional jitter of 500000 ppm");
    }

    #[test]
    fn extremes_do_not_panic() {
        let mut rng = fastrand::Rng::with_seed(4);
        for j in [
            Jitter::NONE,
            Jitter::FULL,
            Jitter::EQUAL,
            Jitter::proportional(Ratio::ONE).unwrap(),
        ] {
            for (d, cap) in [
                (0, 0),
                (0, u64::MAX),
                (u64::MAX, 0),
                (u64::MAX, u64::MAX),
                (1, 1),
            ] {
                assert!(j.apply(d, cap, &mut rng) <= cap);
            }
        }
    }
}
