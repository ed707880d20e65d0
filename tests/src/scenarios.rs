//! The scenarios, as data: arrival schedules, failure schedules and configurations, shared
//! by the three drivers (core on a `ManualClock`, the std adapter on tokio's paused clock,
//! the embassy adapter on its mock driver).
//!
//! Every instant and every wait a runner sleeps for is a whole millisecond: tokio's timer
//! rounds a sleep up to the next millisecond, embassy's to the next tick (1 µs on the mock
//! driver), so with whole milliseconds the three traces can be equal to the nanosecond.
//! The configurations are chosen so that the limiters' waits are whole milliseconds too
//! (the sliding window counter's waits are `window * k / previous`, hence a window of
//! 600 ms and a limit of 5). A `retry_after` that is only reported, never slept, may be any
//! number of nanoseconds.

use core::time::Duration;

use stanchion::breaker::window::CountWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
use stanchion::rate::{
    FixedWindow, LeakyBucket, Quota, RateLimitError, RateLimiter, SharedLimiter,
    SlidingWindowCounter, SlidingWindowLog, Spacing, TokenBucket, WindowQuota,
};
use stanchion::retry::{Constant, Exponential, Ratio, RetryPolicy};
use stanchion::sync::RawMutex;
use stanchion::{ConfigError, Deadline, Instant};

use crate::Recorder;

/// Milliseconds as a `Duration`.
pub const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

// ---------------------------------------------------------------------------------------
// Bursty traffic through each limiter
// ---------------------------------------------------------------------------------------

/// A request for `n` permits arriving at `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Milliseconds since the scenario's start.
    pub at_ms: u64,
    /// Permits asked for.
    pub n: u32,
}

impl Arrival {
    /// The arrival instant.
    pub const fn at(&self) -> Instant {
        Instant::from_millis(self.at_ms)
    }
}

const fn a(at_ms: u64, n: u32) -> Arrival {
    Arrival { at_ms, n }
}

/// Bursty traffic: a burst at start, a second smaller one, a request that can never fit
/// (6 > 5), a quiet spell, then two more bursts. Sorted by arrival.
pub const BURSTS: &[Arrival] = &[
    a(0, 1),
    a(0, 1),
    a(0, 2),
    a(0, 1),
    a(0, 1),
    a(0, 1),
    a(120, 1),
    a(250, 1),
    a(250, 3),
    a(260, 1),
    a(900, 6),
    a(1000, 1),
    a(1000, 2),
    a(1700, 1),
    a(1700, 1),
    a(1700, 1),
    a(3000, 5),
    a(3000, 1),
];

/// Which limiter a burst scenario runs through, and its configuration. Each allows 5 at
/// once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimiterConfig {
    /// GCRA: one permit per `period_ms`, burst `burst`.
    TokenBucket {
        /// Emission interval.
        period_ms: u64,
        /// Burst.
        burst: u32,
    },
    /// `limit` per fixed window of `window_ms`.
    FixedWindow {
        /// Permits per window.
        limit: u32,
        /// Window length.
        window_ms: u64,
    },
    /// `limit` per sliding window of `window_ms`, estimated from two fixed windows.
    SlidingWindowCounter {
        /// Permits per window.
        limit: u32,
        /// Window length.
        window_ms: u64,
    },
    /// `limit` per sliding window of `window_ms`, exactly (a log of 5 grants).
    SlidingWindowLog {
        /// Permits per window.
        limit: u32,
        /// Window length.
        window_ms: u64,
    },
    /// A leaky bucket: one per `period_ms`, queued at most `max_delay_ms`.
    LeakyBucket {
        /// Spacing between two requests.
        period_ms: u64,
        /// Longest queue delay.
        max_delay_ms: u64,
    },
}

/// The limiters of the burst scenarios, by name.
pub const LIMITERS: &[(&str, LimiterConfig)] = &[
    (
        "token bucket",
        LimiterConfig::TokenBucket {
            period_ms: 100,
            burst: 5,
        },
    ),
    (
        "fixed window",
        LimiterConfig::FixedWindow {
            limit: 5,
            window_ms: 600,
        },
    ),
    (
        "sliding window counter",
        LimiterConfig::SlidingWindowCounter {
            limit: 5,
            window_ms: 600,
        },
    ),
    (
        "sliding window log",
        LimiterConfig::SlidingWindowLog {
            limit: 5,
            window_ms: 600,
        },
    ),
    (
        "leaky bucket",
        LimiterConfig::LeakyBucket {
            period_ms: 100,
            max_delay_ms: 400,
        },
    ),
];

