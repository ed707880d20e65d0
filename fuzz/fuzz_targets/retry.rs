//! A retry policy under every backoff strategy and jitter, arbitrary attempts,
//! deadline, hint bound, budget, outcomes, server hints and an arbitrary clock. Checks:
//! no panic; a retry never waits past the strategy's cap (or the hint bound, for a
//! server hint), never ends at or after the deadline, and is never granted after the
//! deadline or past `max_attempts`; attempts count up by one; a token budget grants a
//! retry only while more than half its tokens remain.
#![no_main]

use arbitrary::Arbitrary;
use core::time::Duration;
use libfuzzer_sys::fuzz_target;
use stanchion::Deadline;
use stanchion::retry::{
    Backoff, Constant, Decision, DecorrelatedJitter, DecorrelatedJitterV2, Exponential,
    GiveUpReason, HintBound, Immediate, Jitter, Linear, Ratio, RetryBudget, RetryPolicy,
    TokenBudget, Verdict,
};
use stanchion_fuzz::{FuzzClock, Tick, duration};

type D = (u64, u8);

#[derive(Arbitrary, Debug)]
enum JitterKind {
    None,
    Full,
    Equal,
    Proportional(u32, u32),
}

#[derive(Arbitrary, Debug)]
enum Strategy {
    Immediate,
    Constant(D, JitterKind),
    Exponential(D, u32, u32, D, JitterKind),
    Linear(D, D, D, JitterKind),
    Decorrelated(D, D),
    DecorrelatedV2(D, D),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Tick(Tick),
    Failure(Option<D>),
    Permanent,
    Success,
    Reset(Option<D>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    strategy: Strategy,
    max_attempts: u8,
    deadline: Option<D>,
    max_hint: Option<D>,
    budget: Option<(u16, u32, u32)>,
    seed: u64,
    start: u64,
    ops: Vec<Op>,
}

const MAX_OPS: usize = 512;

fn d((raw, scale): D) -> Duration {
    duration(raw, scale)
}

fn jitter(kind: &JitterKind) -> Option<Jitter> {
    Some(match *kind {
        JitterKind::None => Jitter::NONE,
        JitterKind::Full => Jitter::FULL,
        JitterKind::Equal => Jitter::EQUAL,
        JitterKind::Proportional(num, den) => {
            Jitter::proportional(Ratio::new(num, den).ok()?).ok()?
        }
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fuzz_target!(|input: Input| {
    // The second argument of `run` bounds every computed (not hinted) delay.
    match &input.strategy {
        Strategy::Immediate => run(Immediate, 0, &input),
        Strategy::Constant(delay, j) => {
            let Some(j) = jitter(j) else { return };
            let delay = d(*delay);
            // Proportional jitter spreads at most `delay` either way.
            run(
                Constant::new(delay).with_jitter(j),
                nanos(delay).saturating_mul(2),
                &input,
            );
        }
        Strategy::Exponential(base, num, den, cap, j) => {
            let (Some(j), Ok(factor)) = (jitter(j), Ratio::new(*num, *den)) else {
                return;
            };
            let Ok(e) = Exponential::new(d(*base), factor, d(*cap)) else {
                return;
            };
            run(e.with_jitter(j), nanos(d(*cap)), &input);
        }
        Strategy::Linear(initial, step, cap, j) => {
            let Some(j) = jitter(j) else { return };
            let Ok(l) = Linear::new(d(*initial), d(*step), d(*cap)) else {
                return;
            };
            run(l.with_jitter(j), nanos(d(*cap)), &input);
        }
        Strategy::Decorrelated(base, cap) => {
            let Ok(b) = DecorrelatedJitter::new(d(*base), d(*cap)) else {
                return;
            };
            run(b, nanos(d(*cap)), &input);
        }
        Strategy::DecorrelatedV2(median, cap) => {
            let Ok(b) = DecorrelatedJitterV2::new(d(*median), d(*cap)) else {
                return;
            };
            run(b, nanos(d(*cap)), &input);
        }
    }
});

fn run<B: Backoff>(backoff: B, cap: u64, input: &Input) {
    let Ok(policy) = RetryPolicy::new(
        backoff,
        u32::from(input.max_attempts),
        fastrand::Rng::with_seed(input.seed),
    ) else {
        return;
    };
    let clock = FuzzClock::new(input.start);
    let deadline = input
        .deadline
        .map_or(Deadline::NEVER, |raw| Deadline::after(clock.now, d(raw)));
    let policy = policy.with_deadline(deadline);
    // Both kinds of hint bound: a policy's default (no room in it) and one set.
    match input.max_hint {
        Some(raw) => budgeted(
            policy.with_max_retry_after(d(raw)),
            cap,
            nanos(d(raw)),
            deadline,
            clock,
            input,
        ),
        None => budgeted(
            policy,
            cap,
            nanos(stanchion::retry::policy::DEFAULT_MAX_RETRY_AFTER),
            deadline,
            clock,
            input,
        ),
    }
}

/// [`drive`], with no budget or with the input's token budget.
fn budgeted<B: Backoff, M: HintBound>(
    policy: RetryPolicy<B, stanchion::retry::TransientErrors, stanchion::retry::NoBudget, M>,
    cap: u64,
    max_hint: u64,
    deadline: Deadline,
    clock: FuzzClock,
    input: &Input,
) {
    match input.budget {
        None => drive(policy, cap, max_hint, deadline, clock, input, || true),
        Some((max, num, den)) => {
            let Ok(ratio) = Ratio::new(num, den) else {
                return;
            };
            let Ok(budget) = TokenBudget::new(u32::from(max), ratio) else {
                return;
            };
            let half = u32::from(max) * 1_000 / 2;
            let budget = &budget;
            drive(
                policy.with_budget(budget),
                cap,
                max_hint,
                deadline,
                clock,
                input,
                || budget.milli_tokens() > half,
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn drive<B: Backoff, R: RetryBudget, M: HintBound>(
    mut policy: RetryPolicy<B, stanchion::retry::TransientErrors, R, M>,
    cap: u64,
    max_hint: u64,
    mut deadline: Deadline,
    mut clock: FuzzClock,
    input: &Input,
    budget_allows: impl Fn() -> bool,
) {
    let max_attempts = u32::from(input.max_attempts);
    for op in &input.ops[..input.ops.len().min(MAX_OPS)] {
        let attempt = policy.attempt();
        assert!(attempt >= 1 && attempt <= max_attempts);
        let (verdict, hint) = match *op {
            Op::Tick(t) => {
                clock.tick(t);
                continue;
            }
            Op::Reset(raw) => {
                deadline = raw.map_or(Deadline::NEVER, |raw| Deadline::after(clock.now, d(raw)));
                policy.reset(deadline);
                assert_eq!(policy.attempt(), 1);
                continue;
            }
            Op::Failure(hint) => (Verdict::Transient, hint.map(d)),
            Op::Permanent => (Verdict::Permanent, None),
            Op::Success => (Verdict::Success, None),
        };
        let expired = deadline.is_expired(clock.now);
        match policy.on_verdict_at(clock.now, verdict, hint) {
            Decision::Done => assert_eq!(verdict, Verdict::Success),
            Decision::GiveUp { reason } => {
                assert_ne!(verdict, Verdict::Success);
                match reason {
                    GiveUpReason::Permanent => assert_eq!(verdict, Verdict::Permanent),
                    GiveUpReason::AttemptsExhausted => assert_eq!(attempt, max_attempts),
                    GiveUpReason::Deadline | GiveUpReason::BudgetExhausted => {}
                }
                // Start the next operation, as a caller would.
                policy.reset(deadline);
            }
            Decision::Retry {
                after,
                attempt: next,
            } => {
                assert_eq!(verdict, Verdict::Transient);
                assert!(!expired, "retried after the deadline");
                assert_eq!(next, attempt + 1);
                assert!(next <= max_attempts, "attempt {next} of {max_attempts}");
                assert_eq!(policy.attempt(), next);
                let wait = nanos(after);
                match hint {
                    Some(h) => assert_eq!(wait, nanos(h).min(max_hint), "hint {h:?} not bounded"),
                    None => assert!(wait <= cap, "waits {wait} ns, over the cap {cap} ns"),
                }
                if !deadline.is_never() {
                    assert!(
                        clock.now.as_nanos() as u128 + wait as u128
                            <= deadline.instant().as_nanos() as u128
                            && after < deadline.remaining(clock.now),
                        "a wait of {after:?} at {:?} ends at or after the deadline {:?}",
                        clock.now,
                        deadline.instant()
                    );
                }
                assert!(
                    budget_allows(),
                    "the budget granted a retry at half or less"
                );
            }
        }
    }
}
