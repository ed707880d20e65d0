//! What each named instance reports: with feature `metrics`, counters and gauges through
//! the `metrics` facade (the table of names and labels is in the module docs of
//! [`registry`](super)); without it, nothing, at no cost.
//!
//! The handles are registered when the instance is built, with the recorder installed
//! then: install the exporter before building the registry.

use stanchion::breaker::{Rejected, State};
use stanchion::rate::RateLimitError;

/// The label value of a breaker state, as the service example's `/metrics` writes it.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(super) const fn state_label(state: State) -> &'static str {
    match state {
        State::Closed => "closed",
        State::Open => "open",
        State::HalfOpen => "half_open",
        State::Disabled => "disabled",
        State::ForcedOpen => "forced_open",
        State::MetricsOnly => "metrics_only",
    }
}

/// The place of `state` in [`STATES`].
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
const fn index(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
        State::Disabled => 3,
        State::ForcedOpen => 4,
        State::MetricsOnly => 5,
    }
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
const STATES: [State; 6] = [
    State::Closed,
    State::Open,
    State::HalfOpen,
    State::Disabled,
    State::ForcedOpen,
    State::MetricsOnly,
];

#[cfg(feature = "metrics")]
mod on {
    use metrics::{Counter, Gauge, counter, gauge};

    use super::*;

    /// A rate limiter's counters.
    #[derive(Clone, Debug)]
    pub(in super::super) struct RateLimitReport {
        admitted: Counter,
        over_quota: Counter,
        above_burst: Counter,
    }

    impl RateLimitReport {
        pub(in super::super) fn new(name: &str) -> Self {
            let rejected = |reason: &'static str| counter!("stanchion_rate_limit_rejected_total", "name" => name.to_owned(), "reason" => reason);
            RateLimitReport {
                admitted: counter!("stanchion_rate_limit_admitted_total", "name" => name.to_owned()),
                over_quota: rejected("over_quota"),
                above_burst: rejected("above_burst"),
            }
        }

        #[inline]
        pub(in super::super) fn decision(&self, decision: &Result<(), RateLimitError>) {
            match decision {
                Ok(()) => self.admitted.increment(1),
                Err(RateLimitError::Denied(_)) => self.over_quota.increment(1),
                Err(RateLimitError::InsufficientCapacity(_)) => self.above_burst.increment(1),
            }
        }
    }

    /// A breaker's gauges (one per state, 1 for the state it is in) and its refusals.
    #[derive(Debug)]
    pub(in super::super) struct BreakerReport {
        states: [Gauge; 6],
        /// By the state that refused: open, half-open (its probes all out), forced open.
        rejected: [Counter; 3],
    }

    impl BreakerReport {
        pub(in super::super) fn new(name: &str) -> Self {
            let states = STATES.map(|s| {
                gauge!("stanchion_breaker_state", "name" => name.to_owned(), "state" => state_label(s))
            });
            states[0].set(1.0);
            let refusing = [State::Open, State::HalfOpen, State::ForcedOpen];
            let rejected = refusing.map(|s| {
                counter!("stanchion_breaker_rejected_total", "name" => name.to_owned(), "reason" => state_label(s))
            });
            BreakerReport { states, rejected }
        }

        pub(in super::super) fn transition(&self, from: State, to: State) {
            self.states[index(from)].set(0.0);
            self.states[index(to)].set(1.0);
        }

        pub(in super::super) fn rejected(&self, rejected: Rejected) {
            let reason = match rejected.state {
                State::HalfOpen => 1,
                State::ForcedOpen => 2,
                // Only these three states refuse calls.
                _ => 0,
            };
            self.rejected[reason].increment(1);
        }
    }

    /// A bulkhead's counters and gauges.
    #[derive(Debug)]
    pub(in super::super) struct BulkheadReport {
        admitted: Counter,
        rejected: Counter,
        in_use: Gauge,
        max: Gauge,
    }

    impl BulkheadReport {
        pub(in super::super) fn new(name: &str, max: u32) -> Self {
            let report = BulkheadReport {
                admitted: counter!("stanchion_bulkhead_admitted_total", "name" => name.to_owned()),
                rejected: counter!("stanchion_bulkhead_rejected_total", "name" => name.to_owned(), "reason" => "full"),
                in_use: gauge!("stanchion_bulkhead_in_use", "name" => name.to_owned()),
                max: gauge!("stanchion_bulkhead_max_concurrent", "name" => name.to_owned()),
            };
            report.in_use.set(0.0);
            report.max.set(f64::from(max));
            report
        }

