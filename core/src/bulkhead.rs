//! [`Bulkhead`]: a counting semaphore with a fixed (but adjustable) maximum, whose
//! permit releases on drop.
//!
//! A bulkhead caps how many calls run at once, so that one slow dependency cannot take
//! every thread, task or connection with it. [`Bulkhead::try_acquire`] either grants a
//! [`BulkheadPermit`] at once or says the bulkhead is full ([`BulkheadFull`]); the permit
//! gives its slot back when it is dropped: when the call returns, when the holder panics
//! and unwinds, or when the future holding it is cancelled.
//!
//! # When to choose it
//!
//! Choose a bulkhead to bound *concurrency* (calls in flight); choose a rate limiter
//! (`core::rate`) to bound calls *per unit of time*. A fixed maximum suits a known
//! capacity (a connection pool, a worker count); when the capacity is unknown or
//! changes, let an adaptive algorithm set the maximum ([`crate::adaptive`]).
//!
//! Waiting for a slot (FIFO, a bounded queue, a bounded wait) is the adapters' job; see
//! "Waiting" below for what core gives them.
//!
//! # Example
//!
//! ```
//! use stanchion::bulkhead::Bulkhead;
//!
//! static POOL: Bulkhead = stanchion::const_config!(Bulkhead::new(2));
//!
//! let a = POOL.try_acquire().unwrap();
//! let b = POOL.try_acquire().unwrap();
//! let full = POOL.try_acquire().unwrap_err();
//! assert_eq!((full.in_use(), full.max_concurrent()), (2, 2));
//! drop(a); // the slot is free again
//! assert_eq!(POOL.available(), 1);
//! let c = POOL.try_acquire().unwrap();
//!
//! // Lowering the maximum admits no one until usage falls below it.
//! POOL.set_max_concurrent(1).unwrap();
//! drop(b);
//! assert!(POOL.try_acquire().is_err()); // still 1 in use, maximum 1
//! drop(c);
//! assert!(POOL.try_acquire().is_ok());
//! ```
//!
//! # Waiting
//!
//! An adapter that lets callers wait for a slot keeps its own FIFO queue of waiters and:
//!
//! 1. tries [`Bulkhead::try_acquire`] only when its queue is empty (so a newcomer never
//!    overtakes a waiter), otherwise enqueues the caller, bounded by the queue's length
//!    and by the caller's [`Deadline`](crate::Deadline);
//! 2. wakes the head of its queue when a slot may have freed, which a
//!    [`BulkheadListener`] tells it: [`on_released`](BulkheadListener::on_released) and
//!    [`on_max_changed`](BulkheadListener::on_max_changed) (when the maximum rises); the
//!    woken waiter calls `try_acquire` again and, if it lost a race, stays at the head;
//! 3. removes a waiter whose future is dropped, waking the next one if the dropped one
//!    had been woken.
//!
//! [`Bulkhead::available`] is one atomic load, cheap enough to poll.
//!
//! # Sharing
//!
//! The whole state (the maximum and the count in use, 32 bits each) is one `AtomicU64`,
//! so the bulkhead is shared by `&` across threads, tasks and interrupt handlers without
//! a lock, and changing the maximum can never race with a grant. A grant is one
//! compare-and-swap (retried only when another thread changed the word in between); a
//! denial reads the word and writes nothing; a release is one `fetch_sub`. On targets
//! without native 64-bit atomics (`thumbv7em`, `thumbv6m`, `riscv32imc`) the word goes
//! through `portable-atomic`'s fallback (a critical section with this crate's
//! `critical-section` feature).
//!
//! Ordering: a grant is `Acquire` and a release `Release`, so whatever a permit's holder
//! wrote before dropping it is visible to whoever takes the slot next (a bulkhead of 1
//! orders like a mutex).
//!
//! # Cost
//!
//! 8 bytes of state plus the listener (zero-sized by default). `try_acquire`: one load and
//! one compare-and-swap; drop of a permit: one `fetch_sub`; `available`/`in_use`: one
//! load.
//!
//! # Origin
//!
//! The bulkhead pattern as named in Nygard's *Release It!* and implemented by
//! resilience4j's `SemaphoreBulkhead` and tower's `ConcurrencyLimit`; a counting
//! semaphore after Dijkstra.

