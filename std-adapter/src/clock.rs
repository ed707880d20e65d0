//! Clocks for std and tokio.

use std::time::Duration;

use stanchion::{Clock, Instant};

/// Nanoseconds in `d`, saturating at `u64::MAX` (584 years).
fn instant_after_epoch(d: Duration) -> Instant {
    Instant::from_nanos(stanchion::time::duration_to_nanos_saturating(d))
}

/// A clock on `tokio::time::Instant`, so that `tokio::time::pause()` and
/// `tokio::time::advance()` move it: tests of retries, breakers and limiters run on
/// virtual time.
///
/// Its epoch is the moment it was built; clones share it, so instants read through any
/// clone are comparable. Reading it costs one `tokio::time::Instant::now()`.
///
/// ```
/// use std::time::Duration;
/// use stanchion::{Clock, Instant};
/// use stanchion_std::TokioClock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::new();
/// tokio::time::sleep(Duration::from_secs(3600)).await; // no wall time passes
/// assert_eq!(clock.now(), Instant::from_secs(3600));
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose epoch is now.
    pub fn new() -> TokioClock {
        TokioClock::with_epoch(tokio::time::Instant::now())
    }

    /// A clock whose epoch is `epoch`.
    pub fn with_epoch(epoch: tokio::time::Instant) -> TokioClock {
        TokioClock { epoch }
    }

    /// The clock's epoch.
    pub fn epoch(&self) -> tokio::time::Instant {
        self.epoch
    }

    /// The tokio instant that `t` stands for, for `tokio::time::sleep_until`. Saturates
    /// at the far future that tokio can represent.
    pub fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        self.epoch
            .checked_add(t.since_epoch())
            .unwrap_or_else(|| far_future(self.epoch))
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> Instant {
        instant_after_epoch(tokio::time::Instant::now().saturating_duration_since(self.epoch))
    }
}

/// About 30 years after `from`: tokio's own choice for "never" (`sleep` with a duration
/// that overflows uses the same).
fn far_future(from: tokio::time::Instant) -> tokio::time::Instant {
    const THIRTY_YEARS: Duration = Duration::from_secs(86_400 * 365 * 30);
    from.checked_add(THIRTY_YEARS).unwrap_or(from)
}

/// A clock on `std::time::Instant` (the operating system's monotonic clock).
///
/// Its epoch is the moment it was built; clones share it. It does not see tokio's paused
/// time: use [`TokioClock`] in async code that tests drive with `tokio::time::pause()`.
///
/// ```
/// use stanchion::{Clock, Instant};
/// use stanchion_std::StdClock;
///
/// let clock = StdClock::new();
/// let a = clock.now();
/// let b = clock.now();
/// assert!(b >= a);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    epoch: std::time::Instant,
}

impl StdClock {
    /// A clock whose epoch is now.
    pub fn new() -> StdClock {
        StdClock::with_epoch(std::time::Instant::now())
    }

    /// A clock whose epoch is `epoch`.
    pub fn with_epoch(epoch: std::time::Instant) -> StdClock {
        StdClock { epoch }
    }

    /// The clock's epoch.
    pub fn epoch(&self) -> std::time::Instant {
        self.epoch
    }

    /// The std instant that `t` stands for; `None` if the platform cannot represent it.
    pub fn to_std(&self, t: Instant) -> Option<std::time::Instant> {
        self.epoch.checked_add(t.since_epoch())
    }
}

impl Default for StdClock {
    fn default() -> Self {
        StdClock::new()
    }
}

impl Clock for StdClock {
    #[inline]
    fn now(&self) -> Instant {
        instant_after_epoch(std::time::Instant::now().saturating_duration_since(self.epoch))
    }
}

