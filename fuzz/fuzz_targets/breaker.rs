//! The circuit breaker under an arbitrary configuration, window, arbitrary calls,
//! outcomes, manual transitions and an arbitrary clock. Checks: no panic; in half-open
//! the breaker never has more probe slots out than `permitted_calls_in_half_open`, and
//! the slots it counts are exactly the probes of the current period still out or
//! recorded (a permit dropped or ignored gives its slot back, a stale one frees nothing);
//! forced-open rejects and disabled admits every call; an open breaker's rejection says
//! when to come back.
#![no_main]

use arbitrary::Arbitrary;
use core::cell::Cell;
use core::time::Duration;
use libfuzzer_sys::fuzz_target;
use stanchion::Instant;
use stanchion::breaker::window::{ConsecutiveWindow, CountWindow, TimeWindow, Window};
use stanchion::breaker::{
    AfterMaxWait, BreakerConfig, BreakerListener, CircuitBreaker, FixedOpenDuration, Outcome,
    Permit, State,
};
use stanchion::sync::CriticalSectionRawMutex;
use stanchion_fuzz::{FuzzClock, Tick, duration};

#[derive(Arbitrary, Debug)]
struct Config {
    failure_rate: u8,
    slow_rate: u8,
    slow_after: (u64, u8),
    minimum_calls: u8,
    permitted: u8,
    max_wait: Option<((u64, u8), bool)>,
    open: (u64, u8),
}

