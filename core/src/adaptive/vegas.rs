//! [`Vegas`]: a delay-based concurrency limit that estimates the queue at the dependency
//! from round-trip times.
//!
//! It remembers the smallest round-trip time seen (`rtt_noload`, the latency of a call
//! that did not queue) and, for each sample, estimates how many of the `in_flight` calls
//! the sampled call ran with were queueing: `queue = ceil(in_flight * (1 - rtt_noload /
//! rtt))`. With `l = max(1, floor(log10(limit)))`:
//!
//! | estimate | new limit |
//! |---|---|
//! | call dropped | `limit - l` |
//! | `queue <= l` (hardly any queue) | `limit + beta_factor * l` |
//! | `queue < alpha_factor * l` | `limit + l` |
//! | `queue > beta_factor * l` | `limit - l` |
//! | otherwise | unchanged |
//!
//! then clamped to `min_limit..=max_limit` and smoothed: the estimate moves by
//! `smoothing_per_1024 / 1024` of the way to the new limit. Fewer than half the limit in
//! flight (app-limited) leaves it unchanged. After a change, samples of calls admitted
//! before the call that caused it ended are not acted on (they measured the old limit),
//! so the limit moves at most once per round trip.
//!
//! Every `probe_multiplier * limit` samples it re-measures the no-load latency, so that
//! a lasting change in the dependency's base latency is learnt rather than read as a
//! queue: it halves the limit (the *probe*), forgets `rtt_noload`, takes the smallest
//! round-trip time of the next `limit / 2` calls admitted under the halved limit (which
//! did not queue), then restores the limit. A probe lasts about two round trips.
//!
//! # When to choose it
//!
//! When overload shows as queueing latency before it shows as failures, which is true of
//! most servers with a fixed pool of workers: Vegas settles a few calls above the
//! dependency's real concurrency (by `alpha..beta` queued calls) instead of oscillating
//! up to its breaking point like [`Aimd`](super::Aimd). It needs latencies that are
//! comparable from call to call: calls whose cost varies a hundredfold look like
//! queueing.
//!
//! # Example
//!
//! ```
//! use core::time::Duration;
//! use stanchion::Instant;
//! use stanchion::adaptive::{LimitAlgorithm, Sample, Vegas, VegasConfig};
//!
//! let mut vegas = Vegas::new(VegasConfig { initial_limit: 20, ..VegasConfig::DEFAULT }).unwrap();
//! let call = |started_ms: u64, rtt_ms: u64| Sample {
//!     started_at: Instant::from_millis(started_ms),
//!     rtt: Duration::from_millis(rtt_ms),
//!     in_flight: 20,
//!     dropped: false,
//! };
//! vegas.on_sample(call(0, 10)); // the first sample sets the no-load latency
//! assert_eq!(vegas.on_sample(call(1, 10)), 26); // no queue: + 6 * log10(20)
//! // A call admitted before that change's round trip ended (at 11 ms) is not acted on.
//! assert_eq!(vegas.on_sample(call(5, 20)), 26);
//! // Twice the no-load latency: half of its 20 calls were queueing, 10 > beta = 6.
//! assert_eq!(vegas.on_sample(call(11, 20)), 25);
//! ```
//!
//! # Cost
//!
//! 80 bytes of state (configuration included); `on_sample` is a few comparisons,
//! one 128-bit multiply and divide for the queue estimate and, when smoothing is on,
//! two 64-bit multiplies. Shared through the [`AdaptiveBulkhead`](super::AdaptiveBulkhead)'s
//! critical section.
//!
//! # Origin
//!
//! Brakmo and Peterson, "TCP Vegas: End to End Congestion Avoidance on a Global
//! Internet" (1995); the per-sample rules, the log10-scaled thresholds and the probe
//! follow Netflix `concurrency-limits`' `VegasLimit`. Deviations: integer arithmetic
//! (the limit is kept in 1/1024ths so smoothing does not stall); one change per round
//! trip, as TCP Vegas does, and the queue estimated from the sample's own `in_flight`
//! rather than the current limit (Netflix acts on every sample, so the many samples of
//! one overloaded round trip each shrink the limit and it swings from far above the
//! capacity to far below; Netflix smooths this with its `WindowedLimit`); the probe drains the
//! queue before measuring, like BBR's `ProbeRTT` (Netflix's probe takes the current
//! sample as the new no-load latency, which under sustained saturation includes the
//! queue, so each probe ratchets the limit up); and the probe interval has no random
//! jitter (a deterministic interval keeps simulations reproducible; give instances that
//! must not probe in step different multipliers).

