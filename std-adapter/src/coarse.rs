//! [`CoarseClock`]: a clock read with one atomic load, refreshed by a tokio task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stanchion::{Clock, ConfigError, Instant};
use tokio::time::MissedTickBehavior;

use crate::TokioClock;

/// A clock for servers' hot paths: one shared instant that a tokio task refreshes every
/// `period` (1 ms by default) from [`TokioClock::new`]'s process-wide clock, read with one
/// atomic load. A rate limit, a breaker or a deadline checked on every request then costs
/// no clock read of its own.
///
/// # Resolution and staleness
///
/// A reading is the refresher's last: at most one period old while the runtime keeps up
/// (more if its threads are all busy past the tick), never ahead of [`TokioClock`], and
/// never going back. What that means for each pattern, with a 1 ms period:
///
/// - **Rate limits** see time up to one period late, so a grant can come up to one period
///   later than on an exact clock, never earlier: over any span of true time, a limiter
///   admits at most what its quota allows over that span plus one period (a stale reading
///   only ever makes it think less time has passed).
/// - **Breakers** open, half-open and measure calls on the same readings: an open state
///   may last up to one period longer, and a call's duration is off by up to one period
///   either way (a slow-call threshold of 1 ms or less is then meaningless).
/// - **Deadlines and timeouts** taken from it may expire up to one period late. Timers
///   themselves (`tokio::time::sleep`) are not affected: only the decisions that read it.
///
/// Instants compare with [`TokioClock::new`]'s: the same epoch.
///
/// # Tests
///
/// It follows tokio's paused clock, since it is refreshed from it; but the refresher
/// wakes once per period of virtual time, so a paused test that sleeps an hour steps
/// through 3.6 million ticks (a few seconds of wall time). Give such tests a longer period
/// ([`with_period`](CoarseClock::with_period)), or [`TokioClock`], which reads paused time
/// exactly; a test asserting exact instants needs `TokioClock` anyway.
///
/// ```
/// use std::time::Duration;
/// use stanchion::Clock;
/// use stanchion_std::{CoarseClock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let coarse = CoarseClock::start();
/// tokio::time::sleep(Duration::from_millis(10)).await;
/// let exact = TokioClock::new().now();
/// let read = coarse.now();
/// assert!(read <= exact);
/// assert!(exact.saturating_duration_since(read) <= coarse.period());
/// # }
/// ```
///
/// # Cost
///
/// One relaxed atomic load per reading. A copy is a pointer, free to take: the tower
/// layers hand one to every request's response future, where a reference count would
/// cost two atomic read-modify-writes per request per layer, on the cache line that every
/// reading loads (11 to 17 ns a request in the retry layer's bench, before copies were
/// free).
///
/// One task per clock started (copies share it), woken once per period, which runs until
/// its runtime shuts down; the instant it refreshes (24 bytes) is never freed. So start
/// one clock per server (or per test's runtime) and copy it, rather than starting one per
/// use.
#[derive(Clone, Copy, Debug)]
pub struct CoarseClock {
    shared: &'static Shared,
}

#[derive(Debug)]
struct Shared {
    nanos: AtomicU64,
    period: Duration,
}

impl CoarseClock {
    /// The default period: 1 ms.
    pub const DEFAULT_PERIOD: Duration = Duration::from_millis(1);

    /// A clock refreshed every [`DEFAULT_PERIOD`](CoarseClock::DEFAULT_PERIOD), by a task
    /// spawned on the current tokio runtime, which runs until that runtime shuts down.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn start() -> CoarseClock {
        match CoarseClock::with_period(CoarseClock::DEFAULT_PERIOD) {
            Ok(clock) => clock,
            // The default period is in range.
            Err(_) => unreachable!("the default period is valid"),
        }
    }

    /// A clock refreshed every `period` (1 µs..=1 s), by a task spawned on the current
    /// tokio runtime, which runs until that runtime shuts down.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn with_period(period: Duration) -> Result<CoarseClock, ConfigError> {
        if period < Duration::from_micros(1) || period > Duration::from_secs(1) {
            return Err(ConfigError::new("period", "in 1 µs..=1 s"));
        }
        let source = TokioClock::new();
        // Leaked, so that a copy is a plain pointer (see "Cost"): one per clock started.
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            nanos: AtomicU64::new(source.now().as_nanos()),
            period,
        }));
        tokio::spawn(refresh(shared, source, period));
        Ok(CoarseClock { shared })
    }

    /// How often it is refreshed: the most a reading lags while the runtime keeps up.
    pub fn period(&self) -> Duration {
        self.shared.period
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(self.shared.nanos.load(Ordering::Relaxed))
    }
}