/// A clock on the CPU's time-stamp counter, through [`quanta`](https://docs.rs/quanta)
/// (feature `quanta`): the fast clock for hot paths such as a rate limiter checked on
/// every request.
///
/// Reading it costs a `rdtsc` (or the platform's counter) and a multiply-shift, a few
/// nanoseconds, against about 30 ns for `std::time::Instant::now()` on a typical Linux
/// VM; it is the clock governor uses by default.
///
/// **Accuracy trade-off.** The counter is calibrated against the operating system's
/// monotonic clock once, when the first `QuantaClock` (or any `quanta::Clock`) is built,
/// which takes a few milliseconds. Its rate then stays what was measured: it may drift
/// from the OS clock by a small fraction (typically parts per million) and does not
/// follow NTP slewing. Where the CPU has no invariant TSC, `quanta` falls back to the OS
/// clock (and the cost with it). It does **not** follow tokio's paused time: tests that
/// use `tokio::time::pause()` need [`TokioClock`]. Readings on different cores are
/// comparable on CPUs with a synchronised TSC (all current x86-64); a reading that
/// appears earlier than a previous one is treated by core as "no time passed".
///
/// ```
/// use stanchion::Clock;
/// use stanchion_std::QuantaClock;
///
/// let clock = QuantaClock::new();
/// let a = clock.now();
/// let b = clock.now();
/// assert!(b >= a);
/// ```
#[cfg(feature = "quanta")]
#[derive(Clone, Debug)]
pub struct QuantaClock {
    clock: quanta::Clock,
    /// The raw counter at the epoch.
    epoch: u64,
}

#[cfg(feature = "quanta")]
impl QuantaClock {
    /// A clock whose epoch is now (calibrates the counter on first use).
    pub fn new() -> QuantaClock {
        QuantaClock::with_clock(quanta::Clock::new())
    }

    /// A clock reading from `clock` (a `quanta::Clock::mock()` in tests), epoch now.
    pub fn with_clock(clock: quanta::Clock) -> QuantaClock {
        let epoch = clock.raw();
        QuantaClock { clock, epoch }
    }
}

#[cfg(feature = "quanta")]
impl Default for QuantaClock {
    fn default() -> Self {
        QuantaClock::new()
    }
}

#[cfg(feature = "quanta")]
impl Clock for QuantaClock {
    #[inline]
    fn now(&self) -> Instant {
        // The raw counter and one multiply-shift: no `Duration` on the way. A counter
        // reading at or before the epoch is zero.
        Instant::from_nanos(self.clock.delta_as_nanos(self.epoch, self.clock.raw()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time_exactly() {
        let clock = TokioClock::new();
        assert_eq!(clock.now(), Instant::ZERO);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), Instant::from_millis(1500));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), Instant::from_millis(3_601_500));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_clones_share_the_epoch() {
        let clock = TokioClock::new();
        tokio::time::advance(Duration::from_secs(1)).await;
        let copy = clock;
        let later = TokioClock::new();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(copy.now(), Instant::from_secs(2));
        assert_eq!(later.now(), Instant::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn instant_before_the_epoch_reads_as_zero() {
        // A clock whose epoch lies in the future reads zero until the epoch arrives.
        let clock = TokioClock::with_epoch(tokio::time::Instant::now() + Duration::from_secs(5));
        assert_eq!(clock.now(), Instant::ZERO);
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(clock.now(), Instant::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn to_tokio_round_trips_and_saturates() {
        let clock = TokioClock::new();
        let t = Instant::from_millis(2500);
        assert_eq!(
            clock.to_tokio(t),
            clock.epoch() + Duration::from_millis(2500)
        );
        tokio::time::sleep_until(clock.to_tokio(t)).await;
        assert_eq!(clock.now(), t);
        // Instant::MAX is 584 years out; tokio gets a far, but representable, future.
        let never = clock.to_tokio(Instant::MAX);
        assert!(never > clock.epoch() + Duration::from_secs(86_400 * 365));
    }

    #[test]
    fn std_clock_conversions() {
        let epoch = std::time::Instant::now();
        let clock = StdClock::with_epoch(epoch);
        assert_eq!(
            clock.to_std(Instant::from_secs(2)),
            Some(epoch + Duration::from_secs(2))
        );
        assert_eq!(clock.epoch(), epoch);
        // An epoch in the future reads as zero, never as a wrapped huge value.
        let future = StdClock::with_epoch(epoch + Duration::from_secs(3600));
        assert_eq!(future.now(), Instant::ZERO);
    }

    #[cfg(feature = "quanta")]
    #[test]
    fn quanta_clock_follows_its_source_exactly() {
        let (source, mock) = quanta::Clock::mock();
        mock.increment(Duration::from_secs(5));
        let clock = QuantaClock::with_clock(source);
        assert_eq!(clock.now(), Instant::ZERO);
        mock.increment(Duration::from_nanos(1_500));
        assert_eq!(clock.now(), Instant::from_nanos(1_500));
        // A source that steps back reads as the epoch, never as a wrapped huge value.
        mock.decrement(Duration::from_secs(1));
        assert_eq!(clock.now(), Instant::ZERO);
    }
}
