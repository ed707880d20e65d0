//! The async runners on tokio's paused clock: retry, timeout, waiting for a rate limiter
//! and for a bulkhead, calls through a circuit breaker. Exact virtual times throughout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stanchion::breaker::{
    BreakerConfig, CircuitBreaker, Outcome, State, window::ConsecutiveWindow,
};
use stanchion::rate::{Quota, RateLimitError, TokenBucket, WithClock};
use stanchion::retry::{Constant, Exponential, GiveUpReason, Ratio, RetryPolicy, TokenBudget};
use stanchion::{Clock, Deadline, Instant};
use stanchion_std::{
    BreakerError, BulkheadQueue, ErrorsAreFailures, RateLimitQueue, RetryError, StdRawMutex,
    TimedOut, TokioClock, retry, timeout, with_breaker,
};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

/// Yields until `done()` holds, at most 1000 times (a bug cannot hang the test).
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached within 1000 yields");
}

type Log = Arc<Mutex<Vec<(u32, u64)>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

// ------------------------------------------------------------------------------------
// retry
// ------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn retry_rides_out_a_ten_minute_outage_at_the_exact_backoff_times() {
    let clock = TokioClock::starting_now();
    let backoff = Exponential::new(S(1), Ratio::TWO, S(60)).unwrap();
    let mut policy = RetryPolicy::new(backoff, 20, fastrand::Rng::with_seed(3)).unwrap();
    let mut times = Vec::new();
    let outage_ends = Instant::from_secs(600);
    let result = retry(clock, &mut policy, |attempt| {
        let now = clock.now();
        times.push((attempt, now.as_secs()));
        async move {
            if now < outage_ends {
                Err("unavailable")
            } else {
                Ok(attempt)
            }
        }
    })
    .await;
    // 1, 2, 4, ..., 32 s, then the 60 s cap, until the first attempt at or after 600 s.
    let expected: Vec<(u32, u64)> = [
        0, 1, 3, 7, 15, 31, 63, 123, 183, 243, 303, 363, 423, 483, 543, 603,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, t)| (i as u32 + 1, t))
    .collect();
    assert_eq!(times, expected);
    assert_eq!(result, Ok(16));
    assert_eq!(clock.now(), Instant::from_secs(603));
    assert_eq!(policy.attempt(), 16);
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_with_the_last_error_the_reason_and_the_count() {
    let clock = TokioClock::starting_now();
    let mut policy = RetryPolicy::new(Constant::new(S(2)), 3, fastrand::Rng::with_seed(1)).unwrap();
    let result: Result<(), _> = retry(
        clock,
        &mut policy,
        |attempt| async move { Err(attempt * 100) },
    )
    .await;
    assert_eq!(
        result,
        Err(RetryError {
            last: 300,
            reason: GiveUpReason::AttemptsExhausted,
            attempts: 3
        })
    );
    assert_eq!(clock.now(), Instant::from_secs(4));

    // The deadline: a wait that would reach it is refused, never shortened.
    let deadline = Deadline::after(clock.now(), S(5));
    let mut policy = RetryPolicy::new(Constant::new(S(2)), 10, fastrand::Rng::with_seed(1))
        .unwrap()
        .with_deadline(deadline);
    let result: Result<(), _> = retry(clock, &mut policy, |_| async { Err("down") }).await;
    let err = result.unwrap_err();
    assert_eq!((err.reason, err.attempts), (GiveUpReason::Deadline, 3));
    assert_eq!(clock.now(), Instant::from_secs(8)); // attempts at 4, 6, 8; 10 is the deadline
    assert!(err.to_string().starts_with("gave up after 3 attempt(s)"));

    // A permanent error stops at once; the budget stops retries when it runs dry.
    let budget = TokenBudget::new(4, Ratio::percent(10)).unwrap();
    let mut policy = RetryPolicy::new(Constant::new(MS(10)), 10, fastrand::Rng::with_seed(1))
        .unwrap()
        .with_budget(&budget);
    let result: Result<(), _> = retry(clock, &mut policy, |_| async { Err("down") }).await;
    assert_eq!(result.unwrap_err().reason, GiveUpReason::BudgetExhausted);
}

#[tokio::test(start_paused = true)]
async fn an_ok_the_classifier_calls_transient_is_retried_then_returned() {
    let clock = TokioClock::starting_now();
    let status = |r: &Result<u16, ()>| match r {
        Ok(503) => stanchion::retry::Verdict::Transient,
        Ok(_) => stanchion::retry::Verdict::Success,
        Err(()) => stanchion::retry::Verdict::Permanent,
    };
    let mut policy = RetryPolicy::new(Constant::new(S(1)), 3, fastrand::Rng::with_seed(1))
        .unwrap()
        .with_classifier(status);
    let result = retry(clock, &mut policy, |_| async { Ok(503) }).await;
    assert_eq!(result, Ok(503));
    assert_eq!(policy.attempt(), 3);
    assert_eq!(clock.now(), Instant::from_secs(2));
}

