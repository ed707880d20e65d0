//! [`Linear`]: a delay that grows by a fixed step per retry, up to a cap.
//!
//! Nominal delay before retry `n` (from 0): `min(cap, initial + n * step)`, then jitter,
//! then the cap again.
//!
//! Choose it when the peer needs steadily more time but exponential growth would wait
//! too long too soon (a short retry budget on a slow link).
//!
//! ```
//! use core::time::Duration;
//! use stanchion::retry::{Backoff, Linear};
//!
//! let mut rng = fastrand::Rng::with_seed(1);
//! let ms = |d: Duration| d.as_millis();
//! let mut b = Linear::new(
//!     Duration::from_millis(100),
//!     Duration::from_millis(50),
//!     Duration::from_millis(220),
//! )
//! .unwrap();
//! let seq: Vec<u128> = b.delays(&mut rng).take(5).map(ms).collect();
//! assert_eq!(seq, [100, 150, 200, 220, 220]);
//! ```
//!
//! Cost: 32 bytes; `next_delay` is one saturating add and two comparisons, plus one
//! bounded random draw with jitter.
//!
//! Source: the linear backoff of Polly (`DelayBackoffType.Linear`) and resilience4j.

use core::time::Duration;

use super::{Backoff, Jitter};
use crate::ConfigError;
use crate::time::duration_to_nanos_saturating;

/// Linear backoff: `initial`, `initial + step`, `initial + 2 * step`, ... up to `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Linear {
    pub(crate) initial: u64,
    pub(crate) step: u64,
    pub(crate) cap: u64,
    pub(crate) jitter: Jitter,
    next: u64,
}

impl Linear {
    /// Linear backoff from `initial`, growing by `step`, capped at `cap`, without
    /// jitter. `cap` must be at least `initial`. Durations saturate at `u64::MAX`
    /// nanoseconds.
    pub const fn new(
        initial: Duration,
        step: Duration,
        cap: Duration,
    ) -> Result<Linear, ConfigError> {
        let initial = duration_to_nanos_saturating(initial);
        let cap = duration_to_nanos_saturating(cap);
        if cap < initial {
            return Err(ConfigError::new("cap", "at least the initial delay"));
        }
        Ok(Linear {
            initial,
            step: duration_to_nanos_saturating(step),
            cap,
            jitter: Jitter::NONE,
            next: initial,
        })
    }

    /// The same, with `jitter` applied to every delay (before the cap).
    pub const fn with_jitter(self, jitter: Jitter) -> Linear {
        Linear { jitter, ..self }
    }
}

impl Backoff for Linear {
    #[inline]
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        crate::time::duration_from_nanos(self.next_delay_nanos(rng))
    }

    #[inline]
    fn next_delay_nanos(&mut self, rng: &mut fastrand::Rng) -> u64 {
        let nominal = self.next;
        let grown = nominal.saturating_add(self.step);
        self.next = if grown < self.cap { grown } else { self.cap };
        self.jitter.apply(nominal, self.cap, rng)
    }

    #[inline]
    fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sequence_with_cap_and_reset() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Linear::new(
            Duration::from_nanos(10),
            Duration::from_nanos(7),
            Duration::from_nanos(40),
        )
        .unwrap();
        let seq: [u64; 7] = core::array::from_fn(|_| b.next_delay(&mut rng).as_nanos() as u64);
        assert_eq!(seq, [10, 17, 24, 31, 38, 40, 40]);
        b.reset();
        assert_eq!(b.next_delay(&mut rng), Duration::from_nanos(10));
        for _ in 0..10_000 {
            b.next_delay(&mut rng);
        }
        assert_eq!(b.next_delay(&mut rng), Duration::from_nanos(40));
    }

    #[test]
    fn attempt_ten_thousand_saturates_without_a_cap() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Linear::new(Duration::from_secs(1), Duration::MAX, Duration::MAX).unwrap();
        assert_eq!(b.next_delay(&mut rng), Duration::from_secs(1));
        for _ in 0..10_000 {
            assert_eq!(b.next_delay(&mut rng), Duration::from_nanos(u64::MAX));
        }
        let mut b = Linear::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::MAX,
        )
        .unwrap();
        let d = b.delays(&mut rng).nth(10_000).unwrap();
        assert_eq!(d, Duration::from_secs(10_001));
    }

    #[test]
    fn cap_below_initial_is_rejected() {
        assert_eq!(
            Linear::new(
                Duration::from_secs(2),
                Duration::ZERO,
                Duration::from_secs(1)
            ),
            Err(ConfigError::new("cap", "at least the initial delay"))
        );
    }

    #[test]
    fn jitter_stays_under_the_cap() {
        let mut rng = fastrand::Rng::with_seed(9);
        let j = Jitter::proportional(crate::retry::Ratio::ONE).unwrap();
        let mut b = Linear::new(
            Duration::from_nanos(100),
            Duration::from_nanos(100),
            Duration::from_nanos(250),
        )
        .unwrap()
        .with_jitter(j);
        for _ in 0..10_000 {
            assert!(b.next_delay(&mut rng) <= Duration::from_nanos(250));
        }
    }
}
