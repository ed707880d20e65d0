//! The reference traces: core's decisions on a [`ManualClock`], advanced where a runner
//! would sleep. The runners' disciplines (a FIFO line asking the limiter at its head, the
//! retry loop, the pipeline's layer order) are written out here over core's `*_at`
//! decisions, so that the adapters' traces are compared with what core alone decides.

use core::time::Duration;

use stanchion::breaker::Outcome;
use stanchion::bulkhead::Bulkhead;
use stanchion::pipeline::Layer;
use stanchion::rate::{RateLimitError, RateLimiter};
use stanchion::retry::{Decision, GiveUpReason, Verdict};
use stanchion::sync::NoopRawMutex;
use stanchion::{Clock, ConfigError, Deadline, Instant, ManualClock};

use crate::scenarios::pipeline::{self, Step};
use crate::scenarios::{BURSTS, LimiterConfig, bulkhead, ms, outage};
use crate::{CallOutcome, Event, LastError, Recorder};

/// A bound on the decisions of one waiter, so that a bug cannot loop forever.
const MAX_STEPS: usize = 10_000;

/// Each request of [`BURSTS`] asks `config`'s limiter once, at its arrival: granted,
/// denied (with `retry_after`) or never.
pub fn burst_decisions(config: LimiterConfig) -> Result<Vec<Event>, ConfigError> {
    let limiter = config.build::<NoopRawMutex>()?;
    let clock = ManualClock::new();
    Ok(BURSTS
        .iter()
        .enumerate()
        .map(|(i, arrival)| {
            clock.set(arrival.at());
            Event::of_decision(clock.now(), i, limiter.acquire_at(arrival.n, clock.now()))
        })
        .collect())
}

/// Each request of [`BURSTS`] waits in one FIFO line for `config`'s limiter, without a
/// deadline: the head asks, sleeps for exactly the denial's `retry_after` and asks again;
/// the next in line becomes the head when it leaves. One event per request, in arrival
/// order: the instant it proceeds, or [`Event::NeverFits`] at once.
pub fn burst_waiting(config: LimiterConfig) -> Result<Vec<Event>, ConfigError> {
    let limiter = config.build::<NoopRawMutex>()?;
    let max = limiter.max_acquire();
    let mut line_free_at = Instant::ZERO;
    let mut trace = Vec::new();
    for (i, arrival) in BURSTS.iter().enumerate() {
        if arrival.n > max {
            trace.push(Event::NeverFits {
                at: arrival.at(),
                request: i,
                max,
            });
            continue;
        }
        let mut now = arrival.at().max(line_free_at);
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < MAX_STEPS, "request {i} never granted");
            match limiter.acquire_at(arrival.n, now) {
                Ok(()) => break,
                Err(RateLimitError::Denied(denied)) => now = denied.earliest(now),
                Err(never) => panic!("request {i}: {never}"),
            }
        }
        line_free_at = now;
        trace.push(Event::Proceeded {
            at: now,
            request: i,
        });
    }
    Ok(trace)
}

/// The leaky bucket as a shaper: each request of [`BURSTS`] reserves its turn at arrival
/// and proceeds at the reserved instant, or is denied at once. `None` for the other
/// limiters.
pub fn burst_shaping(config: LimiterConfig) -> Result<Option<Vec<Event>>, ConfigError> {
    let limiter = config.build::<NoopRawMutex>()?;
    let mut trace = Vec::new();
    for (i, arrival) in BURSTS.iter().enumerate() {
        let Some(reserved) = limiter.reserve_at(arrival.n, arrival.at()) else {
            return Ok(None);
        };
        trace.push(match reserved {
            Ok(at) => Event::Proceeded { at, request: i },
            Err(refused) => Event::of_decision(arrival.at(), i, Err(refused)),
        });
    }
    Ok(Some(trace))
}