use core::fmt;
use core::ops::Deref;

use crate::error::ConfigError;
use crate::sync::{AtomicU64, Ordering};

/// The low half of the state word: permits in use.
const IN_USE_MASK: u64 = 0xFFFF_FFFF;
/// The high half of the state word: the maximum.
const MAX_SHIFT: u32 = 32;

#[inline]
const fn pack(max: u32, in_use: u32) -> u64 {
    ((max as u64) << MAX_SHIFT) | in_use as u64
}

#[inline]
const fn max_of(word: u64) -> u32 {
    (word >> MAX_SHIFT) as u32
}

#[inline]
const fn in_use_of(word: u64) -> u32 {
    (word & IN_USE_MASK) as u32
}

/// What a bulkhead reports as it works. Every method has a no-op default; implement the
/// ones you need. Methods take `&self` and run on the caller's thread, inside no lock:
/// keep them short and non-blocking (count, log, wake a waiter).
///
/// This is also how an adapter learns that a slot may have freed (see the module docs).
pub trait BulkheadListener {
    /// A permit was granted; `in_use` counts it.
    #[inline]
    fn on_acquired(&self, in_use: u32) {
        let _ = in_use;
    }

    /// A permit was refused because the bulkhead was full.
    #[inline]
    fn on_rejected(&self, full: BulkheadFull) {
        let _ = full;
    }

    /// A permit was released; `in_use` no longer counts it.
    #[inline]
    fn on_released(&self, in_use: u32) {
        let _ = in_use;
    }

    /// The maximum changed from `old` to `new` (reported only when they differ).
    #[inline]
    fn on_max_changed(&self, old: u32, new: u32) {
        let _ = (old, new);
    }
}

/// The listener that ignores every event: the default, and free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoBulkheadListener;

impl BulkheadListener for NoBulkheadListener {}

impl<T: BulkheadListener + ?Sized> BulkheadListener for &T {
    #[inline]
    fn on_acquired(&self, in_use: u32) {
        (**self).on_acquired(in_use);
    }
    #[inline]
    fn on_rejected(&self, full: BulkheadFull) {
        (**self).on_rejected(full);
    }
    #[inline]
    fn on_released(&self, in_use: u32) {
        (**self).on_released(in_use);
    }
    #[inline]
    fn on_max_changed(&self, old: u32, new: u32) {
        (**self).on_max_changed(old, new);
    }
}

/// The bulkhead was full: `in_use` permits were out of a maximum of `max_concurrent`
/// (`in_use >= max_concurrent`; greater after the maximum was lowered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BulkheadFull {
    in_use: u32,
    max_concurrent: u32,
}

impl BulkheadFull {
    /// The refusal of a bulkhead that had `in_use` permits out of at most
    /// `max_concurrent`: what a waiting adapter reports when its queue of waiters is full
    /// or a wait runs out (from [`Bulkhead::metrics`] at that moment).
    pub const fn new(in_use: u32, max_concurrent: u32) -> BulkheadFull {
        BulkheadFull {
            in_use,
            max_concurrent,
        }
    }

    /// Permits in use when the request was refused.
    pub const fn in_use(&self) -> u32 {
        self.in_use
    }

    /// The maximum when the request was refused.
    pub const fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bulkhead full: {} in use of at most {}",
            self.in_use, self.max_concurrent
        )
    }
}

impl core::error::Error for BulkheadFull {}

/// A snapshot of a bulkhead: its maximum and the permits in use, read together (one
/// atomic load, so they are consistent with each other).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BulkheadMetrics {
    /// The maximum number of permits out at once.
    pub max_concurrent: u32,
    /// Permits out now (may exceed the maximum just after it was lowered).
    pub in_use: u32,
    /// Permits that `try_acquire` would grant now: `max_concurrent - in_use`, or zero.
    pub available: u32,
}

/// A counting semaphore: at most `max_concurrent` [`BulkheadPermit`]s are out at once.
///
/// See the [module docs](self) for the semantics, sharing and cost. `L` receives events
/// ([`BulkheadListener`]); the default ignores them.
pub struct Bulkhead<L: BulkheadListener = NoBulkheadListener> {
    state: AtomicU64,
    listener: L,
}

