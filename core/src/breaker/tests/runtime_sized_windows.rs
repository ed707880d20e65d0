//! The windows sized at run time take the same decisions as the const-sized ones: two
//! breakers, one over `CountWindow<n>` (or `TimeWindow<n>`) and one over
//! `CountWindowUpTo<CAP>` (or `TimeWindowUpTo<CAP>`) of size `n`, driven through the same
//! random calls, outcomes, durations, instants, manual transitions and resets, admit and
//! reject the same calls, report the same events and the same metrics at every step.

use super::*;
use crate::breaker::window::{CountWindowUpTo, TimeWindowUpTo};
use proptest::prelude::*;
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Acquire and record a success or failure lasting the given milliseconds.
    Call {
        failed: bool,
        duration_ms: u64,
    },
    /// Acquire and record the call as ignored.
    Ignored,
    /// Acquire and drop the permit (a cancelled call).
    Cancel,
    /// Acquire and keep the permit for a later `Release`.
    Hold,
    /// Record the oldest held permit's outcome, lasting the given milliseconds.
    Release {
        failed: bool,
        duration_ms: u64,
    },
    /// Read the metrics.
    Metrics,
    /// A manual transition (legal or not).
    Transition(State),
    /// Open for the given milliseconds (legal or not).
    OpenFor(u64),
    Reset,
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Closed),
        Just(State::Open),
        Just(State::HalfOpen),
        Just(State::Disabled),
        Just(State::ForcedOpen),
        Just(State::MetricsOnly),
    ]
}

