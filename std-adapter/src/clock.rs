//! Clocks for std and tokio.

use std::sync::OnceLock;
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
/// Every clock from [`new`](TokioClock::new) (and [`Default`]), and so every layer,
/// limiter and runner of this crate that builds its own, shares one process-wide epoch:
/// instants read through any of them compare, and a deadline set on one clock means the
/// same on another. The epoch is fixed when the first such clock is built, and lies up to
/// a day before that moment (as far back as the platform's monotonic clock goes), so that
/// a runtime whose time was paused earlier (each `#[tokio::test(start_paused = true)]`
/// has its own) still reads its time moving forward exactly, never stuck at zero. So
/// readings are comparable, but their values are not "time since start": compare them
/// or take differences. [`with_epoch`](TokioClock::with_epoch) gives a clock of your own
/// epoch (zero at a chosen instant), [`starting_now`](TokioClock::starting_now) one that
/// reads zero now, for tests that assert exact instants.
///
/// Reading it costs one `tokio::time::Instant::now()`.
///
/// ```
/// use std::time::Duration;
/// use stanchion::Clock;
/// use stanchion_std::TokioClock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::new();
/// let start = clock.now();
/// tokio::time::sleep(Duration::from_secs(3600)).await; // no wall time passes
/// assert_eq!(clock.now().saturating_duration_since(start), Duration::from_secs(3600));
/// // Another clock, built later, reads the same instants.
/// assert_eq!(TokioClock::new().now(), clock.now());
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
}

impl TokioClock {
    /// The process-wide clock: its epoch is the one every `TokioClock::new()` shares
    /// (see the [type docs](TokioClock)). Costs one atomic load once the epoch is set.
    pub fn new() -> TokioClock {
        TokioClock::with_epoch(tokio::time::Instant::from_std(process_epoch()))
    }

    /// A clock of its own epoch, now: it reads [`Instant::ZERO`] at this moment, so a
    /// test on paused time can assert exact instants. Its instants compare with those
    /// of its copies only; give it to every pattern whose instants it reads.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stanchion::{Clock, Instant};
    /// use stanchion_std::TokioClock;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let clock = TokioClock::starting_now();
    /// tokio::time::sleep(Duration::from_secs(3600)).await;
    /// assert_eq!(clock.now(), Instant::from_secs(3600));
    /// # }
    /// ```
    pub fn starting_now() -> TokioClock {
        TokioClock::with_epoch(tokio::time::Instant::now())
    }

    /// A clock whose epoch is `epoch`: it reads [`Instant::ZERO`] then (and before).
    /// Its instants compare only with those of clocks of the same epoch.
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

/// How far before the first `TokioClock::new()` the process-wide epoch lies, at most.
const EPOCH_MARGIN: Duration = Duration::from_secs(86_400);

/// The process-wide epoch, fixed on first use.
fn process_epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(|| epoch_before(std::time::Instant::now()))
}

/// An instant up to [`EPOCH_MARGIN`] before `now`: the margin, or the largest half of it
/// that the platform's clock can go back (on some, the clock starts at boot).
fn epoch_before(now: std::time::Instant) -> std::time::Instant {
    let mut margin = EPOCH_MARGIN;
    while !margin.is_zero() {
        if let Some(epoch) = now.checked_sub(margin) {
            return epoch;
        }
        margin /= 2;
    }
    now
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
        let clock = TokioClock::starting_now();
        assert_eq!(clock.now(), Instant::ZERO);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), Instant::from_millis(1500));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), Instant::from_millis(3_601_500));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clocks_share_one_process_epoch() {
        let clock = TokioClock::new();
        let start = clock.now();
        tokio::time::advance(Duration::from_secs(1)).await;
        let copy = clock;
        let later = TokioClock::new();
        tokio::time::advance(Duration::from_secs(1)).await;
        // Built a second apart, the two read the same instants.
        assert_eq!(later.epoch(), clock.epoch());
        assert_eq!(later.now(), clock.now());
        assert_eq!(copy.now(), start.saturating_add(Duration::from_secs(2)));
        // So instants from two layers' clocks compare: a deadline set on one holds on
        // the other.
        let deadline = stanchion::Deadline::after(clock.now(), Duration::from_secs(1));
        assert!(!deadline.is_expired(later.now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(deadline.is_expired(later.now()));
    }

    #[test]
    fn a_runtime_paused_before_the_epoch_still_reads_time_exactly() {
        // Each paused test runtime freezes its time when it is built; the process-wide
        // epoch may be fixed later, by another test. It lies before, so readings in
        // that runtime move exactly with its virtual time from the start.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let epoch = epoch_before(std::time::Instant::now());
            let clock = TokioClock::with_epoch(tokio::time::Instant::from_std(epoch));
            let start = clock.now();
            assert!(start > Instant::ZERO);
            tokio::time::advance(Duration::from_millis(1500)).await;
            assert_eq!(
                clock.now().saturating_duration_since(start),
                Duration::from_millis(1500)
            );
        });
    }

    #[test]
    fn the_epoch_lies_a_day_back_where_the_clock_allows() {
        let now = std::time::Instant::now();
        let epoch = epoch_before(now);
        assert!(epoch <= now);
        assert!(now.duration_since(epoch) <= EPOCH_MARGIN);
        // Linux's monotonic clock goes back as far as needed.
        #[cfg(target_os = "linux")]
        assert_eq!(now.duration_since(epoch), EPOCH_MARGIN);
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
        assert_eq!(
            clock.to_tokio(Instant::from_millis(2500)),
            clock.epoch() + Duration::from_millis(2500)
        );
        let t = clock.now().saturating_add(Duration::from_millis(2500));
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
