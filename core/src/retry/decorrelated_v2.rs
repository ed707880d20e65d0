//! [`DecorrelatedJitterV2`]: Polly's "decorrelated jitter, V2" backoff, in integer
//! arithmetic.
//!
//! With `t_n = n + U(0, 1)` for retry `n` (from 0) and
//! `f(t) = 2^t * tanh(sqrt(4 t))`, the delay before retry `n` is
//! `min(cap, (f(t_n) - f(t_{n-1})) * median / 1.4)`, with `f(t_{-1}) = 0`. What grows as
//! `median, 2 * median, 4 * median, ...` is the *time since the first failure*: the
//! medians of the running totals of the delays (measured over 100,000 sequences with a
//! 100 ms median: 89, 198, 402, 807, 1616 ms). Each delay's own median is about half of
//! that from the third retry on (89, 113, 202, 401, 801 ms). The spread is smooth (no
//! spikes of near-zero or doubled delays, unlike AWS decorrelated jitter) and each client's
//! sequence is independent of every other's.
//!
//! Choose it when many clients retry against one service and you want exponential
//! growth with well-behaved jitter: it is Polly's recommended jittered backoff.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::retry::{Backoff, DecorrelatedJitterV2};
//!
//! let mut rng = fastrand::Rng::with_seed(11);
//! let mut b = DecorrelatedJitterV2::new(Duration::from_secs(1), Duration::from_secs(30)).unwrap();
//! let first = b.next_delay(&mut rng);
//! assert!(first < Duration::from_millis(1_430)); // f(1) / 1.4 s at most
//! for d in b.delays(&mut rng).take(100) {
//!     assert!(d <= Duration::from_secs(30));
//! }
//! ```
//!
//! Arithmetic: `t` is 32.32 fixed point, its fraction one `u32` draw; `2^x` is an
//! 18-term polynomial in 2.62 fixed point, `sqrt` an integer square root and `tanh` is
//! computed from `2^x`, so a delay agrees with Polly's `f64` formula to about one part
//! in 10^9. From retry 64 on (where `2^t` alone exceeds 2^64) the delay is the cap; with
//! a cap above about 2^63 / 1.4 nanoseconds (208 years) that is the only departure from
//! the formula.
//!
//! Cost: 40 bytes; `next_delay` is one random draw, an integer square root, a 128-bit
//! division and two 18-step polynomial evaluations (a few hundred nanoseconds), from
//! retry 64 on a comparison.
//!
//! Source: George Polevoy's formula, Polly.Contrib.WaitAndRetry
//! (`Backoff.DecorrelatedJitterBackoffV2`) and Polly v8
//! (`DelayBackoffType.Exponential` with `UseJitter`),
//! <https://github.com/App-vNext/Polly/issues/530>.

use core::time::Duration;

use super::Backoff;
use crate::ConfigError;
use crate::time::duration_to_nanos_saturating;

/// Polly's decorrelated jitter V2: the time to retry `n` has a median near `median * 2^n`
/// (each delay's own, about half that from the third retry on), capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DecorrelatedJitterV2 {
    pub(crate) median: u64,
    pub(crate) cap: u64,
    /// `f(t)` of the previous retry, 32.32 fixed point.
    previous: u128,
    retry: u32,
}

/// From this retry on the delay is the cap.
const LAST_COMPUTED_RETRY: u32 = 63;

impl DecorrelatedJitterV2 {
    /// Decorrelated jitter V2 whose first delay has median about `median`, capped at
    /// `cap` (at least `median`). Durations saturate at `u64::MAX` nanoseconds.
    pub const fn new(median: Duration, cap: Duration) -> Result<DecorrelatedJitterV2, ConfigError> {
        let median = duration_to_nanos_saturating(median);
        let cap = duration_to_nanos_saturating(cap);
        if cap < median {
            return Err(ConfigError::new("cap", "at least the median first delay"));
        }
        Ok(DecorrelatedJitterV2 {
            median,
            cap,
            previous: 0,
            retry: 0,
        })
    }
}

