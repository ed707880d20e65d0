//! [`Hedge`]: for idempotent calls, start another attempt when one has not answered after
//! a delay; the first acceptable answer wins and the others are cancelled (tail-latency
//! hedging, "The Tail at Scale").
//!
//! A call starts one attempt. If it has not answered after the *hedge delay*, a second
//! attempt starts beside it (a *hedge*); after another delay a third, and so on up to
//! `max_attempts` in flight. The first acceptable answer is the call's answer, and the
//! attempts still running are cancelled (in Rust: their futures are dropped). The delay is
//! either fixed ([`HedgeConfig::fixed`]) or learned ([`HedgeConfig::learned`]): a
//! percentile, in parts per thousand, of the first attempts' latencies recorded in a
//! fixed-size [`LatencyHistogram`]. At the learned p90, a call is hedged only when its
//! first attempt is slower than nine calls in ten were: a downstream whose slow answers
//! are rare and random (a garbage-collection pause, a cold cache, a busy replica) then
//! answers nearly every call at about p90 plus the median.
//!
//! Bounded twice, so that a slow dependency never gets multiplied load: at most
//! `max_attempts` attempts per call (the first included), and a hedging budget, any
//! [`RetryBudget`], shared by every call: a [`RatioBudget`](crate::retry::RatioBudget) of
//! 10% lets at most one call in ten (plus a floor) be hedged in its window, however slow
//! the dependency gets. When the dependency is slow for everyone, the learned percentile
//! rises with it (recorded latencies are slow too), and the budget stops the hedges the
//! histogram has not caught up with yet. A hedge the budget refuses ends hedging for
//! that call.
//!
//! # What wins, and errors
//!
//! The first *acceptable* answer wins (the adapters take a classifier, by default `Ok`).
//! An unacceptable answer (an error) while other attempts are still in flight is held and
//! the call waits for them; once every attempt started has failed, the call answers with
//! the last error, without waiting for a hedge not yet due. A failure does not start a
//! hedge early: that is retrying, the retry layer's job (put it outside the hedge).
//!
//! # When to choose it
//!
//! - The call is **idempotent**: running it twice (or half-running it and cancelling) is
//!   harmless: reads, lookups, idempotent writes with a request key. Never hedge a
//!   payment or anything that must happen once.
//! - Latency matters more than a few percent of extra load, and slow answers are random
//!   (another attempt is likely fast), not caused by the request itself (a hedge of a
//!   heavy query is just as heavy).
//! - Over a **timeout and retry**: a retry waits for the first attempt to time out and
//!   abandons it; a hedge keeps it running and races it, so the answer arrives at
//!   `min(first, delay + second)`, sooner and with no answer thrown away.
//!
//! # Example
//!
//! ```
//! use core::time::Duration;
//! use stanchion::Instant;
//! use stanchion::hedge::{Hedge, HedgeConfig};
//! use stanchion::retry::{Ratio, RatioBudget};
//!
//! // Hedge at the learned p90, at most 2 attempts, at most 10% of calls (plus 1 per 10 s).
//! let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 1)?;
//! let config = HedgeConfig::learned(900, 2)?.with_min_samples(10)?;
//! let hedge: Hedge<_> = Hedge::new(config, budget)?;
//!
//! // Ten calls answered in 10 ms each teach it the delay: p90 is 10 ms (a bucket's top).
//! for i in 0..10 {
//!     let start = Instant::from_millis(i * 100);
//!     let call = hedge.start_at(start);
//!     hedge.record_latency_at(&call, start + Duration::from_millis(10));
//! }
//! assert_eq!(hedge.delay(), Some(Duration::from_micros(10_240)));
//!
//! // A slow call: at 10.24 ms the hedge is due, and the budget has room for it.
//! let start = Instant::from_secs(1);
//! let mut call = hedge.start_at(start);
//! let due = call.next_hedge_at().unwrap();
//! assert_eq!(due, start + Duration::from_micros(10_240));
//! assert!(!hedge.try_hedge_at(&mut call, due - Duration::from_micros(1))); // not yet
//! assert!(hedge.try_hedge_at(&mut call, due));
//! assert_eq!(call.attempts(), 2);
//! assert_eq!(call.next_hedge_at(), None); // max_attempts reached
//! # Ok::<(), stanchion::ConfigError>(())
//! ```
//!
//! The adapters run it: `stanchion_std::hedge::Hedging` and the tower `HedgeLayer` over
//! tokio, `stanchion_embassy::hedge::call` in firmware.
//!
//! # Sharing and cost
//!
//! Lock-free, shared by `&`. The histogram is `B` `AtomicU32` counters plus two (their
//! sum, and the records for the decay): `4 * B + 8` bytes, 616 with the default 152
//! buckets; a fixed delay never touches it (`B` may be 0). A call reads the sum and the
//! counters up to the percentile's bucket once, at [`start_at`](Hedge::start_at); its
//! first attempt's latency is two `fetch_add`s (plus, each time the sum reaches
//! `2 * window`, a halving pass over the counters). A read racing with a record or a halving may see
//! the percentile one record off. The budget costs what it costs (one deposit per call,
//! one withdrawal per hedge). Integer arithmetic only.
//!
//! Source: Dean and Barroso, "The Tail at Scale" (CACM, 2013), hedged requests; tower's
//! `hedge` middleware (a percentile of recent latencies, a minimum of data points).

