//! [`BreakerListener`]: the breaker's events, for logging and metrics.

use crate::Instant;

use super::state::{Rejected, State};

/// Which threshold a window exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Threshold {
    /// The failure rate reached `failure_rate_threshold` (or, with a consecutive window,
    /// the failure streak reached its length).
    FailureRate,
    /// The slow-call rate reached `slow_call_rate_threshold` (or, with a consecutive
    /// window, the slow streak reached its length).
    SlowCallRate,
}

/// Receives a breaker's events. Every method has a no-op default; `()` is the listener
/// that ignores everything.
///
/// Methods are called after the breaker's critical section has ended, on the thread whose
/// call caused the event, so a listener may read the breaker (for example its metrics).
/// Each real transition is reported exactly once; a transition to the same state is not
/// reported. Events of different threads may arrive in an order other than the one in
/// which they happened. A listener must not block and should be cheap: it runs in the
/// caller's path.
pub trait BreakerListener {
    /// Whether the listener wants events at all. `false` only for a listener whose
    /// methods all do nothing (as `()`): the breaker then neither collects its events nor
    /// computes the rates it would report, and for a listener type that says so by a
    /// constant, that code compiles away. The default is `true`. (A method, not an
    /// associated constant, so that `dyn BreakerListener` stays possible.)
    #[inline]
    fn listens(&self) -> bool {
        true
    }

    /// The breaker moved from `from` to `to` at `at`.
    fn on_state_transition(&self, from: State, to: State, at: Instant) {
        let _ = (from, to, at);
    }

    /// A call was rejected at `at`.
    fn on_rejected(&self, rejected: Rejected, at: Instant) {
        let _ = (rejected, at);
    }

    /// A threshold was exceeded at `at`, with the rate in basis points (hundredths of a
    /// percent; a consecutive window reports 10 000), while the thresholds of
    /// [`BreakerConfig`](super::BreakerConfig) are in whole percent: a threshold of 50 %
    /// is reached by a rate of 5 000 or more. In closed this precedes the
    /// transition to open; in metrics-only it is reported once per kind per metrics-only
    /// period.
    fn on_threshold_exceeded(&self, kind: Threshold, rate_basis_points: u16, at: Instant) {
        let _ = (kind, rate_basis_points, at);
    }

    /// The breaker was reset to closed from `from`. As in resilience4j, a reset from any
    /// state but closed first reports the transition `from` → closed
    /// ([`on_state_transition`](Self::on_state_transition)), then this.
    fn on_reset(&self, from: State, at: Instant) {
        let _ = (from, at);
    }
}

impl BreakerListener for () {
    #[inline]
    fn listens(&self) -> bool {
        false
    }
}

impl<T: BreakerListener + ?Sized> BreakerListener for &T {
    #[inline]
    fn listens(&self) -> bool {
        (**self).listens()
    }
    fn on_state_transition(&self, from: State, to: State, at: Instant) {
        (**self).on_state_transition(from, to, at);
    }
    fn on_rejected(&self, rejected: Rejected, at: Instant) {
        (**self).on_rejected(rejected, at);
    }
    fn on_threshold_exceeded(&self, kind: Threshold, rate_basis_points: u16, at: Instant) {
        (**self).on_threshold_exceeded(kind, rate_basis_points, at);
    }
    fn on_reset(&self, from: State, at: Instant) {
        (**self).on_reset(from, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `()` ignores events, so the breaker need not collect them; any other listener,
    /// a borrowed one and a `dyn` one included, gets them.
    #[test]
    fn who_listens() {
        struct Counts;
        impl BreakerListener for Counts {}
        assert!(!().listens());
        assert!(!BreakerListener::listens(&&()));
        assert!(Counts.listens());
        let dynamic: &dyn BreakerListener = &Counts;
        assert!(dynamic.listens());
        assert!(!(&() as &dyn BreakerListener).listens());
    }
}