impl Backoff for DecorrelatedJitterV2 {
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        let retry = self.retry;
        self.retry = retry.saturating_add(1);
        if retry > LAST_COMPUTED_RETRY {
            return crate::time::duration_from_nanos(self.cap);
        }
        let t = (u64::from(retry) << 32) | u64::from(rng.u32(..));
        let next = polevoy_q32(t);
        let rise = next.saturating_sub(self.previous);
        self.previous = next;
        // rise * median / 1.4 = rise * median * 5 / 7, rise in 32.32 fixed point.
        let nanos = rise
            .checked_mul(u128::from(self.median))
            .and_then(|p| p.checked_mul(5))
            .map(|p| (p / 7) >> 32);
        let d = match nanos {
            Some(n) if n < u128::from(self.cap) => n as u64,
            _ => self.cap,
        };
        crate::time::duration_from_nanos(d)
    }

    #[inline]
    fn reset(&mut self) {
        self.previous = 0;
        self.retry = 0;
    }
}

/// `ln(2)^k / k!` in 2.62 fixed point, for `k = 0..=18`: the
/// Taylor coefficients of `2^x = e^(x ln 2)`, rounded to nearest.
const EXP2_COEFFICIENTS: [u64; 19] = [
    4_611_686_018_427_387_904,
    3_196_577_161_300_663_915,
    1_107_849_223_398_934_356,
    255_967_521_894_832_113,
    44_355_791_529_079_737,
    6_149_018_367_977_265,
    710_362_457_495_793,
    70_340_819_226_978,
    6_094_567_565_682,
    469_381_369_432,
    32_535_037_283,
    2_050_142_669,
    118_420_884,
    6_314_085,
    312_614,
    14_446,
    626,
    26,
    1,
];

const ONE_Q62: u128 = 1 << 62;

/// `log2(e)` in 32.32 fixed point.
const LOG2_E_Q32: u128 = 6_196_328_019;

/// `2^x` for `x` in `[0, 1]` given in 32.32 fixed point (`0..=1 << 32`); the result is
/// 2.62 fixed point, in `[1, 2]`.
fn exp2_unit_q62(x_q32: u64) -> u128 {
    let x = u128::from(x_q32) << 30; // 2.62
    let mut r: u128 = 0;
    for c in EXP2_COEFFICIENTS.iter().rev() {
        r = u128::from(*c).saturating_add(x.saturating_mul(r) >> 62);
    }
    r
}

/// `tanh(y)` for `y >= 0` in 32.32 fixed point; the result is 2.62 fixed point in `[0, 1]`.
fn tanh_q62(y_q32: u64) -> u128 {
    // tanh(y) = (1 - e^(-2y)) / (1 + e^(-2y)), e^(-2y) = 2^(-u) with u = 2 y log2(e).
    let u = (u128::from(y_q32).saturating_mul(LOG2_E_Q32) >> 31).min(u128::from(u64::MAX));
    let whole = u >> 32;
    if whole >= 62 {
        return ONE_Q62; // e^(-2y) < 2^-62
    }
    let frac = (u as u64) & 0xFFFF_FFFF;
    // 2^(-u) = 2^(1 - frac) / 2^(whole + 1).
    let e = exp2_unit_q62((1u64 << 32).saturating_sub(frac)) >> (whole as u32).saturating_add(1);
    let num = ONE_Q62.saturating_sub(e) << 62;
    num.checked_div(ONE_Q62.saturating_add(e))
        .unwrap_or(ONE_Q62)
}

