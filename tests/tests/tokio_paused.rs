//! One scenario, three clocks: the std adapter's runners under tokio's paused clock
//! ([`TokioClock`]) must reproduce the reference trace of core on a `ManualClock`, event
//! for event, to the nanosecond.

use core::future::pending;

use stanchion::pipeline::PipelineError;
use stanchion::rate::WithClock;
use stanchion::retry::Verdict;
use stanchion::{Clock, Deadline, Instant};
use stanchion_std::{
    BreakerError, BulkheadQueue, ErrorsAreFailures, Pipeline, RateLimitQueue, RetryError,
    StdRawMutex, TokioClock, retry, with_breaker,
};
use stanchion_tests::join::{Task, join_all};
use stanchion_tests::scenarios::pipeline::Step;
use stanchion_tests::scenarios::{BURSTS, LIMITERS, LimiterConfig, bulkhead, ms, outage, pipeline};
use stanchion_tests::{CallOutcome, Event, LastError, Recorder, assert_same_trace, reference};

/// The dependency's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Down;

/// Runs `scenario` on a current-thread runtime whose clock starts paused, on a
/// [`TokioClock`] whose epoch is the runtime's start.
fn on_paused_tokio<T>(scenario: impl AsyncFnOnce(TokioClock) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    rt.block_on(async { scenario(TokioClock::starting_now()).await })
}

/// Sleeps until `at` on `clock`.
async fn until(clock: TokioClock, at: Instant) {
    tokio::time::sleep_until(clock.to_tokio(at)).await;
}

fn burst_decisions(config: LimiterConfig) -> Vec<Event> {
    on_paused_tokio(async |clock| {
        let limiter = WithClock::new(config.build::<StdRawMutex>().expect("config"), clock);
        // A line that nobody waits in: each request gets the limiter's answer at once.
        let queue = RateLimitQueue::new(limiter, clock).with_max_waiting(0);
        let mut trace = Vec::new();
        for (i, arrival) in BURSTS.iter().enumerate() {
            until(clock, arrival.at()).await;
            let now = clock.now();
            let answer = queue.acquire(arrival.n, Deadline::NEVER).await;
            trace.push(Event::of_decision(now, i, answer.map(|_| ())));
        }
        trace
    })
}

fn burst_waiting(config: LimiterConfig) -> Vec<Event> {
    on_paused_tokio(async |clock| {
        let limiter = WithClock::new(config.build::<StdRawMutex>().expect("config"), clock);
        let queue = RateLimitQueue::new(limiter, clock);
        let queue = &queue;
        let tasks: Vec<Task<'_, Event>> = BURSTS
            .iter()
            .enumerate()
            .map(|(i, arrival)| {
                Box::pin(async move {
                    until(clock, arrival.at()).await;
                    let answer = queue.acquire(arrival.n, Deadline::NEVER).await;
                    match answer {
                        Ok(_) => Event::Proceeded {
                            at: clock.now(),
                            request: i,
                        },
                        Err(refused) => Event::of_decision(clock.now(), i, Err(refused)),
                    }
                }) as Task<'_, Event>
            })
            .collect();
        join_all(tasks).await
    })
}

fn burst_shaping(config: LimiterConfig) -> Option<Vec<Event>> {
    let limiter = config.build::<StdRawMutex>().expect("config");
    // Only the leaky bucket shapes.
    limiter.reserve_at(0, Instant::ZERO)?.ok()?;
    let limiter = &limiter;
    on_paused_tokio(async |clock| {
        let mut tasks: Vec<Task<'_, Option<Event>>> = Vec::new();
        for (i, arrival) in BURSTS.iter().enumerate() {
            tasks.push(Box::pin(async move {
                until(clock, arrival.at()).await;
                let now = clock.now();
                Some(match limiter.reserve_at(arrival.n, now)? {
                    Ok(turn) => {
                        until(clock, turn).await;
                        Event::Proceeded {
                            at: clock.now(),
                            request: i,
                        }
                    }
                    Err(refused) => Event::of_decision(now, i, Err(refused)),
                })
            }));
        }
        join_all(tasks).await.into_iter().collect()
    })
}

fn bulkhead_waiting() -> Vec<Event> {
    on_paused_tokio(async |clock| {
        let queue =
            BulkheadQueue::new(bulkhead::SLOTS, bulkhead::MAX_WAITING, clock).expect("config");
        let queue = &queue;
        let tasks: Vec<Task<'_, Event>> = bulkhead::CALLERS
            .iter()
            .enumerate()
            .map(|(i, caller)| {
                Box::pin(async move {
                    until(clock, caller.at()).await;
                    match queue.acquire(caller.deadline()).await {
                        Ok(slot) => {
                            let at = clock.now();
                            tokio::time::sleep(ms(caller.hold_ms)).await;
                            drop(slot);
                            Event::Proceeded { at, request: i }
                        }
                        Err(full) => Event::BulkheadFull {
                            at: clock.now(),
                            request: i,
                            in_use: full.in_use(),
                        },
                    }
                }) as Task<'_, Event>
            })
            .collect();
        join_all(tasks).await
    })
}

