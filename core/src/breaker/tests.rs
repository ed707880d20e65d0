//! Scenario tests on virtual time, property tests against a reference model, and loom
//! models of the lock-free paths.

extern crate std;

use std::sync::Mutex;
use std::vec::Vec;

use core::time::Duration;

use super::window::{ConsecutiveWindow, CountWindow, TimeWindow, Window};
use super::*;
use crate::Instant;
use crate::retry::Backoff;
use crate::sync::CriticalSectionRawMutex;

/// Every event a breaker reported, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Transition(State, State, Instant),
    Rejected(Rejected),
    Exceeded(Threshold, u16),
    Reset(State),
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Ev>>,
}

impl Recorder {
    fn take(&self) -> Vec<Ev> {
        core::mem::take(&mut *self.events.lock().unwrap())
    }
    fn transitions(&self) -> Vec<(State, State)> {
        self.take()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Transition(from, to, _) => Some((from, to)),
                _ => None,
            })
            .collect()
    }
}

impl BreakerListener for Recorder {
    fn on_state_transition(&self, from: State, to: State, at: Instant) {
        self.events
            .lock()
            .unwrap()
            .push(Ev::Transition(from, to, at));
    }
    fn on_rejected(&self, rejected: Rejected, _at: Instant) {
        self.events.lock().unwrap().push(Ev::Rejected(rejected));
    }
    fn on_threshold_exceeded(&self, kind: Threshold, rate: u16, _at: Instant) {
        self.events.lock().unwrap().push(Ev::Exceeded(kind, rate));
    }
    fn on_reset(&self, from: State, _at: Instant) {
        self.events.lock().unwrap().push(Ev::Reset(from));
    }
}

/// A backoff that doubles from `base`: 1 s, 2 s, 4 s, ...
#[derive(Clone, Copy, Debug)]
struct Doubling {
    base: Duration,
    next: Duration,
}

impl Doubling {
    const fn new(base: Duration) -> Doubling {
        Doubling { base, next: base }
    }
}

impl Backoff for Doubling {
    fn next_delay(&mut self, _rng: &mut fastrand::Rng) -> Duration {
        let d = self.next;
        self.next = d.saturating_mul(2);
        d
    }
    fn reset(&mut self) {
        self.next = self.base;
    }
}

type Breaker<W, B = FixedOpenDuration, const S: usize = DEFAULT_STRIPES> =
    CircuitBreaker<W, CriticalSectionRawMutex, B, Recorder, S>;

fn breaker<W: Window>(config: BreakerConfig, window: W) -> Breaker<W> {
    CircuitBreaker::with_listener(config, window, Recorder::default()).unwrap()
}

fn count<const N: usize>() -> CountWindow<N> {
    CountWindow::new().unwrap()
}

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Records `outcomes` (true = failure) one after the other at `now`, each taking 1 ms.
fn feed<W: Window, B: Backoff>(b: &Breaker<W, B>, now: Instant, failures: &[bool]) {
    for &failed in failures {
        let permit = b.try_acquire_at(now).unwrap();
        if failed {
            permit.failure(MS);
        } else {
            permit.success(MS);
        }
    }
}

const F: bool = true;
const S: bool = false;

#[test]
fn below_minimum_calls_nothing_opens() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(5)
            .failure_rate_threshold(50),
        count::<10>(),
    );
    feed(&b, Instant::ZERO, &[F, F, F, F]);
    assert_eq!(b.state(), State::Closed);
    let m = b.metrics_at(Instant::ZERO);
    assert_eq!((m.calls, m.failures, m.failure_rate), (4, 4, None));
    feed(&b, Instant::ZERO, &[F]);
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        b.listener().take(),
        [
            Ev::Exceeded(Threshold::FailureRate, 10_000),
            Ev::Transition(State::Closed, State::Open, at(1)),
        ]
    );
}

#[test]
fn minimum_calls_is_clamped_to_the_count_window() {
    // minimum_calls 100 with a window of 4: 4 calls are enough.
    let b = breaker(BreakerConfig::new().minimum_calls(100), count::<4>());
    feed(&b, Instant::ZERO, &[F, S, F]);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics_at(Instant::ZERO).failure_rate, None);
    feed(&b, Instant::ZERO, &[S]);
    assert_eq!(b.state(), State::Open);
    // Metrics use the clamped minimum too.
    assert_eq!(b.metrics_at(Instant::ZERO).failure_rate, Some(5_000));
}

#[test]
fn failure_threshold_is_inclusive() {
    // Exactly 50 % with a 50 % threshold opens.
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(4)
            .failure_rate_threshold(50),
        count::<4>(),
    );
    feed(&b, Instant::ZERO, &[F, S, S, F]);
    assert_eq!(b.state(), State::Open);

    // 1 of 3 (33.3 %) stays below 34 % and reaches 33 %.
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(3)
            .failure_rate_threshold(34),
        count::<3>(),
    );
    feed(&b, Instant::ZERO, &[F, S, S]);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics_at(Instant::ZERO).failure_rate, Some(3_333));
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(3)
            .failure_rate_threshold(33),
        count::<3>(),
    );
    feed(&b, Instant::ZERO, &[F, S, S]);
    assert_eq!(b.state(), State::Open);

    // 100 % needs every call to fail.
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(2)
            .failure_rate_threshold(100),
        count::<2>(),
    );
    feed(&b, Instant::ZERO, &[F, S, F]);
    assert_eq!(b.state(), State::Closed);
    feed(&b, Instant::ZERO, &[F]);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn slow_calls_trip_with_a_low_failure_rate() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(4)
            .failure_rate_threshold(100)
            .slow_call_rate_threshold(50)
            .slow_call_duration(ms(100)),
        count::<4>(),
    );
    // Exactly the slow duration is not slow (strict).
    for _ in 0..4 {
        b.try_acquire_at(Instant::ZERO).unwrap().success(ms(100));
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics_at(Instant::ZERO).slow_calls, 0);
    b.try_acquire_at(Instant::ZERO)
        .unwrap()
        .success(ms(100) + Duration::from_nanos(1));
    assert_eq!(b.state(), State::Closed); // 1 of 4 slow
    let _ = b.listener().take();
    b.try_acquire_at(Instant::ZERO).unwrap().failure(ms(101));
    // 2 of 4 slow, 1 of 4 failed: the slow-call rate trips.
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        b.listener().take(),
        [
            Ev::Exceeded(Threshold::SlowCallRate, 5_000),
            Ev::Transition(State::Closed, State::Open, at(101)),
        ]
    );
}

fn tripped(open: Duration) -> Breaker<CountWindow<1>> {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(1)
            .permitted_calls_in_half_open(1)
            .open_duration(open),
        count::<1>(),
    );
    b.try_acquire_at(at(1_000)).unwrap().failure(Duration::ZERO);
    assert_eq!(b.state(), State::Open);
    let _ = b.listener().take();
    b
}

#[test]
fn open_moves_to_half_open_strictly_after_the_wait() {
    let b = tripped(Duration::from_secs(10));
    let r = b.try_acquire_at(at(1_000)).unwrap_err();
    assert_eq!(r.state, State::Open);
    assert_eq!(
        r.retry_after,
        Some(Duration::from_secs(10) + Duration::from_nanos(1))
    );
    // At exactly the end of the open duration: still rejected, 1 ns to go.
    let r = b.try_acquire_at(at(11_000)).unwrap_err();
    assert_eq!(r.retry_after, Some(Duration::from_nanos(1)));
    assert_eq!(b.state(), State::Open);
    let later = at(11_000) + Duration::from_nanos(1);
    let probe = b.try_acquire_at(later).unwrap();
    assert_eq!(probe.state(), State::HalfOpen);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        b.listener().take(),
        [
            Ev::Rejected(Rejected {
                retry_after: Some(Duration::from_secs(10) + Duration::from_nanos(1)),
                state: State::Open
            }),
            Ev::Rejected(Rejected {
                retry_after: Some(Duration::from_nanos(1)),
                state: State::Open
            }),
            Ev::Transition(State::Open, State::HalfOpen, later),
        ]
    );
    assert_eq!(b.metrics_at(later).rejected, 2);
}

#[test]
fn a_clock_stepping_backwards_admits_nothing() {
    let b = tripped(Duration::from_secs(10));
    let r = b.try_acquire_at(Instant::ZERO).unwrap_err();
    assert_eq!(
        r.retry_after,
        Some(Duration::from_secs(11) + Duration::from_nanos(1))
    );
    // Open until the end of time: rejected even at Instant::MAX.
    b.open_until_at(Instant::MAX, at(2_000)).unwrap();
    let r = b.try_acquire_at(Instant::MAX).unwrap_err();
    assert_eq!(r.retry_after, Some(Duration::from_nanos(1)));
    // An open duration of Duration::MAX saturates.
    b.open_for_at(Duration::MAX, at(2_000)).unwrap();
    assert!(b.try_acquire_at(Instant::MAX).is_err());
}

#[test]
fn open_durations_grow_by_the_backoff_and_reset_on_close() {
    let config = BreakerConfig::new()
        .minimum_calls(1)
        .permitted_calls_in_half_open(1);
    let b: Breaker<CountWindow<1>, Doubling> = CircuitBreaker::from_parts(
        config,
        count::<1>(),
        Doubling::new(Duration::from_secs(1)),
        7,
        Recorder::default(),
    )
    .unwrap();
    let mut now = Instant::ZERO;
    b.try_acquire_at(now).unwrap().failure(Duration::ZERO);
    for expected in [1u64, 2, 4, 8] {
        let r = b.try_acquire_at(now).unwrap_err();
        assert_eq!(
            r.retry_after,
            Some(Duration::from_secs(expected) + Duration::from_nanos(1))
        );
        now = now + Duration::from_secs(expected) + Duration::from_nanos(1);
        b.try_acquire_at(now).unwrap().failure(Duration::ZERO); // the probe fails
    }
    // A successful probe closes and resets the backoff.
    now = now + Duration::from_secs(16) + Duration::from_nanos(1);
    b.try_acquire_at(now).unwrap().success(Duration::ZERO);
    assert_eq!(b.state(), State::Closed);
    b.try_acquire_at(now).unwrap().failure(Duration::ZERO);
    assert_eq!(
        b.try_acquire_at(now).unwrap_err().retry_after,
        Some(Duration::from_secs(1) + Duration::from_nanos(1))
    );
}

fn half_open(permitted: u16, minimum: u32) -> Breaker<CountWindow<2>> {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(minimum)
            .permitted_calls_in_half_open(permitted)
            .open_duration(Duration::from_secs(1)),
        count::<2>(),
    );
    b.transition_at(State::Open, Instant::ZERO).unwrap();
    b.transition_at(State::HalfOpen, Instant::ZERO).unwrap();
    let _ = b.listener().take();
    b
}