use super::{LimitAlgorithm, Sample, check_limits, clamp_u32};
use crate::error::ConfigError;
use crate::time::{Instant, duration_to_nanos_saturating};

/// Fixed-point scale of the limit estimate: 1024ths.
const SCALE: u64 = 1024;

/// Configuration of [`Vegas`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VegasConfig {
    /// The limit to start from: in `min_limit..=max_limit`.
    pub initial_limit: u32,
    /// The limit never goes below this: at least 1.
    pub min_limit: u32,
    /// The limit never goes above this: at least `min_limit`.
    pub max_limit: u32,
    /// Grow while fewer than `alpha_factor * log10(limit)` calls queue: at least 1.
    pub alpha_factor: u32,
    /// Shrink while more than `beta_factor * log10(limit)` calls queue: more than
    /// `alpha_factor`.
    pub beta_factor: u32,
    /// How far the limit moves towards each new value, in parts per 1024: in
    /// `1..=1024` (1024: all the way, no smoothing).
    pub smoothing_per_1024: u32,
    /// Re-measure the no-load latency every `probe_multiplier * limit` samples (about
    /// that many round trips), at the cost of about two round trips at half the limit:
    /// 0 never re-measures.
    pub probe_multiplier: u32,
}

impl VegasConfig {
    /// Netflix's defaults (start at 20, at most 1000, alpha 3, beta 6, no smoothing),
    /// but probing every 100 * limit samples rather than 30, because this probe halves
    /// the limit for its duration.
    pub const DEFAULT: VegasConfig = VegasConfig {
        initial_limit: 20,
        min_limit: 1,
        max_limit: 1000,
        alpha_factor: 3,
        beta_factor: 6,
        smoothing_per_1024: 1024,
        probe_multiplier: 100,
    };
}

impl Default for VegasConfig {
    fn default() -> Self {
        VegasConfig::DEFAULT
    }
}

/// TCP-Vegas-style delay-based limit. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Vegas {
    config: VegasConfig,
    /// The limit in 1024ths.
    estimate: u64,
    /// The smallest round-trip time seen since the last probe, in nanoseconds; 0 before
    /// the first sample.
    rtt_noload: u64,
    /// Samples since the last probe.
    since_probe: u64,
    /// While probing: samples still to take from calls admitted under the halved limit.
    probe_remaining: u32,
    /// While probing: the halved limit, and the estimate to restore afterwards.
    probe_limit: u32,
    saved_estimate: u64,
    /// Samples of calls admitted before this instant measured a limit that has since
    /// changed: they update `rtt_noload` but not the limit.
    hold_until: Instant,
}

