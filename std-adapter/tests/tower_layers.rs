//! The tower layers on tokio's paused clock: exact refusals, waits and attempt times.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, State};
use stanchion::bulkhead::Bulkhead;
use stanchion::pipeline::{Layer, PipelineError};
use stanchion::rate::{
    FullTablePolicy, KeyedTokenBucket, Quota, RateLimitError, SharedLimiter, TokenBucket, WithClock,
};
use stanchion::retry::{Constant, Exponential, Ratio, RetryPolicy, TokenBudget};
use stanchion_std::tower::{
    BoxError, BulkheadLayer, CircuitBreakerLayer, Elapsed, KeyedRateLimitLayer, RateLimitLayer,
    RateLimited, RefusalsArePermanent, RetryLayer, SharedBudget, TimeoutLayer, refusal,
};
use stanchion_std::{Admission, AsyncRateLimiter, StdRawMutex, TokioClock};
use tokio::time::Instant as TokioInstant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const MS: fn(u64) -> Duration = Duration::from_millis;
const SECS: fn(u64) -> Duration = Duration::from_secs;

/// What the test service does with a request.
#[derive(Clone, Copy, Debug)]
enum Call {
    Ok,
    Fail,
    /// Succeed after this long.
    Slow(Duration),
}

/// A service that counts its calls and does as told.
fn scripted(
    calls: Arc<AtomicU32>,
) -> impl Service<Call, Response = &'static str, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(move |call: Call| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            match call {
                Call::Ok => Ok("ok"),
                Call::Fail => Err::<_, BoxError>("boom".into()),
                Call::Slow(d) => {
                    tokio::time::sleep(d).await;
                    Ok("slow")
                }
            }
        }
    })
}