#[test]
fn half_open_budget_is_exact_and_released_slots_are_reusable() {
    let b = half_open(3, 3);
    let p1 = b.try_acquire_at(Instant::ZERO).unwrap();
    let p2 = b.try_acquire_at(Instant::ZERO).unwrap();
    let p3 = b.try_acquire_at(Instant::ZERO).unwrap();
    let r = b.try_acquire_at(Instant::ZERO).unwrap_err();
    assert_eq!(
        r,
        Rejected {
            retry_after: None,
            state: State::HalfOpen
        }
    );
    assert_eq!(b.metrics_at(Instant::ZERO).half_open_permits_taken, 3);
    drop(p1); // cancelled: its slot comes back, nothing recorded
    assert_eq!(b.metrics_at(Instant::ZERO).half_open_permits_taken, 2);
    let p4 = b.try_acquire_at(Instant::ZERO).unwrap();
    p2.ignored(); // ignored: the same
    let p5 = b.try_acquire_at(Instant::ZERO).unwrap();
    assert!(b.try_acquire_at(Instant::ZERO).is_err());
    assert_eq!(b.metrics_at(Instant::ZERO).calls, 0);
    // A recorded outcome keeps its slot.
    p3.success(MS);
    assert!(b.try_acquire_at(Instant::ZERO).is_err());
    assert_eq!(b.metrics_at(Instant::ZERO).calls, 1);
    p4.success(MS);
    p5.success(MS);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn half_open_decides_after_min_of_minimum_and_permitted() {
    // permitted 4, minimum 2: two outcomes decide.
    let b = half_open(4, 2);
    let probes: Vec<_> = (0..4)
        .map(|_| b.try_acquire_at(Instant::ZERO).unwrap())
        .collect();
    let mut probes = probes.into_iter();
    probes.next().unwrap().failure(MS);
    assert_eq!(b.state(), State::HalfOpen);
    probes.next().unwrap().failure(MS);
    assert_eq!(b.state(), State::Open);
    // The two probes still out are late: their outcomes change nothing.
    probes.next().unwrap().success(MS);
    probes.next().unwrap().success(MS);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.listener().transitions(), [(State::HalfOpen, State::Open)]);

    let b = half_open(4, 2);
    feed(&b, Instant::ZERO, &[S, F]); // 50 % < ... is 50 %: reaches the 50 % threshold
    assert_eq!(b.state(), State::Open);
    let b = half_open(4, 2);
    feed(&b, Instant::ZERO, &[S, S]);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(
        b.listener().transitions(),
        [(State::HalfOpen, State::Closed)]
    );
    // Closing starts with an empty window.
    assert_eq!(b.metrics_at(Instant::ZERO).calls, 0);
}

#[test]
fn ignored_outcomes_are_not_recorded() {
    let b = breaker(BreakerConfig::new().minimum_calls(2), count::<2>());
    for _ in 0..10 {
        b.try_acquire_at(Instant::ZERO).unwrap().ignored();
    }
    feed(&b, Instant::ZERO, &[F]);
    let m = b.metrics_at(Instant::ZERO);
    assert_eq!((m.calls, m.failures, m.state), (1, 1, State::Closed));
    // A dropped permit records nothing either.
    drop(b.try_acquire_at(Instant::ZERO).unwrap());
    assert_eq!(b.metrics_at(Instant::ZERO).calls, 1);
}

fn with_max_wait(then: AfterMaxWait) -> Breaker<CountWindow<2>> {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(2)
            .permitted_calls_in_half_open(2)
            .open_duration(Duration::from_secs(1))
            .max_wait_in_half_open(Duration::from_secs(5), then),
        count::<2>(),
    );
    b.transition_at(State::Open, Instant::ZERO).unwrap();
    let _ = b.listener().take();
    b
}

#[test]
fn maximum_wait_in_half_open_goes_back_to_open() {
    let b = with_max_wait(AfterMaxWait::Open);
    let entered = at(1_001);
    let p1 = b.try_acquire_at(entered).unwrap();
    let p2 = b.try_acquire_at(entered).unwrap();
    p1.success(MS);
    // Just before the wait runs out: still half-open, no slot left.
    let just_before = entered + Duration::from_secs(5) - Duration::from_nanos(1);
    assert_eq!(
        b.try_acquire_at(just_before).unwrap_err().state,
        State::HalfOpen
    );
    // At the wait (inclusive): back to open, rejecting for another open duration.
    let expired = entered + Duration::from_secs(5);
    let r = b.try_acquire_at(expired).unwrap_err();
    assert_eq!(r.state, State::Open);
    assert_eq!(
        r.retry_after,
        Some(Duration::from_secs(1) + Duration::from_nanos(1))
    );
    // The outstanding probe is late.
    p2.success(MS);
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        b.listener().transitions(),
        [
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Open)
        ]
    );
}

#[test]
fn maximum_wait_noticed_by_an_outcome_can_close() {
    let b = with_max_wait(AfterMaxWait::Closed);
    let p = b.try_acquire_at(at(1_001)).unwrap();
    // The call ends after the wait ran out: the breaker closes, the outcome is dropped.
    p.failure(Duration::from_secs(6));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics_at(at(7_001)).calls, 0);
    assert_eq!(
        b.listener().transitions(),
        [
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[test]
fn forced_open_rejects_until_moved_by_hand() {
    let b = breaker(BreakerConfig::new(), count::<2>());
    b.transition_at(State::ForcedOpen, Instant::ZERO).unwrap();
    let r = b.try_acquire_at(Instant::MAX).unwrap_err();
    assert_eq!(
        r,
        Rejected {
            retry_after: None,
            state: State::ForcedOpen
        }
    );
    b.transition_at(State::Closed, at(1)).unwrap();
    assert!(b.try_acquire_at(at(1)).is_ok());
}

#[test]
fn disabled_lets_everything_through_and_records_nothing() {
    let b = breaker(BreakerConfig::new().minimum_calls(1), count::<2>());
    b.transition_at(State::Disabled, Instant::ZERO).unwrap();
    feed(&b, Instant::ZERO, &[F; 20]);
    assert_eq!(b.state(), State::Disabled);
    assert_eq!(b.metrics_at(Instant::ZERO).calls, 0);
}

#[test]
fn metrics_only_reports_each_threshold_once_and_never_opens() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(2)
            .slow_call_duration(ms(10))
            .slow_call_rate_threshold(50),
        count::<2>(),
    );
    b.transition_at(State::MetricsOnly, Instant::ZERO).unwrap();
    let _ = b.listener().take();
    feed(&b, Instant::ZERO, &[F, F, F, F]);
    b.try_acquire_at(Instant::ZERO).unwrap().success(ms(11));
    b.try_acquire_at(Instant::ZERO).unwrap().failure(ms(11));
    assert_eq!(b.state(), State::MetricsOnly);
    assert_eq!(
        b.listener().take(),
        [
            Ev::Exceeded(Threshold::FailureRate, 10_000),
            Ev::Exceeded(Threshold::SlowCallRate, 5_000),
        ]
    );
    let m = b.metrics_at(Instant::ZERO);
    assert_eq!((m.calls, m.failures, m.slow_calls), (2, 1, 2));
    // A new metrics-only period reports again.
    b.transition_at(State::Closed, Instant::ZERO).unwrap();
    b.transition_at(State::MetricsOnly, Instant::ZERO).unwrap();
    let _ = b.listener().take();
    feed(&b, Instant::ZERO, &[F, F]);
    assert_eq!(
        b.listener().take(),
        [Ev::Exceeded(Threshold::FailureRate, 10_000)]
    );
}

/// The same with a consecutive window, whose failure streak is kept in the state word
/// below its length: the failure that reaches the length reports once, the longer
/// streak after it reports nothing, and the next streak that reaches it in the same
/// metrics-only period reports nothing either.
#[test]
fn metrics_only_with_a_consecutive_window_reports_the_streak_once() {
    let b = breaker(BreakerConfig::new(), ConsecutiveWindow::new(3).unwrap());
    b.transition_at(State::MetricsOnly, Instant::ZERO).unwrap();
    let _ = b.listener().take();
    feed(&b, Instant::ZERO, &[F, F]);
    assert_eq!(b.listener().take(), []);
    feed(&b, Instant::ZERO, &[F, F, F]);
    assert_eq!(
        b.listener().take(),
        [Ev::Exceeded(Threshold::FailureRate, 10_000)]
    );
    assert_eq!(b.metrics_at(Instant::ZERO).failures, 5);
    feed(&b, Instant::ZERO, &[S, F, F]);
    assert_eq!(b.metrics_at(Instant::ZERO).failures, 2);
    feed(&b, Instant::ZERO, &[F]);
    assert_eq!(b.listener().take(), []);
    let m = b.metrics_at(Instant::ZERO);
    assert_eq!((m.state, m.failures), (State::MetricsOnly, 3));
}

#[test]
fn open_for_and_open_until_do_not_touch_the_backoff() {
    let b: Breaker<CountWindow<1>, Doubling> = CircuitBreaker::from_parts(
        BreakerConfig::new().minimum_calls(1),
        count::<1>(),
        Doubling::new(Duration::from_secs(1)),
        7,
        Recorder::default(),
    )
    .unwrap();
    b.open_for_at(Duration::from_secs(30), at(1_000)).unwrap();
    assert_eq!(
        b.try_acquire_at(at(1_000)).unwrap_err().retry_after,
        Some(Duration::from_secs(30) + Duration::from_nanos(1))
    );
    // Already open: the period is replaced, silently.
    b.open_until_at(at(5_000), at(2_000)).unwrap();
    assert_eq!(
        b.try_acquire_at(at(2_000)).unwrap_err().retry_after,
        Some(Duration::from_secs(3) + Duration::from_nanos(1))
    );
    assert_eq!(b.listener().transitions(), [(State::Closed, State::Open)]);
    // An automatic opening still starts at the backoff's first delay.
    b.reset_at(at(3_000));
    b.try_acquire_at(at(3_000)).unwrap().failure(Duration::ZERO);
    assert_eq!(
        b.try_acquire_at(at(3_000)).unwrap_err().retry_after,
        Some(Duration::from_secs(1) + Duration::from_nanos(1))
    );
}

#[test]
fn reset_starts_afresh_and_voids_old_permits() {
    let b = breaker(BreakerConfig::new().minimum_calls(2), count::<2>());
    let old = b.try_acquire_at(Instant::ZERO).unwrap();
    feed(&b, Instant::ZERO, &[F, F]);
    assert_eq!(b.state(), State::Open);
    assert!(b.try_acquire_at(Instant::ZERO).is_err());
    let _ = b.listener().take();
    b.reset_at(at(1));
    // As resilience4j: the transition to closed, then the reset (issue 19, bug 3).
    assert_eq!(
        b.listener().take(),
        [
            Ev::Transition(State::Open, State::Closed, at(1)),
            Ev::Reset(State::Open)
        ]
    );
    let m = b.metrics_at(at(1));
    assert_eq!((m.state, m.calls, m.rejected), (State::Closed, 0, 0));
    old.failure(MS); // admitted before the reset: dropped
    assert_eq!(b.metrics_at(at(1)).calls, 0);
}