#[derive(Arbitrary, Debug)]
enum WindowKind {
    Count,
    Consecutive(u8),
    Time(u64, u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Manual {
    Closed,
    Open,
    HalfOpen,
    Disabled,
    ForcedOpen,
    MetricsOnly,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Tick(Tick),
    Acquire,
    /// Record on the permit at this index (modulo the number held).
    Record(u8, OutcomeKind, u64, u8),
    RecordAt(u8, OutcomeKind),
    Drop(u8),
    Transition(Manual),
    OpenFor(u64, u8),
    Reset,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum OutcomeKind {
    Success,
    Failure,
    Ignored,
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    window: WindowKind,
    seed: u64,
    start: u64,
    ops: Vec<Op>,
}

const MAX_OPS: usize = 512;

/// Counts periods: every reported transition or reset starts a new one (a reset from a
/// state other than closed is reported as the transition to closed, then the reset: one
/// period).
#[derive(Default)]
struct Periods(Cell<u64>);

impl BreakerListener for Periods {
    fn on_state_transition(&self, _: State, _: State, _: Instant) {
        self.0.set(self.0.get() + 1);
    }
    fn on_reset(&self, from: State, _: Instant) {
        if from == State::Closed {
            self.0.set(self.0.get() + 1);
        }
    }
}

fuzz_target!(|input: Input| {
    let c = &input.config;
    let mut config = BreakerConfig::new()
        .failure_rate_threshold(c.failure_rate)
        .slow_call_rate_threshold(c.slow_rate)
        .slow_call_duration(duration(c.slow_after.0, c.slow_after.1))
        .minimum_calls(u32::from(c.minimum_calls))
        .permitted_calls_in_half_open(u16::from(c.permitted % 12));
    if let Some(((raw, scale), closed)) = c.max_wait {
        let then = if closed {
            AfterMaxWait::Closed
        } else {
            AfterMaxWait::Open
        };
        config = config.max_wait_in_half_open(duration(raw, scale), then);
    }
    let ops = &input.ops[..input.ops.len().min(MAX_OPS)];
    match input.window {
        WindowKind::Count => {
            if let Ok(w) = CountWindow::<4>::new() {
                run(config, w, &input, ops);
            }
        }
        WindowKind::Consecutive(n) => {
            if let Ok(w) = ConsecutiveWindow::new(u32::from(n % 8)) {
                run(config, w, &input, ops);
            }
        }
        WindowKind::Time(raw, scale) => {
            if let Ok(w) = TimeWindow::<4>::new(duration(raw, scale)) {
                run(config, w, &input, ops);
            }
        }
    }
});

/// A permit held by the harness, with the period that issued it.
struct Held<'a, W: Window> {
    permit: Permit<&'a CircuitBreaker<W, CriticalSectionRawMutex, FixedOpenDuration, &'a Periods>>,
    period: u64,
}

fn run<W: Window>(config: BreakerConfig, window: W, input: &Input, ops: &[Op]) {
    let periods = Periods::default();
    let Ok(breaker) = CircuitBreaker::<W, CriticalSectionRawMutex, _, _>::from_parts(
        config,
        window,
        FixedOpenDuration(config_open(&input.config)),
        input.seed,
        &periods,
    ) else {
        return;
    };
    let permitted = u16::from(input.config.permitted % 12);
    let mut clock = FuzzClock::new(input.start);
    let mut held: Vec<Held<'_, W>> = Vec::new();
    // Half-open probes of the current period that recorded a success or failure (their
    // slot stays taken), as `(period, count)`.
    let mut recorded = (u64::MAX, 0u16);
    for op in ops {
        match *op {
            Op::Tick(t) => clock.tick(t),
            Op::Acquire => {
                let before = breaker.state();
                match breaker.try_acquire_at(clock.now) {
                    Ok(permit) => {
                        assert_ne!(before, State::ForcedOpen, "forced-open admitted a call");
                        held.push(Held {
                            permit,
                            period: periods.0.get(),
                        });
                    }
                    Err(rejected) => {
                        assert_ne!(before, State::Disabled, "disabled rejected a call");
                        assert!(matches!(
                            rejected.state,
                            State::Open | State::HalfOpen | State::ForcedOpen
                        ));
                        if rejected.state == State::Open {
                            let wait = rejected.retry_after.expect("open rejects with a wait");
                            assert!(wait > Duration::ZERO);
                        }
                    }
                }
            }
            Op::Record(i, kind, ..) | Op::RecordAt(i, kind) if !held.is_empty() => {
                let Held { permit, period } = held.swap_remove(usize::from(i) % held.len());
                let probe = permit.state() == State::HalfOpen && period == periods.0.get();
                let outcome = match kind {
                    OutcomeKind::Success => Outcome::Success,
                    OutcomeKind::Failure => Outcome::Failure,
                    OutcomeKind::Ignored => Outcome::Ignored,
                };
                if probe && !matches!(kind, OutcomeKind::Ignored) {
                    if recorded.0 != period {
                        recorded = (period, 0);
                    }
                    recorded.1 += 1;
                }
                match *op {
                    Op::Record(_, _, raw, scale) => permit.record(outcome, duration(raw, scale)),
                    _ => permit.record_at(outcome, clock.now),
                }
            }
            Op::Record(..) | Op::RecordAt(..) => {}
            Op::Drop(i) => {
                if !held.is_empty() {
                    drop(held.swap_remove(usize::from(i) % held.len()));
                }
            }
            Op::Transition(to) => {
                let to = match to {
                    Manual::Closed => State::Closed,
                    Manual::Open => State::Open,
                    Manual::HalfOpen => State::HalfOpen,
                    Manual::Disabled => State::Disabled,
                    Manual::ForcedOpen => State::ForcedOpen,
                    Manual::MetricsOnly => State::MetricsOnly,
                };
                let from = breaker.state();
                let result = breaker.transition_at(to, clock.now);
                assert_eq!(result.is_ok(), from.can_transition_to(to));
            }
            Op::OpenFor(raw, scale) => {
                let _ = breaker.open_for_at(duration(raw, scale), clock.now);
            }
            Op::Reset => breaker.reset_at(clock.now),
        }
        check_slots(&breaker, &held, &periods, recorded, permitted, clock.now);
    }
}

fn config_open(c: &Config) -> Duration {
    duration(c.open.0, c.open.1)
}

fn check_slots<W: Window>(
    breaker: &CircuitBreaker<W, CriticalSectionRawMutex, FixedOpenDuration, &Periods>,
    held: &[Held<'_, W>],
    periods: &Periods,
    recorded: (u64, u16),
    permitted: u16,
    now: Instant,
) {
    let metrics = breaker.metrics_at(now);
    if metrics.state != State::HalfOpen {
        return;
    }
    let current = periods.0.get();
    let out = held
        .iter()
        .filter(|h| h.period == current && h.permit.state() == State::HalfOpen)
        .count() as u16;
    let recorded = if recorded.0 == current { recorded.1 } else { 0 };
    let taken = metrics.half_open_permits_taken;
    assert!(
        taken <= permitted,
        "{taken} half-open slots taken, {permitted} permitted"
    );
    assert_eq!(
        taken,
        out + recorded,
        "slots taken {taken}, but {out} probes out and {recorded} recorded"
    );
}
