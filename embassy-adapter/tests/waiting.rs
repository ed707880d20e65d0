//! `RateLimitQueue` and `BulkheadQueue` on embassy-time's mock driver: first come, first
//! served, bounded, with deadlines and cancellation, at exact ticks. The driver is global:
//! one test runs the steps in order.

mod common;

use core::num::NonZeroU32;
use core::pin::pin;
use core::time::Duration;

use common::*;
use stanchion::rate::{
    Denied, FixedWindow, InsufficientCapacity, Quota, RateLimitError, SharedLimiter, TokenBucket,
    WindowQuota,
};
use stanchion::sync::{CriticalSectionRawMutex, NoopRawMutex};
use stanchion::{Deadline, Instant};
use stanchion_embassy::{BulkheadQueue, RateLimitQueue};

type Queue<const N: usize> = RateLimitQueue<NoopRawMutex, TokenBucket, N>;

/// One permit every `ms`, burst `burst`.
fn bucket(ms: u64, burst: u32) -> TokenBucket {
    TokenBucket::new(
        Quota::per_period(Duration::from_millis(ms))
            .unwrap()
            .with_burst(burst)
            .unwrap(),
    )
}

fn denied(ms: u64) -> RateLimitError {
    RateLimitError::Denied(Denied::new(Duration::from_millis(ms)))
}

fn ms(t: u64) -> Deadline {
    Deadline::at(Instant::from_millis(t))
}

#[test]
fn waiting_in_line_on_the_mock_driver() {
    reset();
    rate_waiters_are_served_in_arrival_order();
    reset();
    a_large_request_is_not_overtaken_by_small_ones();
    reset();
    rate_refusals_at_once();
    reset();
    a_dropped_rate_waiter_passes_its_turn_on();
    reset();
    a_window_limiter_shared_by_a_critical_section();
    reset();
    bulkhead_waiters_are_served_in_arrival_order();
    reset();
    bulkhead_deadlines_and_cancellation();
    reset();
    a_place_left_in_the_middle_is_free_at_once();
}

fn rate_waiters_are_served_in_arrival_order() {
    let q: Queue<4> = RateLimitQueue::new(bucket(100, 1));
    assert_eq!(ready(pin!(q.acquire(1, Deadline::NEVER)).as_mut()), Ok(()));
    let mut b = pin!(q.acquire(1, Deadline::NEVER));
    let mut c = pin!(q.acquire(1, Deadline::NEVER));
    pending(b.as_mut());
    pending(c.as_mut());
    assert_eq!(q.waiting(), 1);
    // At 100 ms one permit is free: c is polled first but b came first.
    advance_to(100 * MS - 1);
    pending(c.as_mut());
    pending(b.as_mut());
    advance_to(100 * MS);
    pending(c.as_mut());
    assert_eq!(ready(b.as_mut()), Ok(()));
    assert_eq!(ready_at(c.as_mut(), 200 * MS), Ok(()));
    assert_eq!(q.waiting(), 0);
    // Nothing is queued now: the next caller goes to the front at once.
    assert_eq!(
        ready_at(pin!(q.acquire(1, Deadline::NEVER)).as_mut(), 300 * MS),
        Ok(())
    );
}

fn a_large_request_is_not_overtaken_by_small_ones() {
    let q: Queue<4> = RateLimitQueue::new(bucket(10, 3));
    assert_eq!(ready(pin!(q.acquire(3, Deadline::NEVER)).as_mut()), Ok(()));
    let mut big = pin!(q.acquire(3, Deadline::NEVER));
    let mut small = pin!(q.acquire(1, Deadline::NEVER));
    pending(big.as_mut());
    pending(small.as_mut());
    // At 10 ms one permit would do for `small`, but `big` is first in line.
    advance_to(10 * MS);
    pending(small.as_mut());
    pending(big.as_mut());
    assert_eq!(ready_at(big.as_mut(), 30 * MS), Ok(()));
    pending(small.as_mut());
    assert_eq!(ready_at(small.as_mut(), 40 * MS), Ok(()));
}

