//! [`Immediate`] and [`Constant`]: the same delay before every retry.
//!
//! Choose `Immediate` when a retry costs nothing to the peer (a lost race, an optimistic
//! lock conflict) and `Constant` when the peer recovers on a known schedule (a device
//! that reboots in 2 s). Under load from many clients, prefer
//! [`Exponential`](super::Exponential) with jitter.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::retry::{Backoff, Constant, Immediate, Jitter};
//!
//! let mut rng = fastrand::Rng::with_seed(1);
//! assert_eq!(Immediate.next_delay(&mut rng), Duration::ZERO);
//! let mut c = Constant::new(Duration::from_millis(200));
//! assert_eq!(c.next_delay(&mut rng), Duration::from_millis(200));
//! let mut c = c.with_jitter(Jitter::FULL);
//! assert!(c.next_delay(&mut rng) <= Duration::from_millis(200));
//! ```
//!
//! Cost: `Immediate` is zero-sized; `Constant` is 16 bytes. `next_delay` is a copy, plus
//! one bounded random draw with jitter.
//!
//! Source: the constant and immediate strategies of Polly and resilience4j.

use core::time::Duration;

use super::{Backoff, Jitter};
use crate::time::duration_to_nanos_saturating;

/// No delay at all: every retry at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Immediate;

impl Backoff for Immediate {
    #[inline]
    fn next_delay(&mut self, _rng: &mut fastrand::Rng) -> Duration {
        Duration::ZERO
    }

    #[inline]
    fn next_delay_nanos(&mut self, _rng: &mut fastrand::Rng) -> u64 {
        0
    }

    #[inline]
    fn reset(&mut self) {}
}

/// The same nominal delay before every retry, optionally jittered.
///
/// There is no cap: proportional jitter may draw up to `d * (1 + f)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Constant {
    pub(crate) delay: u64,
    pub(crate) jitter: Jitter,
}

impl Constant {
    /// A delay of `delay` (saturating at `u64::MAX` nanoseconds), without jitter.
    pub const fn new(delay: Duration) -> Constant {
        Constant {
            delay: duration_to_nanos_saturating(delay),
            jitter: Jitter::NONE,
        }
    }

    /// The same, with `jitter` applied to every delay.
    pub const fn with_jitter(self, jitter: Jitter) -> Constant {
        Constant { jitter, ..self }
    }
}

impl Backoff for Constant {
    #[inline]
    fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        crate::time::duration_from_nanos(self.next_delay_nanos(rng))
    }

    #[inline]
    fn next_delay_nanos(&mut self, rng: &mut fastrand::Rng) -> u64 {
        self.jitter.apply(self.delay, u64::MAX, rng)
    }

    #[inline]
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_and_immediate_sequences() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut c = Constant::new(Duration::from_millis(30));
        for _ in 0..10_000 {
            assert_eq!(c.next_delay(&mut rng), Duration::from_millis(30));
            assert_eq!(Immediate.next_delay(&mut rng), Duration::ZERO);
        }
        let mut max = Constant::new(Duration::MAX);
        assert_eq!(max.next_delay(&mut rng), Duration::from_nanos(u64::MAX));
        let mut max = max.with_jitter(Jitter::EQUAL);
        assert!(max.next_delay(&mut rng) >= Duration::from_nanos(u64::MAX / 2));
    }
}
