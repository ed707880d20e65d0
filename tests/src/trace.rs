//! The decision trace: small comparable events at exact instants, and the comparison that
//! names the first difference.

use std::fmt::Write as _;
use std::sync::Mutex;

use stanchion::Instant;
use stanchion::breaker::{BreakerListener, State};
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::rate::RateLimitError;
use stanchion::retry::GiveUpReason;

/// One decision, at the instant it was taken (nanoseconds since the scenario's start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A limiter granted request `request`.
    Granted {
        /// When.
        at: Instant,
        /// The request's index in the arrival schedule.
        request: usize,
    },
    /// A limiter denied request `request`, to be retried after `retry_after_nanos`.
    Denied {
        /// When.
        at: Instant,
        /// The request's index in the arrival schedule.
        request: usize,
        /// The denial's `retry_after`, in nanoseconds.
        retry_after_nanos: u64,
    },
    /// Request `request` asked for more than the limiter can ever grant (`max`).
    NeverFits {
        /// When.
        at: Instant,
        /// The request's index in the arrival schedule.
        request: usize,
        /// The most the limiter grants at once.
        max: u32,
    },
    /// A waiter left the line with its permits (or a shaped request's turn came).
    Proceeded {
        /// When.
        at: Instant,
        /// The request's index in the arrival schedule.
        request: usize,
    },
    /// A bulkhead refused request `request`: its line was full, or its deadline passed.
    BulkheadFull {
        /// When.
        at: Instant,
        /// The request's index in the schedule.
        request: usize,
        /// Slots in use at that moment.
        in_use: u32,
    },
    /// Attempt `attempt` of call `call` started (the operation ran).
    Attempt {
        /// When.
        at: Instant,
        /// The call's index in the schedule.
        call: usize,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// A circuit breaker changed state.
    Transition {
        /// When.
        at: Instant,
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
    },
    /// Call `call` ended.
    Ended {
        /// When.
        at: Instant,
        /// The call's index in the schedule.
        call: usize,
        /// How.
        outcome: CallOutcome,
    },
}

/// How a call ended, in the shape every driver can report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The operation's success.
    Ok,
    /// A layer refused the call (`retry_after` in nanoseconds, where the layer says).
    Refused {
        /// The refusing layer.
        layer: Layer,
        /// When trying again may succeed, in nanoseconds.
        retry_after_nanos: Option<u64>,
    },
    /// The retries ran out.
    GaveUp {
        /// How the last attempt failed.
        last: LastError,
        /// Why the policy stopped.
        reason: GiveUpReason,
        /// Attempts counted by the runner.
        attempts: u32,
    },
}

/// How the last attempt of a call that gave up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LastError {
    /// The operation returned an error.
    Operation,
    /// The per-attempt timeout fired.
    Timeout,
    /// The circuit breaker refused the attempt.
    CircuitOpen,
}

fn nanos(d: core::time::Duration) -> u64 {
    stanchion::time::duration_to_nanos_saturating(d)
}

impl CallOutcome {
    /// The outcome of a pipeline call (std's and embassy's pipelines return the same
    /// error type, core's [`PipelineError`]).
    pub fn of_pipeline<T, E>(result: &Result<T, PipelineError<E>>) -> CallOutcome {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(PipelineError::GaveUp {
                last,
                reason,
                attempts,
            }) => CallOutcome::GaveUp {
                last: match last {
                    AttemptError::Operation(_) => LastError::Operation,
                    AttemptError::Timeout => LastError::Timeout,
                    AttemptError::CircuitOpen(_) => LastError::CircuitOpen,
                },
                reason: *reason,
                attempts: *attempts,
            },
            Err(refused) => CallOutcome::Refused {
                layer: refused.layer(),
                retry_after_nanos: refused.retry_after().map(nanos),
            },
        }
    }
}

impl Event {
    /// The event for a limiter's answer to request `request` at `at`.
    pub fn of_decision(at: Instant, request: usize, decision: Result<(), RateLimitError>) -> Event {
        match decision {
            Ok(()) => Event::Granted { at, request },
            Err(RateLimitError::Denied(d)) => Event::Denied {
                at,
                request,
                retry_after_nanos: d.retry_after_nanos(),
            },
            Err(RateLimitError::InsufficientCapacity(c)) => Event::NeverFits {
                at,
                request,
                max: c.max(),
            },
        }
    }
}

/// Where a driver writes its events: shared by `&` (a breaker's listener writes here too).
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// An empty trace.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Appends `event`.
    pub fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(event);
    }

    /// The events so far, leaving the trace empty.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(
            &mut *self
                .events
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

impl BreakerListener for Recorder {
    fn on_state_transition(&self, from: State, to: State, at: Instant) {
        self.push(Event::Transition { at, from, to });
    }
}

/// The index of the first event at which `a` and `b` differ (the shorter length if one
/// is a prefix of the other), or `None` if they are equal.
pub fn first_difference(a: &[Event], b: &[Event]) -> Option<usize> {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => Some(i),
        None if a.len() == b.len() => None,
        None => Some(a.len().min(b.len())),
    }
}

/// Fails, naming the first differing event and its neighbours, unless `actual` (from the
/// driver `who`) equals `reference` for scenario `scenario`.
#[track_caller]
pub fn assert_same_trace(scenario: &str, who: &str, reference: &[Event], actual: &[Event]) {
    let Some(i) = first_difference(reference, actual) else {
        return;
    };
    let mut msg = format!(
        "scenario `{scenario}`: the {who} trace differs from the reference (ManualClock) at \
         event {i} of {} (reference) / {} ({who})\n",
        reference.len(),
        actual.len()
    );
    let _ = writeln!(msg, "  reference: {:?}", reference.get(i));
    let _ = writeln!(msg, "  {who:>9}: {:?}", actual.get(i));
    let _ = writeln!(msg, "  events before it (equal in both):");
    for e in reference.get(i.saturating_sub(3)..i).unwrap_or_default() {
        let _ = writeln!(msg, "    {e:?}");
    }
    panic!("{msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(ms: u64, request: usize) -> Event {
        Event::Granted {
            at: Instant::from_millis(ms),
            request,
        }
    }

    #[test]
    fn the_first_difference_is_found() {
        let a = [granted(0, 0), granted(1, 1), granted(2, 2)];
        assert_eq!(first_difference(&a, &a), None);
        assert_eq!(
            first_difference(&a, &[granted(0, 0), granted(2, 1)]),
            Some(1)
        );
        assert_eq!(first_difference(&a, &a[..2]), Some(2));
        assert_eq!(first_difference(&[], &a), Some(0));
    }

    #[test]
    #[should_panic(expected = "differs from the reference (ManualClock) at event 1")]
    fn a_difference_fails_and_names_the_event() {
        let a = [granted(0, 0), granted(1, 1)];
        assert_same_trace("demo", "tokio", &a, &[granted(0, 0), granted(2, 1)]);
    }
}
