//! Hedging over tokio, on the paused clock: the latency it saves on a downstream with a
//! long tail, the load it adds, the budget when everything is slow, what wins, and the
//! cancellation of the losers.

use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stanchion::hedge::{Hedge, HedgeConfig};
use stanchion::retry::{NoBudget, Ratio, RatioBudget, RetryBudget};
use stanchion_std::TokioClock;
use stanchion_std::hedge::Hedging;
use tokio::time::Instant;

/// A downstream whose latency is drawn from a seeded generator: 94% of attempts answer
/// in 5 to 15 ms, 6% in 200 to 300 ms (a pause, a cold cache), uniformly. Counts the
/// attempts that reach it.
#[derive(Clone)]
struct Downstream {
    rng: Arc<Mutex<fastrand::Rng>>,
    attempts: Arc<AtomicU32>,
    /// Share of slow attempts, in percent.
    slow_percent: Arc<AtomicU32>,
}

impl Downstream {
    fn new(seed: u64, slow_percent: u32) -> Self {
        Downstream {
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
            attempts: Arc::new(AtomicU32::new(0)),
            slow_percent: Arc::new(AtomicU32::new(slow_percent)),
        }
    }

    /// One attempt: sleeps its drawn latency, then answers `Ok`.
    fn attempt(&self) -> impl Future<Output = Result<(), ()>> + use<> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let latency = {
            let mut rng = self.rng.lock().unwrap();
            if rng.u32(0..100) < self.slow_percent.load(Ordering::Relaxed) {
                rng.u64(200_000..=300_000)
            } else {
                rng.u64(5_000..=15_000)
            }
        };
        async move {
            tokio::time::sleep(Duration::from_micros(latency)).await;
            Ok(())
        }
    }

    fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }
}

/// The latency below which `per_mille` thousandths of `latencies` fall (nearest rank).
fn percentile(latencies: &mut [Duration], per_mille: usize) -> Duration {
    latencies.sort_unstable();
    let rank = (latencies.len() * per_mille).div_ceil(1000);
    latencies[rank - 1]
}

const CALLS: u32 = 10_000;

/// `CALLS` calls one after another (each waits for the previous), with hedging or not:
/// each call's latency as the caller sees it.
async fn run(downstream: &Downstream, hedging: Option<&Hedging<RatioBudget<10>>>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for _ in 0..CALLS {
        let start = Instant::now();
        let answer = match hedging {
            Some(h) => h.call(|| downstream.attempt()).await,
            None => downstream.attempt().await,
        };
        assert_eq!(answer, Ok(()));
        latencies.push(start.elapsed());
    }
    latencies
}

/// A 10% hedging budget over 10 s (about 1,000 calls here), with a floor of 1.
fn budget() -> RatioBudget<10> {
    RatioBudget::new(Duration::from_secs(10), Ratio::percent(10), 1).unwrap()
}

#[tokio::test(start_paused = true)]
async fn hedging_at_the_learned_p90_cuts_p99_more_than_3x_for_under_10_percent_more_calls() {
    // Without hedging: the median is 11 ms, p99 is 25 times that. (tokio's timer
    // rounds each sleep up to a whole millisecond.)
    let plain = Downstream::new(42, 6);
    let mut unhedged = run(&plain, None).await;
    let (p50, p90, p99) = (
        percentile(&mut unhedged, 500),
        percentile(&mut unhedged, 900),
        percentile(&mut unhedged, 990),
    );
    assert_eq!(p50, Duration::from_millis(11));
    assert_eq!(p90, Duration::from_millis(15));
    assert_eq!(p99, Duration::from_millis(282));
    assert!(p99 >= p50 * 20);
    assert_eq!(plain.attempts(), CALLS);

    // The same downstream (same seed), hedged at the learned p90, at most 2 attempts.
    let hedged_downstream = Downstream::new(42, 6);
    let config = HedgeConfig::learned(900, 2).unwrap();
    let hedging: Hedging<_> = Hedging::with_clock(
        Hedge::new(config, budget()).unwrap(),
        TokioClock::starting_now(),
    );
    let mut hedged = run(&hedged_downstream, Some(&hedging)).await;
    // The learned delay: p90 of the first attempts, at a bucket's top (above every fast
    // answer, so that only slow first attempts are hedged).
    assert_eq!(hedging.hedge().delay(), Some(Duration::from_micros(15_360)));
    let hedged_p50 = percentile(&mut hedged, 500);
    let hedged_p99 = percentile(&mut hedged, 990);
    assert_eq!(hedged_p50, Duration::from_millis(11));
    assert_eq!(hedged_p99, Duration::from_millis(30));
    assert!(hedged_p99 * 3 <= p99, "p99 cut at least 3x");
    // Extra calls: the hedges, 5.7% of the calls (the slow first attempts, after the
    // first 100 calls that teach the delay), within 10%.
    let extra = hedged_downstream.attempts() - CALLS;
    assert_eq!(extra, 574);
    assert!(extra * 10 <= CALLS, "at most 10% more calls");
}