#[test]
fn illegal_transitions_are_errors_and_change_nothing() {
    let b = breaker(BreakerConfig::new(), count::<2>());
    assert_eq!(
        b.transition_at(State::HalfOpen, Instant::ZERO),
        Err(IllegalTransition {
            from: State::Closed,
            to: State::HalfOpen
        })
    );
    b.transition_at(State::MetricsOnly, Instant::ZERO).unwrap();
    assert_eq!(
        b.transition_at(State::HalfOpen, Instant::ZERO),
        Err(IllegalTransition {
            from: State::MetricsOnly,
            to: State::HalfOpen
        })
    );
    assert_eq!(b.state(), State::MetricsOnly);
    assert_eq!(
        b.listener().transitions(),
        [(State::Closed, State::MetricsOnly)]
    );
    assert_eq!(
        std::format!(
            "{}",
            IllegalTransition {
                from: State::Closed,
                to: State::HalfOpen
            }
        ),
        "illegal circuit breaker transition from closed to half-open"
    );
}

#[test]
fn each_transition_is_reported_exactly_once() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(1)
            .permitted_calls_in_half_open(1)
            .open_duration(Duration::from_secs(1)),
        count::<1>(),
    );
    // Same-state transitions are silent.
    b.transition_at(State::Closed, Instant::ZERO).unwrap();
    feed(&b, Instant::ZERO, &[F]);
    let probe = b.try_acquire_at(at(2_000)).unwrap();
    probe.success(MS);
    b.transition_at(State::Disabled, at(3_000)).unwrap();
    b.transition_at(State::Disabled, at(3_000)).unwrap();
    b.transition_at(State::ForcedOpen, at(3_000)).unwrap();
    b.transition_at(State::HalfOpen, at(3_000)).unwrap();
    assert_eq!(
        b.listener().transitions(),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed),
            (State::Closed, State::Disabled),
            (State::Disabled, State::ForcedOpen),
            (State::ForcedOpen, State::HalfOpen),
        ]
    );
}

#[cfg(not(loom))]
#[test]
fn racing_threads_see_one_transition_each() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(1)
            .permitted_calls_in_half_open(3)
            .open_duration(Duration::from_secs(1)),
        count::<1>(),
    );
    feed(&b, Instant::ZERO, &[F]);
    let _ = b.listener().take();
    let granted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..100 {
                    if let Ok(p) = b.try_acquire_at(at(2_000)) {
                        granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        core::mem::forget(p); // hold the slot for good
                    }
                }
            });
        }
    });
    assert_eq!(granted.into_inner(), 3);
    assert_eq!(b.listener().transitions(), [(State::Open, State::HalfOpen)]);
}

#[test]
fn late_outcomes_do_not_count_as_probes() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(1)
            .permitted_calls_in_half_open(1)
            .open_duration(Duration::from_secs(1)),
        count::<1>(),
    );
    let before_trip = b.try_acquire_at(Instant::ZERO).unwrap();
    feed(&b, Instant::ZERO, &[F]);
    let probe = b.try_acquire_at(at(2_000)).unwrap();
    before_trip.success(MS); // from closed: not a probe
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.metrics_at(at(2_000)).calls, 0);
    probe.failure(MS);
    assert_eq!(b.state(), State::Open);

    // A probe of an earlier half-open period frees no slot in a later one.
    let b = half_open(2, 1);
    let stale = b.try_acquire_at(Instant::ZERO).unwrap();
    b.try_acquire_at(Instant::ZERO).unwrap().failure(MS); // decides: open
    let p = b.try_acquire_at(at(2_000)).unwrap(); // a new half-open period
    let q = b.try_acquire_at(at(2_000)).unwrap();
    assert_eq!(b.metrics_at(at(2_000)).half_open_permits_taken, 2);
    drop(stale);
    assert_eq!(b.metrics_at(at(2_000)).half_open_permits_taken, 2);
    assert!(b.try_acquire_at(at(2_000)).is_err());
    drop((p, q));
}

#[test]
fn count_window_evicts_old_calls() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(4)
            .failure_rate_threshold(75),
        count::<4>(),
    );
    feed(&b, Instant::ZERO, &[F, F, S, S, S, S, F, F]);
    // The window holds S, S, F, F: 50 % < 75 %.
    assert_eq!(b.state(), State::Closed);
    feed(&b, Instant::ZERO, &[F]);
    assert_eq!(b.state(), State::Open); // S, F, F, F
}

