//! The circuit breaker: three windows (consecutive failures, the last N calls, the last T
//! of time) and a growing open duration, on the same failure pattern, with every state
//! transition as the breaker's listener reports it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use stanchion::Instant;
use stanchion::breaker::window::{ConsecutiveWindow, CountWindow, TimeWindow, Window};
use stanchion::breaker::{
    BreakerConfig, BreakerListener, CircuitBreaker, FixedOpenDuration, State, Threshold,
};
use stanchion::retry::{Backoff, Exponential, Ratio};
use stanchion::sync::NoopRawMutex;

use crate::timeline::{Align, Table, at, heading, note, percent, secs};

/// One call every this long.
pub const CALL_EVERY: Duration = Duration::from_millis(250);
/// Calls in the run (20 s).
pub const CALLS: u64 = 80;
/// How long each call takes.
pub const CALL_TAKES: Duration = Duration::from_millis(50);

/// The downstream's behaviour over time.
pub fn phase(t: Instant) -> &'static str {
    match t.as_nanos() / 1_000_000_000 {
        0..=3 => "healthy",
        4..=7 => "flaky",
        8..=11 => "down",
        _ => "healthy",
    }
}

/// Whether the call made at `t` (call number `i`) fails: every other call while flaky,
/// every call while down.
pub fn fails(i: u64, t: Instant) -> bool {
    match phase(t) {
        "flaky" => i % 2 == 1,
        "down" => true,
        _ => false,
    }
}

/// The thresholds every breaker here shares: open at 50% failures over at least 10 calls
/// (a consecutive window: 5 failures in a row), then probe with 2 calls. How long each
/// stays open is the backoff given to `drive` (2 s, or 2 s doubling).
pub const CONFIG: BreakerConfig = BreakerConfig::new()
    .failure_rate_threshold(50)
    .minimum_calls(10)
    .permitted_calls_in_half_open(2);

/// An event the listener saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A transition.
    Transition {
        /// From.
        from: State,
        /// To.
        to: State,
        /// When.
        at: Instant,
    },
    /// A threshold was exceeded, with the rate in basis points.
    Exceeded {
        /// Which.
        kind: Threshold,
        /// The rate.
        basis_points: u16,
    },
}

/// A [`BreakerListener`] that keeps every event, in order; clones share the list.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// The events so far.
    pub events: Rc<RefCell<Vec<Event>>>,
}

impl Recorder {
    /// The events so far, in order.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.borrow_mut())
    }
}

impl BreakerListener for Recorder {
    fn on_state_transition(&self, from: State, to: State, at: Instant) {
        self.events
            .borrow_mut()
            .push(Event::Transition { from, to, at });
    }

    fn on_threshold_exceeded(&self, kind: Threshold, basis_points: u16, _at: Instant) {
        self.events
            .borrow_mut()
            .push(Event::Exceeded { kind, basis_points });
    }
}

/// What one breaker did.
#[derive(Debug)]
pub struct BreakerRun {
    /// The variant's name.
    pub name: &'static str,
    /// One mark per call: `.` ok, `x` failed, `-` rejected (not sent), `+` probe ok,
    /// `!` probe failed.
    pub strip: String,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Calls that reached the downstream while it was failing them.
    pub failed_calls: u32,
    /// Calls rejected without reaching the downstream.
    pub rejected: u32,
    /// Of the rejected calls, those the downstream would have served.
    pub rejected_while_healthy: u32,
}

impl BreakerRun {
    /// The transitions, as `(from, to, at)`.
    pub fn transitions(&self) -> Vec<(State, State, Instant)> {
        self.events
            .iter()
            .filter_map(|e| match *e {
                Event::Transition { from, to, at } => Some((from, to, at)),
                Event::Exceeded { .. } => None,
            })
            .collect()
    }
}

/// Drives a breaker with `window` and open durations from `backoff` through the pattern.
pub fn drive<W: Window, B: Backoff>(name: &'static str, window: W, backoff: B) -> BreakerRun {
    let recorder = Recorder::default();
    let breaker: CircuitBreaker<W, NoopRawMutex, B, Recorder> =
        CircuitBreaker::from_parts(CONFIG, window, backoff, 7, recorder.clone()).expect("valid");
    let mut run = BreakerRun {
        name,
        strip: String::new(),
        events: Vec::new(),
        failed_calls: 0,
        rejected: 0,
        rejected_while_healthy: 0,
    };
    for i in 0..CALLS {
        let t = Instant::ZERO + CALL_EVERY * i as u32;
        let fail = fails(i, t);
        match breaker.try_acquire_at(t) {
            Ok(permit) => {
                let probe = permit.state() == State::HalfOpen;
                run.strip.push(match (probe, fail) {
                    (false, false) => '.',
                    (false, true) => 'x',
                    (true, false) => '+',
                    (true, true) => '!',
                });
                if fail {
                    run.failed_calls += 1;
                    permit.failure(CALL_TAKES);
                } else {
                    permit.success(CALL_TAKES);
                }
            }
            Err(_) => {
                run.strip.push('-');
                run.rejected += 1;
                run.rejected_while_healthy += u32::from(!fail);
            }
        }
    }
    run.events = recorder.take();
    run
}