/// 2,000 healthy calls, then the downstream is slow for everyone (every attempt 200 to
/// 300 ms) for 70 s, hedged at the learned p90 with up to 4 attempts per call and
/// `budget`: the calls and the hedges of the last 60 s, and the delay at the end.
async fn slow_for_everyone<Bu: RetryBudget>(budget: Bu) -> (u32, u32, Option<Duration>) {
    let downstream = Downstream::new(7, 6);
    let config = HedgeConfig::learned(900, 4).unwrap();
    let hedging: Hedging<_> = Hedging::with_clock(
        Hedge::new(config, budget).unwrap(),
        TokioClock::starting_now(),
    );
    // Healthy: the delay settles near 15 ms.
    for _ in 0..2_000 {
        hedging.call(|| downstream.attempt()).await.unwrap();
    }
    assert_eq!(hedging.hedge().delay(), Some(Duration::from_micros(15_360)));
    // Then every call's first attempt outlasts the learned delay (and each hedge is slow
    // too): until the histogram catches up, every call asks for hedges.
    downstream.slow_percent.store(100, Ordering::Relaxed);
    // The first 10 s still spend the budget the healthy calls of its window earned.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        hedging.call(|| downstream.attempt()).await.unwrap();
    }
    // The next minute is measured.
    let before = downstream.attempts();
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < Duration::from_secs(60) {
        hedging.call(|| downstream.attempt()).await.unwrap();
        calls += 1;
    }
    let hedges = downstream.attempts() - before - calls;
    (calls, hedges, hedging.hedge().delay())
}

#[tokio::test(start_paused = true)]
async fn the_budget_holds_when_the_downstream_is_slow_for_everyone() {
    // Without a budget, only the attempts per call (4) and the histogram catching up
    // bound the hedges: more hedges than calls, more than doubling the load on a slow
    // dependency.
    assert_eq!(
        slow_for_everyone(NoBudget).await,
        (241, 310, Some(Duration::from_micros(262_144)))
    );
    // With the 10% budget: at most 10% of the calls of its window, plus its floor of 1
    // per window (6 windows of 10 s), however many the slow first attempts asked for.
    let (calls, hedges, delay) = slow_for_everyone(budget()).await;
    assert_eq!((calls, hedges), (240, 27));
    assert!(hedges <= calls / 10 + 6);
    // By now the histogram knows: the delay is the slow p90.
    assert_eq!(delay, Some(Duration::from_micros(262_144)));
}

/// An attempt that answers `answer` after `after`, and counts its drop if it had not
/// answered by then (a cancellation).
fn attempt(
    after: Duration,
    answer: Result<u32, &'static str>,
    cancelled: &Arc<AtomicU32>,
) -> impl Future<Output = Result<u32, &'static str>> + use<> {
    struct OnCancel(Arc<AtomicU32>, bool);
    impl Drop for OnCancel {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    impl OnCancel {
        fn answered(&mut self) {
            self.1 = true;
        }
    }
    let mut guard = OnCancel(Arc::clone(cancelled), false);
    async move {
        tokio::time::sleep(after).await;
        guard.answered();
        answer
    }
}