use core::fmt;
use core::time::Duration;

use crate::ConfigError;
use crate::Instant;
use crate::div::checked_div;
use crate::retry::RetryBudget;
use crate::sync::{AtomicU32, Ordering};
use crate::time::{ShowDuration, duration_from_nanos, duration_to_nanos_saturating};

/// Linear buckets below `2^SUB_BITS` µs, then `2^SUB_BITS` buckets per power of two: a
/// bucket is at most 1/8 (12.5%) wider than its lower bound.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;

/// The most attempts one call may have in flight.
pub const MAX_ATTEMPTS: u32 = 16;

/// The default number of histogram buckets: latencies up to 2^21 µs (2.1 s) are told
/// apart, longer ones share the top bucket.
pub const DEFAULT_BUCKETS: usize = 152;

/// A fixed-size, log-bucketed histogram of latencies, in microseconds, with a decay: each
/// time the counts' sum reaches `2 * window`, every count is halved, so it follows
/// roughly the last `window` to `2 * window` records, older ones weighing less.
///
/// Buckets: one per microsecond below 8 µs, then 8 per power of two (so a bucket's top is
/// at most 12.5% above its bottom); with `B` buckets, latencies from
/// [`max_latency`](Self::max_latency) up share the top bucket. A percentile is the top of
/// the bucket where it falls: rounded up, at most 12.5% high.
///
/// ```
/// use core::time::Duration;
/// use stanchion::hedge::LatencyHistogram;
///
/// let h = LatencyHistogram::<152>::new(1000)?;
/// for ms in 1..=100 {
///     h.record(Duration::from_millis(ms));
/// }
/// assert_eq!(h.count(), 100);
/// // The 50th of 100 is 50 ms, in the bucket [49152, 53248) µs.
/// assert_eq!(h.percentile(500), Some(Duration::from_micros(53_248)));
/// assert_eq!(h.percentile(1000), Some(Duration::from_micros(106_496))); // the 100th, 100 ms
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct LatencyHistogram<const B: usize> {
    buckets: [AtomicU32; B],
    /// The counts' sum: each record adds to it what it adds to its bucket, each halving
    /// takes from it what it takes from a bucket.
    total: AtomicU32,
    /// Twice the window: the sum at which the counts are halved.
    halve_at: u32,
}

/// The largest decay window.
pub const MAX_WINDOW: u32 = 1_000_000;

impl<const B: usize> LatencyHistogram<B> {
    crate::sync::const_fn_unless_loom! {
        /// An empty histogram halving its counts when their sum reaches `2 * window` (in
        /// `2..=1,000,000`). `B` must be at least 8.
        pub fn new(window: u32) -> Result<LatencyHistogram<B>, ConfigError> {
            if B < SUB as usize {
                return Err(ConfigError::new("B", "at least 8 buckets"));
            }
            if window < 2 || window > MAX_WINDOW {
                return Err(ConfigError::new("window", "in 2..=1000000 records"));
            }
            Ok(LatencyHistogram {
                buckets: new_counters(),
                total: AtomicU32::new(0),
                halve_at: window.saturating_mul(2),
            })
        }
    }

    /// Records one latency (saturating: from [`max_latency`](Self::max_latency) up, in
    /// the top bucket).
    pub fn record(&self, latency: Duration) {
        self.record_nanos(duration_to_nanos_saturating(latency));
    }