// ------------------------------------------------------------------------------------
// timeout
// ------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn timeout_cancels_at_the_deadline_exactly() {
    let clock = TokioClock::starting_now();
    let deadline = Deadline::after(clock.now(), MS(1500));
    let slow = timeout(clock, deadline, tokio::time::sleep(S(10))).await;
    assert_eq!(slow, Err(TimedOut));
    assert_eq!(clock.now(), Instant::from_millis(1500));
    // Already expired: refused without polling.
    let mut polled = false;
    let late = timeout(clock, deadline, async { polled = true }).await;
    assert_eq!((late, polled), (Err(TimedOut), false));
    // NEVER sets no timer.
    let ok = timeout(clock, Deadline::NEVER, async {
        tokio::time::sleep(S(3600)).await;
        5
    })
    .await;
    assert_eq!(ok, Ok(5));
}

// ------------------------------------------------------------------------------------
// waiting for a rate limiter
// ------------------------------------------------------------------------------------

type Bucket = WithClock<TokenBucket, TokioClock>;

fn one_per_second(clock: TokioClock) -> Arc<RateLimitQueue<Bucket>> {
    let bucket = WithClock::new(TokenBucket::new(Quota::per_second(1).unwrap()), clock);
    Arc::new(RateLimitQueue::new(bucket, clock))
}

fn spawn_waiter(
    queue: &Arc<RateLimitQueue<Bucket>>,
    id: u32,
    deadline: Deadline,
    log: &Log,
) -> tokio::task::JoinHandle<Result<u32, RateLimitError>> {
    let (queue, log) = (Arc::clone(queue), Arc::clone(log));
    tokio::spawn(async move {
        let admission = queue.acquire(1, deadline).await?;
        log.lock()
            .unwrap()
            .push((id, queue.clock().now().as_millis()));
        Ok(admission.remaining)
    })
}

#[tokio::test(start_paused = true)]
async fn rate_limit_waiters_are_served_in_arrival_order_at_the_exact_times() {
    let clock = TokioClock::starting_now();
    let queue = one_per_second(clock);
    queue.acquire(1, Deadline::NEVER).await.unwrap(); // empty the bucket at t = 0
    let log = log();
    let mut handles = Vec::new();
    for id in 0..4 {
        handles.push(spawn_waiter(&queue, id, Deadline::NEVER, &log));
        let q = Arc::clone(&queue);
        until(move || q.waiting() == id as usize + 1).await;
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), Ok(0));
    }
    assert_eq!(
        *log.lock().unwrap(),
        [(0, 1000), (1, 2000), (2, 3000), (3, 4000)]
    );
    assert_eq!(queue.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_gives_up_its_place_and_consumes_nothing() {
    let clock = TokioClock::starting_now();
    let queue = one_per_second(clock);
    queue.acquire(1, Deadline::NEVER).await.unwrap();
    let log = log();
    let head = spawn_waiter(&queue, 0, Deadline::NEVER, &log);
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 1).await;
    let middle = spawn_waiter(&queue, 1, Deadline::NEVER, &log);
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 2).await;
    let last = spawn_waiter(&queue, 2, Deadline::NEVER, &log);
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 3).await;

    // Cancel a waiter in the middle of the line, then the head while it sleeps.
    middle.abort();
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 2).await;
    tokio::time::sleep(MS(400)).await;
    head.abort();
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 1).await;

    // The last waiter takes the token the head would have had, at 1 s: the cancelled
    // ones consumed nothing.
    assert_eq!(last.await.unwrap(), Ok(0));
    assert_eq!(*log.lock().unwrap(), [(2, 1000)]);
    assert_eq!(clock.now(), Instant::from_secs(1));
    assert_eq!(queue.waiting(), 0);
    assert!(head.await.unwrap_err().is_cancelled());
    assert!(middle.await.unwrap_err().is_cancelled());
    // The next token is at 2 s, exactly one period later.
    queue.acquire(1, Deadline::NEVER).await.unwrap();
    assert_eq!(clock.now(), Instant::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_waits_respect_the_deadline() {
    let clock = TokioClock::starting_now();
    let queue = one_per_second(clock);
    queue.acquire(1, Deadline::NEVER).await.unwrap();

    // The limiter's wait (1 s) reaches the deadline (1 s): refused at once, with the
    // limiter's retry_after.
    let refused = queue
        .acquire(1, Deadline::after(clock.now(), S(1)))
        .await
        .unwrap_err();
    assert_eq!(refused.retry_after(), Some(S(1)));
    assert_eq!(clock.now(), Instant::ZERO);
    // One nanosecond more is enough.
    let granted = queue
        .acquire(
            1,
            Deadline::after(clock.now(), S(1) + Duration::from_nanos(1)),
        )
        .await;
    assert!(granted.is_ok());
    assert_eq!(clock.now(), Instant::from_secs(1));

    // A newcomer behind a head that sleeps past its deadline: refused at once, with the
    // head's remaining wait.
    let log = log();
    let head = spawn_waiter(&queue, 0, Deadline::NEVER, &log);
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 1).await;
    let impatient = spawn_waiter(&queue, 1, Deadline::after(clock.now(), MS(300)), &log);
    let refused = impatient.await.unwrap().unwrap_err();
    assert_eq!(clock.now(), Instant::from_secs(1));
    assert_eq!(refused.retry_after(), Some(S(1)));

    // A waiter whose deadline passes in line (after the head it queued behind was
    // served, before its own turn) is refused at its deadline.
    let second = spawn_waiter(&queue, 2, Deadline::NEVER, &log);
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 2).await;
    let third = spawn_waiter(&queue, 3, Deadline::at(Instant::from_millis(2500)), &log);
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 3).await;
    let refused = third.await.unwrap().unwrap_err();
    assert_eq!(clock.now(), Instant::from_millis(2500));
    assert_eq!(refused.retry_after(), Some(MS(500))); // the second sleeps until 3 s
    assert_eq!(head.await.unwrap(), Ok(0));
    assert_eq!(second.await.unwrap(), Ok(0));
    assert_eq!(*log.lock().unwrap(), [(0, 2000), (2, 3000)]);
    assert_eq!(queue.waiting(), 0);

    // More than the burst can never be granted: refused at once.
    let never = queue.acquire(2, Deadline::NEVER).await.unwrap_err();
    assert!(matches!(never, RateLimitError::InsufficientCapacity(e) if e.max() == 1));
}

