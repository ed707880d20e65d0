//! Fallback: which failures of a pipeline call are answered with a value instead.
//!
//! A fallback turns a failed call into an answer the caller can use: a cached value, a
//! default, a degraded response. The adapters run it (`Pipeline::call_or_else` in
//! `stanchion-std` and `stanchion-embassy`, and `stanchion-std`'s tower
//! `FallbackLayer`); this module decides which failures it covers, the same way in each.
//!
//! A failure is covered by the layer that refused ([`PipelineError::layer`]): a rate
//! limit, a full bulkhead, an open breaker, the overall timeout, or a call whose retries
//! gave up ([`Layer::Retry`], whatever its last attempt's error); in front of a tower
//! stack, also the adaptive throttle ([`Layer::Throttle`]). [`FallbackOn`] is a set
//! of those layers, `const`-built; for a finer rule (by the operation's own error, for
//! example), any `Fn(&PipelineError<E>) -> bool` is a [`FallbackWhen`] too. The original
//! error is never lost: the fallback receives it, for its answer, its metrics and its
//! logs.
//!
//! # When to choose it
//!
//! When a worse answer now beats an error: a product page without its recommendations, a
//! sensor reading from the last good sample, a cached price. Not when the caller must know
//! the operation failed (a payment): there, let the error through. Cover refusals
//! ([`FallbackOn::REFUSALS`]) to shed load gracefully; cover [`Layer::Retry`] too
//! ([`FallbackOn::EVERYTHING`]) when a failing dependency may be stood in for.
//!
//! ```
//! use stanchion::breaker::{Rejected, State};
//! use stanchion::fallback::{FallbackOn, FallbackWhen};
//! use stanchion::pipeline::{Layer, PipelineError};
//!
//! // Refusals by the breaker and the rate limiter, not a call that gave up.
//! const ON: FallbackOn = FallbackOn::NOTHING
//!     .layer(Layer::CircuitBreaker)
//!     .layer(Layer::RateLimit);
//! let open: PipelineError<&str> =
//!     PipelineError::CircuitOpen(Rejected { retry_after: None, state: State::ForcedOpen });
//! assert!(ON.covers(&open));
//! assert!(!ON.covers(&PipelineError::<&str>::Timeout));
//! // A rule of one's own: only timeouts.
//! let timeouts = |e: &PipelineError<&str>| e.layer() == Layer::OverallTimeout;
//! assert!(timeouts.covers(&PipelineError::Timeout));
//! ```

use crate::pipeline::{Layer, PipelineError};

/// Which failed calls a fallback answers: a set of the layers that refuse or give up
/// ([`PipelineError::layer`]). Copy, `const`, one byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FallbackOn {
    /// One bit per pipeline layer ([`bit`]).
    layers: u8,
}

impl FallbackOn {
    /// No failure: every error goes through.
    pub const NOTHING: FallbackOn = FallbackOn { layers: 0 };

    /// Every refusal: the overall timeout, the rate limiter, the bulkhead, the circuit
    /// breaker and the adaptive throttle; not a call whose retries gave up.
    pub const REFUSALS: FallbackOn = FallbackOn::NOTHING
        .layer(Layer::OverallTimeout)
        .layer(Layer::RateLimit)
        .layer(Layer::Bulkhead)
        .layer(Layer::CircuitBreaker)
        .layer(Layer::Throttle);

    /// Every failure: the refusals and a call whose retries gave up.
    pub const EVERYTHING: FallbackOn = FallbackOn::REFUSALS.layer(Layer::Retry);

    /// The same set with `layer`'s failures covered too. (A per-attempt timeout or an
    /// injected fault is never a call's failure by itself: the retry layer gives up on it,
    /// and [`Layer::Retry`] covers that.)
    #[must_use]
    pub const fn layer(self, layer: Layer) -> FallbackOn {
        FallbackOn {
            layers: self.layers | bit(layer),
        }
    }

    /// The same set without `layer`'s failures.
    #[must_use]
    pub const fn except(self, layer: Layer) -> FallbackOn {
        FallbackOn {
            layers: self.layers & !bit(layer),
        }
    }

    /// Whether a failure refused by `layer` is covered.
    pub const fn covers_layer(self, layer: Layer) -> bool {
        self.layers & bit(layer) != 0
    }
}

impl core::fmt::Debug for FallbackOn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let covered = Layer::ORDER
            .into_iter()
            .chain([Layer::Throttle])
            .filter(|layer| self.covers_layer(*layer))
            .map(Layer::name);
        f.debug_set().entries(covered).finish()
    }
}

impl Default for FallbackOn {
    /// [`FallbackOn::NOTHING`].
    fn default() -> Self {
        FallbackOn::NOTHING
    }
}