    /// Records one latency of `nanos` nanoseconds. Divides by core's long division, so a
    /// 32-bit target links no 64-bit division routine (see `crate::div`).
    fn record_nanos(&self, nanos: u64) {
        let micros = checked_div(nanos, 1000).unwrap_or(0);
        let index = bucket_index(micros).min(B.saturating_sub(1));
        if let Some(bucket) = self.buckets.get(index) {
            // Counts stay below 2 * window <= 2,000,000 between halvings (a race may let
            // a few more in): far from u32::MAX.
            bucket.fetch_add(1, Ordering::Relaxed);
            let total = self.total.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            // The record that brings the sum to a multiple of `2 * window` halves it
            // (one record exactly, however they race; normally at `2 * window`, and a
            // sum that races past it is caught at the next multiple).
            if total.checked_rem(self.halve_at) == Some(0) {
                self.decay();
            }
        }
    }

    /// Halves every count (rounding down). A record racing with it may be halved or not.
    fn decay(&self) {
        for bucket in &self.buckets {
            if let Ok(before) =
                bucket.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c >> 1))
            {
                let removed = before.saturating_sub(before >> 1);
                if removed > 0 {
                    self.total.fetch_sub(removed, Ordering::Relaxed);
                }
            }
        }
    }

    /// The counts' sum: how many records the histogram weighs now. One load.
    pub fn count(&self) -> u64 {
        u64::from(self.total.load(Ordering::Relaxed))
    }

    /// The latency below which `per_mille` thousandths of the records fall (in
    /// `1..=1000`; above 1000 reads as 1000, 0 as 1): the top of the bucket holding the
    /// record of rank `ceil(count * per_mille / 1000)`. `None` while empty.
    pub fn percentile(&self, per_mille: u16) -> Option<Duration> {
        self.percentile_with(per_mille, 1)
    }

    fn percentile_with(&self, per_mille: u16, min_samples: u32) -> Option<Duration> {
        let total = self.count();
        if total == 0 || total < u64::from(min_samples) {
            return None;
        }
        let per_mille = u64::from(per_mille.clamp(1, 1000));
        // ceil(total * per_mille / 1000), at least 1: total < 2^32, so no overflow.
        let rank = checked_div(total.saturating_mul(per_mille).saturating_add(999), 1000)
            .unwrap_or(1)
            .max(1);
        let mut seen: u64 = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(u64::from(bucket.load(Ordering::Relaxed)));
            if seen >= rank {
                return Some(micros(bucket_top(index)));
            }
        }
        // Records racing with a decay can leave the second pass short of the rank.
        Some(micros(bucket_top(B.saturating_sub(1))))
    }

    /// The bottom of the top bucket: latencies from here up are told apart no further.
    pub fn max_latency(&self) -> Duration {
        micros(bucket_bottom(B.saturating_sub(1)))
    }
}

/// `micros` microseconds, saturating at `u64::MAX` nanoseconds (584 years), without the
/// 64-bit division routine `Duration::from_micros` links on 32-bit targets.
fn micros(micros: u64) -> Duration {
    duration_from_nanos(micros.saturating_mul(1000))
}

#[cfg(not(loom))]
const fn new_counters<const B: usize>() -> [AtomicU32; B] {
    [const { AtomicU32::new(0) }; B]
}

#[cfg(loom)]
fn new_counters<const B: usize>() -> [AtomicU32; B] {
    core::array::from_fn(|_| AtomicU32::new(0))
}

/// The bucket of a latency of `micros`.
const fn bucket_index(micros: u64) -> usize {
    if micros < SUB {
        return micros as usize;
    }
    // `micros >= 8`, so its top bit is at position `e` in `3..=63`.
    let e = 63u32.saturating_sub(micros.leading_zeros());
    let shift = e.saturating_sub(SUB_BITS);
    let mantissa = (micros >> shift) & (SUB - 1);
    // Octave `e` starts at bucket `(e - 2) * 8`: at most 61 * 8 + 7.
    ((shift.saturating_add(1) as usize) << SUB_BITS) | mantissa as usize
}

/// The smallest latency in bucket `index`, in µs (saturating).
const fn bucket_bottom(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    // Bucket `(shift + 1) * 8 + m` holds `[(8 + m) << shift, (9 + m) << shift)`.
    let shift = (index >> SUB_BITS).saturating_sub(1);
    let mantissa = SUB | (index & (SUB - 1));
    if shift > 60 {
        return u64::MAX; // a 4-bit mantissa shifted past bit 63
    }
    mantissa << shift
}