#[tokio::test(start_paused = true)]
async fn the_line_is_bounded() {
    let clock = TokioClock::starting_now();
    let bucket = WithClock::new(TokenBucket::new(Quota::per_second(1).unwrap()), clock);
    let queue = Arc::new(RateLimitQueue::new(bucket, clock).with_max_waiting(1));
    queue.acquire(1, Deadline::NEVER).await.unwrap();
    let log = log();
    let head = spawn_waiter(&queue, 0, Deadline::NEVER, &log);
    let q = Arc::clone(&queue);
    until(move || q.waiting() == 1).await;
    let refused = queue.acquire(1, Deadline::NEVER).await.unwrap_err();
    assert_eq!(refused.retry_after(), Some(S(1)));
    assert_eq!(head.await.unwrap(), Ok(0));

    // max_waiting 0: never waits, answers with the limiter's denial.
    let bucket = WithClock::new(TokenBucket::new(Quota::per_second(1).unwrap()), clock);
    let no_wait = RateLimitQueue::new(bucket, clock).with_max_waiting(0);
    assert!(no_wait.acquire(1, Deadline::NEVER).await.is_ok());
    let denied = no_wait.acquire(1, Deadline::NEVER).await.unwrap_err();
    assert_eq!(denied.retry_after(), Some(S(1)));
    assert_eq!(no_wait.waiting(), 0);
}