fn refused_by(err: &BoxError) -> (Layer, Option<Duration>) {
    let r = refusal(&**err).expect("a layer's refusal");
    (r.layer, r.retry_after)
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_rejects_half_opens_and_closes_and_clones_share_it() {
    let calls = Arc::new(AtomicU32::new(0));
    let config = BreakerConfig::new()
        .permitted_calls_in_half_open(1)
        .minimum_calls(1)
        .open_duration(SECS(10));
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(config, ConsecutiveWindow::new(2).unwrap()).unwrap();
    let breaker = Arc::new(breaker);
    let layer = CircuitBreakerLayer::new(Arc::clone(&breaker));
    let mut a = ServiceBuilder::new()
        .layer(layer)
        .service(scripted(Arc::clone(&calls)));
    let mut b = a.clone();

    // Two failures in a row, through two clones: the shared breaker opens.
    assert!(a.ready().await.unwrap().call(Call::Fail).await.is_err());
    assert_eq!(breaker.state(), State::Closed);
    assert!(b.ready().await.unwrap().call(Call::Fail).await.is_err());
    assert_eq!(breaker.state(), State::Open);

    // Open: refused without reaching the service, for the time left plus 1 ns.
    let err = a.ready().await.unwrap().call(Call::Ok).await.unwrap_err();
    assert_eq!(
        refused_by(&err),
        (
            Layer::CircuitBreaker,
            Some(SECS(10) + Duration::from_nanos(1))
        )
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    tokio::time::advance(SECS(10)).await;
    let err = b.ready().await.unwrap().call(Call::Ok).await.unwrap_err();
    assert_eq!(
        refused_by(&err),
        (Layer::CircuitBreaker, Some(Duration::from_nanos(1)))
    );
    assert_eq!(
        PipelineError::<()>::from(
            *err.downcast_ref::<stanchion_std::tower::CircuitOpen>()
                .unwrap()
        )
        .layer(),
        Layer::CircuitBreaker
    );

    // Strictly after the open duration: one probe (the permit is taken in `call`). Tokio's
    // timers tick in whole milliseconds, so step one to keep the sleeps below exact.
    tokio::time::advance(MS(1)).await;
    let probe = a.ready().await.unwrap().call(Call::Slow(SECS(1)));
    assert_eq!(breaker.state(), State::HalfOpen);
    let err = b.ready().await.unwrap().call(Call::Ok).await.unwrap_err();
    assert_eq!(refused_by(&err), (Layer::CircuitBreaker, None)); // half-open, slot taken

    // A dropped probe records nothing and gives its slot back.
    drop(probe);
    assert_eq!(breaker.state(), State::HalfOpen);
    let started = TokioInstant::now();
    assert_eq!(
        b.ready()
            .await
            .unwrap()
            .call(Call::Slow(SECS(1)))
            .await
            .unwrap(),
        "slow"
    );
    assert_eq!(started.elapsed(), SECS(1));
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(a.ready().await.unwrap().call(Call::Ok).await.unwrap(), "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

/// A breaker over a count window whose size is read at start (`CountWindowUpTo`): the
/// size, not the capacity, decides.
#[tokio::test(start_paused = true)]
async fn breaker_over_a_window_sized_at_run_time() {
    use stanchion::breaker::window::CountWindowUpTo;

    let size: u32 = "3".parse().unwrap(); // as read from a configuration file
    let config = BreakerConfig::new()
        .failure_rate_threshold(60)
        .minimum_calls(3)
        .open_duration(SECS(10));
    let breaker: CircuitBreaker<CountWindowUpTo<128>, StdRawMutex> =
        CircuitBreaker::new(config, CountWindowUpTo::new(size).unwrap()).unwrap();
    let breaker = Arc::new(breaker);
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(Arc::clone(&breaker)))
        .service(scripted(Arc::clone(&calls)));
    for call in [Call::Fail, Call::Ok, Call::Ok, Call::Ok, Call::Fail] {
        let _ = svc.clone().oneshot(call).await;
    }
    // The last 3 calls: 1 failure of 3 (of all 5 calls, 2 of 5).
    assert_eq!(breaker.state(), State::Closed);
    let _ = svc.clone().oneshot(Call::Fail).await;
    // 2 of the last 3 (67 %) reach 60 %; 3 of all 6 (50 %) would not have.
    let metrics = breaker.metrics_at(stanchion::Instant::ZERO);
    assert_eq!(
        (
            metrics.state,
            metrics.calls,
            metrics.failures,
            metrics.failure_rate
        ),
        (State::Open, 3, 2, Some(6_666))
    );
    let err = svc.oneshot(Call::Ok).await.unwrap_err();
    assert_eq!(
        refused_by(&err),
        (
            Layer::CircuitBreaker,
            Some(SECS(10) + Duration::from_nanos(1))
        )
    );
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert!(CountWindowUpTo::<128>::new(129).is_err());
}

#[tokio::test(start_paused = true)]
async fn rate_limit_denies_past_the_quota_with_the_exact_wait() {
    let calls = Arc::new(AtomicU32::new(0));
    let limiter = WithClock::new(
        TokenBucket::new(Quota::per_second(2).unwrap()),
        TokioClock::new(),
    );
    let mut a = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Arc::new(limiter)))
        .service(scripted(Arc::clone(&calls)));
    let mut b = a.clone();
    assert_eq!(a.ready().await.unwrap().call(Call::Ok).await.unwrap(), "ok");
    assert_eq!(b.ready().await.unwrap().call(Call::Ok).await.unwrap(), "ok");
    let err = a.ready().await.unwrap().call(Call::Ok).await.unwrap_err();
    assert_eq!(refused_by(&err), (Layer::RateLimit, Some(MS(500))));
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(limited.policy.quota, Some(2));
    assert_eq!(limited.policy.name, "default");
    assert!(matches!(
        PipelineError::<()>::from(*limited),
        PipelineError::RateLimited(_)
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 2); // the refused request never got in
    tokio::time::advance(MS(499)).await;
    let err = b.ready().await.unwrap().call(Call::Ok).await.unwrap_err();
    assert_eq!(refused_by(&err), (Layer::RateLimit, Some(MS(1))));
    tokio::time::advance(MS(1)).await;
    assert_eq!(b.ready().await.unwrap().call(Call::Ok).await.unwrap(), "ok");
}

#[tokio::test(start_paused = true)]
async fn a_request_above_the_burst_is_refused_for_good() {
    let limiter = WithClock::new(
        TokenBucket::new(Quota::per_second(2).unwrap()),
        TokioClock::new(),
    );
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Arc::new(limiter)).permits(3))
        .service(scripted(Arc::new(AtomicU32::new(0))));
    let err = svc.oneshot(Call::Ok).await.unwrap_err();
    assert_eq!(refused_by(&err), (Layer::RateLimit, None));
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert!(matches!(
        limited.error,
        RateLimitError::InsufficientCapacity(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn keyed_rate_limit_keeps_one_quota_per_key() {
    let table = KeyedTokenBucket::<64>::new(
        Quota::per_second(1).unwrap(),
        FullTablePolicy::DenyNewKeys,
        (3, 4),
    );
    let limiter = WithClock::new(
        SharedLimiter::<StdRawMutex, _>::new(table),
        TokioClock::new(),
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let inner = service_fn(move |(user, n): (&'static str, u32)| {
        log.lock().unwrap().push((user, n));
        async move { Ok::<_, Infallible>(n) }
    });
    let mut svc = ServiceBuilder::new()
        .layer(KeyedRateLimitLayer::new(
            Arc::new(limiter),
            |req: &(&'static str, u32)| req.0,
        ))
        .service(inner);
    assert_eq!(
        svc.ready().await.unwrap().call(("alice", 1)).await.unwrap(),
        1
    );
    assert_eq!(
        svc.ready().await.unwrap().call(("bob", 2)).await.unwrap(),
        2
    );
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(("alice", 3))
        .await
        .unwrap_err();
    assert_eq!(refused_by(&err), (Layer::RateLimit, Some(SECS(1))));
    assert_eq!(
        err.downcast_ref::<RateLimited>().unwrap().policy.quota,
        Some(1)
    );
    tokio::time::advance(MS(400)).await;
    let err = svc.clone().oneshot(("bob", 4)).await.unwrap_err();
    assert_eq!(refused_by(&err), (Layer::RateLimit, Some(MS(600))));
    assert_eq!(
        svc.ready().await.unwrap().call(("carol", 5)).await.unwrap(),
        5
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [("alice", 1), ("bob", 2), ("carol", 5)]
    );
}

/// A limiter that answers only after a round trip, as a remote one does: the layer must
/// await it in the response future.
struct SlowLimiter {
    round_trip: Duration,
    left: AtomicU32,
}

impl AsyncRateLimiter for SlowLimiter {
    async fn admit(&self, n: u32) -> Result<Admission, RateLimitError> {
        tokio::time::sleep(self.round_trip).await;
        let left = self.left.load(Ordering::SeqCst);
        if left >= n {
            self.left.store(left - n, Ordering::SeqCst);
            Ok(Admission {
                remaining: left - n,
            })
        } else {
            Err(RateLimitError::Denied(stanchion::rate::Denied::new(SECS(
                7,
            ))))
        }
    }

    fn max_acquire(&self) -> u32 {
        1
    }
}

#[tokio::test(start_paused = true)]
async fn a_remote_limiter_is_awaited_before_the_call() {
    let calls = Arc::new(AtomicU32::new(0));
    let limiter = SlowLimiter {
        round_trip: MS(20),
        left: AtomicU32::new(1),
    };
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Arc::new(limiter)))
        .service(scripted(Arc::clone(&calls)));
    let started = TokioInstant::now();
    let pending = svc.clone().oneshot(Call::Slow(MS(5)));
    assert_eq!(calls.load(Ordering::SeqCst), 0); // not before the admission
    assert_eq!(pending.await.unwrap(), "slow");
    assert_eq!(started.elapsed(), MS(25));
    let err = svc.oneshot(Call::Ok).await.unwrap_err();
    assert_eq!(refused_by(&err), (Layer::RateLimit, Some(SECS(7))));
    assert_eq!(started.elapsed(), MS(45));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_rejects_when_full_and_a_dropped_request_frees_its_slot() {
    let calls = Arc::new(AtomicU32::new(0));
    let bulkhead = Arc::new(Bulkhead::new(1).unwrap());
    let mut a = ServiceBuilder::new()
        .layer(BulkheadLayer::new(Arc::clone(&bulkhead)))
        .service(scripted(Arc::clone(&calls)));
    let mut b = a.clone();
    let held = a.ready().await.unwrap().call(Call::Slow(SECS(1)));
    assert_eq!(bulkhead.in_use(), 1);
    let err = b.ready().await.unwrap().call(Call::Ok).await.unwrap_err();
    assert_eq!(refused_by(&err), (Layer::Bulkhead, None));
    drop(held);
    assert_eq!(bulkhead.in_use(), 0);
    let started = TokioInstant::now();
    assert_eq!(
        b.ready()
            .await
            .unwrap()
            .call(Call::Slow(SECS(1)))
            .await
            .unwrap(),
        "slow"
    );
    assert_eq!(started.elapsed(), SECS(1));
    assert_eq!(bulkhead.in_use(), 0); // released when the response came
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn timeout_fails_late_answers_on_paused_time() {
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(SECS(2)))
        .service(scripted(Arc::new(AtomicU32::new(0))));
    let started = TokioInstant::now();
    assert_eq!(
        svc.clone().oneshot(Call::Slow(MS(1_999))).await.unwrap(),
        "slow"
    );
    assert_eq!(started.elapsed(), MS(1_999));
    let err = svc.clone().oneshot(Call::Slow(SECS(60))).await.unwrap_err();
    assert_eq!(started.elapsed(), MS(3_999));
    assert_eq!(refused_by(&err), (Layer::AttemptTimeout, None));
    assert_eq!(
        *err.downcast_ref::<Elapsed>().unwrap(),
        Elapsed {
            after: SECS(2),
            layer: Layer::AttemptTimeout
        }
    );
    let overall = ServiceBuilder::new()
        .layer(TimeoutLayer::overall(SECS(1)))
        .service(scripted(Arc::new(AtomicU32::new(0))));
    let err = overall.oneshot(Call::Slow(SECS(5))).await.unwrap_err();
    let elapsed = *err.downcast_ref::<Elapsed>().unwrap();
    assert!(matches!(
        PipelineError::<()>::from(elapsed),
        PipelineError::Timeout
    ));
}

#[test]
fn a_timeout_over_an_answer_at_once_takes_no_timer() {
    // Outside a tokio runtime a timer would panic: a call that answers at once must
    // not make one.
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(SECS(2)))
        .service(service_fn(
            |x: u32| async move { Ok::<u32, BoxError>(x + 1) },
        ));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let answer = std::pin::pin!(svc.call(1));
    match answer.poll(&mut cx) {
        std::task::Poll::Ready(Ok(answer)) => assert_eq!(answer, 2),
        other => panic!("{other:?}"),
    }
}

/// A service that fails its first `failures` calls, logging each call's time and request.
fn flaky(
    failures: u32,
    log: Arc<Mutex<Vec<(Duration, u32)>>>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    let start = TokioInstant::now();
    let calls = Arc::new(AtomicU32::new(0));
    service_fn(move |request: u32| {
        log.lock().unwrap().push((start.elapsed(), request));
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err::<u32, BoxError>("unavailable".into())
            } else {
                Ok(request * 10)
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn retry_resends_a_clone_of_the_request_after_the_exact_delays() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let backoff = Exponential::new(MS(100), Ratio::TWO, SECS(1)).unwrap();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(move |_clock| {
            RetryPolicy::new(backoff, 5, fastrand::Rng::with_seed(1)).unwrap()
        }))
        .service(flaky(3, Arc::clone(&log)));
    assert_eq!(svc.oneshot(7).await.unwrap(), 70);
    assert_eq!(
        *log.lock().unwrap(),
        [(MS(0), 7), (MS(100), 7), (MS(300), 7), (MS(700), 7)]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_after_max_attempts_with_the_last_error() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(|_clock| {
            RetryPolicy::new(Constant::new(SECS(1)), 3, fastrand::Rng::with_seed(1)).unwrap()
        }))
        .service(flaky(u32::MAX, Arc::clone(&log)));
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.to_string(), "unavailable");
    let times: Vec<_> = log.lock().unwrap().iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [SECS(0), SECS(1), SECS(2)]);
}

#[tokio::test(start_paused = true)]
async fn retry_budget_limits_retries_across_requests() {
    let log = Arc::new(Mutex::new(Vec::new()));
    // Four tokens; a retry is allowed while more than two are left: one retry in all.
    let budget = SharedBudget::new(TokenBudget::new(4, Ratio::percent(10)).unwrap());
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(move |_clock| {
            RetryPolicy::new(Constant::new(SECS(1)), 5, fastrand::Rng::with_seed(1))
                .unwrap()
                .with_budget(budget.clone())
        }))
        .service(flaky(u32::MAX, Arc::clone(&log)));
    assert!(svc.clone().oneshot(1).await.is_err());
    assert!(svc.oneshot(2).await.is_err());
    assert_eq!(
        *log.lock().unwrap(),
        [(SECS(0), 1), (SECS(1), 1), (SECS(1), 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_stops_when_the_breaker_below_opens() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let config = BreakerConfig::new()
        .minimum_calls(1)
        .open_duration(SECS(30));
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(config, ConsecutiveWindow::new(2).unwrap()).unwrap();
    let breaker = Arc::new(breaker);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(|_clock| {
            RetryPolicy::new(Constant::new(SECS(1)), 10, fastrand::Rng::with_seed(1))
                .unwrap()
                .with_classifier(RefusalsArePermanent)
        }))
        .layer(CircuitBreakerLayer::new(Arc::clone(&breaker)))
        .layer(TimeoutLayer::new(SECS(5)))
        .service(flaky(u32::MAX, Arc::clone(&log)));
    let err = svc.oneshot(1).await.unwrap_err();
    // Two attempts open the breaker; the third is refused by it, and retry stops there.
    assert_eq!(
        refused_by(&err),
        (
            Layer::CircuitBreaker,
            Some(SECS(29) + Duration::from_nanos(1))
        )
    );
    assert_eq!(*log.lock().unwrap(), [(SECS(0), 1), (SECS(1), 1)]);
}

#[tokio::test(start_paused = true)]
async fn retry_retries_attempt_timeouts() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(|_clock| {
            RetryPolicy::new(Constant::new(MS(500)), 3, fastrand::Rng::with_seed(1))
                .unwrap()
                .with_classifier(RefusalsArePermanent)
        }))
        .layer(TimeoutLayer::new(SECS(1)))
        .service(scripted(Arc::clone(&calls)));
    let started = TokioInstant::now();
    let err = svc.oneshot(Call::Slow(SECS(10))).await.unwrap_err();
    assert_eq!(refused_by(&err), (Layer::AttemptTimeout, None));
    // Three attempts of 1 s each, 500 ms apart.
    assert_eq!(started.elapsed(), MS(4_000));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn queued_bulkhead_waits_in_line_then_refuses_past_its_bounds() {
    use stanchion_std::BulkheadQueue;
    use stanchion_std::tower::QueuedBulkheadLayer;

    let calls = Arc::new(AtomicU32::new(0));
    // One slot, one place in line, at most 2 s of waiting.
    let queue = Arc::new(BulkheadQueue::new(1, 1, TokioClock::new()).unwrap());
    let svc = ServiceBuilder::new()
        .layer(QueuedBulkheadLayer::new(Arc::clone(&queue), Some(SECS(2))))
        .service(scripted(Arc::clone(&calls)));
    let start = TokioInstant::now();
    let timed = |svc: &_, call| {
        let svc: tower::util::BoxCloneService<_, _, _> = tower::util::BoxCloneService::clone(svc);
        tokio::spawn(async move {
            let result = svc.oneshot(call).await;
            (result.map_err(|e| refused_by(&e)), start.elapsed())
        })
    };
    let svc = tower::util::BoxCloneService::new(svc);

    let first = timed(&svc, Call::Slow(SECS(1))); // takes the slot
    tokio::task::yield_now().await;
    let second = timed(&svc, Call::Slow(SECS(1))); // waits in line
    tokio::task::yield_now().await;
    assert_eq!(queue.waiting(), 1);
    let third = timed(&svc, Call::Ok); // the line is full
    assert_eq!(
        third.await.unwrap(),
        (Err((Layer::Bulkhead, None)), SECS(0))
    );
    assert_eq!(first.await.unwrap(), (Ok("slow"), SECS(1)));
    // The second got the slot when the first released it, and ran 1 s.
    assert_eq!(second.await.unwrap(), (Ok("slow"), SECS(2)));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A wait longer than 2 s gives up at 2 s, having taken nothing.
    let long = timed(&svc, Call::Slow(SECS(5)));
    tokio::task::yield_now().await;
    let late = timed(&svc, Call::Ok);
    assert_eq!(late.await.unwrap(), (Err((Layer::Bulkhead, None)), SECS(4)));
    assert_eq!(long.await.unwrap(), (Ok("slow"), SECS(7)));
    assert_eq!((queue.waiting(), queue.bulkhead().in_use()), (0, 0));

    // A waiting request that is dropped leaves the line.
    let holder = timed(&svc, Call::Slow(SECS(1)));
    tokio::task::yield_now().await;
    let mut waiting = tower::util::BoxCloneService::clone(&svc);
    let dropped = waiting.ready().await.unwrap().call(Call::Ok);
    let mut dropped = Box::pin(dropped);
    assert!(futures_poll_once(dropped.as_mut()).is_pending());
    assert_eq!(queue.waiting(), 1);
    drop(dropped);
    assert_eq!(queue.waiting(), 0);
    assert_eq!(holder.await.unwrap(), (Ok("slow"), SECS(8)));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

/// Polls a future once, with a waker that does nothing.
fn futures_poll_once<F: std::future::Future>(
    f: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// The wait before the first retry of each of `n` requests, sent one after another
/// through `layer` to a service that fails every first attempt. The closure seeds every
/// policy alike: the jitter differs only if the layer gives each request a stream.
async fn first_retry_waits<P>(layer: RetryLayer<P>, n: u32) -> Vec<Duration>
where
    RetryLayer<P>: tower::Layer<
            tower::util::BoxCloneService<u32, u32, BoxError>,
            Service: Service<u32, Response = u32, Error = BoxError> + Clone,
        >,
{
    first_retry_waits_through(layer, n, false).await
}

/// [`first_retry_waits`], each request sent through a fresh clone of the service if
/// `clone_each` (as axum does).
async fn first_retry_waits_through<P>(
    layer: RetryLayer<P>,
    n: u32,
    clone_each: bool,
) -> Vec<Duration>
where
    RetryLayer<P>: tower::Layer<
            tower::util::BoxCloneService<u32, u32, BoxError>,
            Service: Service<u32, Response = u32, Error = BoxError> + Clone,
        >,
{
    let log = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let log = Arc::clone(&log);
        service_fn(move |request: u32| {
            log.lock().unwrap().push((request, TokioInstant::now()));
            let first = log
                .lock()
                .unwrap()
                .iter()
                .filter(|(r, _)| *r == request)
                .count()
                == 1;
            async move {
                if first {
                    Err::<u32, BoxError>("unavailable".into())
                } else {
                    Ok(request)
                }
            }
        })
    };
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(tower::util::BoxCloneService::new(inner));
    for request in 0..n {
        let mut clone = svc.clone();
        let through = if clone_each { &mut clone } else { &mut svc };
        let ready = through.ready().await.unwrap();
        assert_eq!(ready.call(request).await.unwrap(), request);
    }
    let log = log.lock().unwrap();
    (0..n)
        .map(|request| {
            let times: Vec<_> = log
                .iter()
                .filter(|(r, _)| *r == request)
                .map(|(_, t)| *t)
                .collect();
            assert_eq!(times.len(), 2);
            times[1] - times[0]
        })
        .collect()
}

/// Full jitter over 10^7 s: tokio's timer counts whole milliseconds, so waits drawn from
/// different streams coincide with a chance of about 5 in 10^7 among 100 requests.
const LONG: Duration = Duration::from_secs(10_000_000);

fn same_seed_for_every_request(_: &TokioClock) -> RetryPolicy<Constant> {
    let backoff = Constant::new(LONG).with_jitter(stanchion::retry::Jitter::FULL);
    RetryPolicy::new(backoff, 2, fastrand::Rng::with_seed(7)).unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_gives_each_request_its_own_jitter() {
    let waits = first_retry_waits(RetryLayer::new(same_seed_for_every_request), 100).await;
    let mut distinct = waits.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 100, "pairwise different waits: {waits:?}");
    assert!(waits.iter().all(|w| *w <= LONG));

    // A fixed layer seed gives the same waits in every run, still one stream per request.
    let seeded = first_retry_waits(RetryLayer::new(same_seed_for_every_request).seed(3), 100).await;
    let again = first_retry_waits(RetryLayer::new(same_seed_for_every_request).seed(3), 100).await;
    assert_eq!(seeded, again);
    let mut distinct = seeded.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 100);
    let other = first_retry_waits(RetryLayer::new(same_seed_for_every_request).seed(4), 100).await;
    assert_ne!(seeded, other);

    // Each request through a clone of its own (each clone numbers its requests from a
    // block of its own): still one stream per request, the same in every run.
    let cloned = first_retry_waits_through(
        RetryLayer::new(same_seed_for_every_request).seed(3),
        100,
        true,
    )
    .await;
    let mut distinct = cloned.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 100, "pairwise different waits: {cloned:?}");
    let again = first_retry_waits_through(
        RetryLayer::new(same_seed_for_every_request).seed(3),
        100,
        true,
    )
    .await;
    assert_eq!(cloned, again);

    // Keeping the closure's generator: one seed, every request waits alike.
    let alike = first_retry_waits(
        RetryLayer::new(same_seed_for_every_request).rng_from_policy(),
        100,
    )
    .await;
    assert!(alike.iter().all(|w| *w == alike[0]), "{alike:?}");
}

/// A retry layer with the default classifier (every error transient) over a breaker that
/// opens after two failures, over a service that always fails.
async fn retries_through_an_opening_breaker(
    retry_refusals: bool,
) -> (BoxError, Vec<(Duration, u32)>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let config = BreakerConfig::new()
        .minimum_calls(1)
        .open_duration(SECS(30));
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
        CircuitBreaker::new(config, ConsecutiveWindow::new(2).unwrap()).unwrap();
    let retry = RetryLayer::new(|_clock| {
        RetryPolicy::new(Constant::new(SECS(1)), 4, fastrand::Rng::with_seed(1)).unwrap()
    });
    let retry = if retry_refusals {
        retry.retry_refusals()
    } else {
        retry
    };
    let svc = ServiceBuilder::new()
        .layer(retry)
        .layer(CircuitBreakerLayer::new(Arc::new(breaker)))
        .service(flaky(u32::MAX, Arc::clone(&log)));
    let err = svc.oneshot(1).await.unwrap_err();
    let log = log.lock().unwrap().clone();
    (err, log)
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_not_retried_by_default() {
    let (err, log) = retries_through_an_opening_breaker(false).await;
    // Two attempts open the breaker; the third is refused, and the retries stop there.
    assert_eq!(log, [(SECS(0), 1), (SECS(1), 1)]);
    assert_eq!(
        refused_by(&err),
        (
            Layer::CircuitBreaker,
            Some(SECS(29) + Duration::from_nanos(1))
        )
    );
    // Opting back in: the classifier retries the refusal, to the fourth attempt at 3 s.
    let (err, log) = retries_through_an_opening_breaker(true).await;
    assert_eq!(log, [(SECS(0), 1), (SECS(1), 1)]);
    assert_eq!(
        refused_by(&err),
        (
            Layer::CircuitBreaker,
            Some(SECS(28) + Duration::from_nanos(1))
        )
    );
}

#[tokio::test(start_paused = true)]
async fn refusals_of_any_error_type_are_not_retried() {
    // The inner service's error is a refusal type itself, not a `BoxError`.
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(|_clock| {
            RetryPolicy::new(Constant::new(SECS(1)), 3, fastrand::Rng::with_seed(1)).unwrap()
        }))
        .service(service_fn(move |_: u32| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                Err::<u32, _>(stanchion_std::tower::BulkheadRejected {
                    full: Bulkhead::new(1).unwrap().full(),
                })
            }
        }));
    assert!(svc.oneshot(1).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Counts a bulkhead's refusals.
#[derive(Debug, Default)]
struct CountRefusals(AtomicU32);

impl stanchion::bulkhead::BulkheadListener for CountRefusals {
    fn on_rejected(&self, _: stanchion::bulkhead::BulkheadFull) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn queued_bulkhead_reports_a_refusal_only_for_a_refused_request() {
    use stanchion_std::BulkheadQueue;
    use stanchion_std::tower::QueuedBulkheadLayer;

    let calls = Arc::new(AtomicU32::new(0));
    // One slot, one place in line, at most 2 s of waiting.
    let queue = BulkheadQueue::with_listener(1, 1, CountRefusals::default(), TokioClock::new());
    let queue = Arc::new(queue.unwrap());
    let refusals = || queue.bulkhead().listener().inner().0.load(Ordering::SeqCst);
    let svc = ServiceBuilder::new()
        .layer(QueuedBulkheadLayer::new(Arc::clone(&queue), Some(SECS(2))))
        .service(scripted(Arc::clone(&calls)));
    let svc = tower::util::BoxCloneService::new(svc);
    let spawn = |call| tokio::spawn(tower::util::BoxCloneService::clone(&svc).oneshot(call));

    let first = spawn(Call::Slow(SECS(1))); // takes the slot
    tokio::task::yield_now().await;
    let second = spawn(Call::Slow(SECS(1))); // waits in line, then gets in
    tokio::task::yield_now().await;
    assert_eq!(queue.waiting(), 1);
    assert_eq!(first.await.unwrap().unwrap(), "slow");
    assert_eq!(second.await.unwrap().unwrap(), "slow");
    assert_eq!(refusals(), 0);

    // Refused: the line is full (one event), a wait runs out (one more).
    let holder = spawn(Call::Slow(SECS(5)));
    tokio::task::yield_now().await;
    let waiter = spawn(Call::Ok);
    tokio::task::yield_now().await;
    assert!(spawn(Call::Ok).await.unwrap().is_err());
    assert_eq!(refusals(), 1);
    assert!(waiter.await.unwrap().is_err());
    assert_eq!(refusals(), 2);
    assert_eq!(holder.await.unwrap().unwrap(), "slow");
    // A try on the bulkhead outside the queue is reported as core's bulkhead does.
    let _slot = queue.bulkhead().try_acquire().unwrap();
    assert!(queue.bulkhead().try_acquire().is_err());
    assert_eq!(refusals(), 3);
}

/// Calls that reach a failing dependency through a retry layer (4 attempts) and a
/// breaker of `config` over a window of 4 calls: (while closed, in the half-open period
/// after the breaker first opened, the state after that).
async fn calls_before_and_while_half_open(config: BreakerConfig) -> (usize, usize, State) {
    use stanchion::breaker::window::CountWindow;

    let log = Arc::new(Mutex::new(Vec::new()));
    let breaker: CircuitBreaker<CountWindow<4>, StdRawMutex> =
        CircuitBreaker::new(config.open_duration(SECS(10)), CountWindow::new().unwrap()).unwrap();
    let breaker = Arc::new(breaker);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(|_clock| {
            RetryPolicy::new(Constant::new(MS(100)), 4, fastrand::Rng::with_seed(1)).unwrap()
        }))
        .layer(CircuitBreakerLayer::new(Arc::clone(&breaker)))
        .service(flaky(u32::MAX, Arc::clone(&log)));
    // Four failures open the breaker.
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(breaker.state(), State::Open);
    let closed = log.lock().unwrap().len();
    tokio::time::advance(SECS(11)).await;
    assert!(svc.oneshot(2).await.is_err());
    let half_open = log.lock().unwrap().len() - closed;
    (closed, half_open, breaker.state())
}

#[tokio::test(start_paused = true)]
async fn with_retries_in_front_each_attempt_can_be_a_half_open_probe() {
    // resilience4j's defaults: 10 probes; the one request's four attempts are all probes
    // (and the verdict still waits for more).
    assert_eq!(
        calls_before_and_while_half_open(BreakerConfig::new()).await,
        (4, 4, State::HalfOpen)
    );
    // The service preset: one probe, then the breaker is open again and the retry stops.
    use stanchion_std::tower::breaker::SERVICE_PRESET;
    assert_eq!(
        calls_before_and_while_half_open(SERVICE_PRESET).await,
        (4, 1, State::Open)
    );
}