#[test]
fn time_window_evicts_old_buckets() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(3)
            .failure_rate_threshold(100),
        TimeWindow::<10>::new(Duration::from_secs(10)).unwrap(),
    );
    feed(&b, at(0), &[F, F]);
    feed(&b, at(10_000), &[F, F]); // the first two aged out (the call ends at 10.001 s)
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics_at(at(10_001)).calls, 2);
    feed(&b, at(19_000), &[F]);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn consecutive_window_opens_on_a_streak() {
    let b = breaker(
        BreakerConfig::new().permitted_calls_in_half_open(1),
        ConsecutiveWindow::new(3).unwrap(),
    );
    feed(&b, Instant::ZERO, &[F, F, S, F, F]);
    assert_eq!(b.state(), State::Closed);
    feed(&b, Instant::ZERO, &[F]);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn bad_configuration_is_a_config_error() {
    let cases = [
        (
            BreakerConfig::new().failure_rate_threshold(0),
            "failure_rate_threshold",
        ),
        (
            BreakerConfig::new().failure_rate_threshold(101),
            "failure_rate_threshold",
        ),
        (
            BreakerConfig::new().slow_call_rate_threshold(0),
            "slow_call_rate_threshold",
        ),
        (
            BreakerConfig::new().slow_call_rate_threshold(101),
            "slow_call_rate_threshold",
        ),
        (BreakerConfig::new().minimum_calls(0), "minimum_calls"),
        (
            BreakerConfig::new().permitted_calls_in_half_open(0),
            "permitted_calls_in_half_open",
        ),
        (
            BreakerConfig::new().max_wait_in_half_open(Duration::ZERO, AfterMaxWait::Open),
            "max_wait_in_half_open",
        ),
    ];
    for (config, field) in cases {
        let err = CircuitBreaker::<CountWindow<2>, CriticalSectionRawMutex>::new(config, count())
            .unwrap_err();
        assert_eq!(err.field(), field);
    }
    assert_eq!(CountWindow::<0>::new().unwrap_err().allowed(), "at least 1");
}

#[cfg(not(loom))]
#[test]
fn clock_bound_forms_and_statics() {
    use crate::ManualClock;
    static CLOCK: ManualClock = ManualClock::new();
    static BREAKER: CircuitBreaker<CountWindow<2>, CriticalSectionRawMutex> =
        match CountWindow::new() {
            Ok(w) => match CircuitBreaker::new(BreakerConfig::new().minimum_calls(2), w) {
                Ok(b) => b,
                Err(_) => panic!(),
            },
            Err(_) => panic!(),
        };
    BREAKER.try_acquire(&CLOCK).unwrap().failure(MS);
    CLOCK.advance(Duration::from_secs(1));
    BREAKER.try_acquire(&CLOCK).unwrap().failure(MS);
    let m = BREAKER.metrics(&CLOCK);
    assert_eq!(
        (m.state, m.calls, m.failure_rate),
        (State::Open, 2, Some(10_000))
    );
    assert!(std::format!("{BREAKER:?}").contains("Open"));
    assert_eq!(
        std::format!("{}", BREAKER.try_acquire(&CLOCK).unwrap_err()),
        "circuit breaker open: retry after 60.001s"
    );
}

#[cfg(not(loom))]
mod runtime_sized_windows;

#[cfg(not(loom))]
mod model {
    //! A reference model of the rules, written as plainly as possible, and a property test
    //! that the breaker agrees with it over random outcome sequences.

    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Success,
        Failure,
        Slow,
        Ignored,
        Cancel,
    }

    struct Model {
        /// `Some(n)`: a consecutive window of length `n` (the count window is unused).
        consecutive: Option<u32>,
        streaks: (u32, u32),
        state: State,
        window: VecDeque<(bool, bool)>,
        size: usize,
        minimum: usize,
        failure_pct: u64,
        slow_pct: u64,
        permitted: u32,
        base_open: u64,
        opens: u32,
        open_until: u64,
        half_open_deadline: Option<u64>,
        max_wait: Option<u64>,
        slots: u32,
        probes: Vec<(bool, bool)>,
    }

    impl Model {
        fn exceeded(&self, calls: &[(bool, bool)], minimum: usize) -> bool {
            let n = calls.len() as u64;
            if calls.is_empty() || calls.len() < minimum {
                return false;
            }
            let f = calls.iter().filter(|c| c.0).count() as u64;
            let s = calls.iter().filter(|c| c.1).count() as u64;
            f * 100 >= self.failure_pct * n || s * 100 >= self.slow_pct * n
        }

        fn open(&mut self, now: u64) {
            self.state = State::Open;
            self.open_until = now.saturating_add(self.base_open << self.opens);
            self.opens += 1;
        }

        fn close(&mut self) {
            self.state = State::Closed;
            self.window.clear();
            self.streaks = (0, 0);
            self.opens = 0;
        }

        fn half_open(&mut self, now: u64) {
            self.state = State::HalfOpen;
            self.half_open_deadline = self.max_wait.map(|w| now + w);
            self.slots = 0;
            self.probes.clear();
        }

        /// Returns whether the call was admitted, and the state it was admitted in.
        fn acquire(&mut self, now: u64) -> Result<State, Option<u64>> {
            loop {
                match self.state {
                    State::Closed => return Ok(State::Closed),
                    State::Open if now <= self.open_until => {
                        return Err(Some(self.open_until - now + 1));
                    }
                    State::Open => {
                        self.half_open(now);
                        self.slots = 1;
                        return Ok(State::HalfOpen);
                    }
                    State::HalfOpen => {
                        if self.half_open_deadline.is_some_and(|d| now >= d) {
                            self.open(now);
                            continue;
                        }
                        if self.slots >= self.permitted {
                            return Err(None);
                        }
                        self.slots += 1;
                        return Ok(State::HalfOpen);
                    }
                    _ => unreachable!(),
                }
            }
        }

        fn outcome(&mut self, admitted_in: State, call: Option<(bool, bool)>, end: u64) {
            let Some(call) = call else {
                if admitted_in == State::HalfOpen && self.state == State::HalfOpen {
                    self.slots -= 1;
                }
                return;
            };
            match self.state {
                State::Closed if self.consecutive.is_some() => {
                    let n = self.consecutive.unwrap();
                    self.streaks.0 = if call.0 { self.streaks.0 + 1 } else { 0 };
                    self.streaks.1 = if call.1 { self.streaks.1 + 1 } else { 0 };
                    if self.streaks.0 >= n || self.streaks.1 >= n {
                        self.open(end);
                    }
                }
                State::Closed => {
                    self.window.push_back(call);
                    if self.window.len() > self.size {
                        self.window.pop_front();
                    }
                    let calls: Vec<_> = self.window.iter().copied().collect();
                    if self.exceeded(&calls, self.minimum.min(self.size)) {
                        self.open(end);
                    }
                }
                State::HalfOpen => {
                    if self.half_open_deadline.is_some_and(|d| end >= d) {
                        self.open(end);
                        return;
                    }
                    self.probes.push(call);
                    let needed = self.minimum.min(self.permitted as usize);
                    if self.probes.len() >= needed {
                        let probes = self.probes.clone();
                        if self.exceeded(&probes, needed) {
                            self.open(end);
                        } else {
                            self.close();
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn op() -> impl Strategy<Value = (u64, Op)> {
        (
            prop_oneof![Just(0u64), 0..300u64, 0..3_000u64],
            prop_oneof![
                3 => Just(Op::Success),
                3 => Just(Op::Failure),
                1 => Just(Op::Slow),
                1 => Just(Op::Ignored),
                1 => Just(Op::Cancel),
            ],
        )
    }

    #[derive(Clone, Copy, Debug)]
    struct Params {
        minimum: u32,
        failure_pct: u8,
        slow_pct: u8,
        permitted: u16,
        max_wait: Option<u64>,
    }

    fn params() -> impl Strategy<Value = Params> {
        (
            1u32..8,
            1u8..=100,
            1u8..=100,
            1u16..4,
            prop_oneof![Just(None), (1u64..2_000).prop_map(Some)],
        )
            .prop_map(
                |(minimum, failure_pct, slow_pct, permitted, max_wait)| Params {
                    minimum,
                    failure_pct,
                    slow_pct,
                    permitted,
                    max_wait,
                },
            )
    }

    /// Drives `window` through `ops` in the breaker and in the model, comparing every
    /// decision and state.
    fn agree<W: Window, const S: usize>(
        p: Params,
        window: W,
        consecutive: Option<u32>,
        ops: &[(u64, Op)],
    ) -> Result<(), TestCaseError> {
        let mut config = BreakerConfig::new()
            .minimum_calls(p.minimum)
            .failure_rate_threshold(p.failure_pct)
            .slow_call_rate_threshold(p.slow_pct)
            .slow_call_duration(ms(100))
            .permitted_calls_in_half_open(p.permitted);
        if let Some(w) = p.max_wait {
            config = config.max_wait_in_half_open(ms(w), AfterMaxWait::Open);
        }
        let b: Breaker<W, Doubling, S> = CircuitBreaker::from_parts(
            config,
            window,
            Doubling::new(ms(500)),
            3,
            Recorder::default(),
        )
        .unwrap();
        let mut m = Model {
            consecutive,
            streaks: (0, 0),
            state: State::Closed,
            window: VecDeque::new(),
            size: 5,
            minimum: p.minimum as usize,
            failure_pct: p.failure_pct.into(),
            slow_pct: p.slow_pct.into(),
            permitted: p.permitted.into(),
            base_open: 500_000_000,
            opens: 0,
            open_until: 0,
            half_open_deadline: None,
            max_wait: p.max_wait.map(|w| w * 1_000_000),
            slots: 0,
            probes: Vec::new(),
        };
        let mut now = 0u64;
        for &(step, op) in ops {
            now += step * 1_000_000;
            let t = Instant::from_nanos(now);
            let got = b.try_acquire_at(t);
            let want = m.acquire(now);
            match (got, want) {
                (Ok(permit), Ok(state)) => {
                    prop_assert_eq!(permit.state(), state);
                    let (call, d) = match op {
                        Op::Success => (Some((false, false)), 10),
                        Op::Failure => (Some((true, false)), 10),
                        Op::Slow => (Some((false, true)), 150),
                        Op::Ignored | Op::Cancel => (None, 0),
                    };
                    match op {
                        Op::Success => permit.success(ms(d)),
                        Op::Failure => permit.failure(ms(d)),
                        Op::Slow => permit.success(ms(d)),
                        Op::Ignored => permit.ignored(),
                        Op::Cancel => drop(permit),
                    }
                    m.outcome(state, call, now + d * 1_000_000);
                }
                (Err(r), Err(wait)) => {
                    prop_assert_eq!(r.retry_after, wait.map(Duration::from_nanos));
                    prop_assert_eq!(r.state, m.state);
                }
                (got, want) => prop_assert!(
                    false,
                    "breaker {:?}, model {:?}",
                    got.map(|p| p.state()),
                    want
                ),
            }
            prop_assert_eq!(b.state(), m.state);
        }
        // The counts agree too, successes counted in a batch and a streak kept in the
        // state word included (reading the metrics hands them to the window).
        if m.state == State::Closed && consecutive.is_some() {
            let metrics = b.metrics_at(Instant::from_nanos(now));
            prop_assert_eq!(metrics.failures, m.streaks.0);
            prop_assert_eq!(metrics.slow_calls, m.streaks.1);
        }
        if m.state == State::Closed && consecutive.is_none() {
            let metrics = b.metrics_at(Instant::from_nanos(now));
            prop_assert_eq!(metrics.calls as usize, m.window.len());
            prop_assert_eq!(
                metrics.failures as usize,
                m.window.iter().filter(|c| c.0).count()
            );
            prop_assert_eq!(
                metrics.slow_calls as usize,
                m.window.iter().filter(|c| c.1).count()
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(256)))]

        #[test]
        fn count_window_breaker_agrees_with_the_model(
            p in params(),
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            agree::<_, 0>(p, count::<5>(), None, &ops)?;
        }

        /// The same with successes counted in stripes.
        #[test]
        fn striped_count_window_breaker_agrees_with_the_model(
            p in params(),
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            agree::<_, 4>(p, count::<5>(), None, &ops)?;
        }

        #[test]
        fn consecutive_window_breaker_agrees_with_the_model(
            p in params(),
            length in 1u32..5,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            agree::<_, DEFAULT_STRIPES>(p, ConsecutiveWindow::new(length).unwrap(), Some(length), &ops)?;
        }
    }
}

#[cfg(loom)]
mod loom_models {
    use super::*;
    use crate::sync::loom_mutex::{LoomRawMutex, locks_taken_by_this_thread};
    use loom::sync::Arc;

    /// A half-open breaker with `permitted` probe slots. Its transitions take the
    /// critical section on the calling thread, the model's main thread (see
    /// [`LoomRawMutex`]).
    fn half_open_breaker(permitted: u16) -> Arc<CircuitBreaker<CountWindow<1>, LoomRawMutex>> {
        let b = CircuitBreaker::new(
            BreakerConfig::new().permitted_calls_in_half_open(permitted),
            count::<1>(),
        )
        .unwrap();
        b.transition_at(State::Open, Instant::ZERO).unwrap();
        b.transition_at(State::HalfOpen, Instant::ZERO).unwrap();
        Arc::new(b)
    }

    #[test]
    fn loom_racing_threads_get_exactly_the_permitted_calls() {
        loom::model(|| {
            let b = half_open_breaker(2);
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    loom::thread::spawn(move || match b.try_acquire_at(Instant::ZERO) {
                        Ok(p) => {
                            core::mem::forget(p); // hold the slot
                            1u32
                        }
                        Err(r) => {
                            assert_eq!(r.state, State::HalfOpen);
                            0
                        }
                    })
                })
                .collect();
            let granted: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(granted, 2);
            assert_eq!(b.metrics_at(Instant::ZERO).half_open_permits_taken, 2);
        });
    }

    /// A permit of an earlier half-open period given back while the breaker goes through
    /// open into a new half-open period frees no slot of the new one: the transition's
    /// swap and the release's compare-and-swap order every change of the word.
    #[test]
    fn loom_stale_release_racing_a_new_half_open_period() {
        loom::model(|| {
            let b = half_open_breaker(1);
            let stale = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let releases = loom::thread::spawn(move || drop(stale));
            b.transition_at(State::Open, Instant::ZERO).unwrap();
            b.transition_at(State::HalfOpen, Instant::ZERO).unwrap();
            let held = b.try_acquire_at(Instant::ZERO).unwrap();
            releases.join().unwrap();
            assert_eq!(b.metrics_at(Instant::ZERO).half_open_permits_taken, 1);
            assert!(b.try_acquire_at(Instant::ZERO).is_err());
            core::mem::forget(held);
        });
    }

    #[test]
    fn loom_cancelled_permits_give_their_slot_back() {
        loom::model(|| {
            let b = half_open_breaker(1);
            let b2 = b.clone();
            let cancels = loom::thread::spawn(move || {
                if let Ok(p) = b2.try_acquire_at(Instant::ZERO) {
                    drop(p);
                }
            });
            let holder = match b.try_acquire_at(Instant::ZERO) {
                Ok(p) => {
                    core::mem::forget(p);
                    1
                }
                Err(_) => 0,
            };
            cancels.join().unwrap();
            // Slots taken are exactly the permits still held.
            assert_eq!(b.metrics_at(Instant::ZERO).half_open_permits_taken, holder);
        });
    }

    /// A closed breaker over a count window of 8 (minimum 2 calls, failure-rate threshold
    /// `percent`), with `S` stripes, that holds a batch of one success (in its state word,
    /// or in a stripe), for the models of the
    /// lock-free success batch. Its critical section is a [`LoomRawMutex`], so those models
    /// may race outcomes that take it.
    ///
    /// Call it on the model's main thread before spawning: its first success takes the
    /// critical section, which creates the loom mutex there (see [`LoomRawMutex`]).
    fn batching<const S: usize>(
        percent: u8,
    ) -> Arc<CircuitBreaker<CountWindow<8>, LoomRawMutex, FixedOpenDuration, (), S>> {
        let b = Arc::new(
            CircuitBreaker::new(
                BreakerConfig::new()
                    .minimum_calls(2)
                    .failure_rate_threshold(percent),
                count::<8>(),
            )
            .unwrap(),
        );
        // Two successes through the critical section: after the second the window holds
        // the minimum, so that section sets the batch flag.
        for _ in 0..2 {
            b.try_acquire_at(Instant::ZERO).unwrap().success(MS);
        }
        assert_eq!(locks_taken_by_this_thread(), 2);
        // A third, counted in the word without the lock: the batch is armed, and the race
        // starts with a count for the critical section to hand over.
        b.try_acquire_at(Instant::ZERO).unwrap().success(MS);
        assert_eq!(locks_taken_by_this_thread(), 2);
        b
    }

    /// A thread recording two successes, each counted in the state word or through the
    /// critical section, races a failure that takes the critical section, takes the
    /// batch out of the word (`drain`'s `fetch_xor`), records it and the failure, and
    /// arms the batch again (the rate stays below the threshold). Whatever the order,
    /// every outcome is in the window exactly once, and the last critical section leaves
    /// the batch armed.
    #[test]
    fn loom_batched_successes_racing_a_failure_are_counted_once() {
        loom::model(|| {
            let b = batching::<0>(50);
            let p1 = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let p2 = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let succeeds = loom::thread::spawn(move || {
                p1.success(MS);
                p2.success(MS);
            });
            b.try_acquire_at(Instant::ZERO).unwrap().failure(MS);
            succeeds.join().unwrap();
            // Armed again: a success is counted in the word, without the lock.
            let locks = locks_taken_by_this_thread();
            b.try_acquire_at(Instant::ZERO).unwrap().success(MS);
            assert_eq!(locks_taken_by_this_thread(), locks);
            // 3 before the race, 2 successes and the failure in it, 1 after: 1 failure
            // of 7, below 50%.
            let m = b.metrics_at(Instant::ZERO);
            assert_eq!((m.state, m.calls, m.failures), (State::Closed, 7, 1));
        });
    }

    /// A success racing a manual transition to forced-open. The transition's `swap`
    /// takes the batch out of the word and records it in the window, which forced-open
    /// keeps. Either the success was counted in the word first (it took no lock) and is
    /// in that window, or it found the new period, took the critical section and changed
    /// nothing (late). It is never lost (counted in the word after the hand-over) nor
    /// counted twice.
    #[test]
    fn loom_batched_success_racing_a_transition_is_kept_or_late() {
        loom::model(|| {
            let b = batching::<0>(50);
            let p = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let succeeds = loom::thread::spawn(move || {
                p.success(MS);
                locks_taken_by_this_thread()
            });
            b.transition_at(State::ForcedOpen, Instant::ZERO).unwrap();
            let locks = succeeds.join().unwrap();
            // Forced-open reports an empty window: read the one it keeps.
            let kept = b.window_for_test(Instant::ZERO);
            // The 3 successes before the race (the third handed over by the swap), and
            // the racing one if it came first.
            let calls = match locks {
                0 => 4, // counted in the word before the swap
                1 => 3, // late: the transition came first
                n => panic!("one success took the lock {n} times"),
            };
            assert_eq!(
                (b.state(), kept.calls, kept.failures),
                (State::ForcedOpen, calls, 0)
            );
        });
    }

    /// A success racing a failure that opens the breaker whether or not the success is
    /// in the window (1 failure of 4 or of 5 reaches 20%). The failure's critical section
    /// takes the batch out (`drain`), records the failure and opens, keeping the window.
    /// Either the success was counted in the word before that hand-over (no lock) and is
    /// in the window, or it found the batch taken out or the new period, took the
    /// critical section after the failure's and was late. Never lost, never twice.
    #[test]
    fn loom_batched_success_racing_an_opening_failure_is_kept_or_late() {
        loom::model(|| {
            let b = batching::<0>(20);
            let p = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let succeeds = loom::thread::spawn(move || {
                p.success(MS);
                locks_taken_by_this_thread()
            });
            b.try_acquire_at(Instant::ZERO).unwrap().failure(MS);
            let locks = succeeds.join().unwrap();
            let m = b.metrics_at(Instant::ZERO);
            // The 3 successes before the race and the failure, and the racing success if
            // it was counted in the word before the failure took the batch out.
            let calls = match locks {
                0 => 5,
                1 => 4,
                n => panic!("one success took the lock {n} times"),
            };
            assert_eq!((m.state, m.calls, m.failures), (State::Open, calls, 1));
        });
    }

    /// With stripes: two successes counted in stripes (no lock) racing a failure whose
    /// critical section sweeps the stripes into the window. The breaker stays in its
    /// period, so a success the sweep missed is swept by the next critical section: at the
    /// end every outcome is in the window exactly once, and the word was never written.
    #[test]
    fn loom_striped_successes_racing_a_failure_are_counted_once() {
        loom::model(|| {
            let b = batching::<2>(50);
            let armed = b.word_for_test();
            let p1 = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let p2 = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let succeeds = loom::thread::spawn(move || {
                p1.success(MS);
                p2.success(MS);
                locks_taken_by_this_thread()
            });
            b.try_acquire_at(Instant::ZERO).unwrap().failure(MS);
            assert_eq!(succeeds.join().unwrap(), 0);
            assert_eq!(b.word_for_test(), armed);
            let m = b.metrics_at(Instant::ZERO);
            assert_eq!((m.state, m.calls, m.failures), (State::Closed, 6, 1));
        });
    }

    /// With stripes: a success racing a manual transition to forced-open, which sweeps
    /// the stripes into the window it keeps. Either the success was counted before the
    /// sweep (in the window), or after it (left in its stripe, tagged with the period that
    /// ended: late, and never counted in a later period), or it found the new period and
    /// took the critical section (late). Never lost, never twice.
    #[test]
    fn loom_striped_success_racing_a_transition_is_kept_or_late() {
        loom::model(|| {
            let b = batching::<2>(50);
            let p = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let succeeds = loom::thread::spawn(move || {
                p.success(MS);
                locks_taken_by_this_thread()
            });
            b.transition_at(State::ForcedOpen, Instant::ZERO).unwrap();
            let locks = succeeds.join().unwrap();
            let left = b.stripes_for_test();
            let kept = b.window_for_test(Instant::ZERO);
            assert_eq!(b.state(), State::ForcedOpen);
            match (locks, left) {
                (0, 0) => assert_eq!(kept.calls, 4), // counted before the sweep
                (0, 1) | (1, 0) => assert_eq!(kept.calls, 3), // late
                other => panic!("unexpected (locks, left in stripes): {other:?}"),
            }
            // What was left behind does not count in the next closed period.
            b.transition_at(State::Closed, Instant::ZERO).unwrap();
            b.try_acquire_at(Instant::ZERO).unwrap().success(MS);
            assert_eq!(b.metrics_at(Instant::ZERO).calls, 1);
        });
    }

    /// Successes counted without the lock (in the word, or in a stripe) racing a threshold
    /// change, whose critical section takes the batch out of the word (`drain`) and clears
    /// the flags. Each success was counted before the hand-over (in the window then), or
    /// found the flags cleared and took the critical section, or (with stripes) was counted
    /// in a stripe of the same period after the sweep, which the next critical section
    /// sweeps. Never lost, never twice; the new threshold is in force.
    fn batched_successes_racing_a_threshold_change<const S: usize>() {
        loom::model(|| {
            let b = batching::<S>(50);
            let lowered = b.config().failure_rate_threshold(10);
            let p1 = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let p2 = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let succeeds = loom::thread::spawn(move || {
                p1.success(MS);
                p2.success(MS);
            });
            b.reconfigure(lowered).unwrap();
            succeeds.join().unwrap();
            let m = b.metrics_at(Instant::ZERO);
            assert_eq!((m.state, m.calls, m.failures), (State::Closed, 5, 0));
            assert_eq!(b.config(), lowered);
            // 1 failure of 6: 16 %, at or above the new 10 %.
            b.try_acquire_at(Instant::ZERO).unwrap().failure(MS);
            assert_eq!(b.state(), State::Open);
        });
    }

    #[test]
    fn loom_batched_successes_racing_a_threshold_change_are_counted_once() {
        batched_successes_racing_a_threshold_change::<0>();
    }

    #[test]
    fn loom_striped_successes_racing_a_threshold_change_are_counted_once() {
        batched_successes_racing_a_threshold_change::<2>();
    }

    /// A closed breaker over a consecutive window of 3 whose state word holds a failure
    /// streak of 1, for the models of the lock-free failure streak. Call it on the model's
    /// main thread before spawning (see [`batching`]).
    fn streaking() -> Arc<CircuitBreaker<ConsecutiveWindow, LoomRawMutex>> {
        let b = Arc::new(
            CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(3).unwrap()).unwrap(),
        );
        // The first outcome takes the critical section, which puts the streak in the word.
        b.try_acquire_at(Instant::ZERO).unwrap().success(MS);
        assert_eq!(locks_taken_by_this_thread(), 1);
        b.try_acquire_at(Instant::ZERO).unwrap().failure(MS);
        assert_eq!(locks_taken_by_this_thread(), 1);
        b
    }

    /// Two failures racing on a streak of 1, with a limit of 2 in the word: one grows the
    /// streak in the word, the other finds it at the limit, takes the critical section,
    /// which takes the streak out, records the third failure and opens. Whatever the
    /// order: exactly one lock between them, open, a streak of 3.
    #[test]
    fn loom_streak_failures_racing_open_the_breaker_once() {
        loom::model(|| {
            let b = streaking();
            let p = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let fails = loom::thread::spawn(move || {
                p.failure(MS);
                locks_taken_by_this_thread()
            });
            let before = locks_taken_by_this_thread();
            b.try_acquire_at(Instant::ZERO).unwrap().failure(MS);
            let locks = locks_taken_by_this_thread() - before + fails.join().unwrap();
            assert_eq!(locks, 1);
            let m = b.metrics_at(Instant::ZERO);
            assert_eq!((m.state, m.failures), (State::Open, 3));
        });
    }

    /// A failure racing a metrics read, whose critical section takes the streak out of
    /// the word into the window (`drain`'s `fetch_xor`) and puts it back. The read sees
    /// the failure or not; afterwards the streak holds it exactly once.
    #[test]
    fn loom_streak_failure_racing_a_hand_over_is_counted_once() {
        loom::model(|| {
            let b = streaking();
            let p = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let fails = loom::thread::spawn(move || p.failure(MS));
            let seen = b.metrics_at(Instant::ZERO).failures;
            assert!(seen == 1 || seen == 2, "{seen}");
            fails.join().unwrap();
            let m = b.metrics_at(Instant::ZERO);
            assert_eq!((m.state, m.failures), (State::Closed, 2));
            // The streak is back in the word: a success ends it without the lock.
            let locks = locks_taken_by_this_thread();
            b.try_acquire_at(Instant::ZERO).unwrap().success(MS);
            assert_eq!(locks_taken_by_this_thread(), locks);
            assert_eq!(b.metrics_at(Instant::ZERO).failures, 0);
        });
    }

    /// A failure racing a threshold change, whose critical section takes the streak out of
    /// the word into the window and clears the streak flag. The failure grew the streak in
    /// the word first, or found the flag cleared and took the critical section: either way
    /// the window holds 2 failures in a row, and the third opens.
    #[test]
    fn loom_streak_failure_racing_a_threshold_change_is_counted_once() {
        loom::model(|| {
            let b = streaking();
            let changed = b.config().slow_call_rate_threshold(50);
            let p = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let fails = loom::thread::spawn(move || p.failure(MS));
            b.reconfigure(changed).unwrap();
            fails.join().unwrap();
            let m = b.metrics_at(Instant::ZERO);
            assert_eq!((m.state, m.failures), (State::Closed, 2));
            b.try_acquire_at(Instant::ZERO).unwrap().failure(MS);
            assert_eq!(b.state(), State::Open);
        });
    }

    /// A failure racing a manual transition to forced-open: the transition's `swap` takes
    /// the streak out of the word into the window, which forced-open keeps. Either the
    /// failure grew the streak in the word first (no lock) and the window holds 2, or it
    /// found the new period, took the critical section and changed nothing (late): 1.
    #[test]
    fn loom_streak_failure_racing_a_transition_is_kept_or_late() {
        loom::model(|| {
            let b = streaking();
            let p = CircuitBreaker::try_acquire_owned_at(b.clone(), Instant::ZERO).unwrap();
            let fails = loom::thread::spawn(move || {
                p.failure(MS);
                locks_taken_by_this_thread()
            });
            b.transition_at(State::ForcedOpen, Instant::ZERO).unwrap();
            let failures = match fails.join().unwrap() {
                0 => 2,
                1 => 1,
                n => panic!("one failure took the lock {n} times"),
            };
            let kept = b.window_for_test(Instant::ZERO);
            assert_eq!((b.state(), kept.failures), (State::ForcedOpen, failures));
        });
    }
}

#[cfg(not(loom))]
#[test]
fn owned_permits_outlive_the_borrow_and_release_on_drop() {
    use std::sync::Arc;
    let b = Arc::new(half_open(1, 1));
    let p = CircuitBreaker::try_acquire_owned_at(Arc::clone(&b), Instant::ZERO).unwrap();
    assert!(b.try_acquire_at(Instant::ZERO).is_err());
    // 'static and Send: it can go to another thread, and its drop gives the slot back.
    std::thread::spawn(move || drop(p)).join().unwrap();
    assert_eq!(b.metrics_at(Instant::ZERO).half_open_permits_taken, 0);
    let p = CircuitBreaker::try_acquire_owned_at(Arc::clone(&b), Instant::ZERO).unwrap();
    std::thread::spawn(move || p.success(MS)).join().unwrap();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(Arc::strong_count(&b), 1); // the permits released their pointers
}

/// Successes counted in the state word (no lock) racing failures, metrics reads and each
/// other on real threads, many times over: at the end every outcome is in the window
/// exactly once. The loom models `loom_batched_success*` in `loom_models` check the same
/// hand-over exhaustively, for one or two successes racing one failure or transition.
#[cfg(not(loom))]
#[test]
fn batched_successes_racing_locked_outcomes_are_counted_once() {
    batched_successes_race::<0>(); // counted in the state word
    batched_successes_race::<4>(); // counted in stripes
}

#[cfg(not(loom))]
fn batched_successes_race<const S: usize>() {
    use std::sync::Arc;
    const PER_THREAD: u32 = if cfg!(miri) { 400 } else { 4_000 };
    let b: Arc<
        CircuitBreaker<CountWindow<16_384>, CriticalSectionRawMutex, FixedOpenDuration, (), S>,
    > = Arc::new(
        CircuitBreaker::new(
            BreakerConfig::new()
                .minimum_calls(2)
                .failure_rate_threshold(50),
            count::<16_384>(),
        )
        .unwrap(),
    );
    for _ in 0..2 {
        b.try_acquire_at(Instant::ZERO).unwrap().success(MS);
    }
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let p = b.try_acquire_at(Instant::ZERO).unwrap();
                    if t == 0 && i % 16 == 15 {
                        p.failure(MS);
                    } else {
                        p.success(MS);
                    }
                    if t == 1 && i % 64 == 0 {
                        let m = b.metrics_at(Instant::ZERO);
                        assert!(m.calls >= 2 && m.calls <= 2 + 3 * PER_THREAD);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let m = b.metrics_at(Instant::ZERO);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(m.calls, 2 + 3 * PER_THREAD);
    assert_eq!(m.failures, PER_THREAD / 16);
}

/// Failures kept as a streak in the state word (no lock) racing each other and metrics
/// reads (which take the streak into the window and put it back) on real threads: every
/// failure counts once, and the one that reaches the length opens the breaker, once.
#[cfg(not(loom))]
#[test]
fn streak_failures_racing_on_threads_are_counted_once() {
    use std::sync::{Arc, Barrier};
    // Both threads' failures fit the word's streak (at most 65,535). Fewer under Miri,
    // which runs each step thousands of times slower.
    const PER_THREAD: u32 = if cfg!(miri) { 300 } else { 30_000 };
    for length in [2 * PER_THREAD + 1, 2 * PER_THREAD] {
        let b: Arc<Breaker<ConsecutiveWindow>> = Arc::new(
            CircuitBreaker::from_parts(
                BreakerConfig::new(),
                ConsecutiveWindow::new(length).unwrap(),
                FixedOpenDuration(Duration::from_secs(60)),
                0,
                Recorder::default(),
            )
            .unwrap(),
        );
        b.try_acquire_at(Instant::ZERO).unwrap().success(MS); // publishes the streak
        let start = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let b = Arc::clone(&b);
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..PER_THREAD {
                        if let Ok(p) = b.try_acquire_at(Instant::ZERO) {
                            p.failure(MS);
                        }
                        if t == 1 && i % 16 == 0 {
                            let m = b.metrics_at(Instant::ZERO);
                            assert!(m.failures <= 2 * PER_THREAD);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = b.metrics_at(Instant::ZERO);
        assert_eq!(m.failures, 2 * PER_THREAD);
        if length > 2 * PER_THREAD {
            assert_eq!(b.state(), State::Closed);
            assert_eq!(b.listener().transitions(), []);
        } else {
            assert_eq!(b.state(), State::Open);
            assert_eq!(b.listener().transitions(), [(State::Closed, State::Open)]);
        }
    }
}

/// Issue 19, bug 1: re-opened by its half-open probes, an open breaker reports those
/// probes (as it reports the closed window that opened it the first time), not the
/// window it had before.
#[test]
fn open_after_half_open_reports_the_probes_that_reopened_it() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(4)
            .permitted_calls_in_half_open(2)
            .open_duration(Duration::from_secs(1)),
        count::<4>(),
    );
    feed(&b, Instant::ZERO, &[F, S, F, F]);
    let m = b.metrics_at(Instant::ZERO);
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (State::Open, 4, 3, Some(7_500))
    );
    feed(&b, at(2_000), &[F, F]);
    let m = b.metrics_at(at(2_000));
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (State::Open, 2, 2, Some(10_000))
    );
    // Kept open by hand for longer, it still reports them.
    b.open_for_at(Duration::from_secs(5), at(2_000)).unwrap();
    let m = b.metrics_at(at(2_000));
    assert_eq!((m.state, m.calls, m.failures), (State::Open, 2, 2));
    // The maximum wait re-opening it before any probe is in: no calls to report.
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(1)
            .permitted_calls_in_half_open(2)
            .max_wait_in_half_open(ms(10), AfterMaxWait::Open)
            .open_duration(Duration::from_secs(1)),
        count::<4>(),
    );
    feed(&b, Instant::ZERO, &[F]);
    let probe = b.try_acquire_at(at(2_000)).unwrap();
    assert!(b.try_acquire_at(at(2_010)).is_err()); // the wait ran out: open again
    drop(probe);
    let m = b.metrics_at(at(2_010));
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (State::Open, 0, 0, None)
    );
}

