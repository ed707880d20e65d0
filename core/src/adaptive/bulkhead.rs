//! [`AdaptiveBulkhead`]: a bulkhead whose maximum follows a [`LimitAlgorithm`].
//!
//! Each permit remembers when its call was admitted and how many calls were in flight
//! then. When the call ends, [`AdaptivePermit::record_at`] turns that into a [`Sample`],
//! feeds the algorithm and sets the bulkhead's maximum to the new limit; dropping the
//! permit without recording (a cancelled call, an error that says nothing about load)
//! just frees the slot. A lowered limit admits no one until usage falls below it, as in
//! [`Bulkhead::set_max_concurrent`].
//!
//! # When to choose it
//!
//! When the right maximum for a [`Bulkhead`] is unknown or changes with the dependency's
//! health: the limit finds the dependency's concurrency and follows it.
//!
//! # Example
//!
//! ```
//! use core::time::Duration;
//! use stanchion::Instant;
//! use stanchion::adaptive::{AdaptiveBulkhead, Aimd, AimdConfig, Outcome};
//! use stanchion::sync::NoopRawMutex;
//!
//! let aimd = Aimd::new(AimdConfig {
//!     initial_limit: 2,
//!     min_limit: 1,
//!     max_limit: 10,
//!     backoff_per_1024: 512,
//!     timeout: Duration::from_millis(100),
//! })
//! .unwrap();
//! let bulkhead: AdaptiveBulkhead<NoopRawMutex, _> = AdaptiveBulkhead::new(aimd);
//!
//! let a = bulkhead.try_acquire_at(Instant::ZERO).unwrap();
//! let b = bulkhead.try_acquire_at(Instant::ZERO).unwrap();
//! assert!(bulkhead.try_acquire_at(Instant::ZERO).is_err()); // limit 2
//! // `b` times out: the limit halves to 1 and, with `a` still out, no one is admitted.
//! assert_eq!(b.record_at(Instant::from_millis(150), Outcome::Dropped), 1);
//! assert!(bulkhead.try_acquire_at(Instant::from_millis(150)).is_err());
//! drop(a); // ended without a sample (cancelled): the slot is free, the limit unchanged
//! assert_eq!(bulkhead.limit(), 1);
//! assert!(bulkhead.try_acquire_at(Instant::from_millis(150)).is_ok());
//! ```
//!
//! # Sharing and cost
//!
//! Admission is the [`Bulkhead`]'s: one atomic word, one compare-and-swap per grant,
//! nothing written on a denial, no lock. The algorithm's state does not fit a word, so it
//! sits in a [`Locked`] critical section of kind `M` (see [`crate::sync`]), entered once
//! per recorded sample to update the algorithm and the bulkhead's maximum together (so
//! two samples recorded at once cannot leave a stale maximum). A permit is the pointer
//! to the bulkhead plus 16 bytes (the start instant and the in-flight count).

use core::fmt;
use core::ops::Deref;

use super::{LimitAlgorithm, Outcome, Sample};
use crate::bulkhead::{
    Bulkhead, BulkheadFull, BulkheadListener, BulkheadMetrics, NoBulkheadListener,
};
use crate::clock::Clock;
use crate::sync::{Locked, RawMutex};
use crate::time::Instant;

/// A [`Bulkhead`] whose maximum follows the limit of an algorithm `A`; its state is
/// shared through a critical section of kind `M`, and it reports to `L`. See the
/// [module docs](self).
pub struct AdaptiveBulkhead<
    M: RawMutex,
    A: LimitAlgorithm,
    L: BulkheadListener = NoBulkheadListener,
> {
    bulkhead: Bulkhead<L>,
    algorithm: Locked<M, A>,
}

impl<M: RawMutex, A: LimitAlgorithm> AdaptiveBulkhead<M, A, NoBulkheadListener> {
    /// A bulkhead whose maximum starts at, and follows, `algorithm`'s limit.
    pub fn new(algorithm: A) -> Self {
        AdaptiveBulkhead::with_listener(algorithm, NoBulkheadListener)
    }
}

impl<M: RawMutex, A: LimitAlgorithm, L: BulkheadListener> AdaptiveBulkhead<M, A, L> {
    /// Like [`new`](AdaptiveBulkhead::new), reporting to `listener` (every change of the
    /// limit arrives as [`BulkheadListener::on_max_changed`]).
    pub fn with_listener(algorithm: A, listener: L) -> Self {
        AdaptiveBulkhead {
            bulkhead: Bulkhead::with_nonzero_max(algorithm.limit(), listener),
            algorithm: Locked::new(algorithm),
        }
    }

    /// A permit for a call admitted at `now`, if fewer than the limit are out;
    /// otherwise [`BulkheadFull`], and nothing changes.
    #[inline]
    pub fn try_acquire_at(
        &self,
        now: Instant,
    ) -> Result<AdaptivePermit<&Self, M, A, L>, BulkheadFull> {
        AdaptiveBulkhead::try_acquire_owned_at(self, now)
    }

