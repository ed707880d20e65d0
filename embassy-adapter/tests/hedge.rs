//! `hedge::call` and `hedge::call_if` on embassy-time's mock driver. The driver is
//! global: one test runs the steps in order.

mod common;

use core::cell::Cell;
use core::pin::pin;
use core::time::Duration;

use common::*;
use embassy_time::Timer;
use stanchion::hedge::{Hedge, HedgeConfig};
use stanchion::retry::{NoBudget, Ratio, RatioBudget};
use stanchion_embassy::hedge::{self, InFlight};

/// Counts its drop unless the attempt answered: a cancellation.
struct OnCancel<'a>(&'a Cell<u32>, bool);

impl Drop for OnCancel<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.set(self.0.get() + 1);
        }
    }
}

/// An attempt answering `answer` after `ms` milliseconds, counting its cancellation.
async fn attempt(
    ms: u64,
    answer: Result<u32, &'static str>,
    cancelled: &Cell<u32>,
) -> Result<u32, &'static str> {
    let mut guard = OnCancel(cancelled, false);
    Timer::after_millis(ms).await;
    guard.1 = true;
    answer
}

#[test]
fn hedging_on_the_mock_driver() {
    reset();
    let cancelled = Cell::new(0);
    let config = HedgeConfig::fixed(Duration::from_millis(10), 3).unwrap();
    let fixed: Hedge<_, 0> = Hedge::new(config, NoBudget).unwrap();

    // Attempts at 0, 10 and 20 ms; the second answers first, at 15 ms, and the first is
    // dropped then. The third never starts.
    let plan = [(1_000, Ok(0)), (5, Ok(1)), (1_000, Ok(2))];
    let n = Cell::new(0);
    let start = now();
    let mut call = pin!(hedge::call(&fixed, InFlight::<3>, || {
        let (ms, answer) = plan[n.get()];
        n.set(n.get() + 1);
        attempt(ms, answer, &cancelled)
    }));
    pending(call.as_mut());
    assert_eq!(
        wake_at(call.as_mut(), start + 10 * MS),
        core::task::Poll::Pending
    );
    assert_eq!(
        wake_at(call.as_mut(), start + 15 * MS),
        core::task::Poll::Ready(Ok(1))
    );
    assert_eq!(cancelled.get(), 1);
    assert_eq!(n.get(), 2);

    // An error while the hedge is in flight waits for it; all failed answers the last.
    let two: Hedge<_, 0> = Hedge::new(
        HedgeConfig::fixed(Duration::from_millis(10), 2).unwrap(),
        NoBudget,
    )
    .unwrap();
    for (plan, answer, at) in [
        ([(20, Err("first")), (25, Ok(1))], Ok(1), 35),
        ([(20, Err("first")), (15, Err("second"))], Err("second"), 25),
        ([(5, Err("first")), (1, Ok(1))], Err("first"), 5), // before the delay: no hedge
        ([(9, Ok(0)), (1, Ok(1))], Ok(0), 9),
    ] {
        let mut n = 0;
        let start = now();
        let mut call = pin!(hedge::call(&two, InFlight::<2>, || {
            let (ms, answer) = plan[n];
            n += 1;
            attempt(ms, answer, &cancelled)
        }));
        pending(call.as_mut());
        if at > 10 {
            // Polled when its timer wakes it: the hedge starts at 10 ms.
            assert_eq!(
                wake_at(call.as_mut(), start + 10 * MS),
                core::task::Poll::Pending
            );
        }
        assert_eq!(
            wake_at(call.as_mut(), start + at * MS),
            core::task::Poll::Ready(answer)
        );
    }
    assert_eq!(cancelled.get(), 1);

    // A classifier: `Ok(0)` is not acceptable, so the hedge's `Ok(2)` wins at 22 ms.
    let mut n = 0;
    let start = now();
    let mut call = pin!(hedge::call_if(
        &two,
        InFlight::<2>,
        || {
            n += 1;
            attempt(12, Ok(n), &cancelled)
        },
        |r| r == &Ok(2),
    ));
    pending(call.as_mut());
    assert_eq!(
        wake_at(call.as_mut(), start + 10 * MS),
        core::task::Poll::Pending
    );
    assert_eq!(
        wake_at(call.as_mut(), start + 22 * MS),
        core::task::Poll::Ready(Ok(2))
    );

    // The array bounds the attempts below the configuration's 3: N = 2 starts one hedge.
    let n = Cell::new(0);
    let start = now();
    let mut call = pin!(hedge::call(&fixed, InFlight::<2>, || {
        n.set(n.get() + 1);
        attempt(100, Ok(n.get()), &cancelled)
    }));
    pending(call.as_mut());
    assert_eq!(
        wake_at(call.as_mut(), start + 10 * MS),
        core::task::Poll::Pending
    );
    assert_eq!(
        wake_at(call.as_mut(), start + 100 * MS),
        core::task::Poll::Ready(Ok(1))
    );
    assert_eq!(n.get(), 2);

    // The budget: 10% of calls, no floor. Every call is slow, so each asks for a hedge;
    // 50 calls get 5.
    let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 0).unwrap();
    let budgeted: Hedge<_, 0> = Hedge::new(config, budget).unwrap();
    let mut attempts = 0;
    for _ in 0..50 {
        let start = now();
        let mut call = pin!(hedge::call(&budgeted, InFlight::<3>, || {
            attempts += 1;
            attempt(100, Ok(0), &cancelled)
        }));
        pending(call.as_mut());
        assert_eq!(
            wake_at(call.as_mut(), start + 10 * MS),
            core::task::Poll::Pending
        );
        assert_eq!(
            wake_at(call.as_mut(), start + 20 * MS),
            core::task::Poll::Pending
        );
        assert_eq!(
            wake_at(call.as_mut(), start + 100 * MS),
            core::task::Poll::Ready(Ok(0))
        );
    }
    assert_eq!(attempts, 55);
}
