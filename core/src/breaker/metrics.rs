//! [`BreakerMetrics`]: a snapshot of a breaker's counts and rates.

use super::state::State;

/// A snapshot of a breaker, taken by
/// [`CircuitBreaker::metrics_at`](super::CircuitBreaker::metrics_at).
///
/// The counts are those of the window (in closed, metrics-only and open: open keeps the
/// counts that opened it, as in resilience4j) or of the current probes (in half-open, and
/// in open when the probes re-opened it: their counts are what opened it). Forced-open and
/// disabled report an empty window (no calls, no rates), as DESIGN.md says.
///
/// Rates and thresholds are in different units: the rates here are in **basis points**
/// (hundredths of a percent, rounded down: 10 000 is every call), finer than the
/// thresholds of [`BreakerConfig`](super::BreakerConfig), which are in **whole percent**.
/// A rate reaches a threshold of `t` % when it is at least `t * 100` basis points. Rates
/// are `None` while fewer calls than the minimum have been recorded, as resilience4j's
/// `-1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BreakerMetrics {
    /// The current state.
    pub state: State,
    /// Recorded calls (not counting ignored or cancelled ones).
    pub calls: u32,
    /// Recorded successes: the calls that did not fail (slow ones included), `calls -
    /// failures`.
    pub successes: u32,
    /// Recorded failures.
    pub failures: u32,
    /// Recorded slow calls (successful or not).
    pub slow_calls: u32,
    /// Calls rejected since the breaker was built or last reset (cumulative).
    pub rejected: u64,
    /// Calls rejected since the current state was entered: resilience4j's number of
    /// not-permitted calls (a rejection decided just before a transition, by a thread
    /// racing it, may count in the state after it).
    pub rejected_in_state: u64,
    /// Failure rate in basis points (the threshold is in whole percent: 50 % is 5 000).
    pub failure_rate: Option<u16>,
    /// Slow-call rate in basis points (the threshold is in whole percent: 50 % is 5 000).
    pub slow_call_rate: Option<u16>,
    /// Half-open probe slots taken in the current half-open period (0 in other states).
    pub half_open_permits_taken: u16,
}