fn rate_refusals_at_once() {
    let q: Queue<2> = RateLimitQueue::new(bucket(100, 1));
    // More than the burst: never.
    assert_eq!(
        ready(pin!(q.acquire(2, Deadline::NEVER)).as_mut()),
        Err(InsufficientCapacity::new(1).into())
    );
    assert_eq!(ready(pin!(q.acquire(0, ms(0))).as_mut()), Ok(()));
    assert_eq!(ready(pin!(q.acquire(1, Deadline::NEVER)).as_mut()), Ok(()));
    // The wait (100 ms) would pass the deadline (50 ms): refused at once, nothing taken.
    assert_eq!(ready(pin!(q.acquire(1, ms(50))).as_mut()), Err(denied(100)));
    // Ending exactly at the deadline is too late as well (expired at its instant).
    assert_eq!(
        ready(pin!(q.acquire(1, ms(100))).as_mut()),
        Err(denied(100))
    );
    // With no room to wait (N = 0), a request that cannot go now is refused at once.
    let no_wait: Queue<0> = RateLimitQueue::new(bucket(100, 1));
    assert_eq!(
        ready(pin!(no_wait.acquire(1, Deadline::NEVER)).as_mut()),
        Ok(())
    );
    assert_eq!(
        ready(pin!(no_wait.acquire(1, Deadline::NEVER)).as_mut()),
        Err(denied(100))
    );
    // One waits at the front, one behind it (N = 2); the next is refused.
    let mut front = pin!(q.acquire(1, Deadline::NEVER));
    let mut queued = pin!(q.acquire(1, ms(150)));
    pending(front.as_mut());
    pending(queued.as_mut());
    advance_to(20 * MS);
    assert_eq!(
        ready(pin!(q.acquire(1, Deadline::NEVER)).as_mut()),
        Err(denied(80))
    );
    assert_eq!(ready_at(front.as_mut(), 100 * MS), Ok(()));
    // The queued one is at the front now; its wait (to 200 ms) passes its deadline.
    assert_eq!(ready(queued.as_mut()), Err(denied(100)));
    assert_eq!(q.limiter().remaining_at(Instant::from_millis(200)), 1);
}

fn a_dropped_rate_waiter_passes_its_turn_on() {
    let q: Queue<4> = RateLimitQueue::new(bucket(100, 1));
    assert_eq!(ready(pin!(q.acquire(1, Deadline::NEVER)).as_mut()), Ok(()));
    {
        let mut front = Box::pin(q.acquire(1, Deadline::NEVER));
        let mut second = Box::pin(q.acquire(1, Deadline::NEVER));
        let mut third = pin!(q.acquire(1, Deadline::NEVER));
        pending(front.as_mut());
        pending(second.as_mut());
        pending(third.as_mut());
        assert_eq!(q.waiting(), 2);
        // The front leaves while sleeping, the second while queued.
        drop(front);
        drop(second);
        // Only the third is left in line (it takes the turn when next polled).
        assert_eq!(q.waiting(), 1);
        assert_eq!(ready_at(third.as_mut(), 100 * MS), Ok(()));
    }
    // Refused at once when the limiter alone says the wait passes the deadline.
    assert_eq!(
        ready(pin!(q.acquire(1, ms(150))).as_mut()),
        Err(denied(100))
    );

    // A deadline that passes while queued (behind a larger request) refuses then, with
    // the limiter's own answer: here a permit is free, but the front task is owed it.
    let q: Queue<4> = RateLimitQueue::new(bucket(100, 2));
    let start = now();
    assert_eq!(ready(pin!(q.acquire(2, Deadline::NEVER)).as_mut()), Ok(()));
    let mut front = pin!(q.acquire(2, Deadline::NEVER));
    let mut queued = pin!(q.acquire(
        1,
        Deadline::at(Instant::from_nanos((start + 150 * MS) * 1_000))
    ));
    pending(front.as_mut());
    pending(queued.as_mut());
    assert_eq!(
        ready_at(queued.as_mut(), start + 150 * MS),
        Err(RateLimitError::Denied(Denied::from_nanos(1)))
    );
    assert_eq!(ready_at(front.as_mut(), start + 200 * MS), Ok(()));
}

fn a_window_limiter_shared_by_a_critical_section() {
    static WINDOW: SharedLimiter<CriticalSectionRawMutex, FixedWindow> = SharedLimiter::new(
        FixedWindow::new(match WindowQuota::new(2, Duration::from_millis(50)) {
            Ok(q) => q,
            Err(_) => panic!("bad quota"),
        }),
    );
    let q: RateLimitQueue<CriticalSectionRawMutex, &SharedLimiter<_, FixedWindow>, 2> =
        RateLimitQueue::new(&WINDOW);
    let mut granted = Vec::new();
    for _ in 0..5 {
        run(q.acquire(1, Deadline::NEVER), 200 * MS).unwrap();
        granted.push(now());
    }
    assert_eq!(granted, [0, 0, 50 * MS, 50 * MS, 100 * MS]);
}

