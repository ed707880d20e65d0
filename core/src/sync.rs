//! Synchronisation building blocks shared by every pattern.
//!
//! State that fits one word lives in an atomic from `portable-atomic` (so it builds on
//! targets without compare-and-swap, through a critical section), and a grant is one
//! compare-and-swap. Under `--cfg loom` the same names resolve to loom's atomics, so the
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
pub(crate) use portable_atomic::{
    AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

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
