//! [`FlakyDownstream`]: the deliberately unreliable service the patterns protect. It is a
//! healthy in-process stand-in for a remote dependency, made slow and flaky by stanchion's
//! fault injection ([`stanchion_std::fault`]): a latency injected into every call and an
//! error into a share of them, both changed at run time by the admin route, which can
//! also switch the injection off (the downstream then answers at once, every time).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stanchion::fault::{Fault, FaultInjector, Share};
use stanchion_std::fault::FaultInjection;

/// The downstream: each call waits the injected latency, then fails if the failure
/// injection picks it (drawn from a seeded generator), and otherwise answers.
#[derive(Debug)]
pub struct FlakyDownstream {
    /// `Fault::Latency` into every call.
    latency: FaultInjection<String, DownstreamError>,
    /// `Fault::Error` into `failure_rate` percent of calls.
    failures: FaultInjection<String, DownstreamError>,
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

/// `percent` as a share, clamped to 100.
fn share(percent: u32) -> Share {
    Share::percent(percent.min(100)).unwrap_or(Share::ALL)
}

impl FlakyDownstream {
    /// A downstream failing `failure_rate` percent of calls (clamped to 100) after
    /// `latency` each, its failures drawn from `seed`; the injection switched on.
    pub fn new(failure_rate: u32, latency: Duration, seed: u64) -> FlakyDownstream {
        FlakyDownstream {
            latency: FaultInjection::new(
                FaultInjector::new(Share::ALL),
                Fault::Latency(latency),
                // Every call is picked, whatever the draw.
                fastrand::Rng::with_seed(seed),
            ),
            failures: FaultInjection::new(
                FaultInjector::new(share(failure_rate)),
                Fault::Error(DownstreamError),
                fastrand::Rng::with_seed(seed),
            ),
            calls: AtomicU64::new(0),
        }
    }

    /// Percentage of calls that fail while the injection is on.
    pub fn failure_rate(&self) -> u32 {
        self.failures.injector().share().as_per_million() / 10_000
    }

    /// Sets the percentage of calls that fail (clamped to 100).
    pub fn set_failure_rate(&self, percent: u32) {
        self.failures.injector().set_share(share(percent));
    }

    /// The latency of each call while the injection is on.
    pub fn latency(&self) -> Duration {
        self.latency.fault().delay()
    }

    /// Sets the latency of each call (a wait past tokio's far future never ends).
    pub fn set_latency(&self, latency: Duration) {
        self.latency.set_fault(Fault::Latency(latency));
    }

    /// Whether the injection (latency and failures) is on.
    pub fn faults_enabled(&self) -> bool {
        self.failures.injector().is_enabled()
    }

    /// Switches the injection of latency and failures on or off, for every call that
    /// starts after; the settings are kept for when it is back on.
    pub fn set_faults_enabled(&self, on: bool) {
        self.failures.injector().set_enabled(on);
        self.latency.injector().set_enabled(on);
    }

    /// Calls started so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// One call: the injected latency, then an injected failure or a small body.
    pub async fn call(&self) -> Result<String, DownstreamError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        self.latency
            .call(|| {
                self.failures
                    .call(|| async move { Ok(format!("downstream answer #{n}\n")) })
            })
            .await
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
        // Seed 1's draws, one per call (21 taken before these): 509 of 1000 at 50%.
        assert_eq!(failed, 509);
        assert_eq!(d.calls(), 1021);
    }

    #[tokio::test(start_paused = true)]
    async fn switched_off_it_answers_at_once_every_time_and_keeps_its_settings() {
        let d = FlakyDownstream::new(100, Duration::from_secs(2), 1);
        let start = tokio::time::Instant::now();
        assert_eq!(d.call().await, Err(DownstreamError));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        d.set_faults_enabled(false);
        assert!(!d.faults_enabled());
        for _ in 0..10 {
            assert!(d.call().await.is_ok());
        }
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "no latency while off"
        );
        assert_eq!(
            (d.failure_rate(), d.latency()),
            (100, Duration::from_secs(2))
        );
        d.set_faults_enabled(true);
        assert_eq!(d.call().await, Err(DownstreamError));
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }
}