    /// [`try_acquire_at`](AdaptiveBulkhead::try_acquire_at) at `clock.now()`.
    #[inline]
    pub fn try_acquire<C: Clock>(
        &self,
        clock: &C,
    ) -> Result<AdaptivePermit<&Self, M, A, L>, BulkheadFull> {
        self.try_acquire_at(clock.now())
    }

    /// Like [`try_acquire_at`](AdaptiveBulkhead::try_acquire_at), but the permit holds
    /// `bulkhead`, any pointer to it (such as an `Arc`), so it can outlive the borrow.
    #[inline]
    pub fn try_acquire_owned_at<B>(
        bulkhead: B,
        now: Instant,
    ) -> Result<AdaptivePermit<B, M, A, L>, BulkheadFull>
    where
        B: Deref<Target = Self>,
    {
        // The count the grant's compare-and-swap wrote: exact, this call included.
        let in_flight = bulkhead.bulkhead.acquire_slot(true)?;
        Ok(AdaptivePermit {
            bulkhead,
            started_at: now,
            in_flight,
        })
    }

    /// Feeds `sample`, measured by the caller, to the algorithm and sets the maximum to
    /// the new limit, which it returns. Permits do this through
    /// [`AdaptivePermit::record_at`]; use it directly for calls measured elsewhere.
    pub fn on_sample(&self, sample: Sample) -> u32 {
        self.algorithm.with(|algorithm| {
            let limit = algorithm.on_sample(sample).max(1);
            // Cannot fail: the limit is at least 1.
            let _ = self.bulkhead.set_max_concurrent(limit);
            limit
        })
    }

    /// The current limit: the bulkhead's maximum.
    #[inline]
    pub fn limit(&self) -> u32 {
        self.bulkhead.max_concurrent()
    }

    /// The limit, the permits in use and those available, read together.
    #[inline]
    pub fn metrics(&self) -> BulkheadMetrics {
        self.bulkhead.metrics()
    }

    /// The underlying bulkhead (for `available`, `in_use` and its listener).
    #[inline]
    pub fn bulkhead(&self) -> &Bulkhead<L> {
        &self.bulkhead
    }

    /// Runs `f` on the algorithm's state inside the critical section (to read its
    /// configuration or internals).
    pub fn with_algorithm<R>(&self, f: impl FnOnce(&A) -> R) -> R {
        self.algorithm.with(|algorithm| f(algorithm))
    }
}

impl<M: RawMutex, A: LimitAlgorithm, L: BulkheadListener> fmt::Debug for AdaptiveBulkhead<M, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveBulkhead")
            .field("bulkhead", &self.bulkhead)
            .finish_non_exhaustive()
    }
}

/// One slot of an [`AdaptiveBulkhead`], remembering when its call started. Record how
/// the call ended with [`record_at`](AdaptivePermit::record_at); dropping it unrecorded
/// (including on panic or cancellation) frees the slot without a sample.
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct AdaptivePermit<B, M, A, L = NoBulkheadListener>
where
    B: Deref<Target = AdaptiveBulkhead<M, A, L>>,
    M: RawMutex,
    A: LimitAlgorithm,
    L: BulkheadListener,
{
    bulkhead: B,
    started_at: Instant,
    in_flight: u32,
}

impl<B, M, A, L> AdaptivePermit<B, M, A, L>
where
    B: Deref<Target = AdaptiveBulkhead<M, A, L>>,
    M: RawMutex,
    A: LimitAlgorithm,
    L: BulkheadListener,
{
    /// When the call was admitted.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Calls in flight when it was admitted, itself included.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// The call ended at `now` with `outcome`: feeds the sample (round-trip time
    /// `now - started_at`, zero if the clock stepped back) to the algorithm, sets the
    /// maximum to the new limit, frees the slot, and returns the new limit.
    pub fn record_at(self, now: Instant, outcome: Outcome) -> u32 {
        let sample = Sample {
            started_at: self.started_at,
            rtt: now.saturating_duration_since(self.started_at),
            in_flight: self.in_flight,
            dropped: matches!(outcome, Outcome::Dropped),
        };
        self.bulkhead.on_sample(sample)
        // `self` drops here and frees the slot, after the new maximum is in place.
    }

    /// [`record_at`](AdaptivePermit::record_at) at `clock.now()`.
    pub fn record<C: Clock>(self, clock: &C, outcome: Outcome) -> u32 {
        self.record_at(clock.now(), outcome)
    }
}

impl<B, M, A, L> Drop for AdaptivePermit<B, M, A, L>
where
    B: Deref<Target = AdaptiveBulkhead<M, A, L>>,
    M: RawMutex,
    A: LimitAlgorithm,
    L: BulkheadListener,
{
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.bulkhead.release_slot();
    }
}

