//! Adaptive concurrency limits: algorithms that learn how many calls a dependency can take
//! at once from the calls themselves, and a bulkhead whose maximum follows one.
//!
//! Each algorithm is a sans-IO state machine behind [`LimitAlgorithm`]: feed it one
//! [`Sample`] per finished call (when it started, its round-trip time, whether it was
//! dropped, how many calls were in flight when it started) and it returns the new limit.
//! It reads no clock and does all its arithmetic in integers (ratios are parts per 1024).
//!
//! | algorithm | signal | choose it when |
//! |---|---|---|
//! | [`Aimd`] | drops and timeouts | the dependency fails or times out when overloaded |
//! | [`Vegas`] | round-trip time against the no-load minimum | latency grows before failures do (queueing) |
//!
//! [`AdaptiveBulkhead`] puts one behind a [`Bulkhead`](crate::bulkhead::Bulkhead): its
//! permits measure each call and feed the algorithm, and the bulkhead's maximum follows
//! the limit.
//!
//! The algorithms come from TCP congestion control (Jacobson's AIMD, Brakmo and
//! Peterson's TCP Vegas) by way of Netflix's `concurrency-limits` library, whose
//! per-sample rules these follow; deviations are stated in each type's docs.

use core::time::Duration;

use crate::time::Instant;

pub mod aimd;
pub mod bulkhead;
pub mod vegas;

pub use aimd::{Aimd, AimdConfig};
pub use bulkhead::{AdaptiveBulkhead, AdaptivePermit};
pub use vegas::{Vegas, VegasConfig};

/// One finished call, as a limit algorithm sees it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Sample {
    /// When the call started (was admitted).
    pub started_at: Instant,
    /// How long it took, from admission to completion.
    pub rtt: Duration,
    /// Calls in flight when it started, itself included.
    pub in_flight: u32,
    /// Whether it was dropped for overload: rejected by the dependency or timed out.
    pub dropped: bool,
}

impl core::fmt::Debug for Sample {
    /// As derived, with the round trip printed by core's small printer.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sample")
            .field("started_at", &self.started_at)
            .field("rtt", &crate::time::ShowDuration(self.rtt))
            .field("in_flight", &self.in_flight)
            .field("dropped", &self.dropped)
            .finish()
    }
}

/// How a call admitted by an [`AdaptiveBulkhead`] ended, for its limit algorithm.
///
/// A call whose outcome says nothing about load (a validation error, a cancelled call) is
/// not recorded at all: drop its permit instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// The call completed; its round-trip time is a sample of the dependency's latency.
    Success,
    /// The call was dropped for overload: the dependency rejected it or it timed out.
    Dropped,
}

/// A concurrency-limit algorithm: sans-IO, fed one [`Sample`] per finished call.
///
/// Contract for implementations: `on_sample` never panics, returns the same value that
/// `limit` returns afterwards, and keeps the limit inside the configured
/// `min_limit..=max_limit` (so at least 1). Samples may arrive out of start order (calls
/// finish in any order).
pub trait LimitAlgorithm {
    /// The current limit.
    fn limit(&self) -> u32;

    /// Takes one sample and returns the new limit.
    fn on_sample(&mut self, sample: Sample) -> u32;
}

impl<A: LimitAlgorithm + ?Sized> LimitAlgorithm for &mut A {
    #[inline]
    fn limit(&self) -> u32 {
        (**self).limit()
    }
    #[inline]
    fn on_sample(&mut self, sample: Sample) -> u32 {
        (**self).on_sample(sample)
    }
}

/// `min(max(value, min), max)` for `min <= max`.
#[inline]
pub(crate) const fn clamp_u32(value: u32, min: u32, max: u32) -> u32 {
    if value < min {
        min
    } else if value > max {
        max
    } else {
        value
    }
}

/// Shared validation of the limit bounds.
pub(crate) const fn check_limits(
    initial: u32,
    min: u32,
    max: u32,
) -> Result<(), crate::ConfigError> {
    if min == 0 {
        return Err(crate::ConfigError::new("min_limit", "at least 1"));
    }
    if min > max {
        return Err(crate::ConfigError::new("min_limit", "at most max_limit"));
    }
    if initial < min || initial > max {
        return Err(crate::ConfigError::new(
            "initial_limit",
            "in min_limit..=max_limit",
        ));
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod properties {
    extern crate std;

    use proptest::prelude::*;

    use super::*;

    fn samples() -> impl Strategy<Value = std::vec::Vec<Sample>> {
        let sample = (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            0u8..4,
        )
            .prop_map(|(start, rtt, in_flight, dropped, scale)| Sample {
                // Mostly plausible values, sometimes extreme ones.
                started_at: Instant::from_nanos(if scale == 0 {
                    start
                } else {
                    start % 1_000_000_000_000
                }),
                rtt: Duration::from_nanos(match scale {
                    0 => rtt,
                    1 => rtt % 1_000_000_000,
                    _ => 5_000_000 + rtt % 10_000_000,
                }),
                in_flight: if scale == 0 {
                    in_flight
                } else {
                    in_flight % 300
                },
                dropped: dropped && scale != 3,
            });
        proptest::collection::vec(sample, 0..300)
    }

    fn limits() -> impl Strategy<Value = (u32, u32, u32)> {
        (1u32..500, 0u32..500, any::<u32>()).prop_map(|(min, span, pick)| {
            let max = min + span;
            (min, max, min + pick % (span + 1))
        })
    }

    #[test]
    fn sizes_are_as_documented() {
        use core::mem::size_of;
        assert_eq!(size_of::<Aimd>(), 48);
        assert_eq!(size_of::<Vegas>(), 80);
        assert_eq!(size_of::<crate::bulkhead::Bulkhead>(), 8);
        type Permit<'a> = AdaptivePermit<
            &'a AdaptiveBulkhead<crate::sync::NoopRawMutex, Aimd>,
            crate::sync::NoopRawMutex,
            Aimd,
        >;
        assert_eq!(size_of::<Permit<'_>>(), 8 + 16);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(300)))]

        #[test]
        fn aimd_stays_in_bounds((min, max, initial) in limits(), backoff in 512u32..1024, samples in samples()) {
            let mut a = Aimd::new(AimdConfig {
                initial_limit: initial,
                min_limit: min,
                max_limit: max,
                backoff_per_1024: backoff,
                timeout: Duration::from_millis(10),
            })
            .unwrap();
            for s in samples {
                let limit = a.on_sample(s);
                prop_assert_eq!(limit, a.limit());
                prop_assert!((min..=max).contains(&limit));
            }
        }

        #[test]
        fn vegas_stays_in_bounds(
            (min, max, initial) in limits(),
            alpha in 1u32..5,
            extra in 1u32..5,
            smoothing in 1u32..=1024,
            probe in 0u32..3,
            samples in samples(),
        ) {
            let mut v = Vegas::new(VegasConfig {
                initial_limit: initial,
                min_limit: min,
                max_limit: max,
                alpha_factor: alpha,
                beta_factor: alpha + extra,
                smoothing_per_1024: smoothing,
                probe_multiplier: probe,
            })
            .unwrap();
            for s in samples {
                let limit = v.on_sample(s);
                prop_assert_eq!(limit, v.limit());
                prop_assert!((min..=max).contains(&limit));
            }
        }
    }
}
