//! Synchronisation building blocks shared by every pattern.
//!
//! State that fits one word lives in an atomic from `portable-atomic` (so it builds on
//! targets without compare-and-swap, through a critical section), and a grant is one
//! compare-and-swap. On targets without native 64-bit atomics, the 64-bit ones are
//! emulated so that interrupt handlers can share them: by masking interrupts inline
//! (`single-core`), or, with `critical-section`, by core's own 64-bit atomic, whose every
//! operation runs inside `critical_section::with` (portable-atomic's own fallback there is
//! a spinlock, which deadlocks against an interrupt handler; see the crate docs,
//! "Firmware"). Under `--cfg loom` the same names resolve to loom's atomics, so the
//! model checker explores every interleaving of that code.
//!
//! State that does not fit one word is a plain `&mut self` state machine, shared through
//! a short critical section whose kind the caller picks with a [`RawMutex`] type
//! parameter:
//!
//! | kind | use it for |
//! |---|---|
//! | [`CriticalSectionRawMutex`] | firmware state shared with interrupt handlers (needs a `critical-section` implementation in the binary) |
//! | [`NoopRawMutex`] | one executor or thread, never shared across threads (`!Sync`) |
//! | `stanchion_std::StdRawMutex` | threads on std: a per-instance lock |
//!
//! These are `embassy-sync`'s blocking-mutex kinds, which the embedded ecosystem already
//! uses, re-exported here.

pub use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex, RawMutex};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use portable_atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};

// 64-bit atomics. Where the target has them, or the firmware chose `single-core`
// (portable-atomic then masks interrupts around each 64-bit operation), they come from
// portable-atomic. Where the target lacks them and the firmware chose `critical-section`,
// they are core's own [`cs_atomic::AtomicU64`]: portable-atomic's `critical-section`
// feature covers only targets without compare-and-swap, and on a Cortex-M3/M4/M7 it would
// leave 64-bit atomics to its lock-based fallback, a global spinlock that deadlocks when an
// interrupt handler preempts its holder.
#[cfg(all(
    not(loom),
    any(target_has_atomic = "64", not(feature = "critical-section"))
))]
#[allow(unused_imports)]
pub(crate) use portable_atomic::AtomicU64;

#[cfg(all(not(loom), not(target_has_atomic = "64"), feature = "critical-section"))]
pub(crate) use cs_atomic::AtomicU64;

// Compiled with the feature on every target, so that host tests exercise it too (where it
// is not otherwise used: hosts have native 64-bit atomics).
#[cfg(all(not(loom), feature = "critical-section"))]
#[cfg_attr(target_has_atomic = "64", allow(dead_code))]
pub(crate) mod cs_atomic {
    //! A 64-bit atomic whose every operation runs inside `critical_section::with`.
    //!
    //! The `critical-section` implementation the binary links decides what that means: on
    //! one core it masks interrupts for the few instructions of the operation (so an
    //! interrupt handler never finds an operation half done, and never waits on one); on
    //! several cores it also takes a hardware or spin lock, with interrupts masked first,
    //! so a holder is never preempted on its own core. A critical section orders memory at
    //! least as strongly as `SeqCst` for the data inside it, so the `Ordering` arguments
    //! are accepted and need not be acted on.
    //!
    //! Same names and signatures as `portable_atomic::AtomicU64`, for the methods core uses
    //! (a new one is added here when core needs it: the cross-builds fail until it is).

    use core::cell::Cell;

    use critical_section::Mutex;
    use portable_atomic::Ordering;

    /// A `u64` shared through a critical section, with the methods of an atomic.
    pub(crate) struct AtomicU64 {
        value: Mutex<Cell<u64>>,
    }

    impl AtomicU64 {
        /// Holds `value`.
        pub(crate) const fn new(value: u64) -> Self {
            AtomicU64 {
                value: Mutex::new(Cell::new(value)),
            }
        }

        /// Runs `f` on the value inside a critical section.
        #[inline]
        fn with<R>(&self, f: impl FnOnce(&Cell<u64>) -> R) -> R {
            critical_section::with(|cs| f(self.value.borrow(cs)))
        }

        /// Replaces the value by `f(value)`, returning the previous value.
        #[inline]
        fn update(&self, f: impl FnOnce(u64) -> u64) -> u64 {
            self.with(|cell| {
                let previous = cell.get();
                cell.set(f(previous));
                previous
            })
        }

        pub(crate) fn load(&self, _: Ordering) -> u64 {
            self.with(Cell::get)
        }

        pub(crate) fn store(&self, value: u64, _: Ordering) {
            self.with(|cell| cell.set(value));
        }

        pub(crate) fn swap(&self, value: u64, _: Ordering) -> u64 {
            self.with(|cell| cell.replace(value))
        }

