//! Hedging on a downstream with a long tail: the tour's section 10.
//!
//! The downstream answers 94% of attempts in 5 to 15 ms and 6% in 200 to 300 ms (a pause,
//! a cold cache), drawn from a seeded generator: its p99 is 25 times its median. 10,000
//! calls one after another on tokio's paused clock, three ways: plainly; hedged at the
//! p90 learned from the first attempts' latencies, at most 2 attempts, within a 10%
//! hedging budget; and hedged after a fixed 2 ms (too early: nearly every call hedged),
//! within the same budget, which caps it.
//!
//! Hedging is for idempotent calls only (a read here): see [`stanchion::hedge`].

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stanchion::hedge::{Hedge, HedgeConfig};
use stanchion::retry::{Ratio, RatioBudget};
use stanchion_std::TokioClock;
use stanchion_std::hedge::Hedging;

/// Calls per client.
pub const CALLS: u32 = 10_000;

/// What one client saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The client.
    pub name: &'static str,
    /// The median latency the caller saw.
    pub p50: Duration,
    /// The 99th percentile the caller saw.
    pub p99: Duration,
    /// Attempts beyond one per call: the extra load on the downstream.
    pub extra_calls: u32,
}

/// The downstream: a seeded latency per attempt, counting attempts.
#[derive(Clone)]
struct Downstream {
    rng: Arc<Mutex<fastrand::Rng>>,
    attempts: Arc<AtomicU32>,
}

impl Downstream {
    fn new() -> Self {
        Downstream {
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(42))),
            attempts: Arc::new(AtomicU32::new(0)),
        }
    }

    fn attempt(&self) -> impl Future<Output = Result<(), ()>> + use<> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let micros = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            if rng.u32(0..100) < 6 {
                rng.u64(200_000..=300_000)
            } else {
                rng.u64(5_000..=15_000)
            }
        };
        async move {
            tokio::time::sleep(Duration::from_micros(micros)).await;
            Ok(())
        }
    }
}

/// The latency below which `per_mille` thousandths of `sorted` fall (nearest rank).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let rank = (sorted.len() * per_mille).div_ceil(1000).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// 10% of the calls of the last 10 s, plus 1.
fn budget() -> RatioBudget<10> {
    RatioBudget::new(Duration::from_secs(10), Ratio::percent(10), 1).expect("a valid budget")
}

/// `CALLS` calls, each hedged by `hedging` or not.
async fn client(name: &'static str, hedging: Option<Hedging<RatioBudget<10>>>) -> Run {
    let downstream = Downstream::new();
    let mut latencies = Vec::with_capacity(CALLS as usize);
    for _ in 0..CALLS {
        let start = tokio::time::Instant::now();
        let answer = match &hedging {
            Some(h) => h.call(|| downstream.attempt()).await,
            None => downstream.attempt().await,
        };
        debug_assert!(answer.is_ok());
        latencies.push(start.elapsed());
    }
    latencies.sort_unstable();
    Run {
        name,
        p50: percentile(&latencies, 500),
        p99: percentile(&latencies, 990),
        extra_calls: downstream.attempts.load(Ordering::Relaxed) - CALLS,
    }
}

/// The three clients, in the order above.
pub fn run_all() -> [Run; 3] {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let hedging = |config| {
            Hedging::with_clock(
                Hedge::new(config, budget()).expect("a valid hedge"),
                TokioClock::starting_now(),
            )
        };
        let learned = HedgeConfig::learned(900, 2).expect("a valid configuration");
        let early = HedgeConfig::fixed(Duration::from_millis(2), 2).expect("a valid configuration");
        [
            client("no hedging", None).await,
            client(
                "hedged at the learned p90, 10% budget",
                Some(hedging(learned)),
            )
            .await,
            client("hedged after 2 ms, 10% budget", Some(hedging(early))).await,
        ]
    })
}
