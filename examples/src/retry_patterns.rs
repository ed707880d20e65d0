//! Retry: the backoff strategies and jitter kinds side by side, one client through an
//! outage with each retry's delay and why, a hundred clients retrying together, the stops
//! (classifier, server hint, deadline, attempts), and a retry budget stopping a retry
//! storm.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use stanchion::retry::{
    Backoff, Constant, Decision, DecorrelatedJitter, DecorrelatedJitterV2, Exponential,
    GiveUpReason, HintBound, Immediate, Jitter, Linear, NoBudget, Ratio, RatioBudget, RetryBudget,
    RetryPolicy, TokenBudget, Verdict,
};
use stanchion::{Clock, Deadline, Instant, ManualClock};

use crate::timeline::{Align, Table, at, heading, note, secs};

/// The seed of every jitter draw in this example (a real deployment seeds per process or
/// per device: there is no default seed).
pub const SEED: u64 = 42;
/// The downstream is down from t=0 until this instant.
pub const OUTAGE_ENDS: Instant = Instant::from_secs(5);

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Exponential backoff from 0.5 s, doubling, capped at 8 s, with `jitter`.
pub fn exponential(jitter: Jitter) -> Exponential {
    Exponential::new(ms(500), Ratio::TWO, Duration::from_secs(8))
        .expect("a valid backoff")
        .with_jitter(jitter)
}

/// A backoff strategy under a display name.
pub struct Strategy {
    /// The name the tables print.
    pub name: &'static str,
    /// How the next delay is computed, in words.
    pub how: &'static str,
    /// The strategy, fresh.
    pub backoff: Box<dyn Backoff>,
}

/// The strategies compared: each starts near 0.5 s where it has a start.
pub fn strategies() -> Vec<Strategy> {
    let proportional = Jitter::proportional(Ratio::percent(20)).expect("spread in 0..=1");
    let s = |name, how, backoff: Box<dyn Backoff>| Strategy { name, how, backoff };
    vec![
        s("immediate", "no wait at all", Box::new(Immediate)),
        s(
            "constant",
            "0.5s every time",
            Box::new(Constant::new(ms(500))),
        ),
        s(
            "linear",
            "0.5s, +0.5s per retry, cap 3s",
            Box::new(Linear::new(ms(500), ms(500), Duration::from_secs(3)).expect("valid")),
        ),
        s(
            "exponential",
            "0.5s x 2^n, cap 8s",
            Box::new(exponential(Jitter::NONE)),
        ),
        s(
            "exp + full jitter",
            "U(0, 0.5s x 2^n)",
            Box::new(exponential(Jitter::FULL)),
        ),
        s(
            "exp + equal jitter",
            "d/2 + U(0, d/2), d = 0.5s x 2^n",
            Box::new(exponential(Jitter::EQUAL)),
        ),
        s(
            "exp + 20% jitter",
            "U(0.8d, 1.2d), d = 0.5s x 2^n",
            Box::new(exponential(proportional)),
        ),
        s(
            "decorrelated (AWS)",
            "U(0.5s, 3 x previous), cap 8s",
            Box::new(DecorrelatedJitter::new(ms(500), Duration::from_secs(8)).expect("valid")),
        ),
        s(
            "decorrelated v2",
            "Polly's, medians near 0.5s x 2^n",
            Box::new(DecorrelatedJitterV2::new(ms(500), Duration::from_secs(8)).expect("valid")),
        ),
    ]
}

/// One client through the outage: what happened to it.
#[derive(Clone, Debug)]
pub struct OutageRun {
    /// The strategy's name.
    pub name: &'static str,
    /// `(attempt start, delay before the next attempt)` for every failed attempt.
    pub failures: Vec<(Instant, Duration)>,
    /// When the attempt that succeeded started, if one did.
    pub succeeded_at: Option<Instant>,
    /// Why the policy gave up, if it did.
    pub gave_up: Option<GiveUpReason>,
    /// Attempts made, counting the first.
    pub attempts: u32,
}