/// `layer`'s bit. (The throttle is not a pipeline layer, it refuses before a call; its
/// refusals reach a fallback through `stanchion-std`'s tower `FallbackLayer`.)
const fn bit(layer: Layer) -> u8 {
    match layer {
        Layer::OverallTimeout => 1,
        Layer::RateLimit => 1 << 1,
        Layer::Bulkhead => 1 << 2,
        Layer::CircuitBreaker => 1 << 3,
        Layer::Retry => 1 << 4,
        Layer::AttemptTimeout => 1 << 5,
        Layer::FaultInjection => 1 << 6,
        Layer::Throttle => 1 << 7,
    }
}

/// Decides whether a fallback answers a failed call: [`FallbackOn`], or any
/// `Fn(&PipelineError<E>) -> bool` for a rule of one's own.
pub trait FallbackWhen<E> {
    /// Whether `error` is answered by the fallback.
    fn covers(&self, error: &PipelineError<E>) -> bool;
}

impl<E> FallbackWhen<E> for FallbackOn {
    #[inline]
    fn covers(&self, error: &PipelineError<E>) -> bool {
        self.covers_layer(error.layer())
    }
}

impl<E, F: Fn(&PipelineError<E>) -> bool> FallbackWhen<E> for F {
    #[inline]
    fn covers(&self, error: &PipelineError<E>) -> bool {
        self(error)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::breaker::{Rejected, State};
    use crate::bulkhead::BulkheadFull;
    use crate::pipeline::AttemptError;
    use crate::rate::{Denied, RateLimitError};
    use crate::retry::GiveUpReason;
    use std::format;
    use std::vec::Vec;

    /// One failure refused by each layer a call can fail at.
    fn failures() -> Vec<PipelineError<&'static str>> {
        std::vec![
            PipelineError::Timeout,
            PipelineError::RateLimited(RateLimitError::Denied(Denied::from_nanos(5))),
            PipelineError::BulkheadFull(BulkheadFull::new(2, 2)),
            PipelineError::CircuitOpen(Rejected {
                retry_after: None,
                state: State::ForcedOpen,
            }),
            PipelineError::GaveUp {
                last: AttemptError::Operation("down"),
                reason: GiveUpReason::AttemptsExhausted,
                attempts: 3,
            },
        ]
    }

    fn covered(on: impl FallbackWhen<&'static str>) -> Vec<Layer> {
        failures()
            .iter()
            .filter(|e| on.covers(e))
            .map(PipelineError::layer)
            .collect()
    }

    #[test]
    fn each_set_covers_exactly_its_layers() {
        use Layer::*;
        assert_eq!(covered(FallbackOn::NOTHING), []);
        assert_eq!(
            covered(FallbackOn::REFUSALS),
            [OverallTimeout, RateLimit, Bulkhead, CircuitBreaker]
        );
        assert_eq!(
            covered(FallbackOn::EVERYTHING),
            [OverallTimeout, RateLimit, Bulkhead, CircuitBreaker, Retry]
        );
        assert_eq!(
            covered(FallbackOn::NOTHING.layer(CircuitBreaker).layer(Retry)),
            [CircuitBreaker, Retry]
        );
        assert_eq!(
            covered(FallbackOn::EVERYTHING.except(OverallTimeout).except(Retry)),
            [RateLimit, Bulkhead, CircuitBreaker]
        );
        // Layers that never fail a call alone: covering them covers nothing more.
        assert_eq!(
            covered(
                FallbackOn::NOTHING
                    .layer(AttemptTimeout)
                    .layer(FaultInjection)
            ),
            []
        );
        assert!(FallbackOn::REFUSALS.covers_layer(Throttle));
        for layer in Layer::ORDER.into_iter().chain([Throttle]) {
            assert!(FallbackOn::NOTHING.layer(layer).covers_layer(layer));
            assert!(!FallbackOn::EVERYTHING.except(layer).covers_layer(layer));
        }
    }

    #[test]
    fn a_rule_of_ones_own_sees_the_operations_error() {
        // Only a call that gave up because the dependency said "down".
        let down = |e: &PipelineError<&str>| {
            matches!(
                e,
                PipelineError::GaveUp {
                    last: AttemptError::Operation("down"),
                    ..
                }
            )
        };
        assert_eq!(covered(down), [Layer::Retry]);
    }

    #[test]
    fn debug_lists_the_layers() {
        assert_eq!(format!("{:?}", FallbackOn::NOTHING), "{}");
        assert_eq!(
            format!("{:?}", FallbackOn::EVERYTHING),
            "{\"overall_timeout\", \"rate_limit\", \"bulkhead\", \"circuit_breaker\", \"retry\", \"throttle\"}"
        );
        assert_eq!(FallbackOn::default(), FallbackOn::NOTHING);
    }
}