/// Any of the scenario limiters, behind core's [`RateLimiter`] trait; the windows are
/// shared through a [`SharedLimiter`] with the driver's lock `M`.
#[derive(Debug)]
pub enum Limiter<M: RawMutex> {
    /// A token bucket.
    TokenBucket(TokenBucket),
    /// A fixed window.
    FixedWindow(SharedLimiter<M, FixedWindow>),
    /// A sliding window counter.
    SlidingWindowCounter(SharedLimiter<M, SlidingWindowCounter>),
    /// A sliding window log of 5 grants.
    SlidingWindowLog(SharedLimiter<M, SlidingWindowLog<5>>),
    /// A leaky bucket (as a meter through [`RateLimiter`]; as a shaper through
    /// [`Limiter::reserve_at`]).
    LeakyBucket(LeakyBucket),
}

impl LimiterConfig {
    /// A fresh limiter with this configuration.
    pub fn build<M: RawMutex>(&self) -> Result<Limiter<M>, ConfigError> {
        Ok(match *self {
            LimiterConfig::TokenBucket { period_ms, burst } => Limiter::TokenBucket(
                TokenBucket::new(Quota::per_period(ms(period_ms))?.with_burst(burst)?),
            ),
            LimiterConfig::FixedWindow { limit, window_ms } => Limiter::FixedWindow(
                SharedLimiter::new(FixedWindow::new(WindowQuota::new(limit, ms(window_ms))?)),
            ),
            LimiterConfig::SlidingWindowCounter { limit, window_ms } => {
                Limiter::SlidingWindowCounter(SharedLimiter::new(SlidingWindowCounter::new(
                    WindowQuota::new(limit, ms(window_ms))?,
                )))
            }
            LimiterConfig::SlidingWindowLog { limit, window_ms } => {
                Limiter::SlidingWindowLog(SharedLimiter::new(SlidingWindowLog::new(
                    WindowQuota::new(limit, ms(window_ms))?,
                )?))
            }
            LimiterConfig::LeakyBucket {
                period_ms,
                max_delay_ms,
            } => Limiter::LeakyBucket(LeakyBucket::new(Spacing::new(
                ms(period_ms),
                ms(max_delay_ms),
            )?)),
        })
    }
}

impl<M: RawMutex> Limiter<M> {
    fn as_dyn(&self) -> &dyn RateLimiter {
        match self {
            Limiter::TokenBucket(l) => l,
            Limiter::FixedWindow(l) => l,
            Limiter::SlidingWindowCounter(l) => l,
            Limiter::SlidingWindowLog(l) => l,
            Limiter::LeakyBucket(l) => l,
        }
    }

    /// The leaky bucket's shaping decision (`reserve_n_at`): the instant the request may
    /// go. `None` for the other limiters.
    pub fn reserve_at(&self, n: u32, now: Instant) -> Option<Result<Instant, RateLimitError>> {
        match self {
            Limiter::LeakyBucket(l) => Some(l.reserve_n_at(n, now)),
            _ => None,
        }
    }
}

impl<M: RawMutex> RateLimiter for Limiter<M> {
    fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.as_dyn().acquire_at(n, now)
    }
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.as_dyn().peek_at(n, now)
    }
    fn remaining_at(&self, now: Instant) -> u32 {
        self.as_dyn().remaining_at(now)
    }
    fn max_acquire(&self) -> u32 {
        self.as_dyn().max_acquire()
    }
    fn reset(&self) {
        self.as_dyn().reset()
    }
}

// ---------------------------------------------------------------------------------------
// Waiting for a bulkhead
// ---------------------------------------------------------------------------------------

/// The bulkhead scenario: callers wait in one FIFO line for a slot of a bulkhead
/// (`SLOTS` slots, at most `MAX_WAITING` waiting, the head included), each with its own
/// deadline, and hold the slot for a while.
pub mod bulkhead {
    use super::*;

    /// Slots of the bulkhead.
    pub const SLOTS: u32 = 2;
    /// Callers that may wait at once (the head included).
    pub const MAX_WAITING: usize = 3;