        pub(crate) fn compare_exchange(
            &self,
            current: u64,
            new: u64,
            _: Ordering,
            _: Ordering,
        ) -> Result<u64, u64> {
            self.with(|cell| {
                let seen = cell.get();
                if seen == current {
                    cell.set(new);
                    Ok(seen)
                } else {
                    Err(seen)
                }
            })
        }

        /// As [`compare_exchange`](Self::compare_exchange): it never fails spuriously.
        pub(crate) fn compare_exchange_weak(
            &self,
            current: u64,
            new: u64,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u64, u64> {
            self.compare_exchange(current, new, success, failure)
        }

        /// Calls `f` once, inside the critical section (so it never retries): `f` must be
        /// short, as interrupts stay masked while it runs.
        pub(crate) fn fetch_update(
            &self,
            _: Ordering,
            _: Ordering,
            f: impl FnOnce(u64) -> Option<u64>,
        ) -> Result<u64, u64> {
            self.with(|cell| {
                let previous = cell.get();
                match f(previous) {
                    Some(next) => {
                        cell.set(next);
                        Ok(previous)
                    }
                    None => Err(previous),
                }
            })
        }

        pub(crate) fn fetch_sub(&self, value: u64, _: Ordering) -> u64 {
            self.update(|v| v.wrapping_sub(value))
        }
    }

    impl Default for AtomicU64 {
        fn default() -> Self {
            AtomicU64::new(0)
        }
    }

    impl core::fmt::Debug for AtomicU64 {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            core::fmt::Debug::fmt(&self.load(Ordering::Relaxed), f)
        }
    }

    #[cfg(test)]
    mod tests {
        extern crate std;

        use super::*;

        #[test]
        fn every_operation_returns_and_stores_what_an_atomic_does() {
            let a = AtomicU64::new(5);
            let r = Ordering::Relaxed;
            assert_eq!(a.load(r), 5);
            a.store(7, r);
            assert_eq!(a.swap(9, r), 7);
            assert_eq!(a.compare_exchange(1, 2, r, r), Err(9));
            assert_eq!(a.compare_exchange_weak(9, 10, r, r), Ok(9));
            assert_eq!(a.fetch_add(u64::MAX, r), 10); // wraps, as an atomic does
            assert_eq!(a.fetch_sub(u64::MAX, r), 9);
            assert_eq!(a.fetch_update(r, r, |v| v.checked_sub(100)), Err(10));
            assert_eq!(a.fetch_update(r, r, |v| Some(v * 2)), Ok(10));
            assert_eq!(std::format!("{a:?}"), "20");
            assert_eq!(AtomicU64::default().load(r), 0);
        }

        #[test]
        fn threads_adding_at_once_lose_no_update() {
            // Fewer under Miri, which interprets every step.
            const ROUNDS: u64 = if cfg!(miri) { 100 } else { 10_000 };
            let a = AtomicU64::new(0);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..ROUNDS {
                            a.fetch_add(1, Ordering::AcqRel);
                            let _ = a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                                Some(v + (1 << 32))
                            });
                        }
                    });
                }
            });
            assert_eq!(a.load(Ordering::Acquire), 4 * ROUNDS + ((4 * ROUNDS) << 32));
        }
    }
}

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// Declares a function that is `const` except under `--cfg loom`, whose atomics cannot be
/// built in a const context. Use it for constructors of types that hold atomics, so that
/// they can initialise a `static` in firmware and still be model-checked.
///
/// ```text
/// const_fn_unless_loom! {
///     /// Docs.
///     pub fn new(x: u64) -> Self { Self { word: AtomicU64::new(x) } }
/// }
/// ```
#[allow(unused_macros)]
macro_rules! const_fn_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}
#[allow(unused_imports)]
pub(crate) use const_fn_unless_loom;

/// State shared through a short critical section of kind `M`: a thin wrapper around
/// `embassy_sync::blocking_mutex::Mutex<M, RefCell<T>>` that hands out `&mut T`.
///
/// The closure must not re-enter the same `Locked` (core never does), and should be
/// short: with [`CriticalSectionRawMutex`] it runs with interrupts masked.
pub struct Locked<M: RawMutex, T> {
    inner: embassy_sync::blocking_mutex::Mutex<M, core::cell::RefCell<T>>,
}