fn fixed(max_attempts: u32) -> Hedging<NoBudget> {
    let config = HedgeConfig::fixed(Duration::from_millis(10), max_attempts).unwrap();
    Hedging::new(Hedge::<_>::new(config, NoBudget).unwrap())
}

/// Runs a hedged call whose `n`th attempt (from 0) answers `plan[n]` after its delay;
/// returns the answer, when it came and how many attempts started.
async fn hedged(
    hedging: &Hedging<NoBudget>,
    plan: &[(u64, Result<u32, &'static str>)],
    cancelled: &Arc<AtomicU32>,
) -> (Result<u32, &'static str>, Duration, usize) {
    let start = Instant::now();
    let mut n = 0;
    let answer = hedging
        .call(|| {
            let (ms, answer) = plan[n];
            n += 1;
            attempt(Duration::from_millis(ms), answer, cancelled)
        })
        .await;
    (answer, start.elapsed(), n)
}

#[tokio::test(start_paused = true)]
async fn the_first_acceptable_answer_wins_and_the_losers_are_dropped_at_once() {
    let hedging = fixed(3);
    let cancelled = Arc::new(AtomicU32::new(0));
    // Attempts start at 0, 10 and 20 ms; the second answers first (at 10 + 5 ms).
    let start = Instant::now();
    let mut n = 0;
    let plan = [(1_000, Ok(0)), (5, Ok(1)), (1_000, Ok(2))];
    let mut call = pin!(hedging.call(|| {
        let (ms, answer) = plan[n];
        n += 1;
        attempt(Duration::from_millis(ms), answer, &cancelled)
    }));
    assert_eq!(call.as_mut().await, Ok(1));
    assert_eq!(start.elapsed(), Duration::from_millis(15));
    // Dropped when the answer came, while the call's future still exists.
    assert_eq!(
        cancelled.load(Ordering::Relaxed),
        1,
        "the first attempt, still running"
    );
    assert_eq!(n, 2, "the third attempt was never started");
}

#[tokio::test(start_paused = true)]
async fn an_error_waits_for_the_attempts_in_flight_and_all_failed_answers_the_last() {
    let hedging = fixed(2);
    let cancelled = Arc::new(AtomicU32::new(0));
    // The first fails at 20 ms while the hedge (started at 10) is in flight: wait for it.
    let plan = [(20, Err("first")), (25, Ok(1))];
    assert_eq!(
        hedged(&hedging, &plan, &cancelled).await,
        (Ok(1), Duration::from_millis(35), 2)
    );
    // Both fail: the last error is the answer, when it comes.
    let plan = [(20, Err("first")), (15, Err("second"))];
    assert_eq!(
        hedged(&hedging, &plan, &cancelled).await,
        (Err("second"), Duration::from_millis(25), 2)
    );
    let plan = [(30, Err("first")), (5, Err("second"))];
    assert_eq!(
        hedged(&hedging, &plan, &cancelled).await,
        (Err("first"), Duration::from_millis(30), 2)
    );
    // The first fails before a hedge is due: answered at once, no hedge (a failure is
    // the retry layer's business).
    let plan = [(5, Err("first")), (1, Ok(1))];
    assert_eq!(
        hedged(&hedging, &plan, &cancelled).await,
        (Err("first"), Duration::from_millis(5), 1)
    );
    // A fast first answer: no hedge at all.
    let plan = [(9, Ok(0)), (1, Ok(1))];
    assert_eq!(
        hedged(&hedging, &plan, &cancelled).await,
        (Ok(0), Duration::from_millis(9), 1)
    );
    assert_eq!(cancelled.load(Ordering::Relaxed), 0);
    // A custom classifier: `Ok(0)` is not acceptable, the hedge's `Ok(1)` is.
    let start = Instant::now();
    let mut n = 0;
    let answer = hedging
        .call_if(
            || {
                n += 1;
                attempt(Duration::from_millis(12), Ok(n), &cancelled)
            },
            |r| r == &Ok(2),
        )
        .await;
    assert_eq!(
        (answer, start.elapsed()),
        (Ok(2), Duration::from_millis(22))
    );
}
