//! Rate limiters: token bucket (GCRA), fixed window, sliding window counter, sliding
//! window log, leaky bucket as a queue, and keyed limiting.
//!
//! Every limiter answers one question, "may `n` requests go at `now`?", through one trait,
//! [`RateLimiter`], so that the adapters (tower layers, FIFO-fair async waiting, a
//! Redis-backed limiter) are written once against it:
//!
//! - [`acquire_at(n, now)`](RateLimiter::acquire_at) takes `n` permits, all or nothing;
//!   a denial says *when* to come back ([`Denied::retry_after`], rounded up, never zero)
//!   or that `n` can *never* fit ([`InsufficientCapacity`], carrying the largest `n`
//!   that can).
//! - [`peek_at`](RateLimiter::peek_at) and [`remaining_at`](RateLimiter::remaining_at)
//!   answer without consuming; [`reset`](RateLimiter::reset) forgets all history.
//! - [`WithClock`] binds a limiter to any [`Clock`] for the clock-bound forms
//!   (`acquire(n)`, `peek(n)`, `remaining()`).
//!
//! | limiter | state | sharing | choose it when |
//! |---|---|---|---|
//! | [`TokenBucket`] (GCRA) | one `u64` | atomics, one CAS per grant | the default: smooth, exact, cheapest |
//! | [`LeakyBucket`] (queue) | one `u64` | atomics, one CAS per grant | you want to *space* requests evenly (`reserve_at`) |
//! | [`FixedWindow`] | 16 bytes | [`SharedLimiter`] (critical section) | you need "n per calendar window", and the 2x boundary burst is fine |
//! | [`SlidingWindowCounter`] | 24 bytes | [`SharedLimiter`] | windows without the boundary burst, approximately |
//! | [`SlidingWindowLog`] | `8 * N` bytes | [`SharedLimiter`] | windows, exactly, for small limits |
//! | [`KeyedTokenBucket`] | 24 bytes per key, fixed | [`SharedLimiter`] | one GCRA per client, bounded memory |
//!
//! Requests for `n = 0` permits are always granted and change nothing.
//!
//! State that fits one word is shared through atomics (nothing written on a denial);
//! state that does not is a plain `&mut self` state machine implementing
//! [`RateLimitState`], shared by wrapping it in a [`SharedLimiter`], a short critical
//! section whose kind (`M: RawMutex`) the caller picks.

use core::fmt;
use core::time::Duration;

use crate::clock::Clock;
use crate::error::ConfigError;
use crate::sync::{Locked, RawMutex};
use crate::time::Instant;

mod fixed_window;
mod gcra;
mod keyed;
mod leaky_bucket;
mod sliding_window_counter;
mod sliding_window_log;
mod token_bucket;

pub use fixed_window::FixedWindow;
pub use gcra::Gcra;
pub use keyed::{FullTablePolicy, KeyHasher, KeyedRateLimiter, KeyedTokenBucket};
pub use leaky_bucket::{LeakyBucket, Spacing};
pub use sliding_window_counter::SlidingWindowCounter;
pub use sliding_window_log::SlidingWindowLog;
pub use token_bucket::TokenBucket;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A request that cannot go now, but can later: come back after
/// [`retry_after`](Denied::retry_after).
///
/// `retry_after` is rounded up (to the next nanosecond of the limiter's arithmetic) and
/// never zero: a request of the same size, made exactly `retry_after` later and with no
/// other request in between, is granted (for the sliding window log and the windows,
/// provided the clock has not stepped backwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Denied {
    /// Nanoseconds, at least 1 (a `u64` keeps the error two words, cheap to return).
    retry_after_nanos: u64,
}

impl Denied {
    /// A denial that lifts after `retry_after`, raised to at least one nanosecond and
    /// saturating at `u64::MAX` nanoseconds (584 years).
    pub const fn new(retry_after: Duration) -> Denied {
        Denied::from_nanos(crate::time::duration_to_nanos_saturating(retry_after))
    }

    /// A denial that lifts after `nanos` nanoseconds (at least one).
    #[inline]
    pub const fn from_nanos(nanos: u64) -> Denied {
        Denied {
            retry_after_nanos: if nanos == 0 { 1 } else { nanos },
        }
    }