// ------------------------------------------------------------------------------------
// waiting for a bulkhead
// ------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn bulkhead_waiters_are_served_in_order_bounded_in_number_and_time() {
    let clock = TokioClock::starting_now();
    let pool = Arc::new(BulkheadQueue::new(1, 2, clock).unwrap());
    let log = log();
    let mut handles = Vec::new();
    // Four callers, each holding its slot for 1 s; the line takes two.
    for id in 0..4u32 {
        let (pool2, log2) = (Arc::clone(&pool), Arc::clone(&log));
        handles.push(tokio::spawn(async move {
            let permit = pool2.acquire(Deadline::NEVER).await?;
            log2.lock().unwrap().push((id, clock.now().as_millis()));
            tokio::time::sleep(S(1)).await;
            drop(permit);
            Ok::<_, stanchion::bulkhead::BulkheadFull>(())
        }));
        tokio::task::yield_now().await;
    }
    let results: Vec<_> = futures_join(handles).await;
    assert!(results[..3].iter().all(Result::is_ok));
    let full = results[3].unwrap_err();
    assert_eq!((full.in_use(), full.max_concurrent()), (1, 1));
    assert_eq!(*log.lock().unwrap(), [(0, 0), (1, 1000), (2, 2000)]);
    assert_eq!(pool.waiting(), 0);
    assert_eq!(pool.bulkhead().in_use(), 0);

    // A bounded wait: refused at the deadline exactly.
    let held = pool.acquire(Deadline::NEVER).await.unwrap();
    let start = clock.now();
    let refused = pool
        .acquire(Deadline::after(start, MS(250)))
        .await
        .unwrap_err();
    assert_eq!(clock.now(), start + MS(250));
    assert_eq!(refused.in_use(), 1);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_bulkhead_waiter_leaves_the_line_and_a_raised_maximum_wakes_the_head() {
    let clock = TokioClock::starting_now();
    let pool = Arc::new(BulkheadQueue::new(1, 8, clock).unwrap());
    let held = pool.acquire(Deadline::NEVER).await.unwrap();
    let log = log();
    let spawn = |id: u32| {
        let (pool, log) = (Arc::clone(&pool), Arc::clone(&log));
        tokio::spawn(async move {
            let _permit = pool.acquire(Deadline::NEVER).await.unwrap();
            log.lock().unwrap().push((id, clock.now().as_millis()));
            tokio::time::sleep(S(1)).await;
        })
    };
    let a = spawn(0);
    let p = Arc::clone(&pool);
    until(move || p.waiting() == 1).await;
    let b = spawn(1);
    let p = Arc::clone(&pool);
    until(move || p.waiting() == 2).await;
    a.abort(); // the head leaves: b becomes the head
    let p = Arc::clone(&pool);
    until(move || p.waiting() == 1).await;
    tokio::time::sleep(MS(500)).await;
    pool.bulkhead().set_max_concurrent(2).unwrap(); // wakes b at once
    b.await.unwrap();
    assert_eq!(*log.lock().unwrap(), [(1, 500)]);
    drop(held);
    assert_eq!(pool.bulkhead().in_use(), 0);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

// ------------------------------------------------------------------------------------
// circuit breaker
// ------------------------------------------------------------------------------------

type Breaker = CircuitBreaker<ConsecutiveWindow, StdRawMutex>;

fn breaker() -> Breaker {
    let config = BreakerConfig::new()
        .open_duration(S(10))
        .permitted_calls_in_half_open(1)
        .minimum_calls(1);
    CircuitBreaker::new(config, ConsecutiveWindow::new(3).unwrap()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_rejects_half_opens_and_closes_through_the_runner() {
    let clock = TokioClock::starting_now();
    let breaker = breaker();
    let fail = || async {
        tokio::time::sleep(MS(100)).await;
        Err::<(), _>("down")
    };
    for _ in 0..3 {
        let r = with_breaker(&breaker, clock, &ErrorsAreFailures, fail()).await;
        assert_eq!(r, Err(BreakerError::Operation("down")));
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(clock.now(), Instant::from_millis(300));

    // Open: refused without running, with the exact time left.
    let mut ran = false;
    let r = with_breaker(&breaker, clock, &ErrorsAreFailures, async {
        ran = true;
        Ok::<_, &str>(())
    })
    .await;
    let Err(BreakerError::Rejected(rejected)) = r else {
        panic!("expected a rejection, got {r:?}")
    };
    assert!(!ran);
    assert_eq!(rejected.state, State::Open);
    assert_eq!(rejected.retry_after, Some(S(10) + Duration::from_nanos(1)));

    // Strictly after the open duration: one probe. A cancelled probe records nothing and
    // gives its slot back.
    tokio::time::sleep(rejected.retry_after.unwrap()).await;
    let probe = with_breaker(&breaker, clock, &ErrorsAreFailures, async {
        tokio::time::sleep(S(5)).await;
        Ok::<_, &str>(())
    });
    let cancelled = tokio::time::timeout(S(1), probe).await;
    assert!(cancelled.is_err());
    assert_eq!(breaker.state(), State::HalfOpen);

    // The next probe succeeds: closed.
    let r = with_breaker(&breaker, clock, &ErrorsAreFailures, async {
        Ok::<_, &str>(7)
    })
    .await;
    assert_eq!(r, Ok(7));
    assert_eq!(breaker.state(), State::Closed);

    // A classifier that ignores client errors: they never open the breaker.
    let ignore_4xx = |r: &Result<u16, ()>| match r {
        Ok(400..=499) => Outcome::Ignored,
        Ok(500..=599) | Err(()) => Outcome::Failure,
        Ok(_) => Outcome::Success,
    };
    for _ in 0..5 {
        let r = with_breaker(&breaker, clock, &ignore_4xx, async { Ok(404) }).await;
        assert_eq!(r, Ok(404));
    }
    assert_eq!(breaker.state(), State::Closed);
    for _ in 0..3 {
        let _ = with_breaker(&breaker, clock, &ignore_4xx, async { Ok(503) }).await;
    }
    assert_eq!(breaker.state(), State::Open);
}