/// Issue 19, bug 2: metrics-only never opens, by hand either (resilience4j's transition
/// table has no METRICS_ONLY to OPEN): `transition_at`, `open_for_at` and
/// `open_until_at` are refused and change nothing.
#[test]
fn metrics_only_refuses_to_open() {
    let b = breaker(BreakerConfig::new().minimum_calls(1), count::<2>());
    b.transition_at(State::MetricsOnly, Instant::ZERO).unwrap();
    feed(&b, Instant::ZERO, &[F]);
    let _ = b.listener().take();
    let refused = Err(IllegalTransition {
        from: State::MetricsOnly,
        to: State::Open,
    });
    assert_eq!(b.transition_at(State::Open, at(1)), refused);
    assert_eq!(b.open_for_at(Duration::from_secs(1), at(1)), refused);
    assert_eq!(b.open_until_at(at(5), at(1)), refused);
    assert!(!State::MetricsOnly.can_transition_to(State::Open));
    assert_eq!(b.listener().take(), []);
    let m = b.metrics_at(at(1));
    assert_eq!((m.state, m.calls, m.failures), (State::MetricsOnly, 1, 1));
    assert!(b.try_acquire_at(at(1)).is_ok());
    // Through forced-open or closed, it may open.
    b.transition_at(State::ForcedOpen, at(1)).unwrap();
    b.transition_at(State::Open, at(1)).unwrap();
    assert_eq!(b.state(), State::Open);
}