/// Stores `source`'s time every `period`, until the runtime shuts down (which drops the
/// task). `fetch_max`: a reading never goes back, even if two refreshes race.
async fn refresh(shared: &'static Shared, source: TokioClock, period: Duration) {
    let mut tick = tokio::time::interval(period);
    // A late tick is not made up for with a burst: the next reading is simply fresher.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared
            .nanos
            .fetch_max(source.now().as_nanos(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stanchion::rate::{Quota, TokenBucket};

    #[tokio::test(start_paused = true)]
    async fn readings_lag_by_at_most_a_period_and_never_lead() {
        let coarse = CoarseClock::with_period(Duration::from_millis(2)).unwrap();
        let exact = TokioClock::new();
        let mut previous = coarse.now();
        for step in [1, 3, 7, 250, 1_000] {
            tokio::time::sleep(Duration::from_micros(step)).await;
            let (read, truth) = (coarse.now(), exact.now());
            assert!(read <= truth, "ahead: {read:?} > {truth:?}");
            assert!(truth.saturating_duration_since(read) <= Duration::from_millis(2));
            assert!(read >= previous, "went back");
            previous = read;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_limiter_on_it_admits_at_most_its_quota_plus_one_period() {
        // One permit every 10 ms, burst 2, asked once a millisecond (tokio's timer step)
        // for a second of paused time, on a clock refreshed every 5 ms and on the exact
        // clock: the coarse one never grants before the exact one, is at most one grant
        // behind at any time (its readings lag by at most 5 ms, half a permit's period),
        // and catches up by the end.
        let coarse = CoarseClock::with_period(Duration::from_millis(5)).unwrap();
        let exact = TokioClock::new();
        let quota = Quota::new(2, Duration::from_millis(10)).unwrap();
        let (on_coarse, on_exact) = (TokenBucket::new(quota), TokenBucket::new(quota));
        let (mut coarse_grants, mut exact_grants, mut most_behind) = (0u32, 0u32, 0u32);
        for _ in 0..1_000 {
            coarse_grants += u32::from(on_coarse.acquire_at(1, coarse.now()).is_ok());
            exact_grants += u32::from(on_exact.acquire_at(1, exact.now()).is_ok());
            assert!(coarse_grants <= exact_grants, "a grant came early");
            most_behind = most_behind.max(exact_grants - coarse_grants);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Two at once, then one every 10 ms of the 999 ms that pass: 2 + 99.
        assert_eq!(exact_grants, 101);
        assert_eq!(coarse_grants, 101);
        assert_eq!(
            most_behind, 1,
            "the readings lagged, and cost a grant at most"
        );
    }

    #[test]
    fn copies_share_one_instant_and_the_task_runs_until_its_runtime_shuts_down() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let (clock, copy) = runtime.block_on(async {
            let clock = CoarseClock::with_period(Duration::from_millis(1)).unwrap();
            // A copy, not a counted reference: `clock` stays usable after it.
            let copy = clock;
            let before = copy.now();
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(copy.now() > before, "the copy saw no refresh");
            assert_eq!(clock.now(), copy.now());
            // No copy owns the task: it keeps refreshing while the runtime lives.
            assert_eq!(
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks(),
                1
            );
            (clock, copy)
        });
        let last = clock.now();
        drop(runtime);
        // The task went with its runtime; readings still work, and stay where they were.
        assert_eq!((clock.now(), copy.now()), (last, last));
    }

    #[test]
    fn a_period_out_of_range_is_refused() {
        assert_eq!(
            CoarseClock::with_period(Duration::ZERO).unwrap_err(),
            ConfigError::new("period", "in 1 µs..=1 s")
        );
        assert!(CoarseClock::with_period(Duration::from_secs(2)).is_err());
    }
}