/// The callers of [`bulkhead::CALLERS`] in one FIFO line for a bulkhead: only the head
/// tries for a slot, and takes one as soon as a holder releases it; a newcomer that finds
/// the line full, or a waiter whose deadline passes first, is refused. One event per
/// caller, in arrival order.
pub fn bulkhead_waiting() -> Vec<Event> {
    use bulkhead::{CALLERS, MAX_WAITING, SLOTS};
    let slots = SLOTS as usize;
    // Per caller that got a slot: (granted, released); per caller that joined the line:
    // the instant it left it (granted or refused).
    let mut holders: Vec<(Instant, Instant)> = Vec::new();
    let mut left_line: Vec<Instant> = Vec::new();
    let in_use_at = |holders: &[(Instant, Instant)], t: Instant| {
        holders.iter().filter(|h| h.0 <= t && t < h.1).count()
    };
    let mut trace = Vec::new();
    for (i, caller) in CALLERS.iter().enumerate() {
        let t = caller.at();
        let waiting = left_line.iter().filter(|&&left| left > t).count();
        let granted_at = if waiting == 0 && in_use_at(&holders, t) < slots {
            Some(t)
        } else if waiting >= MAX_WAITING {
            trace.push(Event::BulkheadFull {
                at: t,
                request: i,
                in_use: in_use_at(&holders, t) as u32,
            });
            continue;
        } else {
            // Head of the line once everyone before has left it; then the first release
            // that leaves a slot free.
            let head_at = left_line.iter().copied().fold(t, Instant::max);
            let free_at = core::iter::once(head_at)
                .chain(holders.iter().map(|h| h.1).filter(|&r| r > head_at))
                .filter(|&at| in_use_at(&holders, at) < slots)
                .min()
                .expect("some holder releases");
            let deadline = caller.deadline();
            assert!(
                deadline.is_never() || free_at != deadline.instant(),
                "caller {i}: a slot frees at its deadline; the scenario must avoid ties"
            );
            if deadline.is_expired(free_at) {
                let at = deadline.instant();
                left_line.push(at);
                trace.push(Event::BulkheadFull {
                    at,
                    request: i,
                    in_use: in_use_at(&holders, at) as u32,
                });
                continue;
            }
            left_line.push(free_at);
            Some(free_at)
        };
        if let Some(at) = granted_at {
            holders.push((at, at.saturating_add(ms(caller.hold_ms))));
            trace.push(Event::Proceeded { at, request: i });
        }
    }
    trace
}