/// Issue 19, bug 3: a reset from closed reports the reset only (no transition to the
/// same state); from any other state, the transition to closed exactly once, then the
/// reset.
#[test]
fn reset_reports_the_transition_once_then_the_reset() {
    let b = breaker(BreakerConfig::new(), count::<2>());
    b.reset_at(at(1));
    assert_eq!(b.listener().take(), [Ev::Reset(State::Closed)]);
    for from in [
        State::MetricsOnly,
        State::Disabled,
        State::ForcedOpen,
        State::HalfOpen,
    ] {
        b.transition_at(from, at(2)).unwrap();
        let _ = b.listener().take();
        b.reset_at(at(3));
        assert_eq!(
            b.listener().take(),
            [Ev::Transition(from, State::Closed, at(3)), Ev::Reset(from)]
        );
        assert_eq!(b.state(), State::Closed);
        b.transition_at(State::ForcedOpen, at(2)).unwrap();
    }
}

/// Issue 19, bug 4: forced-open and disabled report an empty window (DESIGN.md), not
/// the one they were entered with; the rejection count stays.
#[test]
fn forced_open_and_disabled_report_an_empty_window() {
    let b = breaker(BreakerConfig::new().minimum_calls(2), count::<4>());
    feed(&b, Instant::ZERO, &[F, S]);
    let m = b.metrics_at(Instant::ZERO);
    assert_eq!((m.calls, m.failures, m.failure_rate), (2, 1, Some(5_000)));
    b.transition_at(State::ForcedOpen, at(1)).unwrap();
    assert!(b.try_acquire_at(at(1)).is_err());
    let empty = |state, rejected, rejected_in_state| BreakerMetrics {
        state,
        calls: 0,
        successes: 0,
        failures: 0,
        slow_calls: 0,
        rejected,
        rejected_in_state,
        failure_rate: None,
        slow_call_rate: None,
        half_open_permits_taken: 0,
    };
    assert_eq!(b.metrics_at(at(1)), empty(State::ForcedOpen, 1, 1));
    b.transition_at(State::Disabled, at(2)).unwrap();
    assert_eq!(b.metrics_at(at(2)), empty(State::Disabled, 1, 0));
    // Opened by hand from them, it reports their empty window, still after a new open
    // period replaces the first.
    b.transition_at(State::Open, at(2)).unwrap();
    assert_eq!(b.metrics_at(at(2)), empty(State::Open, 1, 0));
    b.open_for_at(Duration::from_secs(1), at(2)).unwrap();
    assert_eq!(b.metrics_at(at(2)), empty(State::Open, 1, 0));
    // Open from closed still reports the window that opened it.
    b.transition_at(State::Closed, at(3)).unwrap();
    feed(&b, at(3), &[F, F]);
    let m = b.metrics_at(at(3));
    assert_eq!((m.state, m.calls, m.failures), (State::Open, 2, 2));
    b.open_until_at(at(10), at(3)).unwrap();
    let m = b.metrics_at(at(3));
    assert_eq!((m.state, m.calls, m.failures), (State::Open, 2, 2));
}