    /// A denial that lifts at `at`, seen from `now` (at least one nanosecond).
    #[inline]
    pub(crate) const fn until(at: u64, now: u64) -> Denied {
        Denied::from_nanos(at.saturating_sub(now))
    }

    /// How long to wait before the same request can be granted; never zero.
    #[inline]
    pub const fn retry_after(&self) -> Duration {
        crate::time::duration_from_nanos(self.retry_after_nanos)
    }

    /// [`retry_after`](Denied::retry_after) in nanoseconds.
    #[inline]
    pub const fn retry_after_nanos(&self) -> u64 {
        self.retry_after_nanos
    }

    /// The instant at which the same request can be granted, seen from `now`.
    pub const fn earliest(&self, now: Instant) -> Instant {
        Instant::from_nanos(now.as_nanos().saturating_add(self.retry_after_nanos))
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited: retry after {}",
            crate::time::ShowDuration(self.retry_after())
        )
    }
}

impl core::error::Error for Denied {}

/// A request for more permits than the limiter can ever grant at once (more than its
/// burst or window limit): waiting will not help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InsufficientCapacity {
    max: u32,
}

impl InsufficientCapacity {
    /// The error for a limiter that can grant at most `max` permits at once.
    pub const fn new(max: u32) -> InsufficientCapacity {
        InsufficientCapacity { max }
    }

    /// The largest `n` that the limiter can ever grant at once.
    pub const fn max(&self) -> u32 {
        self.max
    }
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request can never be granted: at most {} permits at once",
            self.max
        )
    }
}

impl core::error::Error for InsufficientCapacity {}

/// Why [`RateLimiter::acquire_at`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RateLimitError {
    /// Not now; retry after [`Denied::retry_after`].
    Denied(Denied),
    /// Never: `n` is above what the limiter can grant at once.
    InsufficientCapacity(InsufficientCapacity),
}

impl RateLimitError {
    /// The wait for a [`Denied`]; `None` if the request can never succeed.
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            RateLimitError::Denied(d) => Some(d.retry_after()),
            RateLimitError::InsufficientCapacity(_) => None,
        }
    }

    /// [`retry_after`](RateLimitError::retry_after) in nanoseconds, without building a
    /// `Duration`.
    pub const fn retry_after_nanos(&self) -> Option<u64> {
        match self {
            RateLimitError::Denied(d) => Some(d.retry_after_nanos()),
            RateLimitError::InsufficientCapacity(_) => None,
        }
    }

    /// Whether waiting can help (`false` for [`InsufficientCapacity`]).
    pub const fn is_retryable(&self) -> bool {
        matches!(self, RateLimitError::Denied(_))
    }

    pub(crate) const fn until(at: u64, now: u64) -> RateLimitError {
        RateLimitError::Denied(Denied::until(at, now))
    }

    pub(crate) const fn too_large(max: u32) -> RateLimitError {
        RateLimitError::InsufficientCapacity(InsufficientCapacity::new(max))
    }
}

impl From<Denied> for RateLimitError {
    fn from(d: Denied) -> Self {
        RateLimitError::Denied(d)
    }
}

impl From<InsufficientCapacity> for RateLimitError {
    fn from(e: InsufficientCapacity) -> Self {
        RateLimitError::InsufficientCapacity(e)
    }
}

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitError::Denied(d) => d.fmt(f),
            RateLimitError::InsufficientCapacity(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for RateLimitError {}

/// Another thread or interrupt handler was changing the same limiter's quota at that
/// moment; this change was not applied (the other one was). Retry it if it must win.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuotaChangeConflict;

impl fmt::Display for QuotaChangeConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("another quota change on the same limiter was in progress")
    }
}

impl core::error::Error for QuotaChangeConflict {}

// ---------------------------------------------------------------------------------------
// Quotas
// ---------------------------------------------------------------------------------------