fn outage() -> Vec<Event> {
    let recorder = Recorder::new();
    let recorder = &recorder;
    on_paused_tokio(async |clock| {
        let breaker = outage::breaker::<StdRawMutex>(recorder).expect("config");
        let breaker = &breaker;
        let classify = |outcome: &Result<(), BreakerError<Down>>| match outcome {
            Ok(()) => Verdict::Success,
            Err(BreakerError::Rejected(_)) => Verdict::Permanent,
            Err(BreakerError::Operation(_)) => Verdict::Transient,
        };
        let mut policy = outage::policy().expect("config").with_classifier(classify);
        for call in 0..outage::CALLS {
            until(clock, outage::call_at(call)).await;
            policy.reset(Deadline::NEVER);
            let result = retry(clock, &mut policy, |attempt| {
                let operation = async move {
                    let start = clock.now();
                    recorder.push(Event::Attempt {
                        at: start,
                        call,
                        attempt,
                    });
                    tokio::time::sleep(ms(outage::ATTEMPT_MS)).await;
                    if outage::fails(start) {
                        Err(Down)
                    } else {
                        Ok(())
                    }
                };
                with_breaker(breaker, clock, &ErrorsAreFailures, operation)
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
                at: clock.now(),
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
    on_paused_tokio(async |clock| {
        let breaker = pipeline::breaker::<StdRawMutex>(recorder).expect("config");
        let limiter = WithClock::new(pipeline::limiter().expect("config"), clock);
        let pipeline = Pipeline::new(clock)
            .overall_timeout(ms(pipeline::OVERALL_MS))
            .rate_limit(RateLimitQueue::new(limiter, clock))
            .bulkhead(BulkheadQueue::new(pipeline::SLOTS, 0, clock).expect("config"))
            .circuit_breaker(&breaker)
            .retry(pipeline::policy().expect("config"))
            .attempt_timeout(ms(pipeline::ATTEMPT_TIMEOUT_MS));
        for (i, call) in pipeline::CALLS.iter().enumerate() {
            until(clock, Instant::from_millis(call.at_ms)).await;
            let held = match (call.slot_taken, pipeline.bulkhead_queue()) {
                (true, Some(queue)) => queue.bulkhead().try_acquire().ok(),
                _ => None,
            };
            let result: Result<(), PipelineError<Down>> = pipeline
                .call(|attempt| async move {
                    recorder.push(Event::Attempt {
                        at: clock.now(),
                        call: i,
                        attempt,
                    });
                    match call.step(attempt) {
                        Step::Ok(d) => {
                            tokio::time::sleep(ms(d)).await;
                            Ok(())
                        }
                        Step::Err(d) => {
                            tokio::time::sleep(ms(d)).await;
                            Err(Down)
                        }
                        Step::Hang => pending().await,
                    }
                })
                .await;
            drop(held);
            recorder.push(Event::Ended {
                at: clock.now(),
                call: i,
                outcome: CallOutcome::of_pipeline(&result),
            });
        }
    });
    recorder.take()
}

#[test]
fn bursts_through_each_limiter_decide_alike() {
    for &(name, config) in LIMITERS {
        let reference = reference::burst_decisions(config).expect("config");
        assert_same_trace(name, "tokio", &reference, &burst_decisions(config));
    }
}

#[test]
fn waiters_in_line_proceed_at_the_same_instants() {
    for &(name, config) in LIMITERS {
        let reference = reference::burst_waiting(config).expect("config");
        assert_same_trace(name, "tokio", &reference, &burst_waiting(config));
    }
}

#[test]
fn the_leaky_bucket_shapes_alike() {
    for &(name, config) in LIMITERS {
        let reference = reference::burst_shaping(config).expect("config");
        let shaped = burst_shaping(config);
        match (reference, shaped) {
            (Some(reference), Some(shaped)) => {
                assert_same_trace(name, "tokio", &reference, &shaped);
            }
            (None, None) => {}
            (r, s) => panic!("{name}: shaping {r:?} vs {s:?}"),
        }
    }
}

#[test]
fn bulkhead_waiters_get_their_slots_at_the_same_instants() {
    assert_same_trace(
        "bulkhead",
        "tokio",
        &reference::bulkhead_waiting(),
        &bulkhead_waiting(),
    );
}

#[test]
fn an_outage_and_recovery_through_a_breaker_with_retries() {
    assert_same_trace(
        "outage",
        "tokio",
        &reference::outage().expect("config"),
        &outage(),
    );
}

#[test]
fn a_pipeline_under_load() {
    assert_same_trace(
        "pipeline",
        "tokio",
        &reference::pipeline().expect("config"),
        &pipeline(),
    );
}
