//! [`Aimd`]: additive increase, multiplicative decrease of a concurrency limit.
//!
//! The limit grows by one for every `limit` successful samples (about one per round
//! trip, while the caller actually uses at least half the limit), and shrinks by a
//! ratio when a call is dropped or takes longer than a timeout. At most one decrease
//! happens per congestion episode: a drop of a call that started before the last
//! decrease's triggering call finished is the same overload, already answered.
//!
//! # When to choose it
//!
//! When the dependency signals overload by failing or timing out, and a latency bound
//! (`timeout`) is known. It is simple and robust, but oscillates (a sawtooth between
//! `backoff` times the breaking point and the breaking point); use [`Vegas`](super::Vegas)
//! to react to queueing latency before anything fails.
//!
//! # Example
//!
//! ```
//! use core::time::Duration;
//! use stanchion::Instant;
//! use stanchion::adaptive::{Aimd, AimdConfig, LimitAlgorithm, Sample};
//!
//! let mut aimd = Aimd::new(AimdConfig {
//!     initial_limit: 10,
//!     min_limit: 1,
//!     max_limit: 100,
//!     backoff_per_1024: 512, // halve on a drop
//!     timeout: Duration::from_millis(100),
//! })
//! .unwrap();
//! let ok = |t: u64| Sample {
//!     started_at: Instant::from_millis(t),
//!     rtt: Duration::from_millis(20),
//!     in_flight: 10,
//!     dropped: false,
//! };
//! for t in 0..10 {
//!     aimd.on_sample(ok(t));
//! }
//! assert_eq!(aimd.limit(), 11); // +1 after `limit` good samples
//! let slow = Sample { rtt: Duration::from_millis(150), ..ok(20) };
//! assert_eq!(aimd.on_sample(slow), 5); // timed out: 11 * 512 / 1024, rounded down
//! ```
//!
//! # Cost
//!
//! 48 bytes of state (configuration included); `on_sample` is a few comparisons and at
//! most one 64-bit multiply and divide. Shared through the
//! [`AdaptiveBulkhead`](super::AdaptiveBulkhead)'s critical section.
//!
//! # Origin
//!
//! Jacobson's congestion avoidance for TCP (1988); Netflix `concurrency-limits`'
//! `AIMDLimit`, which it follows for the backoff ratio, the timeout-as-drop rule and the
//! "at least half used" guard against growing while app-limited. Deviations: the
//! increase is one per `limit` samples (TCP's one per window) rather than one per
//! sample, and only one decrease per congestion episode (TCP's fast recovery), because
//! every call in flight during an overload times out and would otherwise shrink the
//! limit once each.

use core::time::Duration;

use super::{LimitAlgorithm, Sample, check_limits, clamp_u32};
use crate::error::ConfigError;
use crate::time::Instant;

/// Configuration of [`Aimd`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AimdConfig {
    /// The limit to start from: in `min_limit..=max_limit`.
    pub initial_limit: u32,
    /// The limit never goes below this: at least 1.
    pub min_limit: u32,
    /// The limit never goes above this: at least `min_limit`.
    pub max_limit: u32,
    /// The ratio the limit is multiplied by on a drop, in parts per 1024: in
    /// `512..=1023` (0.5 up to just under 1; 922 is about 0.9).
    pub backoff_per_1024: u32,
    /// A call that takes longer than this counts as dropped: more than zero.
    pub timeout: Duration,
}

impl core::fmt::Debug for AimdConfig {
    /// As derived, with the timeout printed by core's small printer.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AimdConfig")
            .field("initial_limit", &self.initial_limit)
            .field("min_limit", &self.min_limit)
            .field("max_limit", &self.max_limit)
            .field("backoff_per_1024", &self.backoff_per_1024)
            .field("timeout", &crate::time::ShowDuration(self.timeout))
            .finish()
    }
}

