//! One scenario, three clocks: the embassy adapter's runners under embassy-time's mock
//! driver (1 tick = 1 µs) must reproduce the reference trace of core on a `ManualClock`,
//! event for event, to the nanosecond.
//!
//! The mock driver is global to the process, so this binary holds one test that runs the
//! scenarios in sequence, resetting the driver to tick 0 before each.

use core::future::{Future, pending};
use core::num::NonZeroU32;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Wake;

use embassy_time::{Duration as Ticks, MockDriver, Timer};
use stanchion::pipeline::PipelineError;
use stanchion::retry::Verdict;
use stanchion::sync::NoopRawMutex;
use stanchion::{Clock, Deadline, Instant};
use stanchion_embassy::{
    BreakerError, BulkheadQueue, EmbassyClock, Pipeline, RateLimitQueue, RetryError, breaker, retry,
};
use stanchion_tests::join::{Task, join_all};
use stanchion_tests::scenarios::pipeline::Step;
use stanchion_tests::scenarios::{
    BURSTS, LIMITERS, Limiter, LimiterConfig, bulkhead, ms, outage, pipeline,
};
use stanchion_tests::{
    CLOCK_STEPS, CallOutcome, Event, LastError, Recorder, assert_same_trace, clock_trace, reference,
};

/// The dependency's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Down;

/// Set when anything wakes the scenario's future.
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The longest a scenario may run, in ticks (10 s): a bug cannot loop forever.
const MAX_TICKS: u64 = 10_000_000;

/// Ticks per millisecond on the mock driver.
const TICKS_PER_MS: u64 = 1_000;

