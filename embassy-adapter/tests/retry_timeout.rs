//! `retry`, `retry_with_hint`, `timeout` and `timeout_at` on embassy-time's mock driver, at
//! exact ticks. The driver is global: one test runs the steps in order.

mod common;

use core::cell::RefCell;
use core::future::pending as never;
use core::pin::pin;
use core::time::Duration;

use common::*;
use stanchion::retry::{Constant, Decision, Exponential, GiveUpReason, Jitter, Ratio, RetryPolicy};
use stanchion::{Deadline, Instant};
use stanchion_embassy::{
    Elapsed, RetryError, retry, retry_with_hint, sleep, sleep_until, timeout, timeout_at,
};

fn constant(ms: u64, attempts: u32) -> RetryPolicy<Constant> {
    RetryPolicy::new(
        Constant::new(Duration::from_millis(ms)),
        attempts,
        fastrand::Rng::with_seed(3),
    )
    .unwrap()
}

#[test]
fn retry_and_timeouts_on_the_mock_driver() {
    reset();
    retry_sleeps_exactly_as_the_policy_says();
    reset();
    retry_gives_up_with_the_last_error();
    reset();
    jittered_waits_round_up_to_the_next_tick();
    reset();
    retry_never_sleeps_past_the_deadline();
    reset();
    a_server_hint_replaces_the_backoff();
    reset();
    timeouts_fire_at_the_deadline_and_not_before();
    reset();
    sleeps_wake_at_the_next_tick_and_not_before();
}

fn retry_sleeps_exactly_as_the_policy_says() {
    let calls = RefCell::new(Vec::new());
    let mut policy = constant(10, 3);
    let mut run = pin!(retry(&mut policy, |attempt| {
        calls.borrow_mut().push((attempt, now()));
        async move {
            if attempt < 3 {
                Err("busy")
            } else {
                Ok(attempt)
            }
        }
    }));
    pending(run.as_mut());
    assert!(wake_at(run.as_mut(), 10 * MS).is_pending());
    assert_eq!(ready_at(run.as_mut(), 20 * MS), Ok(3));
    assert_eq!(*calls.borrow(), [(1, 0), (2, 10 * MS), (3, 20 * MS)]);
}

fn retry_gives_up_with_the_last_error() {
    let mut policy = constant(10, 2);
    let mut n = 0;
    let mut run = pin!(retry(&mut policy, |_| {
        n += 1;
        let e = n;
        async move { Err::<(), _>(e) }
    }));
    pending(run.as_mut());
    assert_eq!(
        ready_at(run.as_mut(), 10 * MS),
        Err(RetryError {
            last: 2,
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 2
        })
    );
}

fn jittered_waits_round_up_to_the_next_tick() {
    let backoff = Exponential::new(
        Duration::from_millis(4),
        Ratio::TWO,
        Duration::from_millis(50),
    )
    .unwrap()
    .with_jitter(Jitter::FULL);
    let policy = RetryPolicy::new(backoff, 5, fastrand::Rng::with_seed(42)).unwrap();
    // The same policy, driven by hand, says what the runner must wait: nanosecond delays.
    let mut model = policy.clone();
    let mut expected = Vec::new();
    let mut t = Instant::ZERO;
    for _ in 0..4 {
        match model.on_failure_at(t, None) {
            Decision::Retry { after, .. } => {
                // The runner sleeps until the first tick at or after the instant.
                let wake = (t + after).as_nanos().div_ceil(1_000);
                expected.push(wake);
                t = Instant::from_nanos(wake * 1_000);
            }
            d => panic!("{d:?}"),
        }
    }
    assert!(
        expected.iter().any(|w| w * 1_000 % 1_000_000 != 0),
        "jitter landed on whole ms"
    );
    let mut policy = policy;
    let attempts = RefCell::new(Vec::new());
    let mut run = pin!(retry(&mut policy, |_| {
        attempts.borrow_mut().push(now());
        async { Err::<(), _>(()) }
    }));
    pending(run.as_mut());
    for (i, &wake) in expected.iter().enumerate() {
        let polled = wake_at(run.as_mut(), wake);
        assert_eq!(polled.is_ready(), i == 3);
    }
    let mut want = vec![0];
    want.extend(&expected);
    assert_eq!(*attempts.borrow(), want);
}