impl<B, M, A, L> fmt::Debug for AdaptivePermit<B, M, A, L>
where
    B: Deref<Target = AdaptiveBulkhead<M, A, L>>,
    M: RawMutex,
    A: LimitAlgorithm,
    L: BulkheadListener,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptivePermit")
            .field("started_at", &self.started_at)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;

    use core::time::Duration;
    use std::sync::Arc;
    use std::vec::Vec;

    use super::*;
    use crate::ManualClock;
    use crate::adaptive::{Aimd, AimdConfig, Vegas, VegasConfig};
    use crate::sync::CriticalSectionRawMutex;

    type Shared<A> = AdaptiveBulkhead<CriticalSectionRawMutex, A>;

    fn aimd(initial: u32) -> Aimd {
        Aimd::new(AimdConfig {
            initial_limit: initial,
            min_limit: 1,
            max_limit: 20,
            backoff_per_1024: 512,
            timeout: Duration::from_millis(100),
        })
        .unwrap()
    }

    #[test]
    fn starts_at_the_algorithms_limit_and_follows_it() {
        let clock = ManualClock::new();
        let b: Shared<Aimd> = AdaptiveBulkhead::new(aimd(4));
        assert_eq!(b.limit(), 4);
        // Four good calls with four in flight: +1.
        let permits: Vec<_> = (0..4).map(|_| b.try_acquire(&clock).unwrap()).collect();
        assert_eq!(
            permits.iter().map(|p| p.in_flight()).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert!(b.try_acquire(&clock).is_err());
        clock.advance(Duration::from_millis(10));
        let limits: Vec<_> = permits
            .into_iter()
            .map(|p| p.record(&clock, Outcome::Success))
            .collect();
        // in_flight 1 of 4 is app-limited; 2, 3 and 4 count: three good samples of four.
        assert_eq!(limits, [4, 4, 4, 4]);
        let p = b.try_acquire(&clock).unwrap();
        let q = b.try_acquire(&clock).unwrap();
        assert_eq!(q.record(&clock, Outcome::Success), 5);
        assert_eq!(b.metrics().max_concurrent, 5);
        // A drop halves it: 5 / 2 = 2, and `p` is still out.
        clock.advance(Duration::from_millis(1));
        let r = b.try_acquire(&clock).unwrap();
        assert_eq!(r.record(&clock, Outcome::Dropped), 2);
        assert_eq!(b.metrics().in_use, 1);
        drop(p);
        assert_eq!(b.metrics().in_use, 0);
        assert_eq!(b.limit(), 2);
    }

    #[test]
    fn a_lowered_limit_admits_no_one_until_usage_falls_below() {
        let b: Shared<Aimd> = AdaptiveBulkhead::new(aimd(8));
        let t0 = Instant::ZERO;
        let mut held: Vec<_> = (0..8).map(|_| b.try_acquire_at(t0).unwrap()).collect();
        let timed_out = held.pop().unwrap();
        assert_eq!(
            timed_out.record_at(Instant::from_millis(200), Outcome::Success),
            4
        );
        for _ in 0..3 {
            held.pop();
            assert!(b.try_acquire_at(Instant::from_millis(200)).is_err());
        }
        held.pop(); // 3 in use, limit 4
        assert!(b.try_acquire_at(Instant::from_millis(200)).is_ok());
    }

    #[test]
    fn unrecorded_permits_free_the_slot_without_a_sample() {
        let b: Shared<Vegas> = AdaptiveBulkhead::new(Vegas::new(VegasConfig::DEFAULT).unwrap());
        let before = b.with_algorithm(|v| v.clone());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _p = b.try_acquire_at(Instant::ZERO).unwrap();
            panic!("call failed");
        }));
        assert!(result.is_err());
        drop(b.try_acquire_at(Instant::ZERO).unwrap());
        assert_eq!(b.metrics().in_use, 0);
        assert_eq!(b.with_algorithm(|v| v.clone()), before);
    }

    #[test]
    fn owned_permits_cross_threads() {
        let b: Arc<Shared<Aimd>> = Arc::new(AdaptiveBulkhead::new(aimd(2)));
        let p = AdaptiveBulkhead::try_acquire_owned_at(Arc::clone(&b), Instant::ZERO).unwrap();
        let limit =
            std::thread::spawn(move || p.record_at(Instant::from_secs(1), Outcome::Dropped))
                .join()
                .unwrap();
        assert_eq!(limit, 1);
        assert_eq!(b.metrics().in_use, 0);
    }

    #[test]
    fn a_clock_that_steps_back_records_a_zero_rtt() {
        let b: Shared<Aimd> = AdaptiveBulkhead::new(aimd(1));
        let p = b.try_acquire_at(Instant::from_secs(5)).unwrap();
        // rtt 0 is no timeout; in_flight 1 of 1: +1 after one good sample.
        assert_eq!(p.record_at(Instant::from_secs(1), Outcome::Success), 2);
    }
}