/// The outage: the calls of [`mod@outage`], one after another, each retried as
/// [`outage::policy`] says through [`outage::breaker`]; a refusal by the breaker stops
/// the retries (the classifier calls it permanent).
pub fn outage() -> Result<Vec<Event>, ConfigError> {
    let recorder = Recorder::new();
    let breaker = outage::breaker::<NoopRawMutex>(&recorder)?;
    let mut policy = outage::policy()?;
    let clock = ManualClock::new();
    for call in 0..outage::CALLS {
        assert!(outage::call_at(call) >= clock.now(), "call {call} overlaps");
        clock.set(outage::call_at(call));
        policy.reset(Deadline::NEVER);
        loop {
            let attempt = policy.attempt();
            let start = clock.now();
            let last = match breaker.try_acquire_at(start) {
                Err(_) => Some(LastError::CircuitOpen),
                Ok(permit) => {
                    recorder.push(Event::Attempt {
                        at: start,
                        call,
                        attempt,
                    });
                    clock.advance(ms(outage::ATTEMPT_MS));
                    let failed = outage::fails(start);
                    let recorded = if failed {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    permit.record_at(recorded, clock.now());
                    failed.then_some(LastError::Operation)
                }
            };
            let verdict = match last {
                None => Verdict::Success,
                Some(LastError::CircuitOpen) => Verdict::Permanent,
                Some(_) => Verdict::Transient,
            };
            let outcome = match policy.on_verdict_at(clock.now(), verdict, None) {
                Decision::Retry { after, .. } => {
                    clock.advance(after);
                    continue;
                }
                Decision::Done => CallOutcome::Ok,
                Decision::GiveUp { reason } => CallOutcome::GaveUp {
                    last: last.unwrap_or(LastError::Operation),
                    reason,
                    attempts: attempt,
                },
            };
            recorder.push(Event::Ended {
                at: clock.now(),
                call,
                outcome,
            });
            break;
        }
    }
    Ok(recorder.take())
}

/// The pipeline: the calls of [`pipeline::CALLS`], one after another, through the
/// layers in core's order (overall timeout, rate limit, bulkhead, breaker per attempt,
/// retry, attempt timeout), with the other traffic the schedule names (a held bulkhead slot).
pub fn pipeline() -> Result<Vec<Event>, ConfigError> {
    let recorder = Recorder::new();
    let limiter = pipeline::limiter()?;
    let breaker = pipeline::breaker::<NoopRawMutex>(&recorder)?;
    let bulkhead = Bulkhead::new(pipeline::SLOTS)?;
    let mut policy = pipeline::policy()?;
    let clock = ManualClock::new();
    for (i, call) in pipeline::CALLS.iter().enumerate() {
        let at = Instant::from_millis(call.at_ms);
        assert!(at >= clock.now(), "call {i} overlaps the previous one");
        clock.set(at);
        let held = if call.slot_taken {
            bulkhead.try_acquire().ok()
        } else {
            None
        };
        let outcome = pipeline_call(
            i,
            call,
            &clock,
            &limiter,
            &bulkhead,
            &breaker,
            &mut policy,
            &recorder,
        );
        drop(held);
        recorder.push(Event::Ended {
            at: clock.now(),
            call: i,
            outcome,
        });
    }
    Ok(recorder.take())
}

#[allow(clippy::too_many_arguments)]
fn pipeline_call<B: stanchion::breaker::window::Window, L: stanchion::breaker::BreakerListener>(
    i: usize,
    call: &pipeline::Call,
    clock: &ManualClock,
    limiter: &impl RateLimiter,
    bulkhead: &Bulkhead,
    breaker: &stanchion::breaker::CircuitBreaker<
        B,
        NoopRawMutex,
        stanchion::breaker::FixedOpenDuration,
        L,
    >,
    policy: &mut stanchion::retry::RetryPolicy<stanchion::retry::Constant>,
    recorder: &Recorder,
) -> CallOutcome {
    let deadline = Deadline::after(clock.now(), ms(pipeline::OVERALL_MS));
    let refused = |layer, retry_after: Option<Duration>| CallOutcome::Refused {
        layer,
        retry_after_nanos: retry_after.map(|d| d.as_nanos() as u64),
    };
    // 2. The rate limit: wait in line, unless the wait would reach the deadline.
    for _ in 0..MAX_STEPS {
        match limiter.acquire_at(1, clock.now()) {
            Ok(()) => break,
            Err(RateLimitError::Denied(denied)) => {
                let ready = denied.earliest(clock.now());
                if ready >= deadline.instant() {
                    return refused(Layer::RateLimit, Some(denied.retry_after()));
                }
                clock.set(ready);
            }
            Err(never) => return refused(Layer::RateLimit, never.retry_after()),
        }
    }
    // 3. The bulkhead: nobody waits for a slot.
    let Ok(_slot) = bulkhead.try_acquire() else {
        return refused(Layer::Bulkhead, None);
    };
    // 4 to 6: attempts through the breaker, retried, each with its own timeout.
    policy.reset(deadline);
    loop {
        let attempt = policy.attempt();
        let start = clock.now();
        let permit = match breaker.try_acquire_at(start) {
            Ok(permit) => permit,
            Err(rejected) if attempt == 1 => {
                return refused(Layer::CircuitBreaker, rejected.retry_after);
            }
            Err(_) => {
                return CallOutcome::GaveUp {
                    last: LastError::CircuitOpen,
                    reason: GiveUpReason::Permanent,
                    // The attempts that ran (the refused one did not).
                    attempts: attempt - 1,
                };
            }
        };
        recorder.push(Event::Attempt {
            at: start,
            call: i,
            attempt,
        });
        let timeout_at = start.saturating_add(ms(pipeline::ATTEMPT_TIMEOUT_MS));
        let (answer_at, ok) = match call.step(attempt) {
            Step::Ok(d) => (Some(start.saturating_add(ms(d))), true),
            Step::Err(d) => (Some(start.saturating_add(ms(d))), false),
            Step::Hang => (None, false),
        };
        let end = answer_at.map_or(timeout_at, |t| t.min(timeout_at));
        assert!(
            answer_at != Some(timeout_at) && end != deadline.instant(),
            "call {i}: two timers at one instant; the scenario must avoid ties"
        );
        if end > deadline.instant() {
            // The overall timeout cancels the attempt: its permit records nothing.
            clock.set(deadline.instant());
            drop(permit);
            return refused(Layer::OverallTimeout, None);
        }
        clock.set(end);
        let timed_out = answer_at != Some(end);
        let (recorded, verdict, last) = match (timed_out, ok) {
            (true, _) => (Outcome::Failure, Verdict::Transient, LastError::Timeout),
            (false, true) => (Outcome::Success, Verdict::Success, LastError::Operation),
            (false, false) => (Outcome::Failure, Verdict::Transient, LastError::Operation),
        };
        permit.record_at(recorded, end);
        match policy.on_verdict_at(end, verdict, None) {
            Decision::Retry { after, .. } => clock.advance(after),
            Decision::Done => return CallOutcome::Ok,
            Decision::GiveUp { reason } => {
                return CallOutcome::GaveUp {
                    last,
                    reason,
                    attempts: attempt,
                };
            }
        };
    }
}
