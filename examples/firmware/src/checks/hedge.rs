//! Hedging through `stanchion_embassy::hedge::call`: a stalled first attempt is hedged
//! after the delay and the hedge's answer wins, the stalled attempt dropped at once; a
//! delay learned from the first attempts' latencies (the p90 of 40 calls, nine in ten
//! fast) hedges only the slow ones; the budget (10% of calls, floor 1) bounds the hedges
//! when every call is slow.

use core::cell::Cell;
use core::time::Duration;

use embassy_time::Timer;
use stanchion::Clock;
use stanchion::hedge::{Hedge, HedgeConfig};
use stanchion::retry::{NoBudget, Ratio, RatioBudget};
use stanchion_embassy::{EmbassyClock, hedge};

use super::{LATE, ms_between};
use crate::report::Outcome;
use crate::{ensure, ensure_eq};

/// Counts its drop unless its attempt answered: a cancellation.
struct OnCancel<'a>(&'a Cell<u32>, bool);

impl Drop for OnCancel<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.set(self.0.get() + 1);
        }
    }
}

/// An attempt that answers `Ok(n)` after `ms` milliseconds.
async fn attempt(ms: u64, n: u32, cancelled: &Cell<u32>) -> Result<u32, ()> {
    let mut guard = OnCancel(cancelled, false);
    Timer::after_millis(ms).await;
    guard.1 = true;
    Ok(n)
}

/// One hedged call with up to 2 attempts whose first takes `first_ms` and each hedge
/// 5 ms: its answer, its time in ms, and the attempts it started.
async fn call<Bu: stanchion::retry::RetryBudget, const B: usize>(
    h: &Hedge<Bu, B>,
    first_ms: u64,
    cancelled: &Cell<u32>,
) -> (Result<u32, ()>, u64, u32) {
    let started = Cell::new(0);
    let start = EmbassyClock.now();
    let answer = hedge::call(h, hedge::InFlight::<2>, || {
        let n = started.get();
        started.set(n + 1);
        attempt(if n == 0 { first_ms } else { 5 }, n, cancelled)
    })
    .await;
    (answer, ms_between(start, EmbassyClock.now()), started.get())
}

pub async fn run() -> Outcome {
    let cancelled = Cell::new(0);
    let late = LATE.as_millis() as u64;

    // A fixed 10 ms delay: the first attempt stalls for a second, the hedge answers 5 ms
    // after it starts; the stalled attempt is dropped when the hedge answers.
    let fixed = HedgeConfig::fixed(Duration::from_millis(10), 2);
    let Ok(fixed) = fixed.and_then(|c| Hedge::<_, 0>::new(c, NoBudget)) else {
        return Err(crate::report::Failure {
            what: "fixed configuration refused",
            values: None,
        });
    };
    let (answer, ms, attempts) = call(&fixed, 1_000, &cancelled).await;
    ensure!(answer == Ok(1), "the hedge's answer did not win");
    ensure!((15..=15 + late).contains(&ms), "not answered at 15 ms");
    ensure_eq!(u64::from(attempts), 2, "attempts started");
    ensure_eq!(
        u64::from(cancelled.get()),
        1,
        "the stalled attempt was not dropped"
    );
    // A fast first answer: no hedge.
    let (answer, ms, attempts) = call(&fixed, 3, &cancelled).await;
    ensure!(
        answer == Ok(0) && (3..=3 + late).contains(&ms),
        "the fast answer"
    );
    ensure_eq!(u64::from(attempts), 1, "a fast call was hedged");

    // A learned p90 (after 20 samples) with a 10% budget, floor 1, over 10 s.
    let learned = HedgeConfig::learned(900, 2).and_then(|c| c.with_min_samples(20));
    let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 1);
    let (Ok(learned), Ok(budget)) = (learned, budget) else {
        return Err(crate::report::Failure {
            what: "learned configuration refused",
            values: None,
        });
    };
    // 120 buckets: latencies up to 61 ms told apart.
    let Ok(h) = Hedge::<_, 120>::new(learned, budget) else {
        return Err(crate::report::Failure {
            what: "histogram refused",
            values: None,
        });
    };
    // 40 calls, one in ten slow (50 ms): until 20 are in, none is hedged; then the slow
    // ones are hedged at the p90, the fast first attempts' 4 ms rounded up to its
    // bucket's top, and answered by the hedge well before 50 ms.
    let mut hedged = 0;
    for i in 0..40u32 {
        let slow = i % 10 == 9;
        let (answer, ms, attempts) = call(&h, if slow { 50 } else { 4 }, &cancelled).await;
        ensure!(answer.is_ok(), "a call failed");
        if i >= 20 && slow {
            ensure!(
                attempts == 2 && ms < 20,
                "a slow call not hedged at the learned p90"
            );
        } else {
            ensure!(attempts == 1, "a call hedged before its time or when fast");
        }
        hedged += attempts - 1;
    }
    ensure_eq!(u64::from(hedged), 2, "hedged calls");
    // The fast answers' 4 ms (5 if the emulator was late) at its bucket's top.
    let delay = h.delay().unwrap_or(Duration::ZERO);
    ensure!(
        delay == Duration::from_micros(4_096) || delay == Duration::from_micros(5_120),
        "not the learned p90"
    );

    // Everything slow, and a fixed delay, so that each call asks for a hedge: the budget
    // (10% of the calls of its window, floor 1) allows the 1st, 10th, 20th, 30th and 40th.
    let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 1);
    let fixed = HedgeConfig::fixed(Duration::from_millis(10), 2);
    let (Ok(budget), Ok(fixed)) = (budget, fixed) else {
        return Err(crate::report::Failure {
            what: "budget refused",
            values: None,
        });
    };
    let Ok(h) = Hedge::<_, 0>::new(fixed, budget) else {
        return Err(crate::report::Failure {
            what: "budgeted hedge refused",
            values: None,
        });
    };
    let mut hedged = 0;
    for _ in 0..40 {
        let (_, _, attempts) = call(&h, 30, &cancelled).await;
        hedged += attempts - 1;
    }
    ensure_eq!(u64::from(hedged), 5, "hedges within the budget");
    Ok(())
}
