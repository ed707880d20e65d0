//! [`FaultInjector`]: turns a configured share of calls into a [`Fault`] (an error the
//! caller chooses, added latency, or an answer the caller chooses), to test that the
//! patterns around a call, and the application above them, cope when the call misbehaves
//! (what Polly calls chaos strategies, and Netflix chaos engineering).
//!
//! The injector is the decision: for each call, whether it gets the fault. It holds a
//! [`Share`] (in parts per million) and an on/off switch, and draws one number per call
//! from the caller's seeded [`fastrand::Rng`] while it is on. The [`Fault`] says what an
//! injected call does; the adapters carry it out: over tokio,
//! `stanchion_std::fault::FaultInjection`, the tower `FaultInjectionLayer` and the
//! pipeline's fault position; in firmware, `stanchion_embassy::fault::call` and the
//! embassy pipeline's.
//!
//! - Seeded and reproducible: each call while the injector is on takes the next draw of
//!   the caller's generator (the value `rng.u64(0..1_000_000)` gives) and is injected when
//!   it falls below the share. The same seed injects into the same calls, in a test and
//!   in a replay; and with one seed, raising the share only adds calls to those already
//!   injected.
//! - Switched at run time: [`set_enabled`](FaultInjector::set_enabled) is one atomic
//!   store; once it is off, no call draws and none is injected. The share can change at
//!   run time too ([`set_share`](FaultInjector::set_share)), also one store.
//!
//! # When to choose it
//!
//! - To rehearse an outage before it happens: make a dependency fail 20% of calls, or
//!   answer a second late, in a staging service or a game day, and watch the retries,
//!   the breaker and the timeouts do their work (and the dashboards show it). Switch it
//!   off when the rehearsal ends, without a restart.
//! - To test resilience code deterministically: a seeded injector in front of a healthy
//!   fake makes a flaky dependency whose failures fall on the same calls every run.
//! - Not for production traffic you cannot afford to fail: an injected error is a real
//!   error for the caller. Start it switched off ([`FaultInjector::starting_off`]) where
//!   an operator turns it on.
//!
//! In a pipeline it is the innermost position, inside the per-attempt timeout
//! ([`Layer::FaultInjection`](crate::pipeline::Layer::FaultInjection)): an injected fault
//! looks to every other layer like the operation's own, so the breaker records it, the
//! retry may retry it, and injected latency counts against the attempt's timeout.
//!
//! # Example
//!
//! ```
//! use core::time::Duration;
//! use stanchion::fault::{Fault, FaultInjector, Share};
//!
//! // 10% of calls fail with the caller's error.
//! static FAULTS: FaultInjector = FaultInjector::new(stanchion::const_config!(Share::percent(10)));
//! let fault: Fault<u32, &str> = Fault::Error("injected");
//! let mut rng = fastrand::Rng::with_seed(7);
//! let mut call = |n: u32| {
//!     if FAULTS.inject(&mut rng) {
//!         if let Some(answer) = fault.answer() {
//!             return answer; // an error or an outcome: the call does not run
//!         }
//!         // (a `Fault::Latency` would wait `fault.delay()` here, then run the call)
//!     }
//!     Ok(n) // the real call
//! };
//! let results: Vec<_> = (0..20).map(&mut call).collect();
//! let failed: Vec<_> = (0..20).filter(|&i| results[i as usize].is_err()).collect();
//! assert_eq!(failed, [7, 11]); // the same two calls with this seed, every run
//!
//! FAULTS.set_enabled(false); // the switch: nothing is injected from here on
//! assert!((0..1000).all(|n| call(n) == Ok(n)));
//! ```
//!
//! # Sharing and cost
//!
//! Two atomic words (the switch and the share), each only loaded on a call and stored by
//! the switch: no read-modify-write, so it builds and is shared with interrupt handlers
//! on chips without compare-and-swap. A call while the injector is off is one load; on,
//! two loads and one draw (fastrand's, integer only). State: 8 bytes.
//!
//! Source: the chaos strategies of Polly v8 (fault, outcome, latency;
//! <https://www.pollydocs.org/chaos/>), after Simmy.