        pub(in super::super) fn acquired(&self, in_use: u32) {
            self.admitted.increment(1);
            self.in_use.set(f64::from(in_use));
        }

        pub(in super::super) fn rejected(&self) {
            self.rejected.increment(1);
        }

        pub(in super::super) fn released(&self, in_use: u32) {
            self.in_use.set(f64::from(in_use));
        }

        pub(in super::super) fn max_changed(&self, max: u32) {
            self.max.set(f64::from(max));
        }
    }

    /// One counter of an instance: a retry settings' retries, a hedge's hedges, a
    /// fallback's answers (the metric names are [`RETRIES`](super::RETRIES),
    /// [`HEDGES`](super::HEDGES) and [`FALLBACK_ANSWERS`](super::FALLBACK_ANSWERS)).
    #[derive(Clone, Debug)]
    pub(in super::super) struct CountReport {
        count: Counter,
    }

    impl CountReport {
        pub(in super::super) fn new(metric: &'static str, name: &str) -> Self {
            CountReport {
                count: counter!(metric, "name" => name.to_owned()),
            }
        }

        #[inline]
        pub(in super::super) fn count(&self) {
            self.count.increment(1);
        }
    }

    /// A retry budget's gauge of tokens left.
    #[derive(Debug)]
    pub(in super::super) struct BudgetReport {
        tokens: Gauge,
    }

    impl BudgetReport {
        pub(in super::super) fn new(name: &str, milli_tokens: u32) -> Self {
            let report = BudgetReport {
                tokens: gauge!("stanchion_retry_budget_tokens", "name" => name.to_owned()),
            };
            report.tokens(milli_tokens);
            report
        }

        #[inline]
        pub(in super::super) fn tokens(&self, milli_tokens: u32) {
            self.tokens.set(f64::from(milli_tokens) / 1000.0);
        }
    }

    /// Whether the breakers' listeners want events.
    pub(in super::super) const LISTENS: bool = true;
}

#[cfg(not(feature = "metrics"))]
mod on {
    use super::*;

    #[derive(Clone, Debug)]
    pub(in super::super) struct RateLimitReport;

    impl RateLimitReport {
        pub(in super::super) fn new(_: &str) -> Self {
            RateLimitReport
        }
        #[inline]
        pub(in super::super) fn decision(&self, _: &Result<(), RateLimitError>) {}
    }

    #[derive(Debug)]
    pub(in super::super) struct BreakerReport;

    impl BreakerReport {
        pub(in super::super) fn new(_: &str) -> Self {
            BreakerReport
        }
        pub(in super::super) fn transition(&self, _: State, _: State) {}
        pub(in super::super) fn rejected(&self, _: Rejected) {}
    }

    #[derive(Debug)]
    pub(in super::super) struct BulkheadReport;

    impl BulkheadReport {
        pub(in super::super) fn new(_: &str, _: u32) -> Self {
            BulkheadReport
        }
        pub(in super::super) fn acquired(&self, _: u32) {}
        pub(in super::super) fn rejected(&self) {}
        pub(in super::super) fn released(&self, _: u32) {}
        pub(in super::super) fn max_changed(&self, _: u32) {}
    }

    #[derive(Clone, Debug)]
    pub(in super::super) struct CountReport;

    impl CountReport {
        pub(in super::super) fn new(_: &'static str, _: &str) -> Self {
            CountReport
        }
        #[inline]
        pub(in super::super) fn count(&self) {}
    }

    #[derive(Debug)]
    pub(in super::super) struct BudgetReport;

    impl BudgetReport {
        pub(in super::super) fn new(_: &str, _: u32) -> Self {
            BudgetReport
        }
        #[inline]
        pub(in super::super) fn tokens(&self, _: u32) {}
    }

    pub(in super::super) const LISTENS: bool = false;
}

pub(super) use on::{
    BreakerReport, BudgetReport, BulkheadReport, CountReport, LISTENS, RateLimitReport,
};

/// The metric of a retry settings' retries.
pub(super) const RETRIES: &str = "stanchion_retry_retries_total";
/// The metric of a hedge's hedges (attempts after the first).
pub(super) const HEDGES: &str = "stanchion_hedge_hedges_total";
/// The metric of a fallback's answers.
pub(super) const FALLBACK_ANSWERS: &str = "stanchion_fallback_answers_total";