/// A rate as a burst and a refill period per permit: the configuration of the
/// [`TokenBucket`] and the [`KeyedTokenBucket`].
///
/// The bucket holds at most `burst` permits and gains one every `period`, continuously.
/// The constructors mirror governor's: [`Quota::per_second(n)`](Quota::per_second) is a
/// burst of `n` refilled at `n` per second (one every `1 s / n`, rounded down to the
/// nanosecond), and [`with_burst`](Quota::with_burst) changes the burst alone.
///
/// ```
/// use core::time::Duration;
/// use stanchion::rate::Quota;
///
/// let q = Quota::per_second(100)?.with_burst(10)?;
/// assert_eq!(q.period(), Duration::from_millis(10));
/// assert_eq!(q.burst(), 10);
/// assert_eq!(q.burst_refill_time(), Duration::from_millis(100));
/// assert!(Quota::per_second(0).is_err());
/// assert!(Quota::per_period(Duration::ZERO).is_err());
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Quota {
    period_nanos: u64,
    burst: u32,
}

impl Quota {
    /// `burst` permits at once, then one every `period`: [`per_period`](Quota::per_period)
    /// and [`with_burst`](Quota::with_burst) in one step, with their ranges.
    ///
    /// ```
    /// use core::time::Duration;
    /// use stanchion::rate::Quota;
    ///
    /// let q = Quota::new(3, Duration::from_millis(100))?;
    /// assert_eq!((q.burst(), q.period()), (3, Duration::from_millis(100)));
    /// assert!(Quota::new(0, Duration::from_millis(100)).is_err());
    /// # Ok::<(), stanchion::ConfigError>(())
    /// ```
    pub const fn new(burst: u32, period: Duration) -> Result<Quota, ConfigError> {
        match Quota::per_period(period) {
            Ok(q) => q.with_burst(burst),
            Err(e) => Err(e),
        }
    }

    /// One permit every `period`, burst 1. `period` must be at least 1 ns and at most
    /// `u64::MAX` ns.
    pub const fn per_period(period: Duration) -> Result<Quota, ConfigError> {
        let nanos = period.as_nanos();
        if nanos == 0 || nanos > u64::MAX as u128 {
            return Err(ConfigError::new("period", "in 1 ns..=u64::MAX ns"));
        }
        Ok(Quota {
            period_nanos: nanos as u64,
            burst: 1,
        })
    }

    /// `n` permits per `interval`, burst `n`: one permit every `interval / n` (rounded
    /// down to the nanosecond, which must leave at least 1 ns).
    pub const fn per_interval(n: u32, interval: Duration) -> Result<Quota, ConfigError> {
        if n == 0 {
            return Err(ConfigError::new("n", "at least 1"));
        }
        let period = match interval.as_nanos().checked_div(n as u128) {
            Some(p) => p,
            None => 0,
        };
        if period == 0 || period > u64::MAX as u128 {
            return Err(ConfigError::new(
                "interval",
                "at least n ns and at most u64::MAX ns per permit",
            ));
        }
        Quota {
            period_nanos: period as u64,
            burst: 1,
        }
        .with_burst(n)
    }

    /// `n` per second, burst `n` (`n` in `1..=1_000_000_000`).
    pub const fn per_second(n: u32) -> Result<Quota, ConfigError> {
        Quota::per_interval(n, Duration::from_secs(1))
    }

    /// `n` per minute, burst `n`.
    pub const fn per_minute(n: u32) -> Result<Quota, ConfigError> {
        Quota::per_interval(n, Duration::from_secs(60))
    }

    /// `n` per hour, burst `n`.
    pub const fn per_hour(n: u32) -> Result<Quota, ConfigError> {
        Quota::per_interval(n, Duration::from_secs(3600))
    }

    /// The same refill period with a burst of `burst` (at least 1, and such that
    /// `period * (burst - 1)` fits in `u64` nanoseconds, about 584 years).
    pub const fn with_burst(self, burst: u32) -> Result<Quota, ConfigError> {
        if burst == 0 {
            return Err(ConfigError::new("burst", "at least 1"));
        }
        if (self.period_nanos as u128).saturating_mul(burst.saturating_sub(1) as u128)
            > u64::MAX as u128
        {
            return Err(ConfigError::new(
                "burst",
                "such that period x (burst - 1) fits in 584 years",
            ));
        }
        Ok(Quota {
            period_nanos: self.period_nanos,
            burst,
        })
    }