/// The first latency above bucket `index`, in µs (saturating).
const fn bucket_top(index: usize) -> u64 {
    bucket_bottom(index.saturating_add(1))
}
/// How the hedge delay is chosen.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HedgeDelay {
    /// The same delay for every call.
    Fixed(Duration),
    /// A percentile of recent first attempts' latencies, in parts per thousand (900 is
    /// p90), once at least `min_samples` are recorded (no hedging before); the histogram
    /// halves its counts when their sum reaches `2 * window`.
    Learned {
        /// The percentile, in `1..=999` thousandths.
        per_mille: u16,
        /// Records needed before the first hedge, in `1..=window`.
        min_samples: u32,
        /// The histogram's decay window, in records.
        window: u32,
    },
}

/// A validated hedging configuration: the delay and the most attempts per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HedgeConfig {
    delay: HedgeDelay,
    max_attempts: u32,
}

impl HedgeConfig {
    /// Hedge after `delay` (at least 1 µs), then every `delay` again, up to
    /// `max_attempts` attempts per call (in `2..=16`, the first included).
    pub const fn fixed(delay: Duration, max_attempts: u32) -> Result<HedgeConfig, ConfigError> {
        if delay.as_nanos() < 1_000 {
            return Err(ConfigError::new("delay", "at least 1 µs"));
        }
        match check_attempts(max_attempts) {
            Ok(()) => Ok(HedgeConfig {
                delay: HedgeDelay::Fixed(delay),
                max_attempts,
            }),
            Err(e) => Err(e),
        }
    }

    /// Hedge at the `per_mille` percentile (in `1..=999`: 900 is p90) of recent first
    /// attempts' latencies, up to `max_attempts` attempts per call (in `2..=16`). Learns
    /// from the last 1,000 to 2,000 records ([`with_window`](Self::with_window)) and
    /// hedges only once 100 are in ([`with_min_samples`](Self::with_min_samples)).
    pub const fn learned(per_mille: u16, max_attempts: u32) -> Result<HedgeConfig, ConfigError> {
        if per_mille == 0 || per_mille > 999 {
            return Err(ConfigError::new("per_mille", "in 1..=999 thousandths"));
        }
        match check_attempts(max_attempts) {
            Ok(()) => Ok(HedgeConfig {
                delay: HedgeDelay::Learned {
                    per_mille,
                    min_samples: 100,
                    window: 1000,
                },
                max_attempts,
            }),
            Err(e) => Err(e),
        }
    }

    /// A learned delay's histogram halves its counts when their sum reaches `2 * window`
    /// (`window` in `2..=1,000,000`, and at least the minimum of samples, so that a
    /// halving never leaves fewer). No effect on a fixed delay.
    pub const fn with_window(self, window: u32) -> Result<HedgeConfig, ConfigError> {
        match self.delay {
            HedgeDelay::Fixed(_) => Ok(self),
            HedgeDelay::Learned {
                per_mille,
                min_samples,
                ..
            } => {
                if window < 2 || window > MAX_WINDOW || window < min_samples {
                    return Err(ConfigError::new(
                        "window",
                        "in 2..=1000000 records, at least min_samples",
                    ));
                }
                Ok(HedgeConfig {
                    delay: HedgeDelay::Learned {
                        per_mille,
                        min_samples,
                        window,
                    },
                    max_attempts: self.max_attempts,
                })
            }
        }
    }

    /// A learned delay hedges only once `min_samples` records (in `1..=window`) are in
    /// the histogram. No effect on a fixed delay.
    pub const fn with_min_samples(self, min_samples: u32) -> Result<HedgeConfig, ConfigError> {
        match self.delay {
            HedgeDelay::Fixed(_) => Ok(self),
            HedgeDelay::Learned {
                per_mille, window, ..
            } => {
                if min_samples == 0 || min_samples > window {
                    return Err(ConfigError::new("min_samples", "in 1..=window records"));
                }
                Ok(HedgeConfig {
                    delay: HedgeDelay::Learned {
                        per_mille,
                        min_samples,
                        window,
                    },
                    max_attempts: self.max_attempts,
                })
            }
        }
    }

    /// How the delay is chosen.
    pub const fn delay(&self) -> HedgeDelay {
        self.delay
    }