/// Runs `scenario` from tick 0: polls it whenever it was woken (at once, without moving
/// time, until nothing wakes it); otherwise advances the driver, which wakes the timers
/// due by then.
///
/// The driver moves in two steps per millisecond: to the last tick before the next whole
/// millisecond, then onto it. Every instant of the scenarios is a whole millisecond, so a
/// task resumes at the exact tick its timer names; a timer due at any other instant fires
/// at the last tick before the millisecond, so the task reads that tick (never the
/// reference's whole millisecond) and the traces differ: such a wake cannot go unseen.
/// (One tick per step would be exact for any instant, and 500 times slower.)
fn on_mock_driver<F: Future>(scenario: F) -> F::Output {
    let driver = MockDriver::get();
    driver.reset();
    let woken = Arc::new(Woken(AtomicBool::new(true)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut scenario = pin!(scenario);
    let mut ticks = 0u64;
    let mut polls = 0u64;
    loop {
        if woken.0.swap(false, Ordering::SeqCst) {
            polls += 1;
            assert!(polls < MAX_TICKS, "the scenario keeps waking itself");
            if let Poll::Ready(output) = scenario.as_mut().poll(&mut cx) {
                return output;
            }
            continue;
        }
        assert!(
            ticks < MAX_TICKS,
            "the scenario is not done after {MAX_TICKS} ticks"
        );
        let into_ms = ticks % TICKS_PER_MS;
        let step = if into_ms == TICKS_PER_MS - 1 {
            1
        } else {
            TICKS_PER_MS - 1 - into_ms
        };
        driver.advance(Ticks::from_ticks(step));
        ticks += step;
    }
}

/// Sleeps until `at`.
async fn until(at: Instant) {
    Timer::at(EmbassyClock::to_embassy(at)).await;
}

fn burst_decisions(config: LimiterConfig) -> Vec<Event> {
    on_mock_driver(async {
        // A line with no room to wait: each request gets the limiter's answer at once.
        let queue: RateLimitQueue<NoopRawMutex, Limiter<NoopRawMutex>, 0> =
            RateLimitQueue::new(config.build().expect("config"));
        let mut trace = Vec::new();
        for (i, arrival) in BURSTS.iter().enumerate() {
            until(arrival.at()).await;
            let now = EmbassyClock.now();
            let answer = queue.acquire(arrival.n, Deadline::NEVER).await;
            trace.push(Event::of_decision(now, i, answer));
        }
        trace
    })
}

fn burst_waiting(config: LimiterConfig) -> Vec<Event> {
    let queue: RateLimitQueue<NoopRawMutex, Limiter<NoopRawMutex>, 32> =
        RateLimitQueue::new(config.build().expect("config"));
    let queue = &queue;
    let tasks: Vec<Task<'_, Event>> = BURSTS
        .iter()
        .enumerate()
        .map(|(i, arrival)| {
            Box::pin(async move {
                until(arrival.at()).await;
                match queue.acquire(arrival.n, Deadline::NEVER).await {
                    Ok(()) => Event::Proceeded {
                        at: EmbassyClock.now(),
                        request: i,
                    },
                    Err(refused) => Event::of_decision(EmbassyClock.now(), i, Err(refused)),
                }
            }) as Task<'_, Event>
        })
        .collect();
    on_mock_driver(join_all(tasks))
}

fn burst_shaping(config: LimiterConfig) -> Option<Vec<Event>> {
    let limiter: Limiter<NoopRawMutex> = config.build().expect("config");
    // Only the leaky bucket shapes.
    limiter.reserve_at(0, Instant::ZERO)?.ok()?;
    let limiter = &limiter;
    let tasks: Vec<Task<'_, Option<Event>>> = BURSTS
        .iter()
        .enumerate()
        .map(|(i, arrival)| {
            Box::pin(async move {
                until(arrival.at()).await;
                let now = EmbassyClock.now();
                Some(match limiter.reserve_at(arrival.n, now)? {
                    Ok(turn) => {
                        until(turn).await;
                        Event::Proceeded {
                            at: EmbassyClock.now(),
                            request: i,
                        }
                    }
                    Err(refused) => Event::of_decision(now, i, Err(refused)),
                })
            }) as Task<'_, Option<Event>>
        })
        .collect();
    on_mock_driver(join_all(tasks)).into_iter().collect()
}

fn bulkhead_waiting() -> Vec<Event> {
    let slots = NonZeroU32::new(bulkhead::SLOTS).expect("at least one slot");
    let queue: BulkheadQueue<NoopRawMutex, { bulkhead::MAX_WAITING }> = BulkheadQueue::new(slots);
    let queue = &queue;
    let tasks: Vec<Task<'_, Event>> = bulkhead::CALLERS
        .iter()
        .enumerate()
        .map(|(i, caller)| {
            Box::pin(async move {
                until(caller.at()).await;
                match queue.acquire(caller.deadline()).await {
                    Ok(slot) => {
                        let at = EmbassyClock.now();
                        Timer::after(Ticks::from_millis(caller.hold_ms)).await;
                        drop(slot);
                        Event::Proceeded { at, request: i }
                    }
                    Err(full) => Event::BulkheadFull {
                        at: EmbassyClock.now(),
                        request: i,
                        in_use: full.in_use(),
                    },
                }
            }) as Task<'_, Event>
        })
        .collect();
    on_mock_driver(join_all(tasks))
}

fn outage() -> Vec<Event> {
    let recorder = Recorder::new();
    let recorder = &recorder;
    let breaker = outage::breaker::<NoopRawMutex>(recorder).expect("config");
    let breaker = &breaker;
    let classify = |outcome: &Result<(), BreakerError<Down>>| match outcome {
        Ok(()) => Verdict::Success,
        Err(BreakerError::Rejected(_)) => Verdict::Permanent,
        Err(BreakerError::Operation(_)) => Verdict::Transient,
    };
    let mut policy = outage::policy().expect("config").with_classifier(classify);
    on_mock_driver(async {
        for call in 0..outage::CALLS {
            until(outage::call_at(call)).await;
            policy.reset(Deadline::NEVER);
            let result = retry(&mut policy, |attempt| {
                breaker::call(breaker, move || async move {
                    let start = EmbassyClock.now();
                    recorder.push(Event::Attempt {
                        at: start,
                        call,
                        attempt,
                    });
                    Timer::after(Ticks::from_millis(outage::ATTEMPT_MS)).await;
                    if outage::fails(start) {
                        Err(Down)
                    } else {
                        Ok(())
                    }
                })
            })
            .await;
            let outcome = match result {
                Ok(()) => CallOutcome::Ok,
                Err(RetryError {
                    last,
                    reason,
                    attempts,
                }) => CallOutcome::GaveUp {
                    last: match last {
                        BreakerError::Rejected(_) => LastError::CircuitOpen,
                        BreakerError::Operation(Down) => LastError::Operation,
                    },
                    reason,
                    attempts,
                },
            };
            recorder.push(Event::Ended {
                at: EmbassyClock.now(),
                call,
                outcome,
            });
        }
    });
    recorder.take()
}

fn pipeline() -> Vec<Event> {
    let recorder = Recorder::new();
    let recorder = &recorder;
    let breaker = pipeline::breaker::<NoopRawMutex>(recorder).expect("config");
    let limiter: RateLimitQueue<NoopRawMutex, _, 4> =
        RateLimitQueue::new(pipeline::limiter().expect("config"));
    let slots = NonZeroU32::new(pipeline::SLOTS).expect("at least one slot");
    let pool: BulkheadQueue<NoopRawMutex, 0> = BulkheadQueue::new(slots);
    let pipeline = Pipeline::new()
        .overall_timeout(ms(pipeline::OVERALL_MS))
        .rate_limit(&limiter)
        .bulkhead(&pool)
        .breaker(&breaker)
        .attempt_timeout(ms(pipeline::ATTEMPT_TIMEOUT_MS));
    let mut policy = pipeline::policy().expect("config");
    on_mock_driver(async {
        for (i, call) in pipeline::CALLS.iter().enumerate() {
            until(Instant::from_millis(call.at_ms)).await;
            let held = if call.slot_taken {
                pool.bulkhead().try_acquire().ok()
            } else {
                None
            };
            let result: Result<(), PipelineError<Down>> = pipeline
                .call(&mut policy, |attempt| async move {
                    recorder.push(Event::Attempt {
                        at: EmbassyClock.now(),
                        call: i,
                        attempt,
                    });
                    match call.step(attempt) {
                        Step::Ok(d) => {
                            Timer::after(Ticks::from_millis(d)).await;
                            Ok(())
                        }
                        Step::Err(d) => {
                            Timer::after(Ticks::from_millis(d)).await;
                            Err(Down)
                        }
                        Step::Hang => pending().await,
                    }
                })
                .await;
            drop(held);
            recorder.push(Event::Ended {
                at: EmbassyClock.now(),
                call: i,
                outcome: CallOutcome::of_pipeline(&result),
            });
        }
    });
    recorder.take()
}

/// The clock alone, on the steps of `clocks.rs`: the driver moves by whole ticks (1 µs),
/// so each step is rounded up to one, and the instants read differ from `ManualClock`'s
/// by exactly that rounding.
fn clock_steps() {
    let driver = MockDriver::get();
    driver.reset();
    let trace = clock_trace(&EmbassyClock, &CLOCK_STEPS, |step| {
        let ticks = EmbassyClock::instant_to_ticks(Instant::from_nanos(
            stanchion::time::duration_to_nanos_saturating(step),
        ));
        driver.advance(Ticks::from_ticks(ticks));
    });
    assert_eq!(
        trace,
        [
            Instant::from_nanos(1_000),
            Instant::from_nanos(250_001_000),
            Instant::from_nanos(3_600_250_001_000),
            Instant::from_nanos(3_600_250_001_000),
        ]
    );
}

#[test]
fn the_scenarios_on_the_mock_driver() {
    assert_eq!(
        embassy_time::TICK_HZ,
        1_000_000,
        "the mock driver ticks at 1 MHz"
    );
    clock_steps();
    for &(name, config) in LIMITERS {
        let reference = reference::burst_decisions(config).expect("config");
        assert_same_trace(name, "embassy", &reference, &burst_decisions(config));
        let reference = reference::burst_waiting(config).expect("config");
        assert_same_trace(name, "embassy", &reference, &burst_waiting(config));
        match (
            reference::burst_shaping(config).expect("config"),
            burst_shaping(config),
        ) {
            (Some(reference), Some(shaped)) => {
                assert_same_trace(name, "embassy", &reference, &shaped);
            }
            (None, None) => {}
            (r, s) => panic!("{name}: shaping {r:?} vs {s:?}"),
        }
    }
    assert_same_trace(
        "bulkhead",
        "embassy",
        &reference::bulkhead_waiting(),
        &bulkhead_waiting(),
    );
    assert_same_trace(
        "outage",
        "embassy",
        &reference::outage().expect("config"),
        &outage(),
    );
    assert_same_trace(
        "pipeline",
        "embassy",
        &reference::pipeline().expect("config"),
        &pipeline(),
    );
}