fn op() -> impl Strategy<Value = (u64, Op)> {
    let call = || (any::<bool>(), 0u64..300);
    (
        prop_oneof![3 => Just(0u64), 3 => 0..300u64, 1 => 0..3_000u64],
        prop_oneof![
            30 => call().prop_map(|(failed, duration_ms)| Op::Call { failed, duration_ms }),
            3 => Just(Op::Ignored),
            3 => Just(Op::Cancel),
            3 => Just(Op::Hold),
            3 => call().prop_map(|(failed, duration_ms)| Op::Release { failed, duration_ms }),
            3 => Just(Op::Metrics),
            1 => state().prop_map(Op::Transition),
            1 => (0u64..2_000).prop_map(Op::OpenFor),
            1 => Just(Op::Reset),
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
        // Small minimums, and large ones that the count window's size clamps.
        prop_oneof![1u32..8, 1u32..130],
        1u8..=100,
        1u8..=100,
        1u16..5,
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

fn build<W: Window, const S: usize>(p: Params, window: W) -> Breaker<W, Doubling, S> {
    let mut config = BreakerConfig::new()
        .minimum_calls(p.minimum)
        .failure_rate_threshold(p.failure_pct)
        .slow_call_rate_threshold(p.slow_pct)
        .slow_call_duration(ms(100))
        .permitted_calls_in_half_open(p.permitted);
    if let Some(w) = p.max_wait {
        config = config.max_wait_in_half_open(ms(w), AfterMaxWait::Open);
    }
    CircuitBreaker::from_parts(
        config,
        window,
        Doubling::new(ms(500)),
        3,
        Recorder::default(),
    )
    .unwrap()
}

fn record<R: core::ops::Deref<Target: IssuesPermits>>(
    permit: Permit<R>,
    failed: bool,
    duration_ms: u64,
) {
    if failed {
        permit.failure(ms(duration_ms));
    } else {
        permit.success(ms(duration_ms));
    }
}

/// Drives a breaker over `fixed` and one over `sized` through `ops`, comparing every
/// answer, every event and every metrics snapshot.
fn agree<A: Window, B: Window, const S: usize>(
    p: Params,
    fixed: A,
    sized: B,
    ops: &[(u64, Op)],
) -> Result<(), TestCaseError> {
    let a: Breaker<A, Doubling, S> = build(p, fixed);
    let b: Breaker<B, Doubling, S> = build(p, sized);
    let mut held = VecDeque::new();
    let mut now = 0u64;
    for &(step, op) in ops {
        now += step * 1_000_000;
        let t = Instant::from_nanos(now);
        match op {
            Op::Call { .. } | Op::Ignored | Op::Cancel | Op::Hold => {
                match (a.try_acquire_at(t), b.try_acquire_at(t)) {
                    (Ok(pa), Ok(pb)) => {
                        prop_assert_eq!(pa.state(), pb.state());
                        match op {
                            Op::Call {
                                failed,
                                duration_ms,
                            } => {
                                record(pa, failed, duration_ms);
                                record(pb, failed, duration_ms);
                            }
                            Op::Ignored => {
                                pa.ignored();
                                pb.ignored();
                            }
                            Op::Hold => held.push_back((pa, pb)),
                            _ => drop((pa, pb)),
                        }
                    }
                    (Err(ra), Err(rb)) => prop_assert_eq!(ra, rb),
                    (ra, rb) => prop_assert!(
                        false,
                        "const-sized {:?}, run-time sized {:?}",
                        ra.map(|p| p.state()),
                        rb.map(|p| p.state())
                    ),
                }
            }
            Op::Release {
                failed,
                duration_ms,
            } => {
                if let Some((pa, pb)) = held.pop_front() {
                    let end = t.saturating_add(ms(duration_ms));
                    let outcome = if failed {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    pa.record_at(outcome, end);
                    pb.record_at(outcome, end);
                }
            }
            Op::Metrics => prop_assert_eq!(a.metrics_at(t), b.metrics_at(t)),
            Op::Transition(to) => prop_assert_eq!(a.transition_at(to, t), b.transition_at(to, t)),
            Op::OpenFor(d) => prop_assert_eq!(a.open_for_at(ms(d), t), b.open_for_at(ms(d), t)),
            Op::Reset => {
                a.reset_at(t);
                b.reset_at(t);
            }
        }
        prop_assert_eq!(a.state(), b.state());
        prop_assert_eq!(a.state_at(t), b.state_at(t));
        prop_assert_eq!(a.listener().take(), b.listener().take());
    }
    drop(held);
    let t = Instant::from_nanos(now);
    prop_assert_eq!(a.metrics_at(t), b.metrics_at(t));
    prop_assert_eq!(a.listener().take(), b.listener().take());
    Ok(())
}

fn count<const N: usize>() -> CountWindow<N> {
    CountWindow::new().unwrap()
}

fn count_up_to<const CAP: usize>(size: u32) -> CountWindowUpTo<CAP> {
    CountWindowUpTo::new(size).unwrap()
}

fn time<const B: usize>(span: Duration) -> TimeWindow<B> {
    TimeWindow::new(span).unwrap()
}

fn time_up_to<const CAP: usize>(span: Duration, buckets: u32) -> TimeWindowUpTo<CAP> {
    TimeWindowUpTo::new(span, buckets).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(128)))]

    #[test]
    fn count_window_up_to_decides_as_count_window(
        p in params(),
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        agree::<_, _, DEFAULT_STRIPES>(p, count::<1>(), count_up_to::<1>(1), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, count::<1>(), count_up_to::<100>(1), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, count::<5>(), count_up_to::<100>(5), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, count::<32>(), count_up_to::<32>(32), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, count::<50>(), count_up_to::<100>(50), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, count::<100>(), count_up_to::<100>(100), &ops)?;
        // Without stripes: successes batched in the state word.
        agree::<_, _, 0>(p, count::<5>(), count_up_to::<100>(5), &ops)?;
        agree::<_, _, 0>(p, count::<50>(), count_up_to::<128>(50), &ops)?;
    }

    #[test]
    fn time_window_up_to_decides_as_time_window(
        p in params(),
        span_ms in prop_oneof![100u64..2_000, 2_000u64..20_000],
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        let span = ms(span_ms);
        agree::<_, _, DEFAULT_STRIPES>(p, time::<1>(span), time_up_to::<1>(span, 1), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, time::<1>(span), time_up_to::<100>(span, 1), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, time::<5>(span), time_up_to::<100>(span, 5), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, time::<32>(span), time_up_to::<32>(span, 32), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, time::<50>(span), time_up_to::<100>(span, 50), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(p, time::<100>(span), time_up_to::<100>(span, 100), &ops)?;
        agree::<_, _, 0>(p, time::<10>(span), time_up_to::<60>(span, 10), &ops)?;
    }
}

// `AnyWindow` (the kind chosen at run time) decides as the window it holds.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(64)))]

    #[test]
    fn any_window_decides_as_the_window_it_holds(
        p in params(),
        length in 1u32..6,
        size in 1u32..60,
        span_ms in 100u64..20_000,
        buckets in 1u32..30,
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        use crate::breaker::window::{AnyWindow, ConsecutiveWindow};
        let consecutive = || ConsecutiveWindow::new(length).unwrap();
        agree::<_, _, DEFAULT_STRIPES>(
            p, consecutive(), AnyWindow::<64>::Consecutive(consecutive()), &ops,
        )?;
        agree::<_, _, 0>(p, consecutive(), AnyWindow::<64>::Consecutive(consecutive()), &ops)?;
        agree::<_, _, DEFAULT_STRIPES>(
            p, count_up_to::<64>(size), AnyWindow::Count(count_up_to::<64>(size)), &ops,
        )?;
        agree::<_, _, 0>(
            p, count_up_to::<64>(size), AnyWindow::Count(count_up_to::<64>(size)), &ops,
        )?;
        let span = ms(span_ms);
        agree::<_, _, DEFAULT_STRIPES>(
            p,
            time_up_to::<32>(span, buckets),
            AnyWindow::Time(time_up_to::<32>(span, buckets)),
            &ops,
        )?;
    }
}