/// Issue 19, the query without side effects: the state and when time alone moves it on,
/// at `now`, without counting a rejection, reporting an event or moving the state.
#[test]
fn state_at_tells_when_open_ends_without_side_effects() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(1)
            .permitted_calls_in_half_open(1)
            .max_wait_in_half_open(ms(500), AfterMaxWait::Open)
            .open_duration(Duration::from_secs(10)),
        count::<1>(),
    );
    let closed = StateAt {
        state: State::Closed,
        until: None,
        retry_after: None,
    };
    assert_eq!(b.state_at(Instant::ZERO), closed);
    b.try_acquire_at(at(1_000)).unwrap().failure(Duration::ZERO);
    let _ = b.listener().take();
    let open = |now| b.state_at(now);
    assert_eq!(
        open(at(1_000)),
        StateAt {
            state: State::Open,
            until: Some(Instant::from_nanos(11_000_000_001)),
            retry_after: Some(Duration::from_nanos(10_000_000_001)),
        }
    );
    // The last instant rejected, and the first let through: the same retry_after as a
    // rejection, which would count and report.
    assert_eq!(open(at(11_000)).retry_after, Some(Duration::from_nanos(1)));
    let first = Instant::from_nanos(11_000_000_001);
    assert_eq!(
        open(first),
        StateAt {
            state: State::Open, // lazily: the next acquire moves it
            until: Some(first),
            retry_after: None,
        }
    );
    let m = b.metrics_at(first);
    assert_eq!((m.state, m.rejected), (State::Open, 0));
    assert_eq!(b.listener().take(), []);
    assert_eq!(
        b.try_acquire_at(at(11_000)).unwrap_err().retry_after,
        open(at(11_000)).retry_after
    );
    // Half-open with a maximum wait: until it runs out (exclusive).
    let probe = b.try_acquire_at(first).unwrap();
    assert_eq!(
        b.state_at(first),
        StateAt {
            state: State::HalfOpen,
            until: Some(Instant::from_nanos(11_500_000_001)),
            retry_after: None,
        }
    );
    probe.success(MS);
    assert_eq!(b.state_at(first), closed);
    // Forced-open: nothing but a manual transition ends it; open until the end of time
    // saturates.
    b.transition_at(State::ForcedOpen, first).unwrap();
    assert_eq!(b.state_at(first).until, None);
    b.open_until_at(Instant::MAX, first).unwrap();
    assert_eq!(
        b.state_at(Instant::MAX),
        StateAt {
            state: State::Open,
            until: Some(Instant::MAX),
            retry_after: Some(Duration::from_nanos(1)),
        }
    );
}

/// Issue 19: every setting of a configuration reads back, the slow-call duration as
/// given (saturated at `u64::MAX` nanoseconds, as the breaker compares it).
#[test]
fn every_setting_reads_back() {
    let config = BreakerConfig::new()
        .failure_rate_threshold(25)
        .slow_call_rate_threshold(60)
        .slow_call_duration(Duration::new(3, 7))
        .minimum_calls(12)
        .permitted_calls_in_half_open(4)
        .max_wait_in_half_open(ms(250), AfterMaxWait::Closed)
        .open_duration(Duration::from_secs(9));
    assert_eq!(config.get_failure_rate_threshold(), 25);
    assert_eq!(config.get_slow_call_rate_threshold(), 60);
    assert_eq!(config.get_slow_call_duration(), Duration::new(3, 7));
    assert_eq!(config.get_minimum_calls(), 12);
    assert_eq!(config.get_permitted_calls_in_half_open(), 4);
    assert_eq!(
        config.get_max_wait_in_half_open(),
        Some((ms(250), AfterMaxWait::Closed))
    );
    assert_eq!(config.get_open_duration(), Some(Duration::from_secs(9)));
    // The defaults, resilience4j's.
    let default = BreakerConfig::new();
    assert_eq!(
        (
            default.get_failure_rate_threshold(),
            default.get_slow_call_rate_threshold(),
            default.get_slow_call_duration(),
            default.get_minimum_calls(),
            default.get_permitted_calls_in_half_open(),
            default.get_max_wait_in_half_open(),
            default.get_open_duration(),
        ),
        (50, 100, Duration::from_secs(60), 100, 10, None, None)
    );
    assert_eq!(DEFAULT_OPEN_DURATION, Duration::from_secs(60));
    // Beyond u64::MAX nanoseconds, the duration saturates there.
    assert_eq!(
        BreakerConfig::new()
            .slow_call_duration(Duration::MAX)
            .get_slow_call_duration(),
        Duration::from_nanos(u64::MAX)
    );
    // So does the maximum wait, which then never runs out: it reads as none.
    assert_eq!(
        BreakerConfig::new()
            .max_wait_in_half_open(Duration::MAX, AfterMaxWait::Closed)
            .get_max_wait_in_half_open(),
        None
    );
    // A breaker's configuration reads back too.
    let b = breaker(config, count::<2>());
    assert_eq!(b.config().get_minimum_calls(), 12);
}

/// Issue 19: `from_parts` takes its open durations from the backoff it is given, so a
/// configuration that sets `open_duration` (which it would ignore) is refused; `new` and
/// `with_listener` use it, or 60 s if unset.
#[test]
fn open_duration_is_never_silently_ignored() {
    let set = BreakerConfig::new()
        .minimum_calls(1)
        .open_duration(Duration::from_secs(5));
    let refused: Result<Breaker<CountWindow<1>, Doubling>, _> = CircuitBreaker::from_parts(
        set,
        count::<1>(),
        Doubling::new(Duration::from_secs(1)),
        7,
        Recorder::default(),
    );
    let err = refused.err().unwrap();
    assert_eq!(err.field(), "open_duration");
    assert_eq!(
        std::format!("{err}"),
        "invalid configuration: `open_duration` must be unset when from_parts is given a \
         backoff (the backoff gives the open durations)"
    );
    // Bad and set: the open duration is named first, then the other field.
    let both = set.minimum_calls(0);
    let refused: Result<Breaker<CountWindow<1>>, _> = CircuitBreaker::from_parts(
        both,
        count::<1>(),
        FixedOpenDuration(MS),
        7,
        Recorder::default(),
    );
    assert_eq!(refused.err().unwrap().field(), "open_duration");
    // new and with_listener open for the configured duration, or for 60 s.
    let opened_for = |b: &Breaker<CountWindow<1>>| {
        b.try_acquire_at(Instant::ZERO)
            .unwrap()
            .failure(Duration::ZERO);
        b.try_acquire_at(Instant::ZERO).unwrap_err().retry_after
    };
    let b = breaker(set, count::<1>());
    assert_eq!(opened_for(&b), Some(Duration::from_nanos(5_000_000_001)));
    let b = breaker(BreakerConfig::new().minimum_calls(1), count::<1>());
    assert_eq!(opened_for(&b), Some(Duration::from_nanos(60_000_000_001)));
    let plain: CircuitBreaker<CountWindow<1>, CriticalSectionRawMutex> =
        CircuitBreaker::new(set, count::<1>()).unwrap();
    plain
        .try_acquire_at(Instant::ZERO)
        .unwrap()
        .failure(Duration::ZERO);
    assert_eq!(
        plain.try_acquire_at(Instant::ZERO).unwrap_err().retry_after,
        Some(Duration::from_nanos(5_000_000_001))
    );
}

/// Issue 19, metrics: successes beside failures (slow successes included), and the
/// rejections since the current state was entered (resilience4j's not-permitted calls)
/// beside the cumulative count; a reset clears both.
#[test]
fn metrics_count_successes_and_rejections_in_the_state() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(4)
            .permitted_calls_in_half_open(1)
            .slow_call_duration(ms(10))
            .open_duration(Duration::from_secs(1)),
        count::<4>(),
    );
    feed(&b, Instant::ZERO, &[S, F]);
    b.try_acquire_at(Instant::ZERO).unwrap().success(ms(11)); // slow, still a success
    let m = b.metrics_at(Instant::ZERO);
    assert_eq!(
        (m.calls, m.successes, m.failures, m.slow_calls),
        (3, 2, 1, 1)
    );
    feed(&b, Instant::ZERO, &[F]); // 2 of 4 failed: opens
    for _ in 0..3 {
        assert!(b.try_acquire_at(at(1)).is_err());
    }
    let m = b.metrics_at(at(1));
    assert_eq!(
        (m.state, m.successes, m.rejected, m.rejected_in_state),
        (State::Open, 2, 3, 3)
    );
    // Half-open: a new state, counted from zero; its full probe slots reject.
    let probe = b.try_acquire_at(at(2_000)).unwrap();
    assert!(b.try_acquire_at(at(2_000)).is_err());
    let m = b.metrics_at(at(2_000));
    assert_eq!(
        (m.state, m.rejected, m.rejected_in_state),
        (State::HalfOpen, 4, 1)
    );
    probe.failure(MS); // opens again
    assert!(b.try_acquire_at(at(2_001)).is_err());
    let m = b.metrics_at(at(2_001));
    assert_eq!(
        (
            m.state,
            m.successes,
            m.failures,
            m.rejected,
            m.rejected_in_state
        ),
        (State::Open, 0, 1, 5, 1)
    );
    b.reset_at(at(2_002));
    let m = b.metrics_at(at(2_002));
    assert_eq!((m.rejected, m.rejected_in_state), (0, 0));
    b.transition_at(State::ForcedOpen, at(2_003)).unwrap();
    assert!(b.try_acquire_at(at(2_003)).is_err());
    let m = b.metrics_at(at(2_003));
    assert_eq!((m.rejected, m.rejected_in_state), (1, 1));
}

/// Issue 19, `Retry-After`: a breaker's `retry_after` in whole seconds is never early
/// (a call strictly after that many seconds is let through) and never a whole second
/// late, at exact boundaries too.
#[test]
fn retry_after_in_whole_seconds_is_never_early_nor_a_second_late() {
    let b = breaker(
        BreakerConfig::new()
            .minimum_calls(1)
            .open_duration(Duration::from_secs(30)),
        count::<1>(),
    );
    b.try_acquire_at(Instant::ZERO)
        .unwrap()
        .failure(Duration::ZERO);
    for (now_ns, secs) in [
        (0, 30), // open for exactly 30 s more
        (1, 30),
        (999_999_999, 30),
        (1_000_000_000, 29),
        (29_000_000_000, 1),
        (29_000_000_001, 1),
        (30_000_000_000, 0), // the last rejected instant: any later call goes through
    ] {
        let now = Instant::from_nanos(now_ns);
        let rejected = b.try_acquire_at(now).unwrap_err();
        assert_eq!(rejected.retry_after_secs(), Some(secs), "at {now_ns} ns");
        // Never early: strictly after `secs` seconds, a call goes through (checked
        // without taking the probe slot).
        let after = now.saturating_add(Duration::from_secs(secs) + Duration::from_nanos(1));
        assert_eq!(b.state_at(after).retry_after, None, "at {now_ns} ns");
        // Never a whole second late: one second less and it would be early.
        if let Some(less) = secs.checked_sub(1) {
            let early = now.saturating_add(Duration::from_secs(less) + Duration::from_nanos(1));
            assert!(b.state_at(early).retry_after.is_some(), "at {now_ns} ns");
        }
    }
    let unknown = Rejected {
        retry_after: None,
        state: State::ForcedOpen,
    };
    assert_eq!(unknown.retry_after_secs(), None);
    let by_hand = |retry_after| Rejected {
        retry_after: Some(retry_after),
        state: State::Open,
    };
    assert_eq!(by_hand(Duration::ZERO).retry_after_secs(), Some(0));
    assert_eq!(by_hand(Duration::MAX).retry_after_secs(), Some(u64::MAX));
}