    /// A share `numerator / denominator` of this quota (`1 <= numerator <= denominator`):
    /// the burst scaled down (rounded down, at least 1) and the period scaled up (rounded
    /// up), so `denominator` holders of `1 / denominator` each never admit together more
    /// than the whole, except for the burst's floor of 1. What each instance of a fleet
    /// may grant on its own when the shared limit is out of reach.
    ///
    /// ```
    /// use core::time::Duration;
    /// use stanchion::rate::Quota;
    ///
    /// let quarter = Quota::per_second(100)?.share(1, 4)?;
    /// assert_eq!((quarter.burst(), quarter.period()), (25, Duration::from_millis(40)));
    /// assert_eq!(Quota::per_second(3)?.share(1, 4)?.burst(), 1);
    /// assert!(Quota::per_second(3)?.share(2, 1).is_err());
    /// # Ok::<(), stanchion::ConfigError>(())
    /// ```
    pub const fn share(self, numerator: u32, denominator: u32) -> Result<Quota, ConfigError> {
        if numerator == 0 || numerator > denominator {
            return Err(ConfigError::new(
                "numerator",
                "in 1..=denominator (a share of at most the whole)",
            ));
        }
        let (num, den) = (numerator as u128, denominator as u128);
        let scaled = (self.period_nanos as u128).saturating_mul(den);
        let period = match scaled.checked_div(num) {
            Some(p) => match scaled.checked_rem(num) {
                Some(0) => p,
                _ => p.saturating_add(1),
            },
            None => 0,
        };
        if period > u64::MAX as u128 {
            return Err(ConfigError::new(
                "denominator",
                "such that period x denominator fits in 584 years",
            ));
        }
        let burst = match (self.burst as u128).saturating_mul(num).checked_div(den) {
            Some(b) if b >= 1 => b as u32,
            _ => 1,
        };
        Quota {
            period_nanos: period as u64,
            burst: 1,
        }
        .with_burst(burst)
    }

    /// The largest number of permits granted at once (the bucket's capacity).
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// The time to regain one permit.
    pub const fn period(&self) -> Duration {
        crate::time::duration_from_nanos(self.period_nanos)
    }

    /// The time an empty bucket takes to fill up: `period * burst`, saturating.
    pub const fn burst_refill_time(&self) -> Duration {
        crate::time::duration_from_nanos(self.period_nanos.saturating_mul(self.burst as u64))
    }

    /// Rebuilds a quota from validated parts (period >= 1 ns, burst >= 1, tolerance fits).
    pub(crate) const fn from_params(period_nanos: u64, burst: u32) -> Quota {
        Quota {
            period_nanos,
            burst,
        }
    }

    pub(crate) const fn period_nanos(&self) -> u64 {
        self.period_nanos
    }

    /// GCRA's tolerance: `period * (burst - 1)`; fits by construction.
    pub(crate) const fn tolerance_nanos(&self) -> u64 {
        self.period_nanos
            .saturating_mul(self.burst.saturating_sub(1) as u64)
    }
}

/// A limit per window: at most `limit` permits in each window of length `window`. The
/// configuration of [`FixedWindow`], [`SlidingWindowCounter`] and [`SlidingWindowLog`].
///
/// ```
/// use core::time::Duration;
/// use stanchion::rate::WindowQuota;
///
/// let q = WindowQuota::per_minute(600)?;
/// assert_eq!((q.limit(), q.window()), (600, Duration::from_secs(60)));
/// assert!(WindowQuota::new(10, Duration::ZERO).is_err());
/// assert!(WindowQuota::new(0, Duration::from_secs(1)).is_err());
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WindowQuota {
    window_nanos: u64,
    limit: u32,
}

impl WindowQuota {
    /// At most `limit` (at least 1) per `window` (1 ns..=`u64::MAX` ns).
    pub const fn new(limit: u32, window: Duration) -> Result<WindowQuota, ConfigError> {
        if limit == 0 {
            return Err(ConfigError::new("limit", "at least 1"));
        }
        let nanos = window.as_nanos();
        if nanos == 0 || nanos > u64::MAX as u128 {
            return Err(ConfigError::new("window", "in 1 ns..=u64::MAX ns"));
        }
        Ok(WindowQuota {
            window_nanos: nanos as u64,
            limit,
        })
    }

    /// At most `limit` per second.
    pub const fn per_second(limit: u32) -> Result<WindowQuota, ConfigError> {
        WindowQuota::new(limit, Duration::from_secs(1))
    }

    /// At most `limit` per minute.
    pub const fn per_minute(limit: u32) -> Result<WindowQuota, ConfigError> {
        WindowQuota::new(limit, Duration::from_secs(60))
    }