    /// A caller: arrives at `at_ms`, gives up waiting `patience_ms` later (never if
    /// `None`), and holds its slot `hold_ms`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Caller {
        /// Arrival, in milliseconds since the start.
        pub at_ms: u64,
        /// How long it holds its slot.
        pub hold_ms: u64,
        /// How long it waits at most.
        pub patience_ms: Option<u64>,
    }

    impl Caller {
        /// The arrival instant.
        pub const fn at(&self) -> Instant {
            Instant::from_millis(self.at_ms)
        }

        /// The caller's deadline.
        pub const fn deadline(&self) -> Deadline {
            match self.patience_ms {
                Some(p) => Deadline::at(Instant::from_millis(self.at_ms + p)),
                None => Deadline::NEVER,
            }
        }
    }

    const fn c(at_ms: u64, hold_ms: u64, patience_ms: Option<u64>) -> Caller {
        Caller {
            at_ms,
            hold_ms,
            patience_ms,
        }
    }

    /// The callers, by arrival: two take the slots; a third waits at the head; a fourth
    /// runs out of patience in line; a fifth waits; a sixth finds the line full; a seventh
    /// joins the place the fourth left; the last finds everything free again.
    pub const CALLERS: &[Caller] = &[
        c(0, 300, None),
        c(0, 500, None),
        c(10, 100, None),
        c(20, 100, Some(250)),
        c(30, 50, None),
        c(40, 10, None),
        c(280, 10, None),
        c(1000, 10, None),
    ];
}

// ---------------------------------------------------------------------------------------
// An outage and recovery through a circuit breaker with retries
// ---------------------------------------------------------------------------------------

/// The outage scenario: calls every `CALL_EVERY_MS` (sequential: a call never outlasts
/// the gap), each retried by [`outage::policy`] through [`outage::breaker`]; every attempt
/// takes `ATTEMPT_MS` and fails if it starts in `DOWN_FROM_MS..UP_AT_MS`.
pub mod outage {
    use super::*;

    /// Calls made.
    pub const CALLS: usize = 14;
    /// The gap between two calls' starts.
    pub const CALL_EVERY_MS: u64 = 400;
    /// How long an attempt runs.
    pub const ATTEMPT_MS: u64 = 20;
    /// The dependency fails attempts that start from here ...
    pub const DOWN_FROM_MS: u64 = 300;
    /// ... until here.
    pub const UP_AT_MS: u64 = 3300;

    /// The start of call `call`.
    pub const fn call_at(call: usize) -> Instant {
        Instant::from_millis(CALL_EVERY_MS * call as u64)
    }

    /// Whether an attempt starting at `start` fails.
    pub fn fails(start: Instant) -> bool {
        (Instant::from_millis(DOWN_FROM_MS)..Instant::from_millis(UP_AT_MS)).contains(&start)
    }

    /// The breaker: opens at 50 % failures over the last 4 calls (at least 4 recorded),
    /// stays open 1 s, then lets 2 probes decide.
    pub fn breaker<M: RawMutex>(
        recorder: &Recorder,
    ) -> Result<
        CircuitBreaker<CountWindow<4>, M, stanchion::breaker::FixedOpenDuration, &Recorder>,
        ConfigError,
    > {
        let config = BreakerConfig::new()
            .failure_rate_threshold(50)
            .minimum_calls(4)
            .permitted_calls_in_half_open(2);
        CircuitBreaker::from_parts(
            config,
            CountWindow::new()?,
            stanchion::breaker::FixedOpenDuration(ms(1000)),
            0,
            recorder,
        )
    }

    /// The retry policy: at most 3 attempts, 100 ms then 200 ms apart (no jitter, so the
    /// random stream does not matter).
    pub fn policy() -> Result<RetryPolicy<Exponential>, ConfigError> {
        RetryPolicy::new(
            Exponential::new(ms(100), Ratio::TWO, ms(1000))?,
            3,
            fastrand::Rng::with_seed(10),
        )
    }
}

// ---------------------------------------------------------------------------------------
// A pipeline under load
// ---------------------------------------------------------------------------------------

/// The pipeline scenario: one client's calls through the whole pipeline (every layer),
/// while other traffic sometimes holds the bulkhead's only slot.
pub mod pipeline {
    use super::*;