/// The four variants.
pub fn run_all() -> Vec<BreakerRun> {
    let growing = Exponential::new(Duration::from_secs(2), Ratio::TWO, Duration::from_secs(16))
        .expect("valid backoff");
    vec![
        drive(
            "consecutive (5 in a row)",
            ConsecutiveWindow::new(5).expect("valid"),
            FixedOpenDuration(CONFIG_OPEN),
        ),
        drive(
            "count (last 10 calls)",
            CountWindow::<10>::new().expect("valid"),
            FixedOpenDuration(CONFIG_OPEN),
        ),
        drive(
            "time (last 5 s)",
            TimeWindow::<10>::new(Duration::from_secs(5)).expect("valid"),
            FixedOpenDuration(CONFIG_OPEN),
        ),
        drive(
            "count, open 2s x 2^n",
            CountWindow::<10>::new().expect("valid"),
            growing,
        ),
    ]
}

const CONFIG_OPEN: Duration = Duration::from_secs(2);

/// Prints the strips of `runs` under a time scale and the phases.
pub fn print_strips(runs: &[BreakerRun]) {
    let width = runs.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let per_second = (1_000 / CALL_EVERY.as_millis()) as usize;
    let scale: String = (0..CALLS as usize / per_second)
        .map(|s| format!("{:<width$}", format!("{s}s"), width = per_second))
        .collect();
    let mut phases = String::new();
    let mut last = "";
    for i in 0..CALLS as usize {
        let p = phase(Instant::ZERO + CALL_EVERY * i as u32);
        if p != last {
            while phases.len() < i {
                phases.push(' ');
            }
            phases.push_str(p);
            last = p;
        }
    }
    crate::say!("  {:width$}  {}", "", scale.trim_end());
    crate::say!("  {:width$}  {}", "downstream", phases.trim_end());
    for r in runs {
        crate::say!("  {:width$}  {}", r.name, r.strip);
    }
}

fn explain(from: State, to: State, exceeded: Option<u16>, open_for: Option<Duration>) -> String {
    match (from, to) {
        (State::Closed, State::Open) => match exceeded {
            Some(10_000) => "failure threshold reached (100%)".to_string(),
            Some(bp) => format!("failure rate {} reached the 50% threshold", percent(bp)),
            None => "threshold reached".to_string(),
        },
        (State::Open, State::HalfOpen) => match open_for {
            Some(d) => format!(
                "open {} (past its open duration): 2 probes allowed",
                secs(d)
            ),
            None => "open duration passed: 2 probe calls allowed".to_string(),
        },
        (State::HalfOpen, State::Open) => "a probe failed: open again".to_string(),
        (State::HalfOpen, State::Closed) => "both probes succeeded".to_string(),
        _ => String::new(),
    }
}

/// Prints the transitions of `run`, each with why it happened.
pub fn print_transitions(run: &BreakerRun) {
    crate::say!("\n  {}", run.name);
    let mut exceeded = None;
    let mut opened_at = None;
    for e in &run.events {
        match *e {
            Event::Exceeded {
                kind: Threshold::FailureRate,
                basis_points,
            } => exceeded = Some(basis_points),
            Event::Exceeded { .. } => {}
            Event::Transition { from, to, at: t } => {
                let open_for = opened_at.map(|o: Instant| t - o);
                crate::say!(
                    "    {:<9} {:<19} {}",
                    at(t),
                    format!("{from:?} -> {to:?}"),
                    explain(from, to, exceeded.take(), open_for)
                );
                opened_at = (to == State::Open).then_some(t);
            }
        }
    }
}

/// Prints the comparison table (the tour prints this alone).
pub fn print_summary(runs: &[BreakerRun]) {
    let mut table = Table::new(&[
        "window",
        "first opened",
        "opened",
        "failed calls sent",
        "rejected",
        "would have worked",
        "closed for good",
    ])
    .align(0, Align::Left);
    for r in runs {
        let transitions = r.transitions();
        let first_open = transitions.iter().find(|(_, to, _)| *to == State::Open);
        let opened = transitions
            .iter()
            .filter(|(_, to, _)| *to == State::Open)
            .count();
        let last = transitions.last();
        table.row([
            r.name.to_string(),
            first_open.map_or("never".into(), |(_, _, t)| at(*t)),
            format!("{opened}x"),
            r.failed_calls.to_string(),
            r.rejected.to_string(),
            r.rejected_while_healthy.to_string(),
            match last {
                Some((_, State::Closed, t)) => at(*t),
                Some(_) => "not yet".into(),
                None => "-".into(),
            },
        ]);
    }
    table.print();
}

/// The whole example.
pub fn run() {
    crate::say!("Circuit breaker: one failure pattern, four breakers, on virtual time");
    heading("1. The pattern, call by call");
    note(
        "One call every 250 ms for 20 s. The downstream is healthy, then flaky (every other \
         call fails), then down, then healthy again. Every breaker opens at 50% failures over \
         at least 10 calls (the consecutive one at 5 failures in a row), stays open 2 s, then \
         lets 2 probe calls through. . = ok, x = failed, - = rejected without calling \
         (fail fast), + = probe ok, ! = probe failed.",
    );
    crate::say!();
    let runs = run_all();
    print_strips(&runs);

    heading("2. Every transition, as the breaker's listener reported it");
    for r in &runs {
        print_transitions(r);
    }

    heading("3. Side by side");
    crate::say!();
    print_summary(&runs);
    crate::say!();
    note(
        "The consecutive window ignores a 50% failure rate that alternates (no streak of 5) \
         and trips only when the downstream is down. The count window reacts within 10 calls. \
         The time window is steadier: the healthy calls of the last 5 s dilute the first \
         failures, so it trips later. A growing open duration (2s, then 4s, 8s...) sends fewer \
         probes into a long outage (one failed round here instead of two); the longer waits \
         can also notice a recovery later (here the 4 s wait happened to end just after it). \
         It resets when the breaker closes.",
    );
}