    /// The most attempts per call, the first included.
    pub const fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

const fn check_attempts(max_attempts: u32) -> Result<(), ConfigError> {
    if max_attempts < 2 || max_attempts > MAX_ATTEMPTS {
        return Err(ConfigError::new("max_attempts", "in 2..=16"));
    }
    Ok(())
}

/// The hedging decision, shared by every call to one dependency: the configuration, the
/// latency histogram (`B` buckets; a fixed delay does not read it) and the budget. See
/// the [module docs](self).
///
/// The order of calls for one call: [`start_at`](Self::start_at) as the first attempt
/// starts; at [`HedgeCall::next_hedge_at`], [`try_hedge_at`](Self::try_hedge_at), and
/// start a hedge if it says so; [`record_latency_at`](Self::record_latency_at) when the
/// first attempt answers acceptably or is cancelled (another won); and
/// [`record_success_at`](Self::record_success_at) once if the call succeeded.
#[derive(Debug)]
pub struct Hedge<Bu, const B: usize = DEFAULT_BUCKETS> {
    histogram: LatencyHistogram<B>,
    config: HedgeConfig,
    budget: Bu,
}

impl<Bu, const B: usize> Hedge<Bu, B> {
    crate::sync::const_fn_unless_loom! {
        /// The decision for `config`, spending hedges from `budget` (a
        /// [`NoBudget`](crate::retry::NoBudget) spends none: only `max_attempts` bounds
        /// it). A learned delay needs `B` of at least 8 (its histogram's buckets); a fixed
        /// one reads no histogram, and `B` may be 0. `const`, so that a hedge can be a
        /// `static` in firmware (with [`const_config!`](crate::const_config)).
        ///
        /// On an error the budget is forgotten rather than dropped (which a `const fn`
        /// cannot do for a generic type): core's budgets are atomics with nothing to drop.
        pub fn new(config: HedgeConfig, budget: Bu) -> Result<Hedge<Bu, B>, ConfigError> {
            let histogram = match config.delay {
                HedgeDelay::Learned { window, .. } => match LatencyHistogram::new(window) {
                    Ok(histogram) => histogram,
                    Err(e) => {
                        core::mem::forget(budget);
                        return Err(e);
                    }
                },
                // Never read: a fixed delay costs no buckets (`B` may be 0).
                HedgeDelay::Fixed(_) => LatencyHistogram {
                    buckets: new_counters(),
                    total: AtomicU32::new(0),
                    halve_at: 4,
                },
            };
            Ok(Hedge {
                histogram,
                config,
                budget,
            })
        }
    }
}

impl<Bu: RetryBudget, const B: usize> Hedge<Bu, B> {
    /// The delay a call starting now would hedge after: the fixed delay, or the learned
    /// percentile (`None` until `min_samples` are recorded: no hedging yet).
    pub fn delay(&self) -> Option<Duration> {
        match self.config.delay {
            HedgeDelay::Fixed(d) => Some(d),
            HedgeDelay::Learned {
                per_mille,
                min_samples,
                ..
            } => self.histogram.percentile_with(per_mille, min_samples),
        }
    }

    /// A call's first attempt starts at `now`: counts the call in the budget and fixes
    /// its hedge delay.
    pub fn start_at(&self, now: Instant) -> HedgeCall {
        self.budget.deposit_at(now);
        HedgeCall {
            started: now,
            delay: self.delay(),
            launched: 1,
            max_attempts: self.config.max_attempts,
        }
    }

    /// Whether to start another attempt of `call` at `now`: `true` when one is due
    /// (`now` at or after [`HedgeCall::next_hedge_at`]) and the budget allows it, which
    /// spends one hedge and counts the attempt. A refusal by the budget ends hedging for
    /// this call; a hedge not yet due changes nothing.
    pub fn try_hedge_at(&self, call: &mut HedgeCall, now: Instant) -> bool {
        match call.next_hedge_at() {
            Some(due) if now >= due => {}
            _ => return false,
        }
        if self.budget.try_withdraw_at(now) {
            call.launched = call.launched.saturating_add(1);
            true
        } else {
            call.delay = None;
            false
        }
    }

    /// `call`'s first attempt answered acceptably at `now`, or was cancelled at `now`
    /// unanswered (another attempt won): its latency, or a lower bound of it, goes into
    /// the histogram. A cancelled first attempt has run at least the hedge delay, so it
    /// counts above the percentile, which is where it belongs. Not for failed attempts
    /// (a fast error would teach a short delay).
    pub fn record_latency_at(&self, call: &HedgeCall, now: Instant) {
        if let HedgeDelay::Learned { .. } = self.config.delay {
            self.histogram
                .record_nanos(now.as_nanos().saturating_sub(call.started.as_nanos()));
        }
    }