/// Drives one policy with `backoff` through the outage (calls take no time; every call
/// before [`OUTAGE_ENDS`] fails), at most 10 attempts.
pub fn through_outage(name: &'static str, mut backoff: Box<dyn Backoff>) -> OutageRun {
    // A ManualClock stands in for the runtime: where an async runner would sleep for the
    // policy's delay, this loop advances the clock by it.
    let clock = ManualClock::new();
    let mut policy =
        RetryPolicy::new(&mut *backoff, 10, fastrand::Rng::with_seed(SEED)).expect("valid policy");
    let mut run = OutageRun {
        name,
        failures: Vec::new(),
        succeeded_at: None,
        gave_up: None,
        attempts: 0,
    };
    // Step limit: the policy allows at most 10 attempts.
    for _ in 0..10 {
        run.attempts = policy.attempt();
        let started = clock.now();
        let outcome: Result<(), ()> = if started < OUTAGE_ENDS {
            Err(())
        } else {
            Ok(())
        };
        match policy.on_outcome(&clock, &outcome, None) {
            Decision::Done => {
                run.succeeded_at = Some(started);
                break;
            }
            Decision::Retry { after, .. } => {
                run.failures.push((started, after));
                clock.advance(after);
            }
            Decision::GiveUp { reason } => {
                run.gave_up = Some(reason);
                break;
            }
        }
    }
    run
}

/// A hundred clients that failed together at t=0 retry with `jitter`: the most retries
/// landing in one 100 ms slot over their first three retries.
pub fn herd_peak(jitter: Jitter) -> usize {
    let mut slots = std::collections::HashMap::<u64, usize>::new();
    for client in 0..100u64 {
        let mut backoff = exponential(jitter);
        let mut rng = fastrand::Rng::with_seed(SEED + client);
        let mut t = Instant::ZERO;
        for _ in 0..3 {
            t += backoff.next_delay(&mut rng);
            *slots.entry(t.as_nanos() / 100_000_000).or_default() += 1;
        }
    }
    slots.values().copied().max().unwrap_or(0)
}

/// What a retry budget did with a storm of operations against a downstream that is down.
#[derive(Clone, Debug, Default)]
pub struct BudgetRun {
    /// Operations started (each one first call).
    pub operations: u32,
    /// Calls made to the downstream while it was down, and of them retries.
    pub outage_calls: (u32, u32),
    /// Calls made after it recovered, and of them retries.
    pub after_calls: (u32, u32),
    /// Operations that ended in success.
    pub succeeded: u32,
    /// Operations given up because the budget refused a retry.
    pub budget_refused: u32,
    /// Operations given up after their last allowed attempt.
    pub exhausted: u32,
}

/// 200 operations, one every 50 ms for 10 s, each allowed 4 attempts (exponential from
/// 100 ms, full jitter), against a downstream that is down until [`OUTAGE_ENDS`] and then
/// fails one call in ten; retries drawn from `budget`.
pub fn storm<R: RetryBudget>(budget: &R) -> BudgetRun {
    let mut policies: Vec<_> = (0..200u64)
        .map(|i| {
            let backoff = Exponential::new(ms(100), Ratio::TWO, Duration::from_secs(2))
                .expect("valid")
                .with_jitter(Jitter::FULL);
            RetryPolicy::new(backoff, 4, fastrand::Rng::with_seed(SEED + i))
                .expect("valid")
                .with_budget(budget)
        })
        .collect();
    let mut queue: BinaryHeap<Reverse<(Instant, usize, bool)>> = (0..200)
        .map(|i| Reverse((Instant::from_millis(50 * i as u64), i, false)))
        .collect();
    let mut run = BudgetRun {
        operations: 200,
        ..BudgetRun::default()
    };
    let mut calls_after = 0u32;
    // Step limit: 200 operations of at most 4 attempts each.
    for _ in 0..800 {
        let Some(Reverse((now, op, is_retry))) = queue.pop() else {
            break;
        };
        let ok = if now < OUTAGE_ENDS {
            run.outage_calls.0 += 1;
            run.outage_calls.1 += u32::from(is_retry);
            false
        } else {
            calls_after += 1;
            run.after_calls.0 += 1;
            run.after_calls.1 += u32::from(is_retry);
            !calls_after.is_multiple_of(10)
        };
        let outcome: Result<(), ()> = if ok { Ok(()) } else { Err(()) };
        match policies[op].on_outcome_at(now, &outcome, None) {
            Decision::Done => run.succeeded += 1,
            Decision::Retry { after, .. } => queue.push(Reverse((now + after, op, true))),
            Decision::GiveUp {
                reason: GiveUpReason::BudgetExhausted,
            } => run.budget_refused += 1,
            Decision::GiveUp { .. } => run.exhausted += 1,
        }
    }
    run
}

/// The three budgets compared in [`storm`].
pub fn storms() -> Vec<(&'static str, BudgetRun)> {
    let token = TokenBudget::new(10, Ratio::percent(10)).expect("valid budget");
    let ratio: RatioBudget<10> =
        RatioBudget::new(Duration::from_secs(10), Ratio::percent(10), 3).expect("valid budget");
    vec![
        ("no budget", storm(&NoBudget)),
        ("token budget (gRPC)", storm(&token)),
        ("ratio budget (Finagle)", storm(&ratio)),
    ]
}