use core::fmt;
use core::time::Duration;

use crate::ConfigError;
use crate::retry::jitter::uniform;
use crate::sync::{AtomicBool, AtomicU32, Ordering};

/// Parts per million in a whole.
const MILLION: u32 = 1_000_000;

/// A share of calls, in parts per million (`0` to `1_000_000`): 1% is 10,000, one call in
/// a million is 1.
///
/// ```
/// use stanchion::fault::Share;
///
/// assert_eq!(Share::percent(5), Share::basis_points(500));
/// assert_eq!(Share::basis_points(1).unwrap().as_per_million(), 100);
/// assert_eq!(Share::per_million(1_000_001).unwrap_err().field(), "share");
/// assert_eq!(Share::per_million(12_345).unwrap().to_string(), "1.2345%");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Share(u32);

impl Share {
    /// No call.
    pub const NONE: Share = Share(0);
    /// Every call.
    pub const ALL: Share = Share(MILLION);

    /// `ppm` parts per million, at most 1,000,000.
    pub const fn per_million(ppm: u32) -> Result<Share, ConfigError> {
        if ppm > MILLION {
            return Err(ConfigError::new(
                "share",
                "0 to 1,000,000 parts per million",
            ));
        }
        Ok(Share(ppm))
    }

    /// `bp` basis points (hundredths of a percent), at most 10,000.
    pub const fn basis_points(bp: u32) -> Result<Share, ConfigError> {
        if bp > 10_000 {
            return Err(ConfigError::new("share", "0 to 10,000 basis points"));
        }
        Ok(Share(bp.saturating_mul(100)))
    }

    /// `percent` percent, at most 100.
    pub const fn percent(percent: u32) -> Result<Share, ConfigError> {
        if percent > 100 {
            return Err(ConfigError::new("share", "0 to 100 percent"));
        }
        Ok(Share(percent.saturating_mul(10_000)))
    }

    /// The share in parts per million.
    pub const fn as_per_million(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Share {
    /// As a percentage with up to four decimals: `10%`, `0.0001%`, `12.5%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, mut frac) = (self.0 / 10_000, self.0 % 10_000);
        write!(f, "{whole}")?;
        if frac != 0 {
            let mut digits: usize = 4;
            while frac % 10 == 0 {
                frac /= 10;
                digits = digits.saturating_sub(1);
            }
            write!(f, ".{frac:0digits$}")?;
        }
        f.write_str("%")
    }
}

/// What an injected call does instead of (or before) running.
///
/// `T` and `E` are the call's success and error types: the adapters answer an injected
/// call with a clone of the value given here.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Fault<T, E> {
    /// Fail with this error, without running the call.
    Error(E),
    /// Run the call after this much added latency (saturating, as every wait).
    Latency(Duration),
    /// Answer with this value, without running the call: a chosen outcome, such as an
    /// HTTP 503 response, or a stale or empty value.
    Outcome(T),
}

impl<T: Clone, E: Clone> Fault<T, E> {
    /// What an injected call returns without running: `Err` for [`Fault::Error`], `Ok`
    /// for [`Fault::Outcome`], `None` for [`Fault::Latency`] (the call runs, later).
    pub fn answer(&self) -> Option<Result<T, E>> {
        match self {
            Fault::Error(e) => Some(Err(e.clone())),
            Fault::Outcome(t) => Some(Ok(t.clone())),
            Fault::Latency(_) => None,
        }
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for Fault<T, E> {
    /// As derived, with the latency printed by core's small printer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Error(e) => f.debug_tuple("Error").field(e).finish(),
            Fault::Latency(d) => f
                .debug_tuple("Latency")
                .field(&crate::time::ShowDuration(*d))
                .finish(),
            Fault::Outcome(t) => f.debug_tuple("Outcome").field(t).finish(),
        }
    }
}