impl AimdConfig {
    /// Netflix's defaults but a minimum of 1: start at 20, at most 200, multiply by
    /// 922/1024 (about 0.9) on a drop, time out after 5 s.
    pub const DEFAULT: AimdConfig = AimdConfig {
        initial_limit: 20,
        min_limit: 1,
        max_limit: 200,
        backoff_per_1024: 922,
        timeout: Duration::from_secs(5),
    };
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig::DEFAULT
    }
}

/// Additive-increase, multiplicative-decrease limit. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Aimd {
    config: AimdConfig,
    limit: u32,
    /// Good samples since the last change of the limit.
    good_samples: u32,
    /// Drops of calls that started before this instant belong to the episode already
    /// answered by the last decrease.
    recovery_until: Instant,
}

impl Aimd {
    /// An AIMD limit with `config`.
    ///
    /// # Errors
    ///
    /// `min_limit` of 0, `min_limit > max_limit`, `initial_limit` outside
    /// `min_limit..=max_limit`, `backoff_per_1024` outside `512..=1023`, a zero
    /// `timeout`.
    pub const fn new(config: AimdConfig) -> Result<Aimd, ConfigError> {
        if let Err(e) = check_limits(config.initial_limit, config.min_limit, config.max_limit) {
            return Err(e);
        }
        if config.backoff_per_1024 < 512 || config.backoff_per_1024 > 1023 {
            return Err(ConfigError::new(
                "backoff_per_1024",
                "in 512..=1023 (parts per 1024)",
            ));
        }
        if config.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "more than zero"));
        }
        Ok(Aimd {
            config,
            limit: config.initial_limit,
            good_samples: 0,
            recovery_until: Instant::ZERO,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &AimdConfig {
        &self.config
    }
}

impl LimitAlgorithm for Aimd {
    #[inline]
    fn limit(&self) -> u32 {
        self.limit
    }

    fn on_sample(&mut self, sample: Sample) -> u32 {
        let dropped = sample.dropped || sample.rtt > self.config.timeout;
        if dropped {
            if sample.started_at < self.recovery_until {
                return self.limit;
            }
            let shrunk =
                (self.limit as u64).saturating_mul(self.config.backoff_per_1024 as u64) / 1024;
            let shrunk = u32::try_from(shrunk).unwrap_or(u32::MAX);
            self.limit = clamp_u32(shrunk, self.config.min_limit, self.config.max_limit);
            self.good_samples = 0;
            self.recovery_until = sample.started_at.saturating_add(sample.rtt);
        } else if sample.in_flight.saturating_mul(2) >= self.limit {
            self.good_samples = self.good_samples.saturating_add(1);
            if self.good_samples >= self.limit {
                self.good_samples = 0;
                self.limit = clamp_u32(
                    self.limit.saturating_add(1),
                    self.config.min_limit,
                    self.config.max_limit,
                );
            }
        }
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AimdConfig {
        AimdConfig {
            initial_limit: 10,
            min_limit: 2,
            max_limit: 12,
            backoff_per_1024: 922,
            timeout: Duration::from_millis(100),
        }
    }

    fn sample(start_ms: u64, rtt_ms: u64, in_flight: u32, dropped: bool) -> Sample {
        Sample {
            started_at: Instant::from_millis(start_ms),
            rtt: Duration::from_millis(rtt_ms),
            in_flight,
            dropped,
        }
    }

    #[test]
    fn bad_configuration_is_rejected() {
        let bad = |c: AimdConfig| Aimd::new(c).unwrap_err().field();
        assert_eq!(
            bad(AimdConfig {
                min_limit: 0,
                ..config()
            }),
            "min_limit"
        );
        assert_eq!(
            Aimd::new(AimdConfig {
                min_limit: 13,
                ..config()
            })
            .unwrap_err(),
            ConfigError::new("min_limit", "at most max_limit")
        );
        assert_eq!(
            bad(AimdConfig {
                initial_limit: 1,
                ..config()
            }),
            "initial_limit"
        );
        assert_eq!(
            bad(AimdConfig {
                initial_limit: 13,
                ..config()
            }),
            "initial_limit"
        );
        for ratio in [0, 511, 1024, u32::MAX] {
            assert_eq!(
                bad(AimdConfig {
                    backoff_per_1024: ratio,
                    ..config()
                }),
                "backoff_per_1024"
            );
        }
        assert_eq!(
            bad(AimdConfig {
                timeout: Duration::ZERO,
                ..config()
            }),
            "timeout"
        );
        assert!(Aimd::new(AimdConfig::DEFAULT).is_ok());
        const _: () = assert!(Aimd::new(AimdConfig::DEFAULT).is_ok());
    }

    #[test]
    fn grows_by_one_per_limit_good_samples_up_to_max() {
        let mut a = Aimd::new(config()).unwrap();
        for i in 0..9 {
            assert_eq!(a.on_sample(sample(i, 10, 10, false)), 10);
        }
        assert_eq!(a.on_sample(sample(9, 10, 10, false)), 11);
        for i in 0..10 {
            assert_eq!(a.on_sample(sample(10 + i, 10, 11, false)), 11);
        }
        assert_eq!(a.on_sample(sample(30, 10, 11, false)), 12);
        for i in 0..100 {
            assert_eq!(a.on_sample(sample(40 + i, 10, 12, false)), 12);
        }
    }

    #[test]
    fn does_not_grow_while_app_limited() {
        let mut a = Aimd::new(config()).unwrap();
        for i in 0..100 {
            // 4 in flight of a limit of 10: less than half used.
            assert_eq!(a.on_sample(sample(i, 10, 4, false)), 10);
        }
        // 5 of 10 is half: growth resumes.
        for i in 0..10 {
            a.on_sample(sample(200 + i, 10, 5, false));
        }
        assert_eq!(a.limit(), 11);
    }

    #[test]
    fn drops_and_timeouts_shrink_once_per_episode() {
        let mut a = Aimd::new(AimdConfig {
            max_limit: 100,
            initial_limit: 100,
            ..config()
        })
        .unwrap();
        // A timeout (rtt > 100 ms, strictly) counts as a drop: 100 * 922 / 1024 = 90.
        assert_eq!(a.on_sample(sample(0, 100, 100, false)), 100);
        assert_eq!(a.on_sample(sample(0, 101, 100, false)), 90);
        // Calls that started before that call finished (t = 101 ms) are the same episode.
        assert_eq!(a.on_sample(sample(50, 200, 100, true)), 90);
        assert_eq!(a.on_sample(sample(100, 200, 100, false)), 90);
        // A call started at or after it is a new episode: 90 * 922 / 1024 = 81.
        assert_eq!(a.on_sample(sample(101, 5, 90, true)), 81);
        assert_eq!(a.on_sample(sample(106, 5, 90, true)), 72);
    }

    #[test]
    fn never_leaves_the_bounds_on_extreme_samples() {
        let mut a = Aimd::new(config()).unwrap();
        // A call that ends at the end of time: one decrease, and every later drop
        // belongs to the same episode (it started before that call ended).
        for i in 0..50 {
            a.on_sample(Sample {
                started_at: Instant::from_secs(i),
                rtt: Duration::MAX,
                in_flight: u32::MAX,
                dropped: true,
            });
        }
        assert_eq!(a.limit(), 9);
        let mut a = Aimd::new(config()).unwrap();
        for i in 0..50 {
            a.on_sample(sample(i * 10, 1, u32::MAX, true));
        }
        assert_eq!(a.limit(), 2);
        // A sample at the end of time: recovery_until saturates, nothing panics.
        a.on_sample(Sample {
            started_at: Instant::MAX,
            rtt: Duration::MAX,
            in_flight: 0,
            dropped: true,
        });
        assert_eq!(a.limit(), 2);
        let mut b = Aimd::new(AimdConfig {
            initial_limit: u32::MAX,
            min_limit: 1,
            max_limit: u32::MAX,
            backoff_per_1024: 1023,
            timeout: Duration::MAX,
        })
        .unwrap();
        assert_eq!(b.on_sample(sample(0, 1, u32::MAX, true)), 4_290_772_991);
        assert_eq!(b.on_sample(sample(1, 1, u32::MAX, false)), 4_290_772_991);
    }
}
