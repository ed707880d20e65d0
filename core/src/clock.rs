//! The [`Clock`] trait that the clock-bound forms read, and [`ManualClock`], a virtual
//! clock for tests and simulations.
//!
//! Core's decisions never read a clock: they take `now` as an argument. A `Clock` is only
//! used by thin conveniences (`limiter.acquire(n)` reads the clock, then calls
//! `limiter.acquire_at(n, now)`). Adapters provide clocks for their runtimes:
//! `stanchion_std::TokioClock`, `stanchion_std::StdClock` and
//! `stanchion_embassy::EmbassyClock`.

use core::time::Duration;

// Core's 64-bit atomic (interrupt-safe in every supported set-up); under loom,
// portable-atomic's, since loom's atomics cannot be built in these `const fn` constructors.
#[cfg(not(loom))]
use crate::sync::AtomicU64;
use crate::sync::Ordering;
#[cfg(loom)]
use portable_atomic::AtomicU64;

use crate::time::{Instant, duration_to_nanos_saturating};

/// A source of the current [`Instant`].
///
/// # Contract
///
/// - `now` should be monotonic: it should never return an instant earlier than one it
///   returned before. Core does not rely on it: every algorithm treats a step backwards
///   as "no time passed", so a misbehaving clock can never make it admit more.
/// - `now` must not panic and should be cheap: it is called once per clock-bound
///   decision.
/// - The epoch is the clock's own. Instants read from different clocks are not
///   comparable.
///
/// ```
/// use stanchion::{Clock, Instant, ManualClock};
/// use core::time::Duration;
///
/// fn elapsed_since(clock: &impl Clock, start: Instant) -> Duration {
///     clock.now() - start
/// }
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(3600)); // an hour passes in no wall time
/// assert_eq!(elapsed_since(&clock, start), Duration::from_secs(3600));
/// ```
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Instant;
}

impl<C: Clock + ?Sized> Clock for &C {
    #[inline]
    fn now(&self) -> Instant {
        (**self).now()
    }
}

/// A virtual clock that moves only when told to.
///
/// It can be shared by `&` across threads (its state is one atomic word), so one test
/// can drive the same time for several tasks. It starts at [`Instant::ZERO`] unless
/// built with [`ManualClock::starting_at`]. [`advance`](ManualClock::advance)
/// saturates at [`Instant::MAX`]; [`set`](ManualClock::set) may move time backwards,
/// which is how tests check that a backwards step admits nothing extra.
///
/// It is a `const fn` away from a `static`:
///
/// ```
/// use core::time::Duration;
/// use stanchion::{Clock, Instant, ManualClock};
///
/// static CLOCK: ManualClock = ManualClock::new();
///
/// CLOCK.advance(Duration::from_millis(250));
/// assert_eq!(CLOCK.now(), Instant::from_millis(250));
/// CLOCK.set(Instant::from_millis(100)); // backwards, on purpose
/// assert_eq!(CLOCK.now(), Instant::from_millis(100));
/// ```
///
/// Cost: one atomic word; `now` is one atomic load, `advance` one read-modify-write
/// (on targets without 64-bit atomics, such as every Cortex-M, emulated as the crate's
/// `critical-section` or `single-core` feature says; see the crate docs, "Firmware").
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at [`Instant::ZERO`].
    pub const fn new() -> ManualClock {
        ManualClock::starting_at(Instant::ZERO)
    }

    /// A clock at `start`.
    pub const fn starting_at(start: Instant) -> ManualClock {
        ManualClock {
            nanos: AtomicU64::new(start.as_nanos()),
        }
    }

    /// Moves the clock forward by `d`, saturating at [`Instant::MAX`], and returns the
    /// new time.
    pub fn advance(&self, d: Duration) -> Instant {
        let step = duration_to_nanos_saturating(d);
        let previous = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(step))
            })
            // The closure always returns `Some`, so `fetch_update` always succeeds; both
            // arms carry the previous value.
            .unwrap_or_else(|n| n);
        Instant::from_nanos(previous.saturating_add(step))
    }

    /// Sets the clock to `t`, which may be earlier than the current time.
    pub fn set(&self, t: Instant) {
        self.nanos.store(t.as_nanos(), Ordering::Release);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_and_advances() {
        let clock = ManualClock::new();
        assert_eq!(clock.now(), Instant::ZERO);
        assert_eq!(
            clock.advance(Duration::from_millis(5)),
            Instant::from_millis(5)
        );
        assert_eq!(
            clock.advance(Duration::from_nanos(1)),
            Instant::from_nanos(5_000_001)
        );
        assert_eq!(clock.now(), Instant::from_nanos(5_000_001));
    }

    #[test]
    fn advance_saturates_at_max() {
        let clock = ManualClock::starting_at(Instant::from_nanos(u64::MAX - 1));
        assert_eq!(clock.advance(Duration::from_nanos(1)), Instant::MAX);
        assert_eq!(clock.advance(Duration::MAX), Instant::MAX);
        assert_eq!(
            clock.advance(Duration::from_secs(10 * 365 * 24 * 3600)),
            Instant::MAX
        );
        assert_eq!(clock.now(), Instant::MAX);
    }

    #[test]
    fn huge_jumps_saturate() {
        let clock = ManualClock::new();
        assert_eq!(clock.advance(Duration::MAX), Instant::MAX);
        let clock = ManualClock::new();
        let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(clock.advance(ten_years), Instant::from_secs(315_360_000));
    }

    #[test]
    fn set_moves_backwards_and_forwards() {
        let clock = ManualClock::starting_at(Instant::from_secs(10));
        clock.set(Instant::from_secs(3));
        assert_eq!(clock.now(), Instant::from_secs(3));
        // Elapsed time across a backwards step is zero, never negative or wrapped.
        assert_eq!(clock.now() - Instant::from_secs(10), Duration::ZERO);
        clock.set(Instant::MAX);
        assert_eq!(clock.now(), Instant::MAX);
        clock.set(Instant::ZERO);
        assert_eq!(clock.now(), Instant::ZERO);
    }

    #[test]
    fn clock_by_reference() {
        fn read(c: impl Clock) -> Instant {
            c.now()
        }
        let clock = ManualClock::starting_at(Instant::from_secs(1));
        assert_eq!(read(&clock), Instant::from_secs(1));
        let dynamic: &dyn Clock = &clock;
        assert_eq!(read(dynamic), Instant::from_secs(1));
    }

    #[test]
    fn shared_across_threads() {
        extern crate std;
        let clock = ManualClock::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        clock.advance(Duration::from_nanos(1));
                    }
                });
            }
        });
        assert_eq!(clock.now(), Instant::from_nanos(4000));
    }
}