impl<M: RawMutex, T> Locked<M, T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Locked {
            inner: embassy_sync::blocking_mutex::Mutex::new(core::cell::RefCell::new(value)),
        }
    }

    /// Runs `f` on the state inside the critical section.
    ///
    /// # Panics
    ///
    /// If `f` calls `with` on this same `Locked` (re-entry: the state is already lent
    /// out), as a `RefCell` borrowed twice does. Core never re-enters: inside, it calls only
    /// the state's own methods (a `SharedLimiter`'s limiter, an adaptive bulkhead's
    /// algorithm), and listeners run after the critical section; only code of yours that
    /// reaches this `Locked` again from inside can. (Without `unsafe` there is no cheaper
    /// guard: the panic path costs a firmware a few bytes and a location record.)
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.inner.lock(|cell| {
            // The raw mutex guarantees that only one `with` runs at a time and core never
            // re-enters, so the cell is never already borrowed here.
            #[allow(clippy::expect_used)]
            let mut state = cell
                .try_borrow_mut()
                .expect("Locked::with re-entered the same state");
            f(&mut state)
        })
    }

    /// The state, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut().get_mut()
    }

    /// Unwraps the state.
    pub fn into_inner(self) -> T {
        self.inner.into_inner().into_inner()
    }
}

impl<M: RawMutex, T: core::fmt::Debug> core::fmt::Debug for Locked<M, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.inner.lock(|cell| match cell.try_borrow() {
            Ok(state) => f.debug_tuple("Locked").field(&*state).finish(),
            Err(_) => f.write_str("Locked(<in use>)"),
        })
    }
}

#[cfg(all(test, loom))]
pub(crate) mod loom_mutex {
    //! A [`RawMutex`] that loom sees, for core's loom models.
    //!
    //! [`CriticalSectionRawMutex`](super::CriticalSectionRawMutex) under a test is the
    //! `critical-section` crate's std implementation: a std mutex that loom does not see,
    //! with an "already locked" flag in a std thread-local for re-entry. Loom runs all of
    //! a model's threads on one OS thread, so a loom thread that enters while loom has
    //! parked another inside finds the flag set, takes itself for a re-entry and runs
    //! inside too (core's `Locked` then panics: the state is already borrowed).
    //! [`LoomRawMutex`] is a `loom::sync::Mutex<()>`: loom explores every order in which
    //! threads take it, with the happens-before edges it creates.
    //!
    //! Compiled only for core's loom models (`cfg(all(test, loom))`). A pattern's loom
    //! models use it as the `M` of its [`Locked`](super::Locked) state, and
    //! [`locks_taken_by_this_thread`] to tell which path a call took.

    extern crate std;

    use core::cell::Cell;
    use std::sync::{OnceLock, PoisonError};

    use super::RawMutex;

    /// A per-instance lock that loom models: a `loom::sync::Mutex<()>`, created when it
    /// is first taken.
    ///
    /// `RawMutex::INIT` must be a constant and `loom::sync::Mutex::new` is not (it
    /// registers the mutex with the running model), hence the `OnceLock`. Rules for the
    /// models that use it:
    ///
    /// - Take it first on the model's main thread, before any thread is spawned (for
    ///   example by an outcome or a `metrics_at` call that enters the critical section).
    ///   The `OnceLock` is a std primitive that loom does not model; initialised before
    ///   the threads exist, it is not part of any interleaving that loom explores.
    /// - Build the instance inside the `loom::model` closure, so that each execution gets
    ///   a fresh mutex: a loom mutex belongs to the execution that created it, so one kept
    ///   in a `static` would be used by a later execution after it was gone.
    /// - Do not re-enter it from the thread that holds it (embassy-sync's trait allows
    ///   re-entry; core never re-enters a [`Locked`](super::Locked)): loom reports that as
    ///   a deadlock.
    pub(crate) struct LoomRawMutex {
        lock: OnceLock<loom::sync::Mutex<()>>,
    }

    loom::thread_local! {
        /// How many times the current loom thread has taken any `LoomRawMutex`.
        static LOCKS_TAKEN: Cell<u32> = Cell::new(0);
    }

    // SAFETY: `RawMutex` requires that `lock` runs at most one closure at a time for a
    // given instance. The closure runs while the guard of the instance's one loom mutex is
    // held (the `OnceLock` hands every caller the same mutex), and a loom mutex admits one
    // holder at a time. Loom never poisons its mutex; recovering a poisoned guard would
    // keep that property anyway.
    #[allow(unsafe_code)]
    unsafe impl RawMutex for LoomRawMutex {
        const INIT: Self = LoomRawMutex {
            lock: OnceLock::new(),
        };

        fn lock<R>(&self, f: impl FnOnce() -> R) -> R {
            let _guard = self
                .lock
                .get_or_init(|| loom::sync::Mutex::new(()))
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            LOCKS_TAKEN.with(|n| n.set(n.get().saturating_add(1)));
            f()
        }
    }

    /// How many times the calling loom thread has taken a [`LoomRawMutex`] (any
    /// instance) in the current execution; 0 when a thread starts. Two readings tell a
    /// model whether a call between them entered the critical section: for example,
    /// whether a success was counted in a breaker's state word (no lock) or went through
    /// the lock.
    pub(crate) fn locks_taken_by_this_thread() -> u32 {
        LOCKS_TAKEN.with(Cell::get)
    }
}