impl Bulkhead<NoBulkheadListener> {
    crate::sync::const_fn_unless_loom! {
        /// A bulkhead that grants at most `max_concurrent` permits at once.
        ///
        /// # Errors
        ///
        /// `max_concurrent` of 0 (it would never admit anything).
        pub fn new(max_concurrent: u32) -> Result<Self, ConfigError> {
            Bulkhead::with_listener(max_concurrent, NoBulkheadListener)
        }
    }
}

impl<L: BulkheadListener> Bulkhead<L> {
    crate::sync::const_fn_unless_loom! {
        /// A bulkhead that grants at most `max_concurrent` permits at once and reports to
        /// `listener`.
        ///
        /// # Errors
        ///
        /// `max_concurrent` of 0 (it would never admit anything). The listener is then
        /// forgotten, not dropped (a `const fn` cannot run its destructor): its resources,
        /// if it owns any, leak.
        pub fn with_listener(max_concurrent: u32, listener: L) -> Result<Self, ConfigError> {
            if max_concurrent == 0 {
                // `listener` may not be dropped in a const fn if it has a destructor, so
                // forget it: a listener with nothing to drop is the usual case.
                core::mem::forget(listener);
                return Err(ConfigError::new("max_concurrent", "at least 1"));
            }
            Ok(Bulkhead {
                state: AtomicU64::new(pack(max_concurrent, 0)),
                listener,
            })
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// A bulkhead of `max_concurrent`, raised to 1 if zero (for callers that hold a
        /// validated limit). Infallible, so a `const fn` can build one whose listener has
        /// a destructor (a `Result` holding it could not be dropped in a `const fn`).
        pub fn with_nonzero_max(max_concurrent: u32, listener: L) -> Self {
            let max = if max_concurrent == 0 { 1 } else { max_concurrent };
            Bulkhead {
                state: AtomicU64::new(pack(max, 0)),
                listener,
            }
        }
    }

    /// A permit, if fewer than the maximum are out; otherwise [`BulkheadFull`], and
    /// nothing changes.
    ///
    /// The permit borrows the bulkhead; to hold one in a `'static` future, use
    /// [`try_acquire_owned`](Bulkhead::try_acquire_owned) with an `Arc<Bulkhead>`.
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<&Self, L>, BulkheadFull> {
        self.acquire_slot(true)?;
        Ok(BulkheadPermit { bulkhead: self })
    }

    /// Like [`try_acquire`](Bulkhead::try_acquire), but a refusal is not reported to the
    /// listener: for a waiting line, whose callers find the bulkhead full and go on
    /// waiting. The line reports a caller's refusal itself, once, when it refuses the
    /// caller (`listener().on_rejected(full)`), so that one caller refused is one event.
    #[inline]
    pub fn try_acquire_unreported(&self) -> Result<BulkheadPermit<&Self, L>, BulkheadFull> {
        self.acquire_slot(false)?;
        Ok(BulkheadPermit { bulkhead: self })
    }

    /// Like [`try_acquire`](Bulkhead::try_acquire), but the permit holds `bulkhead`, any
    /// pointer to a bulkhead (`&Bulkhead`, `Arc<Bulkhead>`, a `&'static` one), so it can
    /// outlive the borrow.
    ///
    /// ```
    /// # extern crate std;
    /// use std::sync::Arc;
    /// use stanchion::bulkhead::Bulkhead;
    ///
    /// let shared = Arc::new(Bulkhead::new(1).unwrap());
    /// let permit = Bulkhead::try_acquire_owned(Arc::clone(&shared)).unwrap();
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// assert_eq!(shared.in_use(), 0);
    /// ```
    #[inline]
    pub fn try_acquire_owned<B>(bulkhead: B) -> Result<BulkheadPermit<B, L>, BulkheadFull>
    where
        B: Deref<Target = Self>,
    {
        bulkhead.acquire_slot(true)?;
        Ok(BulkheadPermit { bulkhead })
    }

    /// [`try_acquire_owned`](Bulkhead::try_acquire_owned), with a refusal not reported to
    /// the listener, as [`try_acquire_unreported`](Bulkhead::try_acquire_unreported).
    #[inline]
    pub fn try_acquire_owned_unreported<B>(
        bulkhead: B,
    ) -> Result<BulkheadPermit<B, L>, BulkheadFull>
    where
        B: Deref<Target = Self>,
    {
        bulkhead.acquire_slot(false)?;
        Ok(BulkheadPermit { bulkhead })
    }

    /// Takes one slot and returns the count in use that includes it, or says why not
    /// (writing nothing; telling the listener if `report`).
    #[inline]
    pub(crate) fn acquire_slot(&self, report: bool) -> Result<u32, BulkheadFull> {
        let mut word = self.state.load(Ordering::Relaxed);
        loop {
            let (max, in_use) = (max_of(word), in_use_of(word));
            if in_use >= max {
                let full = BulkheadFull {
                    in_use,
                    max_concurrent: max,
                };
                if report {
                    self.listener.on_rejected(full);
                }
                return Err(full);
            }
            // `in_use < max <= u32::MAX`, so adding one stays inside the low half.
            let next = pack(max, in_use.saturating_add(1));
            match self
                .state
                .compare_exchange_weak(word, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    let in_use = in_use_of(next);
                    self.listener.on_acquired(in_use);
                    return Ok(in_use);
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Gives one slot back. Called only by a permit's drop, so `in_use >= 1` and the
    /// subtraction never borrows from the maximum's half.
    #[inline]
    pub(crate) fn release_slot(&self) {
        let previous = self.state.fetch_sub(1, Ordering::Release);
        self.listener
            .on_released(in_use_of(previous).saturating_sub(1));
    }

    /// Sets the maximum. Permits already out stay out: lowering the maximum below the
    /// count in use admits no one until usage falls below the new maximum; raising it
    /// admits more at once.
    ///
    /// # Errors
    ///
    /// `max_concurrent` of 0; the maximum is then unchanged.
    pub fn set_max_concurrent(&self, max_concurrent: u32) -> Result<(), ConfigError> {
        if max_concurrent == 0 {
            return Err(ConfigError::new("max_concurrent", "at least 1"));
        }
        let previous = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |word| {
                Some(pack(max_concurrent, in_use_of(word)))
            })
            // The closure always returns `Some`; both arms carry the previous word.
            .unwrap_or_else(|word| word);
        let old = max_of(previous);
        if old != max_concurrent {
            self.listener.on_max_changed(old, max_concurrent);
        }
        Ok(())
    }

    /// The maximum number of permits out at once.
    #[inline]
    pub fn max_concurrent(&self) -> u32 {
        max_of(self.state.load(Ordering::Relaxed))
    }

    /// Permits out now. It may exceed the maximum just after the maximum was lowered.
    #[inline]
    pub fn in_use(&self) -> u32 {
        in_use_of(self.state.load(Ordering::Relaxed))
    }

    /// Permits that [`try_acquire`](Bulkhead::try_acquire) would grant now (zero when
    /// full). One atomic load: cheap enough for an adapter to poll.
    #[inline]
    pub fn available(&self) -> u32 {
        self.metrics().available
    }

    /// The maximum and the count in use, read together.
    #[inline]
    pub fn metrics(&self) -> BulkheadMetrics {
        let word = self.state.load(Ordering::Relaxed);
        let (max, in_use) = (max_of(word), in_use_of(word));
        BulkheadMetrics {
            max_concurrent: max,
            in_use,
            available: max.saturating_sub(in_use),
        }
    }

    /// The listener.
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// The refusal for a caller that gets no slot without having been refused by
    /// [`try_acquire`](Bulkhead::try_acquire): a waiting adapter whose queue is full, or
    /// whose wait ran out, reports the permits in use and the maximum at that moment (one
    /// atomic load; nothing changes, and no listener event is reported). `in_use` may be
    /// below the maximum here, when a slot freed for a queued waiter that has not yet
    /// taken it.
    #[inline]
    pub fn full(&self) -> BulkheadFull {
        let word = self.state.load(Ordering::Relaxed);
        BulkheadFull {
            in_use: in_use_of(word),
            max_concurrent: max_of(word),
        }
    }
}

impl<L: BulkheadListener> fmt::Debug for Bulkhead<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.metrics();
        f.debug_struct("Bulkhead")
            .field("max_concurrent", &m.max_concurrent)
            .field("in_use", &m.in_use)
            .finish_non_exhaustive()
    }
}

/// One slot of a [`Bulkhead`], given back when the permit is dropped.
///
/// `B` is how the permit reaches its bulkhead: `&Bulkhead` from
/// [`try_acquire`](Bulkhead::try_acquire), or any pointer (such as `Arc<Bulkhead>`) from
/// [`try_acquire_owned`](Bulkhead::try_acquire_owned). Dropping the permit, including
/// during a panic's unwinding or a cancelled future's drop, releases the slot exactly
/// once.
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct BulkheadPermit<B, L = NoBulkheadListener>
where
    B: Deref<Target = Bulkhead<L>>,
    L: BulkheadListener,
{
    bulkhead: B,
}

impl<B, L> BulkheadPermit<B, L>
where
    B: Deref<Target = Bulkhead<L>>,
    L: BulkheadListener,
{
    /// The bulkhead this permit belongs to.
    pub fn bulkhead(&self) -> &Bulkhead<L> {
        &self.bulkhead
    }
}

impl<B, L> Drop for BulkheadPermit<B, L>
where
    B: Deref<Target = Bulkhead<L>>,
    L: BulkheadListener,
{
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.release_slot();
    }
}