/// Polevoy's `f(t) = 2^t * tanh(sqrt(4 t))` for `t < 64` in 32.32 fixed point; the
/// result is 32.32 fixed point (below 2^96).
fn polevoy_q32(t_q32: u64) -> u128 {
    let whole = (t_q32 >> 32) as u32;
    let frac = t_q32 & 0xFFFF_FFFF;
    // 2^t in 32.32: 2^frac (2.62) shifted by whole - 30.
    let pow = exp2_unit_q62(frac).checked_shl(whole).unwrap_or(u128::MAX) >> 30;
    // sqrt(4t) = 2 sqrt(t); sqrt(t) in 32.32 is isqrt(t << 32).
    let root = (u128::from(t_q32) << 32).isqrt();
    let y = (root << 1).min(u128::from(u64::MAX)) as u64;
    let th = tanh_q62(y) >> 32; // 2.30
    pow.saturating_mul(th) >> 30
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q32: f64 = 4_294_967_296.0;

    fn polevoy(t: f64) -> f64 {
        2f64.powf(t) * (4.0 * t).sqrt().tanh()
    }

    #[test]
    fn fixed_point_matches_f64() {
        for i in 0..64u64 {
            for frac in [0u64, 1, 1 << 31, 0xFFFF_FFFF, 123_456_789] {
                let t = (i << 32) | frac;
                let got = polevoy_q32(t) as f64 / Q32;
                let want = polevoy(t as f64 / Q32);
                let err = if want == 0.0 {
                    got
                } else {
                    (got - want).abs() / want
                };
                assert!(
                    err < 1e-8 || (got - want).abs() < 1e-8,
                    "t={t}: {got} vs {want}"
                );
            }
        }
        for frac in [0u64, 1 << 31, 0xFFFF_FFFF] {
            let x = exp2_unit_q62(frac) as f64 / (ONE_Q62 as f64);
            assert!((x - 2f64.powf(frac as f64 / Q32)).abs() < 1e-15);
        }
        let two = exp2_unit_q62(1 << 32) as f64 / ONE_Q62 as f64;
        assert!((two - 2.0).abs() < 1e-15);
        let th = tanh_q62(1 << 32) as f64 / ONE_Q62 as f64;
        assert!((th - 1f64.tanh()).abs() < 1e-9, "{th}");
    }

    /// `E[f(n + U)]` by Simpson's rule.
    fn mean_f(n: u32) -> f64 {
        let steps = 2000;
        let h = 1.0 / steps as f64;
        let mut s = 0.0;
        for i in 0..=steps {
            let x = n as f64 + i as f64 * h;
            let w = if i == 0 || i == steps {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            s += w * polevoy(x);
        }
        s * h / 3.0
    }

    #[test]
    #[cfg_attr(miri, ignore = "100 000 draws of safe arithmetic: too slow under Miri")]
    fn bounds_and_mean_over_100k_draws() {
        let median = 1_000_000u64;
        let mut b = DecorrelatedJitterV2::new(Duration::from_nanos(median), Duration::MAX).unwrap();
        let mut rng = fastrand::Rng::with_seed(41);
        const RETRIES: u32 = 8;
        let mut sums = [0f64; RETRIES as usize];
        let rounds = 100_000 / RETRIES;
        for _ in 0..rounds {
            b.reset();
            for n in 0..RETRIES {
                let d = b.next_delay(&mut rng).as_nanos() as f64;
                // f(t_n) - f(t_{n-1}) lies within [f(n) - f(n), f(n + 1) - f(n - 1)].
                let hi = (polevoy(n as f64 + 1.0)
                    - if n == 0 { 0.0 } else { polevoy(n as f64 - 1.0) })
                    / 1.4
                    * median as f64;
                assert!(d >= 0.0 && d <= hi + 1.0, "retry {n}: {d} > {hi}");
                sums[n as usize] += d;
            }
        }
        for n in 0..RETRIES {
            let prev = if n == 0 { 0.0 } else { mean_f(n - 1) };
            let expected = (mean_f(n) - prev) / 1.4 * median as f64;
            let mean = sums[n as usize] / rounds as f64;
            let err = (mean - expected).abs() / expected;
            assert!(err < 0.02, "retry {n}: mean {mean} vs {expected}");
        }
    }

    #[test]
    fn cap_and_retry_ten_thousand() {
        let mut rng = fastrand::Rng::with_seed(2);
        let mut b =
            DecorrelatedJitterV2::new(Duration::from_millis(100), Duration::from_secs(10)).unwrap();
        for _ in 0..10_000 {
            assert!(b.next_delay(&mut rng) <= Duration::from_secs(10));
        }
        assert_eq!(b.next_delay(&mut rng), Duration::from_secs(10));
        let mut b = DecorrelatedJitterV2::new(Duration::MAX, Duration::MAX).unwrap();
        for _ in 0..10_000 {
            b.next_delay(&mut rng);
        }
        let mut b = DecorrelatedJitterV2::new(Duration::from_nanos(1), Duration::MAX).unwrap();
        let mut last = Duration::ZERO;
        for _ in 0..100 {
            last = b.next_delay(&mut rng);
        }
        assert_eq!(last, Duration::from_nanos(u64::MAX));
        assert_eq!(
            DecorrelatedJitterV2::new(Duration::from_secs(2), Duration::from_secs(1)),
            Err(ConfigError::new("cap", "at least the median first delay"))
        );
    }
}
