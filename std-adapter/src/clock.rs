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
}