    /// The call succeeded (for a budget that refills on successes, as
    /// [`TokenBudget`](crate::retry::TokenBudget)).
    pub fn record_success_at(&self, now: Instant) {
        self.budget.record_success_at(now);
    }

    /// The configuration.
    pub fn config(&self) -> &HedgeConfig {
        &self.config
    }

    /// The latency histogram (empty with a fixed delay).
    pub fn histogram(&self) -> &LatencyHistogram<B> {
        &self.histogram
    }

    /// The hedging budget.
    pub fn budget(&self) -> &Bu {
        &self.budget
    }
}

/// One call's hedging state: when it started, its delay, how many attempts it started.
/// Small and `Copy`; the runner keeps it for the call's life.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HedgeCall {
    started: Instant,
    /// `None`: no (more) hedging for this call.
    delay: Option<Duration>,
    launched: u32,
    max_attempts: u32,
}

impl fmt::Debug for HedgeDelay {
    /// As derived, with durations printed by core's small printer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HedgeDelay::Fixed(d) => f.debug_tuple("Fixed").field(&ShowDuration(d)).finish(),
            HedgeDelay::Learned {
                per_mille,
                min_samples,
                window,
            } => f
                .debug_struct("Learned")
                .field("per_mille", &per_mille)
                .field("min_samples", &min_samples)
                .field("window", &window)
                .finish(),
        }
    }
}

impl fmt::Debug for HedgeCall {
    /// As derived, with durations printed by core's small printer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeCall")
            .field("started", &self.started)
            .field("delay", &self.delay.map(ShowDuration))
            .field("launched", &self.launched)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl HedgeCall {
    /// When the next hedge is due: the start plus the delay times the attempts started
    /// (saturating). `None` when no more will start: `max_attempts` are started, the
    /// budget refused one, or a learned delay has too few samples yet.
    pub fn next_hedge_at(&self) -> Option<Instant> {
        if self.launched >= self.max_attempts {
            return None;
        }
        let delay = duration_to_nanos_saturating(self.delay?);
        // In nanoseconds (no division), saturating.
        let after = delay.saturating_mul(u64::from(self.launched));
        Some(Instant::from_nanos(
            self.started.as_nanos().saturating_add(after),
        ))
    }

    /// Attempts started, the first included.
    pub fn attempts(&self) -> u32 {
        self.launched
    }

    /// Hedges started (attempts after the first).
    pub fn hedges(&self) -> u32 {
        self.launched.saturating_sub(1)
    }

    /// When the first attempt started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The delay this call hedges after, if it hedges.
    pub fn delay(&self) -> Option<Duration> {
        self.delay
    }
}

impl fmt::Display for HedgeCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hedged call with {} attempts started", self.launched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{NoBudget, Ratio, RatioBudget, TokenBudget};

    #[test]
    fn buckets_are_contiguous_and_exact() {
        let last = if cfg!(miri) { 2_000u64 } else { 100_000 };
        for micros in 0..last {
            let i = bucket_index(micros);
            assert!(
                bucket_bottom(i) <= micros && micros < bucket_top(i),
                "{micros}"
            );
        }
        assert_eq!(bucket_index(7), 7);
        assert_eq!(bucket_index(8), 8);
        assert_eq!(bucket_index(15), 15);
        assert_eq!(bucket_index(16), 16);
        assert_eq!(bucket_index(17), 16);
        assert_eq!(bucket_index(18), 17);
        assert_eq!(
            (bucket_bottom(151), bucket_top(151)),
            (1_966_080, 2_097_152)
        );
        assert_eq!(bucket_index(u64::MAX), 495);
        assert_eq!(bucket_bottom(495), 15 << 60);
        assert_eq!(bucket_top(495), u64::MAX); // saturates
        assert_eq!(bucket_top(usize::MAX), bucket_bottom(usize::MAX));
    }