/// Issue 21: `reconfigure` changes a live breaker's thresholds in place. A count
/// window of 20 holding 3 failures of 10 (minimum 10, threshold 50 %): lowered to 30 %,
/// the next failure (4 of 11, 36 %) opens it, where at 50 % it would stay closed; the call
/// itself keeps the window's counts and the state.
#[test]
fn a_lowered_failure_threshold_opens_at_the_next_failure() {
    let config = BreakerConfig::new()
        .failure_rate_threshold(50)
        .minimum_calls(10);
    let lowered = breaker(config, count::<20>());
    let kept = breaker(config, count::<20>());
    for b in [&lowered, &kept] {
        feed(b, at(0), &[F, S, F, S, F, S, S, S, S, S]);
    }
    lowered
        .reconfigure(config.failure_rate_threshold(30))
        .unwrap();
    assert_eq!(lowered.config(), config.failure_rate_threshold(30));
    let m = lowered.metrics_at(at(0));
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (State::Closed, 10, 3, Some(3_000))
    );
    assert_eq!(lowered.listener().take(), []); // nothing reported by the call
    for b in [&lowered, &kept] {
        feed(b, at(1), &[F]);
    }
    assert_eq!(lowered.state(), State::Open);
    assert_eq!(
        lowered.listener().take(),
        [
            Ev::Exceeded(Threshold::FailureRate, 3_636),
            Ev::Transition(State::Closed, State::Open, at(2)), // the failure's end
        ]
    );
    assert_eq!(kept.state(), State::Closed);
    assert_eq!(kept.metrics_at(at(1)).failures, 4);
}

/// A threshold lowered below the rate the window already holds opens the breaker at the
/// next outcome, a success too: 3 failures of 10, lowered to 20 %, then a success (3 of
/// 11, 27 %). On hosts the window held the minimum, so successes were being counted
/// without the critical section (the batch): the call ends that, and the success is
/// judged by the new threshold.
#[test]
fn a_threshold_below_the_window_opens_at_the_next_success() {
    let config = BreakerConfig::new()
        .failure_rate_threshold(50)
        .minimum_calls(10);
    let b = breaker(config, count::<20>());
    feed(&b, at(0), &[F, S, F, S, F, S, S, S, S, S]);
    b.reconfigure(config.failure_rate_threshold(20)).unwrap();
    assert_eq!(b.state(), State::Closed); // not before the next outcome
    feed(&b, at(1), &[S]);
    assert_eq!(b.state(), State::Open);
    let m = b.metrics_at(at(1));
    assert_eq!((m.calls, m.failures), (11, 3));
}

/// Raised to 60 %, the same window stays closed at the failure that opens it at 50 %
/// (7 of 14), and opens at the first that reaches 60 % (11 of 18).
#[test]
fn a_raised_failure_threshold_keeps_it_closed() {
    let config = BreakerConfig::new()
        .failure_rate_threshold(50)
        .minimum_calls(10);
    let raised = breaker(config, count::<20>());
    let kept = breaker(config, count::<20>());
    for b in [&raised, &kept] {
        feed(b, at(0), &[F, S, F, S, F, S, S, S, S, S]);
    }
    raised
        .reconfigure(config.failure_rate_threshold(60))
        .unwrap();
    for b in [&raised, &kept] {
        feed(b, at(1), &[F, F, F, F]);
    }
    assert_eq!(kept.state(), State::Open); // 7 of 14: 50 %
    let m = raised.metrics_at(at(1));
    assert_eq!((m.state, m.calls, m.failures), (State::Closed, 14, 7));
    feed(&raised, at(2), &[F, F, F]);
    assert_eq!(raised.state(), State::Closed); // 10 of 17: 58 %
    feed(&raised, at(3), &[F]);
    assert_eq!(raised.state(), State::Open); // 11 of 18: 61 %
}

/// The minimum number of calls changes in place too: raised from 10 to 12, 6 failures of
/// 10 open nothing, and the 12th call (6 of 12, 50 %) opens; lowered from 10 to 6, the
/// 10th call, a success, opens (5 of 10).
#[test]
fn a_changed_minimum_calls_is_used_from_the_next_outcome() {
    let config = BreakerConfig::new()
        .failure_rate_threshold(50)
        .minimum_calls(10);
    let raised = breaker(config, count::<20>());
    feed(&raised, at(0), &[F, F, F, F, F, S, S, S, S]);
    raised.reconfigure(config.minimum_calls(12)).unwrap();
    feed(&raised, at(1), &[F, S]);
    assert_eq!(raised.state(), State::Closed);
    feed(&raised, at(1), &[S]);
    assert_eq!(raised.state(), State::Open);
    assert_eq!(raised.metrics_at(at(1)).calls, 12);

    let lowered = breaker(config, count::<20>());
    feed(&lowered, at(0), &[F, F, F, F, F, S, S, S, S]);
    assert_eq!(lowered.state(), State::Closed); // 5 of 9, below the minimum
    lowered.reconfigure(config.minimum_calls(6)).unwrap();
    assert_eq!(lowered.state(), State::Closed);
    feed(&lowered, at(1), &[S]);
    assert_eq!(lowered.state(), State::Open);
}

/// In half-open the probes decide with the values in force at their outcome: with
/// minimum 3 and 3 permitted probes, lowering the minimum to 1 makes the next probe
/// outcome decide.
#[test]
fn half_open_probes_decide_with_the_new_minimum() {
    let b = half_open(3, 3);
    let first = b.try_acquire_at(at(0)).unwrap();
    let second = b.try_acquire_at(at(0)).unwrap();
    first.success(MS);
    assert_eq!(b.state(), State::HalfOpen); // 1 of 3 needed
    b.reconfigure(b.config().minimum_calls(1)).unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    second.success(MS); // 2 probes in, 1 needed: closes
    assert_eq!(b.state(), State::Closed);
}

/// A consecutive window's failure streak, kept in the state word on hosts, is taken
/// into the window by the call and kept: the third failure in a row still opens.
#[test]
fn reconfigure_keeps_a_failure_streak() {
    let b = breaker(BreakerConfig::new(), ConsecutiveWindow::new(3).unwrap());
    feed(&b, at(0), &[S, F, F]);
    b.reconfigure(BreakerConfig::new().slow_call_rate_threshold(80))
        .unwrap();
    assert_eq!(b.metrics_at(at(0)).failures, 2);
    feed(&b, at(0), &[F]);
    assert_eq!(b.state(), State::Open);
}

/// A bad value is refused as at construction, naming the field and its range; a change
/// to a setting that stays as built is refused, naming it (here with a threshold change
/// beside it, not applied either); either way nothing changes.
#[test]
fn reconfigure_refuses_bad_values_and_other_settings() {
    let config = BreakerConfig::new()
        .failure_rate_threshold(50)
        .minimum_calls(10)
        .max_wait_in_half_open(ms(500), AfterMaxWait::Open)
        .open_duration(ms(1_000));
    let b = breaker(config, count::<20>());
    let refused = |changed: BreakerConfig| {
        let e = b.reconfigure(changed).unwrap_err();
        (e.field(), e.allowed())
    };
    let fixed = "unchanged on a live breaker (reconfigure changes only \
                 failure_rate_threshold, slow_call_rate_threshold, minimum_calls and \
                 max_wait_in_half_open)";
    assert_eq!(
        refused(config.failure_rate_threshold(0)),
        ("failure_rate_threshold", "in 1..=100 percent")
    );
    assert_eq!(
        refused(config.slow_call_rate_threshold(101)),
        ("slow_call_rate_threshold", "in 1..=100 percent")
    );
    assert_eq!(
        refused(config.minimum_calls(0)),
        ("minimum_calls", "at least 1")
    );
    assert_eq!(
        refused(config.failure_rate_threshold(30).slow_call_duration(ms(5))),
        ("slow_call_duration", fixed)
    );
    assert_eq!(
        refused(config.slow_call_duration(Duration::MAX)),
        ("slow_call_duration", fixed)
    );
    assert_eq!(
        refused(config.permitted_calls_in_half_open(2)),
        ("permitted_calls_in_half_open", fixed)
    );
    assert_eq!(
        refused(config.max_wait_in_half_open(Duration::ZERO, AfterMaxWait::Closed)),
        ("max_wait_in_half_open", "above zero")
    );
    assert_eq!(
        refused(config.open_duration(ms(2_000))),
        ("open_duration", fixed)
    );
    assert_eq!(b.config(), config);
    // The thresholds in force are still the first: 5 failures of 10 open.
    feed(&b, at(0), &[F, F, F, F, S, S, S, S, S]);
    assert_eq!(b.state(), State::Closed);
    feed(&b, at(0), &[F]);
    assert_eq!(b.state(), State::Open);
}

/// The maximum wait in half-open changes from the next half-open period: the current one
/// keeps the deadline it was entered with; where the breaker goes when a wait runs out
/// is read when one does.
#[test]
fn a_changed_maximum_wait_applies_from_the_next_half_open_period() {
    let config = BreakerConfig::new()
        .minimum_calls(2)
        .permitted_calls_in_half_open(2)
        .max_wait_in_half_open(ms(100), AfterMaxWait::Open)
        .open_duration(ms(1_000));
    let b = breaker(config, count::<2>());
    b.transition_at(State::Open, at(0)).unwrap();
    b.transition_at(State::HalfOpen, at(0)).unwrap();
    // In half-open since 0 with a wait of 100 ms: changed to 300 ms, then to closed.
    b.reconfigure(config.max_wait_in_half_open(ms(300), AfterMaxWait::Closed))
        .unwrap();
    assert_eq!(b.state_at(at(50)).until, Some(at(100))); // the deadline it entered with
    let _probe = b.try_acquire_at(at(100)).unwrap(); // the wait ran out: to closed
    assert_eq!(b.state(), State::Closed);
    // The next half-open period waits 300 ms.
    b.transition_at(State::Open, at(200)).unwrap();
    b.transition_at(State::HalfOpen, at(200)).unwrap();
    assert_eq!(b.state_at(at(200)).until, Some(at(500)));
    assert_eq!(
        b.config().get_max_wait_in_half_open(),
        Some((ms(300), AfterMaxWait::Closed))
    );
}