impl<B, L> fmt::Debug for BulkheadPermit<B, L>
where
    B: Deref<Target = Bulkhead<L>>,
    L: BulkheadListener,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit")
            .field("bulkhead", &*self.bulkhead)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;

    use core::cell::Cell;
    use std::sync::Arc;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn an_adapter_builds_the_refusal_it_reports() {
        let b = Bulkhead::new(2).unwrap();
        let _a = b.try_acquire().unwrap();
        let _c = b.try_acquire().unwrap();
        let full = b.try_acquire().unwrap_err();
        assert_eq!(BulkheadFull::new(2, 2), full);
        let made = BulkheadFull::new(7, 3);
        assert_eq!((made.in_use(), made.max_concurrent()), (7, 3));
    }

    #[test]
    fn zero_maximum_is_a_config_error() {
        let err = Bulkhead::new(0).unwrap_err();
        assert_eq!(err, ConfigError::new("max_concurrent", "at least 1"));
        let b = Bulkhead::new(3).unwrap();
        assert_eq!(
            b.set_max_concurrent(0),
            Err(ConfigError::new("max_concurrent", "at least 1"))
        );
        assert_eq!(b.max_concurrent(), 3);
    }

    #[test]
    fn grants_up_to_the_maximum_then_refuses_without_writing() {
        let b = Bulkhead::new(3).unwrap();
        let permits: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
        assert_eq!(b.in_use(), 3);
        let before = b.state.load(Ordering::Relaxed);
        for _ in 0..5 {
            let full = b.try_acquire().unwrap_err();
            assert_eq!(full.in_use(), 3);
            assert_eq!(full.max_concurrent(), 3);
        }
        assert_eq!(b.state.load(Ordering::Relaxed), before);
        drop(permits);
        assert_eq!(
            b.metrics(),
            BulkheadMetrics {
                max_concurrent: 3,
                in_use: 0,
                available: 3
            }
        );
    }

    #[test]
    fn each_drop_releases_exactly_one_slot() {
        let b = Bulkhead::new(2).unwrap();
        let p1 = b.try_acquire().unwrap();
        let p2 = b.try_acquire().unwrap();
        assert_eq!(b.available(), 0);
        drop(p1);
        assert_eq!((b.in_use(), b.available()), (1, 1));
        let p3 = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err());
        drop(p2);
        drop(p3);
        assert_eq!((b.in_use(), b.available()), (0, 2));
    }

    #[test]
    fn full_reports_the_current_usage_and_changes_nothing() {
        let b = Bulkhead::new(2).unwrap();
        let p = b.try_acquire().unwrap();
        assert_eq!(
            b.full(),
            BulkheadFull {
                in_use: 1,
                max_concurrent: 2
            }
        );
        assert_eq!(b.in_use(), 1);
        let q = b.try_acquire().unwrap();
        assert_eq!(b.full(), b.try_acquire().unwrap_err());
        drop((p, q));
        assert_eq!((b.full().in_use(), b.full().max_concurrent()), (0, 2));
    }

    #[test]
    fn lowering_the_maximum_admits_no_one_until_usage_falls_below() {
        let b = Bulkhead::new(4).unwrap();
        let mut held: Vec<_> = (0..4).map(|_| b.try_acquire().unwrap()).collect();
        b.set_max_concurrent(2).unwrap();
        assert_eq!(
            b.metrics(),
            BulkheadMetrics {
                max_concurrent: 2,
                in_use: 4,
                available: 0
            }
        );
        assert_eq!(
            b.try_acquire().unwrap_err(),
            BulkheadFull {
                in_use: 4,
                max_concurrent: 2
            }
        );
        held.pop();
        assert!(b.try_acquire().is_err()); // 3 in use, max 2
        held.pop();
        assert!(b.try_acquire().is_err()); // 2 in use, max 2
        held.pop();
        let again = b.try_acquire().unwrap(); // 1 in use, max 2
        assert!(b.try_acquire().is_err());
        drop(again);
        drop(held);
        assert_eq!(b.in_use(), 0);
    }

    #[test]
    fn raising_the_maximum_admits_more_at_once() {
        let b = Bulkhead::new(1).unwrap();
        let _p = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err());
        b.set_max_concurrent(3).unwrap();
        let _q = b.try_acquire().unwrap();
        let _r = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err());
        assert_eq!(b.in_use(), 3);
    }

    #[test]
    fn extreme_maximum_does_not_overflow() {
        let b = Bulkhead::new(u32::MAX).unwrap();
        // Fill the count to the top without holding four billion permits.
        b.state
            .store(pack(u32::MAX, u32::MAX - 1), Ordering::Relaxed);
        let p = b.try_acquire().unwrap();
        assert_eq!(b.in_use(), u32::MAX);
        assert_eq!(b.max_concurrent(), u32::MAX);
        assert_eq!(
            b.try_acquire().unwrap_err(),
            BulkheadFull {
                in_use: u32::MAX,
                max_concurrent: u32::MAX
            }
        );
        drop(p);
        assert_eq!(b.in_use(), u32::MAX - 1);
        assert_eq!(b.max_concurrent(), u32::MAX);
        b.set_max_concurrent(1).unwrap();
        assert_eq!(b.in_use(), u32::MAX - 1);
        assert_eq!(b.available(), 0);
    }

    #[derive(Default)]
    struct Recorder {
        acquired: Cell<u32>,
        rejected: Cell<u32>,
        released: Cell<u32>,
        last_in_use: Cell<u32>,
        max_changes: Cell<(u32, u32, u32)>,
    }

    impl BulkheadListener for Recorder {
        fn on_acquired(&self, in_use: u32) {
            self.acquired.set(self.acquired.get() + 1);
            self.last_in_use.set(in_use);
        }
        fn on_rejected(&self, full: BulkheadFull) {
            self.rejected.set(self.rejected.get() + 1);
            self.last_in_use.set(full.in_use());
        }
        fn on_released(&self, in_use: u32) {
            self.released.set(self.released.get() + 1);
            self.last_in_use.set(in_use);
        }
        fn on_max_changed(&self, old: u32, new: u32) {
            let (n, _, _) = self.max_changes.get();
            self.max_changes.set((n + 1, old, new));
        }
    }

    #[test]
    fn listener_sees_every_event_once() {
        let b = Bulkhead::with_listener(1, Recorder::default()).unwrap();
        let p = b.try_acquire().unwrap();
        assert_eq!(b.listener().last_in_use.get(), 1);
        assert!(b.try_acquire().is_err());
        assert!(b.try_acquire().is_err());
        drop(p);
        assert_eq!(b.listener().last_in_use.get(), 0);
        b.set_max_concurrent(1).unwrap(); // unchanged: not reported
        b.set_max_concurrent(5).unwrap();
        let l = b.listener();
        assert_eq!(
            (l.acquired.get(), l.rejected.get(), l.released.get()),
            (1, 2, 1)
        );
        assert_eq!(l.max_changes.get(), (1, 1, 5));
    }

    #[test]
    fn unreported_tries_tell_the_listener_of_grants_but_not_refusals() {
        let b = std::rc::Rc::new(Bulkhead::with_listener(1, Recorder::default()).unwrap());
        let p = b.try_acquire_unreported().unwrap();
        assert!(b.try_acquire_unreported().is_err());
        assert!(Bulkhead::try_acquire_owned_unreported(std::rc::Rc::clone(&b)).is_err());
        assert_eq!(b.in_use(), 1);
        drop(p);
        let owned = Bulkhead::try_acquire_owned_unreported(std::rc::Rc::clone(&b)).unwrap();
        assert!(b.try_acquire().is_err()); // the reporting form still reports
        drop(owned);
        let l = b.listener();
        assert_eq!(
            (l.acquired.get(), l.rejected.get(), l.released.get()),
            (2, 1, 2)
        );
    }

    #[test]
    fn display_and_debug() {
        use std::format;
        let full = BulkheadFull {
            in_use: 3,
            max_concurrent: 2,
        };
        assert_eq!(format!("{full}"), "bulkhead full: 3 in use of at most 2");
        let b = Bulkhead::new(2).unwrap();
        let p = b.try_acquire().unwrap();
        assert_eq!(
            format!("{p:?}"),
            "BulkheadPermit { bulkhead: Bulkhead { max_concurrent: 2, in_use: 1, .. } }"
        );
    }

    #[test]
    fn guard_releases_when_its_holder_panics() {
        let b = Bulkhead::new(1).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _permit = b.try_acquire().unwrap();
            assert_eq!(b.in_use(), 1);
            panic!("the protected call failed");
        }));
        assert!(result.is_err());
        assert_eq!(b.in_use(), 0);
        assert!(b.try_acquire().is_ok());
    }

    #[test]
    fn owned_guard_releases_when_its_thread_panics() {
        let b = Arc::new(Bulkhead::new(2).unwrap());
        let permit = Bulkhead::try_acquire_owned(Arc::clone(&b)).unwrap();
        let handle = std::thread::spawn(move || {
            let _held = permit;
            panic!("worker died holding a permit");
        });
        assert!(handle.join().is_err());
        assert_eq!(b.in_use(), 0);
        assert_eq!(b.available(), 2);
    }

    #[test]
    fn threads_never_exceed_the_maximum() {
        use std::sync::atomic::{AtomicU32 as StdAtomicU32, Ordering as StdOrdering};
        const MAX: u32 = 3;
        let b = Bulkhead::new(MAX).unwrap();
        let inside = StdAtomicU32::new(0);
        let peak = StdAtomicU32::new(0);
        let granted = StdAtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2_000 {
                        if let Ok(_p) = b.try_acquire() {
                            granted.fetch_add(1, StdOrdering::Relaxed);
                            let now = inside.fetch_add(1, StdOrdering::SeqCst) + 1;
                            peak.fetch_max(now, StdOrdering::SeqCst);
                            inside.fetch_sub(1, StdOrdering::SeqCst);
                        }
                    }
                });
            }
        });
        assert!(peak.load(StdOrdering::SeqCst) <= MAX);
        assert!(granted.load(StdOrdering::Relaxed) > 0);
        assert_eq!(b.in_use(), 0);
    }

    #[test]
    fn a_static_bulkhead_builds_in_a_const_context() {
        static B: Bulkhead = match Bulkhead::new(1) {
            Ok(b) => b,
            Err(_) => panic!("bad size"),
        };
        const BAD: Result<Bulkhead, ConfigError> = Bulkhead::new(0);
        assert!(BAD.is_err());
        let p = B.try_acquire().unwrap();
        assert!(B.try_acquire().is_err());
        drop(p);
        assert_eq!(B.available(), 1);
    }
}