    #[test]
    fn percentiles_are_bucket_tops_at_the_exact_rank() {
        let h = LatencyHistogram::<152>::new(1000).unwrap();
        assert_eq!(h.percentile(500), None);
        // 90 calls of 10 ms, 10 of 200 ms.
        for _ in 0..90 {
            h.record(Duration::from_millis(10));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(200));
        }
        // 10,000 µs is in [9216, 10240); 200,000 in [196608, 212992).
        assert_eq!(h.percentile(500), Some(Duration::from_micros(10_240)));
        assert_eq!(h.percentile(900), Some(Duration::from_micros(10_240))); // rank 90
        assert_eq!(h.percentile(901), Some(Duration::from_micros(212_992))); // rank 91
        assert_eq!(h.percentile(0), Some(Duration::from_micros(10_240)));
        assert_eq!(h.percentile(u16::MAX), Some(Duration::from_micros(212_992)));
        assert_eq!(h.count(), 100);
        // Beyond the top bucket: saturates into it.
        h.record(Duration::MAX);
        assert_eq!(h.max_latency(), Duration::from_micros(1_966_080));
        assert_eq!(h.percentile(1000), Some(Duration::from_micros(2_097_152)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            crate::proptest_cases(500)
        ))]

        /// Against a reference: sort the latencies, take the one at the nearest rank, and
        /// round it up to its bucket's top. The histogram never halves here (a window
        /// larger than the records).
        #[test]
        fn a_percentile_is_the_nearest_rank_rounded_to_its_bucket(
            latencies in proptest::collection::vec(0u64..50_000_000, 1..300),
            per_mille in 1u16..=1000,
        ) {
            let h = LatencyHistogram::<496>::new(1000).unwrap();
            for &micros in &latencies {
                h.record(Duration::from_micros(micros));
            }
            let mut sorted = latencies.clone();
            sorted.sort_unstable();
            let rank = (sorted.len() * usize::from(per_mille)).div_ceil(1000).max(1);
            let expected = bucket_top(bucket_index(sorted[rank - 1]));
            proptest::prop_assert_eq!(h.percentile(per_mille), Some(micros(expected)));
            proptest::prop_assert_eq!(h.count(), latencies.len() as u64);
        }
    }

    #[test]
    fn the_histogram_halves_at_twice_the_window() {
        let h = LatencyHistogram::<64>::new(5).unwrap();
        for _ in 0..9 {
            h.record(Duration::from_micros(100));
        }
        assert_eq!(h.count(), 9);
        h.record(Duration::from_micros(100)); // the sum reaches 10: halved to 5
        assert_eq!(h.count(), 5);
        // 100 µs is in [96, 104): the median while the old records weigh more.
        for _ in 0..4 {
            h.record(Duration::from_micros(3));
        }
        assert_eq!(h.count(), 9);
        assert_eq!(h.percentile(500), Some(Duration::from_micros(104)));
        h.record(Duration::from_micros(3)); // 10 again: 5 -> 2 and 5 -> 2
        assert_eq!(h.count(), 4);
        for _ in 0..2 {
            h.record(Duration::from_micros(3));
        }
        // The new records now outweigh the old: the median follows them.
        assert_eq!(h.count(), 6);
        assert_eq!(h.percentile(500), Some(Duration::from_micros(4)));
    }

    #[test]
    fn bad_configuration_names_the_field() {
        assert_eq!(
            HedgeConfig::fixed(Duration::from_nanos(999), 2).unwrap_err(),
            ConfigError::new("delay", "at least 1 µs")
        );
        for n in [0, 1, 17] {
            assert_eq!(
                HedgeConfig::fixed(Duration::from_millis(1), n).unwrap_err(),
                ConfigError::new("max_attempts", "in 2..=16")
            );
        }
        for p in [0, 1000] {
            assert_eq!(
                HedgeConfig::learned(p, 2).unwrap_err(),
                ConfigError::new("per_mille", "in 1..=999 thousandths")
            );
        }
        let learned = HedgeConfig::learned(900, 3).unwrap();
        assert_eq!(
            learned.with_window(99).unwrap_err(),
            ConfigError::new("window", "in 2..=1000000 records, at least min_samples")
        );
        assert_eq!(
            learned.with_window(1_000_001).unwrap_err().field(),
            "window"
        );
        assert_eq!(
            learned.with_min_samples(0).unwrap_err(),
            ConfigError::new("min_samples", "in 1..=window records")
        );
        assert_eq!(
            learned.with_min_samples(1001).unwrap_err().field(),
            "min_samples"
        );
        assert_eq!(
            LatencyHistogram::<7>::new(10).unwrap_err(),
            ConfigError::new("B", "at least 8 buckets")
        );
        assert_eq!(
            Hedge::<NoBudget, 4>::new(learned, NoBudget)
                .unwrap_err()
                .field(),
            "B"
        );
        assert_eq!(
            LatencyHistogram::<8>::new(1).unwrap_err(),
            ConfigError::new("window", "in 2..=1000000 records")
        );
        // A fixed delay ignores the learned settings; extremes are accepted.
        let fixed = HedgeConfig::fixed(Duration::MAX, 16).unwrap();
        assert_eq!(fixed.with_window(0), Ok(fixed));
        assert_eq!(fixed.with_min_samples(0), Ok(fixed));
        let hedge = Hedge::<_, 0>::new(fixed, NoBudget).unwrap();
        let mut call = hedge.start_at(Instant::MAX);
        assert_eq!(call.next_hedge_at(), Some(Instant::MAX));
        assert!(hedge.try_hedge_at(&mut call, Instant::MAX));
        hedge.record_latency_at(&call, Instant::ZERO); // backwards: zero, not recorded
        assert_eq!(hedge.histogram().count(), 0);
    }

    #[test]
    fn a_fixed_delay_hedges_every_delay_up_to_max_attempts() {
        let config = HedgeConfig::fixed(Duration::from_millis(5), 3).unwrap();
        let hedge = Hedge::<_, 8>::new(config, NoBudget).unwrap();
        let t0 = Instant::from_secs(1);
        let mut call = hedge.start_at(t0);
        assert_eq!(call.next_hedge_at(), Some(t0 + Duration::from_millis(5)));
        assert!(!hedge.try_hedge_at(&mut call, t0 + Duration::from_micros(4_999)));
        assert!(hedge.try_hedge_at(&mut call, t0 + Duration::from_millis(5)));
        assert_eq!(call.next_hedge_at(), Some(t0 + Duration::from_millis(10)));
        assert!(!hedge.try_hedge_at(&mut call, t0 + Duration::from_millis(9)));
        assert!(hedge.try_hedge_at(&mut call, t0 + Duration::from_millis(12)));
        assert_eq!((call.attempts(), call.hedges()), (3, 2));
        assert_eq!(call.next_hedge_at(), None);
        assert!(!hedge.try_hedge_at(&mut call, Instant::MAX));
        assert_eq!(call.attempts(), 3);
    }

    #[test]
    fn a_learned_delay_waits_for_min_samples_and_records_first_attempts() {
        let config = HedgeConfig::learned(500, 2)
            .unwrap()
            .with_min_samples(3)
            .unwrap();
        let hedge: Hedge<_> = Hedge::new(config, NoBudget).unwrap();
        let t0 = Instant::from_secs(1);
        for ms in [1, 2] {
            let call = hedge.start_at(t0);
            assert_eq!(call.next_hedge_at(), None, "too few samples");
            hedge.record_latency_at(&call, t0 + Duration::from_millis(ms));
        }
        assert_eq!(hedge.delay(), None);
        let call = hedge.start_at(t0);
        hedge.record_latency_at(&call, t0 + Duration::from_millis(3));
        // Rank 2 of 3: 2 ms, in [1920, 2048) µs.
        assert_eq!(hedge.delay(), Some(Duration::from_micros(2_048)));
        let call = hedge.start_at(t0);
        assert_eq!(call.delay(), Some(Duration::from_micros(2_048)));
        assert_eq!(call.started(), t0);
    }

    #[test]
    fn the_budget_bounds_hedges_and_a_refusal_ends_the_calls_hedging() {
        // 10% of calls, floor 0, over 10 s.
        let budget =
            RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 0).unwrap();
        let config = HedgeConfig::fixed(Duration::from_millis(1), 4).unwrap();
        let hedge = Hedge::<_, 8>::new(config, budget).unwrap();
        let now = Instant::from_secs(100);
        let mut hedged = 0;
        for _ in 0..100 {
            let mut call = hedge.start_at(now);
            // Every call is slow: a hedge is due for all of them.
            let due = now + Duration::from_secs(1);
            while hedge.try_hedge_at(&mut call, due) {
                hedged += 1;
            }
            assert_eq!(call.next_hedge_at(), None);
        }
        // 100 calls: 10 hedges, however slow the dependency.
        assert_eq!(hedged, 10);

        // A token budget refills on successes.
        let tokens = TokenBudget::new(4, Ratio::ONE).unwrap();
        let hedge = Hedge::<_, 8>::new(config, tokens).unwrap();
        let mut call = hedge.start_at(now);
        let late = now + Duration::from_secs(1);
        assert!(hedge.try_hedge_at(&mut call, late)); // 3 tokens left
        assert!(!hedge.try_hedge_at(&mut call, late)); // 2: not above half
        hedge.record_success_at(late);
        hedge.record_success_at(late);
        let mut call = hedge.start_at(now);
        assert!(hedge.try_hedge_at(&mut call, late));
    }
}