fn bulkhead_waiters_are_served_in_arrival_order() {
    let pool: BulkheadQueue<NoopRawMutex, 3> = BulkheadQueue::new(NonZeroU32::MIN);
    let a = ready(pin!(pool.acquire(Deadline::NEVER)).as_mut()).unwrap();
    let mut b = pin!(pool.acquire(Deadline::NEVER));
    let mut c = pin!(pool.acquire(Deadline::NEVER));
    let mut d = pin!(pool.acquire(Deadline::NEVER));
    pending(b.as_mut());
    pending(c.as_mut());
    pending(d.as_mut());
    // b waits at the front, c and d behind it: three waiting (N = 3), so the next is
    // refused at once, with the usage.
    assert_eq!(pool.waiting(), 2);
    let full = ready(pin!(pool.acquire(Deadline::NEVER)).as_mut()).unwrap_err();
    assert_eq!((full.in_use(), full.max_concurrent()), (1, 1));
    drop(a);
    pending(d.as_mut());
    pending(c.as_mut());
    let b = ready(b.as_mut()).unwrap();
    pending(d.as_mut());
    pending(c.as_mut());
    drop(b);
    pending(d.as_mut());
    let c = ready(c.as_mut()).unwrap();
    assert_eq!(pool.bulkhead().in_use(), 1);
    drop(c);
    let d = ready(d.as_mut()).unwrap();
    drop(d);
    assert_eq!(pool.bulkhead().in_use(), 0);
    assert_eq!(pool.waiting(), 0);
}

fn bulkhead_deadlines_and_cancellation() {
    let pool: BulkheadQueue<NoopRawMutex, 4> = BulkheadQueue::new(NonZeroU32::MIN);
    let a = ready(pin!(pool.acquire(Deadline::NEVER)).as_mut()).unwrap();
    // The wait runs out at the deadline, not a tick before.
    let mut late = pin!(pool.acquire(ms(5)));
    pending(late.as_mut());
    let full = ready_at(late.as_mut(), 5 * MS).unwrap_err();
    assert_eq!((full.in_use(), full.max_concurrent()), (1, 1));
    // A waiter dropped after the slot freed for it (woken, not yet polled) passes it on.
    let mut b = Box::pin(pool.acquire(Deadline::NEVER));
    let mut c = pin!(pool.acquire(Deadline::NEVER));
    pending(b.as_mut());
    pending(c.as_mut());
    drop(a);
    drop(b);
    let c = ready(c.as_mut()).unwrap();
    // Raising the maximum lets the front waiter in without a release.
    let mut d = pin!(pool.acquire(Deadline::NEVER));
    pending(d.as_mut());
    pool.bulkhead().set_max_concurrent(2).unwrap();
    let d = ready(d.as_mut()).unwrap();
    assert_eq!(pool.bulkhead().in_use(), 2);
    drop((c, d));
    assert_eq!(pool.bulkhead().in_use(), 0);
}

fn a_place_left_in_the_middle_is_free_at_once() {
    let pool: BulkheadQueue<NoopRawMutex, 3> = BulkheadQueue::new(NonZeroU32::MIN);
    let a = ready(pin!(pool.acquire(Deadline::NEVER)).as_mut()).unwrap();
    let mut b = pin!(pool.acquire(Deadline::NEVER));
    let mut c = Box::pin(pool.acquire(Deadline::NEVER));
    let mut d = pin!(pool.acquire(Deadline::NEVER));
    pending(b.as_mut());
    pending(c.as_mut());
    pending(d.as_mut());
    assert!(ready(pin!(pool.acquire(Deadline::NEVER)).as_mut()).is_err());
    // c leaves from the middle of the line: its place is free for the next arrival, who
    // waits behind d.
    drop(c);
    assert_eq!(pool.waiting(), 1);
    let mut e = pin!(pool.acquire(Deadline::NEVER));
    pending(e.as_mut());
    assert_eq!(pool.waiting(), 2);
    drop(a);
    let b = ready(b.as_mut()).unwrap();
    drop(b);
    pending(e.as_mut());
    let d = ready(d.as_mut()).unwrap();
    drop(d);
    drop(ready(e.as_mut()).unwrap());
    assert_eq!(pool.waiting(), 0);
}