    /// At most `limit` per hour.
    pub const fn per_hour(limit: u32) -> Result<WindowQuota, ConfigError> {
        WindowQuota::new(limit, Duration::from_secs(3600))
    }

    /// The most permits in one window.
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// The window's length.
    pub const fn window(&self) -> Duration {
        crate::time::duration_from_nanos(self.window_nanos)
    }

    pub(crate) const fn window_nanos(&self) -> u64 {
        self.window_nanos
    }
}

// ---------------------------------------------------------------------------------------
// The traits
// ---------------------------------------------------------------------------------------

/// A rate limiter shared by `&`: the interface that adapters are written against.
///
/// Implementations never panic, never read a clock, and treat a `now` earlier than one
/// they have seen as "no time passed": a clock that steps backwards never makes them
/// admit more. A request for more than [`max_acquire`](RateLimiter::max_acquire) permits
/// is answered [`InsufficientCapacity`] by both `acquire_at` and `peek_at`, whatever the
/// state: adapters rely on it to refuse such a request at once rather than wait for it.
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{Quota, RateLimiter, TokenBucket};
///
/// fn admit_batch(limiter: &impl RateLimiter, n: u32, now: Instant) -> Option<Duration> {
///     limiter.acquire_at(n, now).err().and_then(|e| e.retry_after())
/// }
///
/// let bucket = TokenBucket::new(Quota::per_second(10)?);
/// assert_eq!(admit_batch(&bucket, 10, Instant::ZERO), None);
/// assert_eq!(admit_batch(&bucket, 2, Instant::ZERO), Some(Duration::from_millis(200)));
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
pub trait RateLimiter {
    /// Takes `n` permits at `now`, all or nothing. A denial changes nothing.
    fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError>;

    /// What [`acquire_at`](RateLimiter::acquire_at) would answer, without consuming.
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError>;

    /// The largest `n` that [`acquire_at`](RateLimiter::acquire_at) would grant at `now`.
    fn remaining_at(&self, now: Instant) -> u32;

    /// The largest `n` that can ever be granted at once (the burst or window limit).
    fn max_acquire(&self) -> u32;

    /// Forgets all history: the limiter is as if just built.
    fn reset(&self);
}

impl<L: RateLimiter + ?Sized> RateLimiter for &L {
    #[inline]
    fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        (**self).acquire_at(n, now)
    }
    #[inline]
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        (**self).peek_at(n, now)
    }
    #[inline]
    fn remaining_at(&self, now: Instant) -> u32 {
        (**self).remaining_at(now)
    }
    #[inline]
    fn max_acquire(&self) -> u32 {
        (**self).max_acquire()
    }
    #[inline]
    fn reset(&self) {
        (**self).reset()
    }
}

/// A rate limiter as a plain single-owner state machine (`&mut self`): the limiters whose
/// state does not fit one atomic word. Wrap one in a [`SharedLimiter`] to share it.
pub trait RateLimitState {
    /// Takes `n` permits at `now`, all or nothing.
    fn acquire_at(&mut self, n: u32, now: Instant) -> Result<(), RateLimitError>;

    /// What [`acquire_at`](RateLimitState::acquire_at) would answer, without consuming.
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError>;

    /// The largest `n` that [`acquire_at`](RateLimitState::acquire_at) would grant now.
    fn remaining_at(&self, now: Instant) -> u32;

    /// The largest `n` that can ever be granted at once.
    fn max_acquire(&self) -> u32;

    /// Forgets all history.
    fn reset(&mut self);
}

/// A [`RateLimitState`] (or a [`KeyedTokenBucket`]) shared by `&` through a short
/// critical section of kind `M` (see [`crate::sync`]): `CriticalSectionRawMutex` in
/// firmware, `stanchion_std::StdRawMutex` on threads.
///
/// Each call holds the lock for one decision, a few dozen instructions.
///
/// ```
/// use core::time::Duration;
/// use stanchion::Instant;
/// use stanchion::rate::{FixedWindow, RateLimiter, SharedLimiter, WindowQuota};
/// use stanchion::sync::CriticalSectionRawMutex;
///
/// static LIMITER: SharedLimiter<CriticalSectionRawMutex, FixedWindow> =
///     SharedLimiter::new(FixedWindow::new(stanchion::const_config!(WindowQuota::per_second(2))));
///
/// assert!(LIMITER.acquire_at(2, Instant::ZERO).is_ok());
/// let err = LIMITER.acquire_at(1, Instant::from_millis(300)).unwrap_err();
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(700)));
/// ```
pub struct SharedLimiter<M: RawMutex, S> {
    state: Locked<M, S>,
}

