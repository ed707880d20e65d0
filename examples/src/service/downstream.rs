//! [`FlakyDownstream`]: the deliberately unreliable service the patterns protect, with a
//! failure rate and a latency that the admin route changes at runtime.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// An in-process stand-in for a remote dependency: each call waits `latency`, then fails
/// with probability `failure_rate` percent (drawn from a seeded generator).
#[derive(Debug)]
pub struct FlakyDownstream {
    failure_rate: AtomicU32,
    latency_nanos: AtomicU64,
    rng: Mutex<fastrand::Rng>,
    calls: AtomicU64,
}

/// The downstream's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownstreamError;

impl fmt::Display for DownstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the downstream failed")
    }
}

impl std::error::Error for DownstreamError {}

impl FlakyDownstream {
    /// A downstream failing `failure_rate` percent of calls (clamped to 100) after
    /// `latency` each, its failures drawn from `seed`.
    pub fn new(failure_rate: u32, latency: Duration, seed: u64) -> FlakyDownstream {
        let d = FlakyDownstream {
            failure_rate: AtomicU32::new(0),
            latency_nanos: AtomicU64::new(0),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            calls: AtomicU64::new(0),
        };
        d.set_failure_rate(failure_rate);
        d.set_latency(latency);
        d
    }

    /// Percentage of calls that fail.
    pub fn failure_rate(&self) -> u32 {
        self.failure_rate.load(Ordering::Relaxed)
    }

    /// Sets the percentage of calls that fail (clamped to 100).
    pub fn set_failure_rate(&self, percent: u32) {
        self.failure_rate.store(percent.min(100), Ordering::Relaxed);
    }

    /// The latency of each call.
    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    /// Sets the latency of each call (saturating at about 584 years).
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Calls started so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// One call: waits the latency, then succeeds with a small body or fails.
    pub async fn call(&self) -> Result<String, DownstreamError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let latency = self.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let rate = self.failure_rate();
        // A poisoned lock only means another thread panicked mid-draw: the generator is
        // still usable.
        let draw = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .u32(0..100);
        if draw < rate {
            Err(DownstreamError)
        } else {
            Ok(format!("downstream answer #{n}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fails_at_the_set_rate_after_the_set_latency() {
        let d = FlakyDownstream::new(0, Duration::from_millis(30), 1);
        let start = tokio::time::Instant::now();
        assert_eq!(d.call().await.as_deref(), Ok("downstream answer #1\n"));
        assert_eq!(start.elapsed(), Duration::from_millis(30));
        d.set_failure_rate(250);
        assert_eq!(d.failure_rate(), 100);
        d.set_latency(Duration::ZERO);
        for _ in 0..20 {
            assert_eq!(d.call().await, Err(DownstreamError));
        }
        d.set_failure_rate(50);
        let failed = {
            let mut n = 0;
            for _ in 0..1000 {
                n += u32::from(d.call().await.is_err());
            }
            n
        };
        assert!(
            (400..=600).contains(&failed),
            "{failed} of 1000 failed at 50%"
        );
        assert_eq!(d.calls(), 1021);
    }
}