#[cfg(all(test, not(loom)))]
mod properties {
    extern crate std;

    use proptest::prelude::*;
    use std::vec::Vec;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Acquire,
        /// Drop the held permit at this index (modulo the number held).
        Release(usize),
        SetMax(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Acquire),
            3 => any::<usize>().prop_map(Op::Release),
            1 => (0u32..8).prop_map(Op::SetMax),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(500)))]

        /// Any sequence of acquires, releases and changes of the maximum behaves like a
        /// plain counter and maximum: granted exactly when `in_use < max`.
        #[test]
        fn matches_a_counter_model(initial in 1u32..8, ops in proptest::collection::vec(op(), 0..200)) {
            let b = Bulkhead::new(initial).unwrap();
            let (mut max, mut held) = (initial, Vec::new());
            for op in ops {
                match op {
                    Op::Acquire => {
                        let in_use = held.len() as u32;
                        match b.try_acquire() {
                            Ok(p) => {
                                prop_assert!(in_use < max);
                                held.push(p);
                            }
                            Err(full) => {
                                prop_assert!(in_use >= max);
                                prop_assert_eq!((full.in_use(), full.max_concurrent()), (in_use, max));
                            }
                        }
                    }
                    Op::Release(i) => {
                        if !held.is_empty() {
                            let i = i % held.len();
                            drop(held.swap_remove(i));
                        }
                    }
                    Op::SetMax(m) => {
                        prop_assert_eq!(b.set_max_concurrent(m).is_ok(), m != 0);
                        if m != 0 {
                            max = m;
                        }
                    }
                }
                let in_use = held.len() as u32;
                prop_assert_eq!(
                    b.metrics(),
                    BulkheadMetrics { max_concurrent: max, in_use, available: max.saturating_sub(in_use) }
                );
            }
            drop(held);
            prop_assert_eq!(b.in_use(), 0);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering as LoomOrdering};
    use loom::thread;

    use super::*;

    /// Two threads race for one slot, each holding it while bumping a counter of
    /// holders: the counter never exceeds the maximum and every permit comes back.
    #[test]
    fn loom_max_never_exceeded_and_all_permits_return() {
        loom::model(|| {
            let bulkhead = Arc::new(Bulkhead::new(1).unwrap());
            let holders = Arc::new(AtomicUsize::new(0));
            let handles: [_; 2] = core::array::from_fn(|_| {
                let bulkhead = Arc::clone(&bulkhead);
                let holders = Arc::clone(&holders);
                thread::spawn(move || {
                    if let Ok(permit) = Bulkhead::try_acquire_owned(Arc::clone(&bulkhead)) {
                        let now = holders.fetch_add(1, LoomOrdering::Relaxed) + 1;
                        assert!(now <= 1, "{now} holders with a maximum of 1");
                        holders.fetch_sub(1, LoomOrdering::Relaxed);
                        drop(permit);
                        true
                    } else {
                        false
                    }
                })
            });
            let mut granted = 0;
            for h in handles {
                if h.join().unwrap() {
                    granted += 1;
                }
            }
            assert!(granted >= 1);
            assert_eq!(bulkhead.in_use(), 0);
            assert_eq!(bulkhead.max_concurrent(), 1);
        });
    }

    /// One thread lowers the maximum from 2 to 1 and then acquires, while another
    /// acquires: a permit granted after the lowering is the only one out while it is
    /// held, and the count returns to 0.
    #[test]
    fn loom_lowering_the_maximum_races_with_grants() {
        loom::model(|| {
            let bulkhead = Arc::new(Bulkhead::new(2).unwrap());
            let holders = Arc::new(AtomicUsize::new(0));
            let other = {
                let b = Arc::clone(&bulkhead);
                let holders = Arc::clone(&holders);
                thread::spawn(move || {
                    if let Ok(p) = b.try_acquire() {
                        holders.fetch_add(1, LoomOrdering::SeqCst);
                        holders.fetch_sub(1, LoomOrdering::SeqCst);
                        drop(p);
                    }
                })
            };
            bulkhead.set_max_concurrent(1).unwrap();
            if let Ok(p) = bulkhead.try_acquire() {
                let now = holders.fetch_add(1, LoomOrdering::SeqCst) + 1;
                assert_eq!(now, 1, "a grant after lowering to 1 must be alone");
                holders.fetch_sub(1, LoomOrdering::SeqCst);
                drop(p);
            }
            other.join().unwrap();
            assert_eq!(bulkhead.in_use(), 0);
            assert_eq!(bulkhead.max_concurrent(), 1);
        });
    }
}