impl<M: RawMutex, S> SharedLimiter<M, S> {
    /// Shares `state`.
    pub const fn new(state: S) -> Self {
        SharedLimiter {
            state: Locked::new(state),
        }
    }

    /// Runs `f` on the state inside the critical section (to change its quota, say).
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.state.with(f)
    }

    /// The state, through exclusive access.
    pub fn get_mut(&mut self) -> &mut S {
        self.state.get_mut()
    }

    /// Unwraps the state.
    pub fn into_inner(self) -> S {
        self.state.into_inner()
    }
}

impl<M: RawMutex, S: fmt::Debug> fmt::Debug for SharedLimiter<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLimiter")
            .field("state", &self.state)
            .finish()
    }
}

impl<M: RawMutex, S: RateLimitState> RateLimiter for SharedLimiter<M, S> {
    #[inline]
    fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.state.with(|s| s.acquire_at(n, now))
    }
    #[inline]
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.state.with(|s| s.peek_at(n, now))
    }
    #[inline]
    fn remaining_at(&self, now: Instant) -> u32 {
        self.state.with(|s| s.remaining_at(now))
    }
    #[inline]
    fn max_acquire(&self) -> u32 {
        self.state.with(|s| s.max_acquire())
    }
    #[inline]
    fn reset(&self) {
        self.state.with(|s| s.reset())
    }
}

/// A limiter bound to a clock: the clock-bound forms (`acquire(n)`, `peek(n)`,
/// `remaining()`) read `clock` and call the `*_at` decision. `L` may be a limiter or a
/// reference to one; `C` any [`Clock`] (or a reference to one).
///
/// ```
/// use core::time::Duration;
/// use stanchion::ManualClock;
/// use stanchion::rate::{Quota, TokenBucket, WithClock};
///
/// let clock = ManualClock::new();
/// let limiter = WithClock::new(TokenBucket::new(Quota::per_second(1)?), &clock);
/// assert!(limiter.acquire(1).is_ok());
/// assert!(limiter.acquire(1).is_err());
/// clock.advance(Duration::from_secs(1));
/// assert!(limiter.acquire(1).is_ok());
/// # Ok::<(), stanchion::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct WithClock<L, C> {
    limiter: L,
    clock: C,
}

impl<L, C> WithClock<L, C> {
    /// Binds `limiter` to `clock`.
    pub const fn new(limiter: L, clock: C) -> Self {
        WithClock { limiter, clock }
    }

    /// The limiter.
    pub const fn limiter(&self) -> &L {
        &self.limiter
    }

    /// The clock.
    pub const fn clock(&self) -> &C {
        &self.clock
    }
}

impl<L: RateLimiter, C: Clock> WithClock<L, C> {
    /// Takes `n` permits now, all or nothing.
    #[inline]
    pub fn acquire(&self, n: u32) -> Result<(), RateLimitError> {
        self.limiter.acquire_at(n, self.clock.now())
    }

    /// Whether `acquire(n)` would succeed now, without consuming.
    #[inline]
    pub fn peek(&self, n: u32) -> Result<(), RateLimitError> {
        self.limiter.peek_at(n, self.clock.now())
    }

    /// How many permits could be taken now.
    #[inline]
    pub fn remaining(&self) -> u32 {
        self.limiter.remaining_at(self.clock.now())
    }
}

impl<L: RateLimiter, C> RateLimiter for WithClock<L, C> {
    #[inline]
    fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.limiter.acquire_at(n, now)
    }
    #[inline]
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.limiter.peek_at(n, now)
    }
    #[inline]
    fn remaining_at(&self, now: Instant) -> u32 {
        self.limiter.remaining_at(now)
    }
    #[inline]
    fn max_acquire(&self) -> u32 {
        self.limiter.max_acquire()
    }
    #[inline]
    fn reset(&self) {
        self.limiter.reset()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