impl Vegas {
    /// A Vegas limit with `config`.
    ///
    /// # Errors
    ///
    /// `min_limit` of 0, `min_limit > max_limit`, `initial_limit` outside
    /// `min_limit..=max_limit`, `alpha_factor` of 0, `beta_factor <= alpha_factor`,
    /// `smoothing_per_1024` outside `1..=1024`.
    pub const fn new(config: VegasConfig) -> Result<Vegas, ConfigError> {
        if let Err(e) = check_limits(config.initial_limit, config.min_limit, config.max_limit) {
            return Err(e);
        }
        if config.alpha_factor == 0 {
            return Err(ConfigError::new("alpha_factor", "at least 1"));
        }
        if config.beta_factor <= config.alpha_factor {
            return Err(ConfigError::new("beta_factor", "more than alpha_factor"));
        }
        if config.smoothing_per_1024 == 0 || config.smoothing_per_1024 > 1024 {
            return Err(ConfigError::new(
                "smoothing_per_1024",
                "in 1..=1024 (parts per 1024)",
            ));
        }
        Ok(Vegas {
            config,
            estimate: (config.initial_limit as u64).saturating_mul(SCALE),
            rtt_noload: 0,
            since_probe: 0,
            probe_remaining: 0,
            probe_limit: 0,
            saved_estimate: 0,
            hold_until: Instant::ZERO,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &VegasConfig {
        &self.config
    }

    /// The no-load round-trip time learnt so far, in nanoseconds (0 before any sample).
    pub const fn rtt_noload_nanos(&self) -> u64 {
        self.rtt_noload
    }

    /// Whether a probe of the no-load latency is under way (the limit is halved).
    pub const fn is_probing(&self) -> bool {
        self.probe_remaining != 0
    }

    /// One sample during a probe: only calls admitted under the halved limit count.
    fn probe_sample(&mut self, sample: &Sample, rtt: u64) -> u32 {
        if sample.in_flight <= self.probe_limit {
            self.rtt_noload = if self.rtt_noload == 0 {
                rtt
            } else {
                self.rtt_noload.min(rtt)
            };
            self.probe_remaining = self.probe_remaining.saturating_sub(1);
            if self.probe_remaining == 0 {
                self.estimate = self.saved_estimate;
                // Calls admitted during the probe saw a short queue: not a reason to grow.
                self.hold_until = sample.started_at.saturating_add(sample.rtt);
            }
        }
        self.limit()
    }

    fn target(&self, limit: u32, rtt: u64, dropped: bool, in_flight: u32) -> Option<u32> {
        let l = match limit.checked_ilog10() {
            Some(0) | None => 1,
            Some(n) => n,
        };
        if dropped {
            return Some(limit.saturating_sub(l));
        }
        if in_flight.saturating_mul(2) < limit {
            return None;
        }
        // queue = ceil(in_flight * (rtt - noload) / rtt); rtt >= noload > 0 here.
        let excess = rtt.saturating_sub(self.rtt_noload) as u128;
        let queue = (in_flight as u128)
            .saturating_mul(excess)
            .div_ceil((rtt as u128).max(1));
        let alpha = self.config.alpha_factor.saturating_mul(l) as u128;
        let beta = self.config.beta_factor.saturating_mul(l) as u128;
        if queue <= l as u128 {
            Some(limit.saturating_add(self.config.beta_factor.saturating_mul(l)))
        } else if queue < alpha {
            Some(limit.saturating_add(l))
        } else if queue > beta {
            Some(limit.saturating_sub(l))
        } else {
            None
        }
    }
}

impl LimitAlgorithm for Vegas {
    #[inline]
    fn limit(&self) -> u32 {
        let whole = u32::try_from(self.estimate / SCALE).unwrap_or(u32::MAX);
        clamp_u32(whole, self.config.min_limit, self.config.max_limit)
    }

    fn on_sample(&mut self, sample: Sample) -> u32 {
        let rtt = duration_to_nanos_saturating(sample.rtt).max(1);
        if self.is_probing() {
            return self.probe_sample(&sample, rtt);
        }
        let limit = self.limit();
        self.since_probe = self.since_probe.saturating_add(1);
        let probe_every = (self.config.probe_multiplier as u64).saturating_mul(limit as u64);
        if probe_every != 0 && self.since_probe >= probe_every {
            self.since_probe = 0;
            self.saved_estimate = self.estimate;
            self.probe_limit = (limit / 2).max(self.config.min_limit);
            self.probe_remaining = self.probe_limit.max(1);
            self.estimate = (self.probe_limit as u64).saturating_mul(SCALE);
            self.rtt_noload = 0;
            return self.limit();
        }
        if self.rtt_noload == 0 || rtt < self.rtt_noload {
            self.rtt_noload = rtt;
            return limit;
        }
        if sample.started_at < self.hold_until {
            // Admitted before the last change finished a round trip: it measured the
            // old limit, whose change is already made.
            return limit;
        }
        let Some(target) = self.target(limit, rtt, sample.dropped, sample.in_flight) else {
            return limit;
        };
        let target = clamp_u32(target, self.config.min_limit, self.config.max_limit) as u64;
        let s = self.config.smoothing_per_1024 as u64;
        // estimate' = estimate * (1 - s) + target * s, in 1024ths; both terms fit a u64
        // (estimate <= u32::MAX * 1024, s <= 1024).
        self.estimate = self
            .estimate
            .saturating_mul(SCALE.saturating_sub(s))
            .saturating_add(target.saturating_mul(SCALE).saturating_mul(s))
            / SCALE;
        let new_limit = self.limit();
        if new_limit != limit {
            self.hold_until = sample.started_at.saturating_add(sample.rtt);
        }
        new_limit
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::*;

    fn config() -> VegasConfig {
        VegasConfig {
            initial_limit: 100,
            min_limit: 1,
            max_limit: 200,
            probe_multiplier: 0,
            ..VegasConfig::DEFAULT
        }
    }

    /// A sample of a call started one second after the previous one (in any test), so
    /// that every sample comes after the previous change's round trip.
    fn sample(rtt_us: u64, in_flight: u32, dropped: bool) -> Sample {
        extern crate std;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT_START: AtomicU64 = AtomicU64::new(1);
        Sample {
            started_at: Instant::from_secs(NEXT_START.fetch_add(1, Ordering::Relaxed)),
            rtt: Duration::from_micros(rtt_us),
            in_flight,
            dropped,
        }
    }

    #[test]
    fn bad_configuration_is_rejected() {
        let bad = |c: VegasConfig| Vegas::new(c).unwrap_err();
        assert_eq!(
            bad(VegasConfig {
                min_limit: 0,
                ..config()
            })
            .field(),
            "min_limit"
        );
        assert_eq!(
            bad(VegasConfig {
                min_limit: 201,
                ..config()
            })
            .field(),
            "min_limit"
        );
        assert_eq!(
            bad(VegasConfig {
                initial_limit: 201,
                ..config()
            })
            .field(),
            "initial_limit"
        );
        assert_eq!(
            bad(VegasConfig {
                alpha_factor: 0,
                ..config()
            })
            .field(),
            "alpha_factor"
        );
        assert_eq!(
            bad(VegasConfig {
                beta_factor: 3,
                ..config()
            }),
            ConfigError::new("beta_factor", "more than alpha_factor")
        );
        for s in [0, 1025] {
            assert_eq!(
                bad(VegasConfig {
                    smoothing_per_1024: s,
                    ..config()
                })
                .field(),
                "smoothing_per_1024"
            );
        }
        const _: () = assert!(Vegas::new(VegasConfig::DEFAULT).is_ok());
    }

    #[test]
    fn follows_the_table() {
        let mut v = Vegas::new(config()).unwrap();
        // First sample: learns rtt_noload = 1000 us, limit unchanged.
        assert_eq!(v.on_sample(sample(1000, 100, false)), 100);
        assert_eq!(v.rtt_noload_nanos(), 1_000_000);
        // l = log10(100) = 2. No queue (0 <= 2): + 6 * 2.
        assert_eq!(v.on_sample(sample(1000, 100, false)), 112);
        // queue = ceil(112 * 30 / 1030) = 4: in (2, 6): + 2.
        assert_eq!(v.on_sample(sample(1030, 112, false)), 114);
        // queue = ceil(114 * 80 / 1080) = 9: in [6, 12]: unchanged.
        assert_eq!(v.on_sample(sample(1080, 114, false)), 114);
        // queue = ceil(114 * 200 / 1200) = 19 > 12: - 2.
        assert_eq!(v.on_sample(sample(1200, 114, false)), 112);
        // A drop: - 2, whatever the latency.
        assert_eq!(v.on_sample(sample(1000, 112, true)), 110);
        // App-limited (54 * 2 < 110): unchanged, even with no queue.
        assert_eq!(v.on_sample(sample(1000, 54, false)), 110);
        // A new minimum latency is learnt without changing the limit.
        assert_eq!(v.on_sample(sample(900, 110, false)), 110);
        assert_eq!(v.rtt_noload_nanos(), 900_000);
    }

    #[test]
    fn the_limit_moves_at_most_once_per_round_trip() {
        let mut v = Vegas::new(config()).unwrap();
        let at = |start_us: u64, rtt_us: u64, dropped: bool| Sample {
            started_at: Instant::from_micros(start_us),
            rtt: Duration::from_micros(rtt_us),
            in_flight: 100,
            dropped,
        };
        v.on_sample(at(0, 1000, false));
        // A drop of a call admitted at 1 ms that took 2 ms: - 2, and a hold until 3 ms.
        assert_eq!(v.on_sample(at(1000, 2000, true)), 98);
        // Calls admitted before 3 ms: neither drops nor queues move the limit.
        assert_eq!(v.on_sample(at(2999, 1000, true)), 98);
        assert_eq!(v.on_sample(at(1500, 5000, false)), 98);
        // They still teach the no-load latency.
        assert_eq!(v.on_sample(at(2000, 800, false)), 98);
        assert_eq!(v.rtt_noload_nanos(), 800_000);
        // A call admitted at 3 ms is acted on: no queue, + 6 * log10(98).
        assert_eq!(v.on_sample(at(3000, 800, false)), 104);
    }

    #[test]
    fn smoothing_moves_part_of_the_way() {
        let mut v = Vegas::new(VegasConfig {
            smoothing_per_1024: 256,
            ..config()
        })
        .unwrap();
        v.on_sample(sample(1000, 100, false));
        // Target 112, a quarter of the way: 103.
        assert_eq!(v.on_sample(sample(1000, 100, false)), 103);
        // Target 103 + 12 = 115, a quarter of the way from 103.0: 106.0.
        assert_eq!(v.on_sample(sample(1000, 103, false)), 106);
    }

    #[test]
    fn probes_halve_the_limit_and_remeasure_the_no_load_latency() {
        let mut v = Vegas::new(VegasConfig {
            initial_limit: 10,
            probe_multiplier: 2,
            ..config()
        })
        .unwrap();
        // One call in flight: app-limited, so the limit (and the probe interval, 2 * 10
        // samples) stays put while the latency triples.
        v.on_sample(sample(1000, 1, false));
        for _ in 0..18 {
            assert_eq!(v.on_sample(sample(3000, 1, false)), 10);
        }
        assert_eq!(v.rtt_noload_nanos(), 1_000_000);
        assert!(!v.is_probing());
        // The 20th sample starts a probe: the limit halves to 5.
        assert_eq!(v.on_sample(sample(3000, 10, false)), 5);
        assert!(v.is_probing());
        // Calls admitted before the probe (10 in flight) do not count, even if fast.
        assert_eq!(v.on_sample(sample(500, 10, false)), 5);
        // Five calls admitted under the halved limit: the smallest is the new base.
        for rtt in [3200, 3100, 3000, 3300] {
            assert_eq!(v.on_sample(sample(rtt, 5, false)), 5);
        }
        assert_eq!(v.on_sample(sample(3050, 4, false)), 10);
        assert!(!v.is_probing());
        assert_eq!(v.rtt_noload_nanos(), 3_000_000);
        // And 3 ms no longer reads as a queue: 0 queued, + 6 * 1.
        assert_eq!(v.on_sample(sample(3000, 10, false)), 16);
    }

    #[test]
    fn stays_in_bounds_on_extreme_samples() {
        let mut v = Vegas::new(VegasConfig {
            initial_limit: 5,
            min_limit: 3,
            max_limit: 10,
            ..config()
        })
        .unwrap();
        v.on_sample(sample(1, 5, false));
        for _ in 0..20 {
            v.on_sample(sample(1, u32::MAX, false));
        }
        assert_eq!(v.limit(), 10);
        for _ in 0..20 {
            v.on_sample(Sample {
                started_at: Instant::MAX,
                rtt: Duration::MAX,
                in_flight: u32::MAX,
                dropped: false,
            });
        }
        // Huge latency with huge concurrency: the limit shrinks to the minimum, no lower.
        assert_eq!(v.limit(), 3);
        let mut w = Vegas::new(VegasConfig {
            initial_limit: u32::MAX,
            min_limit: 1,
            max_limit: u32::MAX,
            ..config()
        })
        .unwrap();
        w.on_sample(sample(0, u32::MAX, false));
        assert_eq!(w.on_sample(sample(0, u32::MAX, false)), u32::MAX);
        assert_eq!(w.on_sample(sample(0, u32::MAX, true)), u32::MAX - 9);
    }
}