fn retry_never_sleeps_past_the_deadline() {
    let mut policy = constant(10, 10).with_deadline(Deadline::at(Instant::from_millis(25)));
    let mut run = pin!(retry(&mut policy, |_| async { Err::<(), _>("down") }));
    pending(run.as_mut());
    assert!(wake_at(run.as_mut(), 10 * MS).is_pending());
    // At 20 ms a third wait would end at 30 ms, past the deadline: give up now.
    assert_eq!(
        ready_at(run.as_mut(), 20 * MS),
        Err(RetryError {
            last: "down",
            reason: GiveUpReason::Deadline,
            attempts: 3
        })
    );
}

fn a_server_hint_replaces_the_backoff() {
    let mut policy = constant(100, 2);
    let mut run = pin!(retry_with_hint(
        &mut policy,
        |attempt| async move { if attempt == 1 { Err(7u64) } else { Ok(()) } },
        |outcome| outcome.as_ref().err().map(|ms| Duration::from_millis(*ms)),
    ));
    pending(run.as_mut());
    assert_eq!(ready_at(run.as_mut(), 7 * MS), Ok(()));
}

fn timeouts_fire_at_the_deadline_and_not_before() {
    let mut t = pin!(timeout(Duration::from_millis(5), never::<()>()));
    pending(t.as_mut());
    assert_eq!(ready_at(t.as_mut(), 5 * MS), Err(Elapsed));

    // A deadline between two ticks fires at the next one (never early).
    let start = now();
    let deadline = Deadline::at(Instant::from_nanos(start * 1_000 + 2_500_500));
    let mut t = pin!(timeout_at(deadline, never::<()>()));
    pending(t.as_mut());
    assert_eq!(ready_at(t.as_mut(), start + 2_501), Err(Elapsed));

    // A ready future wins, even against an expired deadline; NEVER sets no timer.
    assert_eq!(
        ready(pin!(timeout(Duration::ZERO, async { 1 })).as_mut()),
        Ok(1)
    );
    let mut forever = pin!(timeout_at(Deadline::NEVER, never::<()>()));
    pending(forever.as_mut());
    advance_to(now() + 3_600_000 * MS);
    pending(forever.as_mut());

    // `timeout` fixes its deadline when called, as `embassy_time::with_timeout` does: a
    // timeout first polled 3 ms later still fires 5 ms after the call (sub-tick budgets
    // round up to the next tick).
    let start = now();
    let t = timeout(Duration::from_nanos(5 * 1_000_000 + 1), never::<()>());
    advance_to(start + 3 * MS);
    let mut t = pin!(t);
    pending(t.as_mut());
    assert_eq!(ready_at(t.as_mut(), start + 5 * MS + 1), Err(Elapsed));

    // An inner future finishing before the deadline returns its value.
    let mut t = pin!(timeout(
        Duration::from_millis(10),
        embassy_time::Timer::after_millis(4)
    ));
    let start = now();
    pending(t.as_mut());
    assert_eq!(ready_at(t.as_mut(), start + 4 * MS), Ok(()));
}

fn sleeps_wake_at_the_next_tick_and_not_before() {
    // The mock driver counts microseconds: 2.5005 ms is between ticks 2_500 and 2_501.
    let start = now();
    let mut s = pin!(sleep_until(Instant::from_nanos(start * 1_000 + 2_500_500)));
    pending(s.as_mut());
    ready_at(s.as_mut(), start + 2_501);

    let start = now();
    let mut s = pin!(sleep(Duration::from_nanos(7 * 1_000_000 + 1)));
    pending(s.as_mut());
    ready_at(s.as_mut(), start + 7 * MS + 1);

    // A past instant wakes without time passing, after one yield (as every embassy
    // `Timer` does); `Instant::MAX` and a span past the end never wake.
    for mut s in [
        pin!(sleep_until(Instant::ZERO)),
        pin!(sleep(Duration::ZERO)),
    ] {
        pending(s.as_mut());
        ready(s.as_mut());
    }
    let mut forever = pin!(sleep_until(Instant::MAX));
    let mut too_long = pin!(sleep(Duration::MAX));
    advance_to(now() + 3_600_000 * MS);
    pending(forever.as_mut());
    pending(too_long.as_mut());
}