    /// What one attempt of the operation does.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Step {
        /// Succeeds after this many milliseconds.
        Ok(u64),
        /// Fails after this many milliseconds.
        Err(u64),
        /// Never answers (the attempt timeout or the overall timeout ends it).
        Hang,
    }

    /// One call of the schedule.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Call {
        /// When it starts (never before the previous call ended).
        pub at_ms: u64,
        /// Whether other traffic holds the only bulkhead slot during the call.
        pub slot_taken: bool,
        /// Attempt `i` does `steps[i]` (the last step repeats).
        pub steps: &'static [Step],
    }

    impl Call {
        /// What attempt `attempt` (1 for the first) does.
        pub fn step(&self, attempt: u32) -> Step {
            let i = (attempt as usize).saturating_sub(1);
            self.steps
                .get(i)
                .or(self.steps.last())
                .copied()
                .unwrap_or(Step::Ok(0))
        }
    }

    const fn call(at_ms: u64, steps: &'static [Step]) -> Call {
        Call {
            at_ms,
            slot_taken: false,
            steps,
        }
    }

    /// The overall timeout of a call.
    pub const OVERALL_MS: u64 = 250;
    /// The per-attempt timeout.
    pub const ATTEMPT_TIMEOUT_MS: u64 = 100;
    /// The rate limit: one permit per this many milliseconds ...
    pub const RATE_PERIOD_MS: u64 = 400;
    /// ... with this burst.
    pub const RATE_BURST: u32 = 2;
    /// Slots of the bulkhead (no one waits for a slot).
    pub const SLOTS: u32 = 1;
    /// The breaker opens after this many consecutive failures ...
    pub const BREAKER_STREAK: u32 = 3;
    /// ... for this long.
    pub const BREAKER_OPEN_MS: u64 = 500;
    /// Attempts per call, counting the first.
    pub const MAX_ATTEMPTS: u32 = 3;
    /// The pause between two attempts.
    pub const RETRY_PAUSE_MS: u64 = 50;

    /// The schedule, sorted, every call starting after the previous one ended.
    pub const CALLS: &[Call] = &[
        // 0, 1: a success, then a glitch retried; the bucket's burst is spent.
        call(0, &[Step::Ok(10)]),
        call(50, &[Step::Err(5), Step::Ok(10)]),
        // 2: the bucket is empty: the call waits in line for its permit (until 400 ms).
        call(200, &[Step::Ok(10)]),
        // 3: the wait (until 800 ms) would reach the overall deadline (700 ms): refused
        // by the rate limit at once.
        call(450, &[Step::Ok(10)]),
        // 4: other traffic holds the only slot: refused by the bulkhead.
        Call {
            slot_taken: true,
            ..call(1300, &[Step::Ok(10)])
        },
        // 5: an attempt that hangs is cut by the attempt timeout; the retry succeeds.
        call(1700, &[Step::Hang, Step::Ok(10)]),
        // 6: two slow failures; a third attempt would start too close to the deadline:
        // the policy gives up (deadline).
        call(2100, &[Step::Err(90), Step::Err(90)]),
        // 7: a third failure in a row opens the breaker, which refuses the retry.
        call(2500, &[Step::Err(10)]),
        // 8: refused at once by the open breaker.
        call(2900, &[Step::Ok(10)]),
        // 9: half-open: one probe succeeds and closes it.
        call(3300, &[Step::Ok(20)]),
        // 10: two failures, then an attempt still running at the overall deadline: the
        // call times out (its attempt records nothing in the breaker).
        call(3700, &[Step::Err(60), Step::Err(60), Step::Hang]),
        // 11: back to normal.
        call(4100, &[Step::Ok(10)]),
    ];

    /// The rate limiter (a token bucket).
    pub fn limiter() -> Result<TokenBucket, ConfigError> {
        Ok(TokenBucket::new(
            Quota::per_period(ms(RATE_PERIOD_MS))?.with_burst(RATE_BURST)?,
        ))
    }

    /// The breaker.
    pub fn breaker<M: RawMutex>(
        recorder: &Recorder,
    ) -> Result<
        CircuitBreaker<ConsecutiveWindow, M, stanchion::breaker::FixedOpenDuration, &Recorder>,
        ConfigError,
    > {
        let config = BreakerConfig::new().permitted_calls_in_half_open(1);
        CircuitBreaker::from_parts(
            config,
            ConsecutiveWindow::new(BREAKER_STREAK)?,
            stanchion::breaker::FixedOpenDuration(ms(BREAKER_OPEN_MS)),
            0,
            recorder,
        )
    }

    /// The retry policy (no jitter).
    pub fn policy() -> Result<RetryPolicy<Constant>, ConfigError> {
        RetryPolicy::new(
            Constant::new(ms(RETRY_PAUSE_MS)),
            MAX_ATTEMPTS,
            fastrand::Rng::with_seed(20),
        )
    }
}