impl<T, E> Fault<T, E> {
    /// The latency an injected call waits before it runs: zero unless [`Fault::Latency`].
    pub const fn delay(&self) -> Duration {
        match self {
            Fault::Latency(d) => *d,
            _ => Duration::ZERO,
        }
    }

    /// The wait an injected call takes before it runs, if any: `None` for a fault that
    /// adds no latency (an error, an outcome, or a latency of zero), so that a runner
    /// takes no timer for it.
    pub const fn wait(&self) -> Option<Duration> {
        match self {
            Fault::Latency(d) if !d.is_zero() => Some(*d),
            _ => None,
        }
    }
}

/// Decides which calls get a fault: a [`Share`] of them, drawn from the caller's
/// generator, while it is switched on. See the [module docs](self).
#[derive(Debug)]
pub struct FaultInjector {
    on: AtomicBool,
    /// Parts per million.
    share: AtomicU32,
}

impl FaultInjector {
    crate::sync::const_fn_unless_loom! {
        /// An injector of `share` of calls, switched on.
        pub fn new(share: Share) -> FaultInjector {
            FaultInjector {
                on: AtomicBool::new(true),
                share: AtomicU32::new(share.0),
            }
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// An injector of `share` of calls, switched off until
        /// [`set_enabled(true)`](FaultInjector::set_enabled).
        pub fn starting_off(share: Share) -> FaultInjector {
            FaultInjector {
                on: AtomicBool::new(false),
                share: AtomicU32::new(share.0),
            }
        }
    }

    /// Whether this call gets the fault. While the injector is on, draws from `rng` what
    /// `rng.u64(0..1_000_000)` would (whatever the share, so the calls' draws do not
    /// depend on it) and injects when the draw falls below the share; off, draws nothing
    /// and injects nothing.
    pub fn inject(&self, rng: &mut fastrand::Rng) -> bool {
        if !self.on.load(Ordering::Relaxed) {
            return false;
        }
        let share = self.share.load(Ordering::Relaxed);
        uniform(rng, 0, u64::from(MILLION - 1)) < u64::from(share)
    }

    /// Switches injection on or off, for every call that starts after (one atomic store).
    pub fn set_enabled(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Whether injection is switched on.
    pub fn is_enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Changes the share of calls injected (one atomic store); the switch is unchanged.
    pub fn set_share(&self, share: Share) {
        self.share.store(share.0, Ordering::Relaxed);
    }

    /// The share of calls injected while switched on.
    pub fn share(&self) -> Share {
        // Only `Share`s are ever stored.
        Share(self.share.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    use super::*;

    /// The calls among the first `n` that `injector` injects into, drawing from `seed`.
    fn injected(injector: &FaultInjector, seed: u64, n: u32) -> Vec<u32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).filter(|_| injector.inject(&mut rng)).collect()
    }

    #[test]
    fn a_seed_injects_into_the_same_calls_every_run() {
        let ten = FaultInjector::new(Share::percent(10).unwrap());
        let calls = injected(&ten, 42, 50);
        assert_eq!(calls, [3, 25, 28, 36, 42]);
        assert_eq!(injected(&ten, 42, 50), calls);
        // The reference: fastrand's own draw over a million, below 100,000.
        let mut rng = fastrand::Rng::with_seed(42);
        let reference: Vec<u32> = (0..50)
            .filter(|_| rng.u64(0..1_000_000) < 100_000)
            .collect();
        assert_eq!(calls, reference);
        assert_ne!(injected(&ten, 43, 50), calls);
        // One draw per call while on, whatever the share: a larger share only adds calls.
        let twenty = FaultInjector::new(Share::percent(20).unwrap());
        let more = injected(&twenty, 42, 50);
        assert_eq!(more, [3, 25, 28, 30, 35, 36, 42, 45, 49]);
        assert!(calls.iter().all(|c| more.contains(c)));
    }

    #[test]
    #[cfg_attr(miri, ignore = "100,000 draws: too slow under Miri")]
    fn the_share_holds_over_many_calls() {
        // 2.5% of 100,000 calls: 2,500 expected, standard deviation 49.
        let injector = FaultInjector::new(Share::basis_points(250).unwrap());
        let n = injected(&injector, 7, 100_000).len();
        assert_eq!(n, 2_478);
        assert!(n.abs_diff(2_500) <= 3 * 49);
        // One in a million, and the ends.
        let rare = FaultInjector::new(Share::per_million(1).unwrap());
        assert_eq!(injected(&rare, 7, 100_000).len(), 0);
        let all = FaultInjector::new(Share::ALL);
        assert_eq!(injected(&all, 7, 1_000).len(), 1_000);
        let none = FaultInjector::new(Share::NONE);
        assert_eq!(injected(&none, 7, 1_000).len(), 0);
    }

    #[test]
    fn switched_off_it_injects_nothing_and_draws_nothing() {
        let injector = FaultInjector::new(Share::ALL);
        let mut rng = fastrand::Rng::with_seed(3);
        assert!(injector.inject(&mut rng));
        injector.set_enabled(false);
        assert!(!injector.is_enabled());
        let seed = rng.get_seed();
        for _ in 0..1_000 {
            assert!(!injector.inject(&mut rng));
        }
        assert_eq!(rng.get_seed(), seed, "no draw while off");
        injector.set_enabled(true);
        assert!(injector.inject(&mut rng));

        let later = FaultInjector::starting_off(Share::ALL);
        assert!(!later.inject(&mut rng));
        later.set_enabled(true);
        assert!(later.inject(&mut rng));
        later.set_share(Share::NONE);
        assert_eq!(later.share(), Share::NONE);
        assert!(!later.inject(&mut rng));
    }

    #[test]
    fn faults_answer_or_delay() {
        let error: Fault<u8, &str> = Fault::Error("boom");
        assert_eq!(
            (error.answer(), error.delay()),
            (Some(Err("boom")), Duration::ZERO)
        );
        let outcome: Fault<u8, &str> = Fault::Outcome(7);
        assert_eq!(
            (outcome.answer(), outcome.delay()),
            (Some(Ok(7)), Duration::ZERO)
        );
        let slow: Fault<u8, &str> = Fault::Latency(Duration::MAX);
        assert_eq!((slow.answer(), slow.delay()), (None, Duration::MAX));
        assert_eq!(slow.wait(), Some(Duration::MAX));
        assert_eq!(error.wait(), None);
        assert_eq!(Fault::<u8, u8>::Latency(Duration::ZERO).wait(), None);
    }

    #[test]
    fn bad_shares_are_rejected_with_the_field_and_range() {
        assert_eq!(
            Share::per_million(1_000_001).unwrap_err(),
            ConfigError::new("share", "0 to 1,000,000 parts per million")
        );
        assert_eq!(
            Share::basis_points(10_001).unwrap_err(),
            ConfigError::new("share", "0 to 10,000 basis points")
        );
        assert_eq!(
            Share::percent(u32::MAX).unwrap_err(),
            ConfigError::new("share", "0 to 100 percent")
        );
        assert_eq!(Share::percent(100), Ok(Share::ALL));
        assert_eq!(Share::basis_points(10_000), Ok(Share::ALL));
        assert_eq!(Share::per_million(1_000_000), Ok(Share::ALL));
        for (share, shown) in [
            (Share::NONE, "0%"),
            (Share::ALL, "100%"),
            (Share::per_million(1).unwrap(), "0.0001%"),
            (Share::per_million(125_000).unwrap(), "12.5%"),
            (Share::basis_points(5).unwrap(), "0.05%"),
        ] {
            assert_eq!(share.to_string(), shown);
        }
    }

    #[test]
    fn shared_across_threads_the_switch_stops_every_thread() {
        let injector = FaultInjector::new(Share::ALL);
        injector.set_enabled(false);
        std::thread::scope(|s| {
            for seed in 0..4 {
                let injector = &injector;
                s.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(seed);
                    assert!((0..100).all(|_| !injector.inject(&mut rng)));
                });
            }
        });
    }
}