/// Prints the budget table (the tour prints this alone).
pub fn print_storms(runs: &[(&'static str, BudgetRun)]) {
    let mut table = Table::new(&[
        "budget",
        "calls while down",
        "of which retries",
        "load",
        "calls after",
        "of which retries",
        "succeeded",
        "budget said no",
    ]);
    for (name, r) in runs {
        let per_op = f64::from(r.outage_calls.0) / 100.0;
        table.row([
            name.to_string(),
            r.outage_calls.0.to_string(),
            r.outage_calls.1.to_string(),
            format!("{per_op:.2}x"),
            r.after_calls.0.to_string(),
            r.after_calls.1.to_string(),
            format!("{} of {}", r.succeeded, r.operations),
            r.budget_refused.to_string(),
        ]);
    }
    table.print();
}

/// An HTTP-like call: a status and, for 429/503, the server's `Retry-After`.
type Response = (u16, Option<Duration>);

fn http(status: &Response) -> Verdict {
    match status.0 {
        200..=299 => Verdict::Success,
        429 | 502 | 503 | 504 => Verdict::Transient,
        _ => Verdict::Permanent,
    }
}

/// Drives one policy over the scripted `responses` and prints each decision and why.
fn stops_scenario<M: HintBound>(
    title: &str,
    mut policy: RetryPolicy<Exponential, fn(&Response) -> Verdict, NoBudget, M>,
    responses: &[Response],
) {
    crate::say!("\n  {title}");
    let mut now = Instant::ZERO;
    let mut nominal = exponential(Jitter::NONE);
    let mut rng = fastrand::Rng::with_seed(SEED);
    for response in responses {
        let attempt = policy.attempt();
        let decision = policy.on_outcome_at(now, response, response.1);
        let got = match response.1 {
            Some(h) => format!("{} (Retry-After {})", response.0, secs(h)),
            None => response.0.to_string(),
        };
        let why = match decision {
            Decision::Done => "done".to_string(),
            Decision::Retry { after, attempt } => {
                let backoff = nominal.next_delay(&mut rng);
                let reason = match response.1 {
                    Some(h) if after < h => format!(
                        "the server's hint, cut to the 10s bound (the backoff said {})",
                        secs(backoff)
                    ),
                    Some(_) => {
                        format!("the server's hint replaces the backoff's {}", secs(backoff))
                    }
                    None => format!("the backoff, 0.5s x 2^{}", attempt - 2),
                };
                format!("attempt {attempt} in {}: {reason}", secs(after))
            }
            Decision::GiveUp { reason } => {
                let why = match reason {
                    GiveUpReason::Permanent => {
                        format!("the classifier says {} will not go away", response.0)
                    }
                    GiveUpReason::Deadline => {
                        let next = nominal.next_delay(&mut rng);
                        format!(
                            "the next wait, {}, would end at {}, past the deadline",
                            secs(next),
                            at(now + next)
                        )
                    }
                    GiveUpReason::AttemptsExhausted => {
                        format!(
                            "attempt {attempt} was the last of {}",
                            policy.max_attempts()
                        )
                    }
                    GiveUpReason::BudgetExhausted => "the budget is spent".to_string(),
                };
                format!("give up: {reason} ({why})")
            }
        };
        crate::say!("    attempt {attempt}  {:<9} got {got}", at(now));
        crate::say!("                         -> {why}");
        match decision {
            Decision::Retry { after, .. } => now += after,
            _ => break,
        }
    }
}

/// The whole example.
pub fn run() {
    crate::say!("Retry: backoff, jitter, stops and budgets, on virtual time (seed {SEED})");

    heading("1. The delays each strategy asks for, before retries 1 to 6");
    crate::say!();
    let mut table = Table::new(&["strategy", "how", "1", "2", "3", "4", "5", "6", "total"])
        .align(1, Align::Left);
    for mut s in strategies() {
        let mut rng = fastrand::Rng::with_seed(SEED);
        let delays: Vec<Duration> = (0..6).map(|_| s.backoff.next_delay(&mut rng)).collect();
        let mut row = vec![s.name.to_string(), s.how.to_string()];
        row.extend(delays.iter().map(|d| secs(*d)));
        row.push(secs(delays.iter().sum()));
        table.row(row);
    }
    table.print();
    crate::say!();
    note(
        "Full jitter waits least on average (it spreads retries over 0..d); equal jitter keeps \
         at least half of d; proportional keeps the schedule's shape. Jitter is applied before \
         the cap, so no delay ever exceeds it.",
    );

    heading("2. One client, one outage (the downstream is down until t=5.000s)");
    note("Exponential backoff with full jitter, attempt by attempt:");
    crate::say!();
    let detailed = through_outage("exp + full jitter", Box::new(exponential(Jitter::FULL)));
    let mut nominal = exponential(Jitter::NONE);
    let mut rng = fastrand::Rng::with_seed(SEED);
    for (i, (t, after)) in detailed.failures.iter().enumerate() {
        crate::say!(
            "    attempt {:<2} {:<9} failed -> retry in {} (full jitter drew it from 0..{})",
            i + 1,
            at(*t),
            secs(*after),
            secs(nominal.next_delay(&mut rng)),
        );
    }
    if let Some(t) = detailed.succeeded_at {
        crate::say!(
            "    attempt {:<2} {:<9} succeeded",
            detailed.failures.len() + 1,
            at(t)
        );
    }
    crate::say!();
    note("Every strategy on the same outage (at most 10 attempts; calls take no time):");
    crate::say!();
    let mut table = Table::new(&["strategy", "attempts", "succeeded at", "late by", "outcome"])
        .align(4, Align::Left);
    for s in strategies() {
        let r = through_outage(s.name, s.backoff);
        table.row([
            r.name.to_string(),
            r.attempts.to_string(),
            r.succeeded_at.map_or("-".into(), at),
            r.succeeded_at.map_or("-".into(), |t| secs(t - OUTAGE_ENDS)),
            match r.gave_up {
                Some(reason) => format!("gave up: {reason}"),
                None => "recovered".to_string(),
            },
        ]);
    }
    table.print();
    crate::say!();
    note(
        "'late by' is how long after the recovery the client noticed: short waits notice \
         sooner but hammer a downstream that is down (immediate retry burned all 10 attempts \
         in no time).",
    );

    heading("3. A hundred clients fail at the same instant");
    note(
        "Each retries three times with exponential backoff from 0.5s, each client with its own \
         seeded generator. The most retries that land in one 100 ms slot:",
    );
    crate::say!();
    let mut table = Table::new(&["jitter", "peak retries in 100 ms"]);
    for (name, jitter) in [
        ("none", Jitter::NONE),
        ("full", Jitter::FULL),
        ("equal", Jitter::EQUAL),
        (
            "proportional 20%",
            Jitter::proportional(Ratio::percent(20)).expect("valid"),
        ),
    ] {
        table.row([name.to_string(), format!("{} of 100", herd_peak(jitter))]);
    }
    table.print();
    crate::say!();
    note("Without jitter the whole herd comes back at once, every time: the thundering herd.");

    heading("4. The stops, and why each decision was taken");
    let policy = |max_attempts| {
        RetryPolicy::new(
            exponential(Jitter::NONE),
            max_attempts,
            fastrand::Rng::with_seed(SEED),
        )
        .expect("valid")
        .with_classifier(http as fn(&Response) -> Verdict)
    };
    stops_scenario(
        "A classifier: 503 is transient, 404 is permanent",
        policy(5),
        &[(503, None), (404, None)],
    );
    stops_scenario(
        "A server hint (Retry-After) replaces the backoff, bounded by 10s",
        policy(5).with_max_retry_after(Duration::from_secs(10)),
        &[
            (503, Some(Duration::from_secs(2))),
            (429, Some(Duration::from_secs(3600))),
            (200, None),
        ],
    );
    stops_scenario(
        "An overall deadline of 3s: no wait may end at or after it",
        policy(10).with_deadline(Deadline::after(Instant::ZERO, Duration::from_secs(3))),
        &[(503, None); 5],
    );
    stops_scenario(
        "At most 3 attempts, counting the first",
        policy(3),
        &[(503, None); 5],
    );

    heading("5. A retry budget stops a retry storm");
    note(
        "200 operations, one every 50 ms for 10 s, each allowed 4 attempts, against a \
         downstream that is down until t=5.000s and then fails one call in ten. 'load' is \
         calls per operation while it is down (100 operations started then).",
    );
    crate::say!();
    print_storms(&storms());
    crate::say!();
    note(
        "Without a budget every operation makes all 4 attempts against the dead downstream: \
         retries multiply the load of an outage. The token budget (10 tokens, 0.1 back per \
         success) allows 4 retries, then none until successes refill it above half, so it \
         also holds back retries just after the recovery; the ratio budget allows 3 retries \
         plus 10% of the requests of the last 10 s, so retries resume with the traffic. \
         'budget said no' counts operations that gave up because their retry was refused.",
    );
}
