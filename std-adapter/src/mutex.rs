//! A per-instance lock for core's critical sections on std.

use embassy_sync::blocking_mutex::raw::RawMutex;

/// A [`RawMutex`] kind backed by a per-instance `std::sync::Mutex`.
///
/// Core's patterns whose state does not fit one atomic word take a `RawMutex` type
/// parameter (see `stanchion::sync`). On std, pick this one: each pattern instance gets
/// its own lock, so unrelated limiters or breakers never contend, unlike a global
/// critical section. A poisoned lock is recovered (core's critical sections do not panic,
/// and their state stays consistent between calls).
///
/// ```
/// use stanchion::sync::Locked;
/// use stanchion_std::StdRawMutex;
///
/// static COUNTER: Locked<StdRawMutex, u64> = Locked::new(0);
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| (0..1000).for_each(|_| COUNTER.with(|c| *c += 1)));
///     }
/// });
/// assert_eq!(COUNTER.with(|c| *c), 4000);
/// ```
#[derive(Debug, Default)]
pub struct StdRawMutex {
    lock: std::sync::Mutex<()>,
}

impl StdRawMutex {
    /// A new, unlocked mutex.
    pub const fn new() -> StdRawMutex {
        StdRawMutex {
            lock: std::sync::Mutex::new(()),
        }
    }
}

// SAFETY: `RawMutex` requires that `lock` runs at most one closure at a time for a given
// instance. The closure runs while the guard of `self.lock` is held, and a
// `std::sync::Mutex` admits one holder at a time; recovering a poisoned guard keeps that
// property (poisoning only records that a holder panicked).
#[allow(unsafe_code)]
unsafe impl RawMutex for StdRawMutex {
    const INIT: Self = StdRawMutex::new();

    fn lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f()
    }
}
