//! [`CircuitBreaker`] and its [`Permit`].

use core::fmt;
use core::ops::Deref;
use core::time::Duration;

use crate::retry::Backoff;
use crate::sync::{AtomicU64, Locked, Ordering, RawMutex, const_fn_unless_loom};
use crate::time::{duration_from_nanos, duration_to_nanos_saturating};
use crate::{Clock, ConfigError, Instant};

use super::config::{AfterMaxWait, BreakerConfig, FixedOpenDuration};
use super::listener::{BreakerListener, Threshold};
use super::metrics::BreakerMetrics;
use super::state::{
    BATCH, BUSY, IllegalTransition, QUIET, Rejected, STREAK, State, StateAt, is, next_period, pack,
    period_of, records, slots_of, state_of, with_slots,
};
#[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
use super::state::{SLOT_FIELD, passes};
use super::window::{CallRecord, Exceeded, Thresholds, Totals, Window};

/// How many cache lines a breaker counts its successes in, by default: 4 on targets with an
/// operating system and 64-bit atomics (multi-core machines, where counting every success
/// in the one state word would move its cache line between cores at every call), 0 on bare
/// metal (successes are counted in the state word itself, which costs no memory, or, on
/// targets without native 64-bit atomics, recorded in the critical section).
pub const DEFAULT_STRIPES: usize = if cfg!(all(target_has_atomic = "64", not(target_os = "none"))) {
    4
} else {
    0
};

/// Whether calls that are not slow may be recorded in the state word, without the
/// critical section (the streak, quiet and batch flags, and the busy spins): only where
/// 64-bit atomics are native. Elsewhere (`thumbv6m`, `thumbv7em`, `riscv32imc`) every
/// 64-bit atomic operation is itself a short critical section (`portable-atomic`'s
/// fallback), so recording in the word would cost about what the breaker's critical
/// section costs, in more code: there every outcome takes the critical section, and the
/// word's flags are never set. There the word and the deadline move into the locked
/// state too, as plain fields: an acquire and a record are each one critical section.
///
/// `--cfg stanchion_breaker_locked` gives a host that form too, so that the breaker's
/// tests run on hosts against what firmware runs:
/// `RUSTFLAGS="--cfg stanchion_breaker_locked" cargo test -p stanchion --lib breaker`.
const WORD_RECORDS: bool = cfg!(all(target_has_atomic = "64", not(stanchion_breaker_locked)));

/// Bits of a stripe that hold its count (the rest hold the period it counts for).
const STRIPE_COUNT: u64 = (1 << 24) - 1;

/// One counter of successes, alone on its cache line where stripes are the default.
#[cfg_attr(
    all(target_has_atomic = "64", not(target_os = "none")),
    repr(align(64))
)]
struct Stripe(AtomicU64);

impl Stripe {
    #[cfg(not(loom))]
    const fn array<const S: usize>() -> [Stripe; S] {
        [const { Stripe(AtomicU64::new(0)) }; S]
    }

    #[cfg(loom)]
    fn array<const S: usize>() -> [Stripe; S] {
        core::array::from_fn(|_| Stripe(AtomicU64::new(0)))
    }
}

/// What [`CircuitBreaker::reconfigure`] says of a setting it cannot change.
const UNCHANGEABLE: &str = "unchanged on a live breaker (reconfigure changes only \
     failure_rate_threshold, slow_call_rate_threshold, minimum_calls and \
     max_wait_in_half_open)";

/// `deadline` value that means "never".
const NEVER: u64 = u64::MAX;

/// How many times a call that finds the batch or the streak taken out by a critical
/// section in progress (the word's busy flag) reads the word again before it takes the
/// critical section itself. That section is a few window operations long; waiting for it to
/// publish the next batch costs less than queueing on its lock behind it, which on two
/// threads turned one success in twenty into a lock hand-over. Under loom, one.
#[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
const BUSY_SPINS: u32 = if cfg!(loom) { 1 } else { 64 };

/// A circuit breaker over window `W`, sharing its state through a critical section of kind
/// `M`, growing its open duration by backoff `B`, reporting to listener `L` and counting
/// batched successes in `S` stripes (see [Stripes](#stripes); the default suits the
/// target).
///
/// See the [module docs](super) for the rules, an example and the costs.
///
/// # Sharing
///
/// Shareable by `&` across threads, tasks and interrupt handlers (when `M` is `Sync`):
///
/// - the *state word* (state, half-open slots taken, period) is one [`AtomicU64`]: an
///   acquire in closed, disabled or metrics-only is one atomic load; a rejection in open
///   is two loads and a comparison; a half-open probe slot is one compare-and-swap, so
///   exactly `permitted_calls_in_half_open` permits are issued per half-open period
///   however many threads race; a cancelled probe gives its slot back with one
///   compare-and-swap;
/// - the window, the backoff and the probe counts do not fit one word: they live in a
///   [`Locked<M, _>`](Locked), entered once per recorded outcome (the window update and
///   the threshold check) and for every transition, so that each transition happens
///   exactly once. `M` is the caller's choice: `CriticalSectionRawMutex` on bare metal,
///   `stanchion_std::StdRawMutex` on threads, `NoopRawMutex` for one thread;
/// - the exceptions, for calls that are not slow in closed and metrics-only, which the
///   state word's flags allow (on targets with native 64-bit atomics only: elsewhere each
///   atomic operation on the word is a critical section already, and every outcome takes
///   the breaker's):
///   - *streak*: for a window that hands out its failure streak
///     ([`Window::failure_streak`]: a [`ConsecutiveWindow`](super::window::ConsecutiveWindow)
///     while no slow streak runs), the streak is kept in the word: a success is one
///     atomic load (no streak running) or one compare-and-swap (ending one), a failure
///     one compare-and-swap while the streak stays within its limit;
///   - *quiet*: while the window says a success changes nothing
///     ([`Window::success_is_noop`]), a success is one atomic load;
///   - *batch*: while the window says successes can be recorded later as a batch and
///     cannot reach a threshold ([`Window::batch_until`]: a count or time window holding
///     `minimum_calls`), a success is counted with one compare-and-swap: with `S = 0`, in
///     the word; with `S > 0` stripes, in one of them (see below), and the word is not
///     written at all.
///
///   The critical section takes the streak or the count out of the word (one
///   `fetch_xor`, or the `swap` of a transition) and into the window before it records
///   anything else, so every outcome counts once, in the order of the word's updates.
///   While a critical section has it out (the word's *busy* flag, from that hand-over to
///   the store or swap that ends the section), such a call reads the word again, a
///   bounded number of times, for the flag to come back before it takes the critical
///   section itself: queueing on the lock behind that section costs more.
///
/// Slow calls, the other failures and the transitions they cause take the critical
/// section: deciding to open needs the window and the backoff together.
///
/// On targets without native 64-bit atomics, where every 64-bit atomic operation would be
/// a critical section of its own, the state word and the deadline are plain fields of the
/// `Locked` state instead: an acquire is one critical section, whatever the state, and so
/// is an outcome (or the release of a half-open slot).
///
/// # Stripes
///
/// Counting every success in the one state word makes that word's cache line move to
/// the core of each caller in turn, which on a multi-core machine costs more than the rest
/// of the call. With `S > 0` (the default on targets with an operating system, see
/// [`DEFAULT_STRIPES`]) a batched success is counted in one of `S` counters ("stripes"),
/// each on a cache line of its own, picked by the page of the calling thread's stack: the
/// threads of one pool (tokio's workers, say), whose stacks the operating system maps one
/// after the other, each keep to their own, up to `S` of them; other threads may share
/// one. A success moves to the next stripe when another thread changed its own meanwhile.
/// A stripe holds a count and the period it counts for. Every critical section first
/// empties the stripes (one `swap` each, a load for an empty one) and records the counts
/// of the current period in the window; a transition empties them too, into the window
/// it keeps. A success counted after the sweep of a transition is left behind, tagged
/// with the period that ended, and never counted in a later one: it came too late, like
/// any outcome recorded after the breaker changed state. The cost is `S` cache lines of
/// memory (64 bytes each) and `S` loads per critical section.
///
/// The listener is called after the critical section ends.
pub struct CircuitBreaker<
    W,
    M: RawMutex,
    B = FixedOpenDuration,
    L = (),
    const S: usize = DEFAULT_STRIPES,
> {
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    word: AtomicU64,
    /// Where successes are counted while the batch flag is set, when `S > 0` (see
    /// [`DEFAULT_STRIPES`]): each `period << 24 | count`.
    stripes: [Stripe; S],
    /// In open: the last instant that is still rejected. In half-open: the instant at which
    /// the maximum wait runs out. In closed and metrics-only while the word's batch flag is
    /// set: the last instant at which a success may be counted in the word
    /// ([`Window::batch_until`]); while the streak flag is set: the longest failure streak
    /// the word may hold. [`NEVER`] otherwise. Written before the word that publishes it.
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    deadline: AtomicU64,
    /// Calls rejected since the breaker was built or last reset. Where 64-bit atomics
    /// are not native, a field of the locked state instead, counted in the critical
    /// section that rejects (see [`WORD_RECORDS`]).
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    rejected: AtomicU64,
    /// The settings that stay as built (the others are in the locked state).
    fixed: Fixed,
    inner: Locked<M, Inner<W, B>>,
    listener: L,
}

/// The settings of a [`BreakerConfig`] that stay as the breaker was built: those read
/// outside the critical section (the slow-call duration by every outcome, the half-open
/// permits by every half-open acquire on hosts), and the open duration (the backoff's,
/// given at construction; kept to report the configuration). The others, which
/// [`CircuitBreaker::reconfigure`] changes, are in the locked state ([`Inner`]) and read
/// only inside the critical section. Each setting is kept once, so the breaker is no
/// larger than it was with a whole `BreakerConfig` here.
#[derive(Clone, Copy)]
struct Fixed {
    slow_call_nanos: u64,
    open_duration: Option<Duration>,
    permitted_calls_in_half_open: u16,
}

impl Fixed {
    const fn of(config: &BreakerConfig) -> Fixed {
        Fixed {
            slow_call_nanos: config.slow_call_nanos,
            open_duration: config.open_duration,
            permitted_calls_in_half_open: config.permitted_calls_in_half_open,
        }
    }

    /// The whole configuration: these settings, with the locked state's. Inside the
    /// critical section.
    fn with<W, B>(&self, inner: &Inner<W, B>) -> BreakerConfig {
        BreakerConfig {
            failure_rate_threshold: inner.failure_rate_threshold,
            slow_call_rate_threshold: inner.slow_call_rate_threshold,
            slow_call_nanos: self.slow_call_nanos,
            minimum_calls: inner.minimum_calls,
            permitted_calls_in_half_open: self.permitted_calls_in_half_open,
            max_wait_nanos: inner.max_wait_nanos,
            after_max_wait: inner.after_max_wait,
            open_duration: self.open_duration,
        }
    }

    /// The first of these settings that `config` sets otherwise, by its name in
    /// [`BreakerConfig`]'s builder (and so in its serialised form).
    fn first_difference(&self, config: &BreakerConfig) -> Option<&'static str> {
        if config.slow_call_nanos != self.slow_call_nanos {
            Some("slow_call_duration")
        } else if config.permitted_calls_in_half_open != self.permitted_calls_in_half_open {
            Some("permitted_calls_in_half_open")
        } else if config.open_duration != self.open_duration {
            Some("open_duration")
        } else {
            None
        }
    }

    /// The number of half-open outcomes after which the probes decide, with
    /// `minimum_calls` in force: `min(minimum_calls, permitted_calls_in_half_open)`.
    fn half_open_decision_calls(&self, minimum_calls: u32) -> u32 {
        let permitted = self.permitted_calls_in_half_open as u32;
        if minimum_calls < permitted {
            minimum_calls
        } else {
            permitted
        }
    }
}

struct Inner<W, B> {
    window: W,
    /// The settings of the configuration that [`CircuitBreaker::reconfigure`] changes, as
    /// [`BreakerConfig`] keeps them (the minimum number of calls not yet clamped to the
    /// window's size: see [`CircuitBreaker::thresholds`]). Here, in the locked state, so
    /// that they can change through `&self`: every decision that reads them is taken
    /// inside the critical section.
    failure_rate_threshold: u8,
    slow_call_rate_threshold: u8,
    minimum_calls: u32,
    max_wait_nanos: u64,
    after_max_wait: AfterMaxWait,
    backoff: B,
    rng: fastrand::Rng,
    /// The outcomes of the current half-open probes (kept by an open breaker that they
    /// re-opened, see `entered_from`; stale in other states).
    probes: Totals,
    /// The low byte of the word that the current period was entered from (its state is in
    /// bits `0..4`): an open period entered from half-open reports the probes that
    /// re-opened it, not the window (which still holds the calls of the closed period
    /// before). The whole byte, not a flag: one store, the cheapest on firmware.
    entered_from: u8,
    /// The rejection count when the current period was entered, for the rejections since
    /// (see [`BreakerMetrics::rejected_in_state`]).
    rejected_at_entry: u64,
    reported: Exceeded,
    /// Where 64-bit atomics are not native: the state word and the deadline, here, read and
    /// written only inside the critical section (see [`WORD_RECORDS`]). Each emulated
    /// atomic operation would be a critical section of its own; here an acquire and a
    /// record are each one critical section over plain fields.
    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
    word: u64,
    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
    deadline: u64,
    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
    rejected: u64,
}

/// What a recorded call turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed (it counts towards the failure rate).
    Failure,
    /// The call's result says nothing about the protected dependency (for example a
    /// client error): nothing is recorded and a half-open slot is given back.
    Ignored,
}

#[derive(Clone, Copy)]
enum Event {
    Transition(State, State),
    Exceeded(Threshold, u16),
    Reset(State),
}

/// Events collected inside the critical section, dispatched after it.
struct Events {
    list: [Option<Event>; 4],
    len: usize,
}

impl Events {
    const fn new() -> Events {
        Events {
            list: [None; 4],
            len: 0,
        }
    }

    fn push(&mut self, event: Event) {
        if let Some(slot) = self.list.get_mut(self.len) {
            *slot = Some(event);
            self.len = self.len.saturating_add(1);
        }
    }
}

impl<W: Window, M: RawMutex, const S: usize> CircuitBreaker<W, M, FixedOpenDuration, (), S> {
    const_fn_unless_loom! {
        /// A closed breaker with `config`, `window`, the fixed open duration of the
        /// configuration ([`DEFAULT_OPEN_DURATION`](super::DEFAULT_OPEN_DURATION) if it
        /// sets none), and no listener; or the first configuration error.
        ///
        /// Its random generator is seeded with 0, and never drawn from: a
        /// [`FixedOpenDuration`] has no jitter. A backoff with jitter comes with
        /// [`from_parts`](Self::from_parts), which takes the seed.
        pub fn new(config: BreakerConfig, window: W) -> Result<Self, ConfigError> {
            CircuitBreaker::build(config, window, config.fixed_open_duration(), 0, ())
        }
    }
}

impl<W: Window, M: RawMutex, L: BreakerListener, const S: usize>
    CircuitBreaker<W, M, FixedOpenDuration, L, S>
{
    const_fn_unless_loom! {
        /// [`new`](Self::new), reporting to `listener`: the fixed open duration of the
        /// configuration ([`DEFAULT_OPEN_DURATION`](super::DEFAULT_OPEN_DURATION) if it sets none).
        ///
        /// ```
        /// use core::time::Duration;
        /// use stanchion::breaker::{BreakerConfig, BreakerListener, CircuitBreaker, State};
        /// use stanchion::breaker::window::ConsecutiveWindow;
        /// use stanchion::sync::CriticalSectionRawMutex;
        ///
        /// struct Log;
        /// impl BreakerListener for Log {}
        /// let config = BreakerConfig::new().open_duration(Duration::from_secs(5));
        /// let breaker: CircuitBreaker<_, CriticalSectionRawMutex, _, Log> =
        ///     CircuitBreaker::with_listener(config, ConsecutiveWindow::new(3)?, Log)?;
        /// assert_eq!(breaker.state(), State::Closed);
        /// # Ok::<(), stanchion::ConfigError>(())
        /// ```
        pub fn with_listener(
            config: BreakerConfig,
            window: W,
            listener: L,
        ) -> Result<Self, ConfigError> {
            CircuitBreaker::build(config, window, config.fixed_open_duration(), 0, listener)
        }
    }
}

impl<W: Window, M: RawMutex, B: Backoff, L: BreakerListener, const S: usize>
    CircuitBreaker<W, M, B, L, S>
{
    const_fn_unless_loom! {
        /// A closed breaker whose open duration is drawn from `backoff` at each opening
        /// (reset when it closes), with jitter drawn from a generator seeded with `seed`
        /// (give each device its own), reporting to `listener`.
        ///
        /// The backoff gives the open durations, so a configuration that sets
        /// [`BreakerConfig::open_duration`] is refused (a [`ConfigError`] naming
        /// `open_duration`) rather than silently ignored: give a
        /// [`FixedOpenDuration`] here, or use [`with_listener`](CircuitBreaker::with_listener).
        ///
        /// ```
        /// use core::time::Duration;
        /// use stanchion::breaker::{BreakerConfig, CircuitBreaker, FixedOpenDuration};
        /// use stanchion::breaker::window::ConsecutiveWindow;
        /// use stanchion::sync::CriticalSectionRawMutex;
        ///
        /// type Breaker = CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex>;
        /// let fixed = FixedOpenDuration(Duration::from_secs(5));
        /// let window = ConsecutiveWindow::new(3)?;
        /// assert!(Breaker::from_parts(BreakerConfig::new(), window, fixed, 7, ()).is_ok());
        /// let set = BreakerConfig::new().open_duration(Duration::from_secs(5));
        /// let refused = Breaker::from_parts(set, window, fixed, 7, ()).unwrap_err();
        /// assert_eq!(refused.field(), "open_duration");
        /// # Ok::<(), stanchion::ConfigError>(())
        /// ```
        pub fn from_parts(
            config: BreakerConfig,
            window: W,
            backoff: B,
            seed: u64,
            listener: L,
        ) -> Result<Self, ConfigError> {
            if config.open_duration.is_some() {
                core::mem::forget(window);
                core::mem::forget(backoff);
                core::mem::forget(listener);
                return Err(ConfigError::new(
                    "open_duration",
                    "unset when from_parts is given a backoff \
                     (the backoff gives the open durations)",
                ));
            }
            CircuitBreaker::build(config, window, backoff, seed, listener)
        }
    }

    const_fn_unless_loom! {
        /// [`from_parts`](Self::from_parts) without its check of the open duration: the
        /// constructors that build the backoff from the configuration.
        fn build(
            config: BreakerConfig,
            window: W,
            backoff: B,
            seed: u64,
            listener: L,
        ) -> Result<Self, ConfigError> {
            if let Err(e) = config.validate() {
                // None of these has run or needs a destructor's side effects; `forget`
                // keeps the constructor `const` for generic parts.
                core::mem::forget(window);
                core::mem::forget(backoff);
                core::mem::forget(listener);
                return Err(e);
            }
            Ok(CircuitBreaker {
                #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
                word: AtomicU64::new(pack(State::Closed, 0, 0)),
                stripes: Stripe::array(),
                #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
                deadline: AtomicU64::new(NEVER),
                #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
                rejected: AtomicU64::new(0),
                fixed: Fixed::of(&config),
                inner: Locked::new(Inner {
                    window,
                    failure_rate_threshold: config.failure_rate_threshold,
                    slow_call_rate_threshold: config.slow_call_rate_threshold,
                    minimum_calls: config.minimum_calls,
                    max_wait_nanos: config.max_wait_nanos,
                    after_max_wait: config.after_max_wait,
                    backoff,
                    rng: fastrand::Rng::with_seed(seed),
                    probes: Totals::ZERO,
                    entered_from: 0,
                    rejected_at_entry: 0,
                    reported: Exceeded::NONE,
                    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
                    word: pack(State::Closed, 0, 0),
                    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
                    deadline: NEVER,
                    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
                    rejected: 0,
                }),
                listener,
            })
        }
    }

    /// The configuration in force: the one the breaker was built with, with the settings
    /// last changed by [`reconfigure`](Self::reconfigure). One critical section.
    pub fn config(&self) -> BreakerConfig {
        self.inner.with(|inner| self.fixed.with(inner))
    }

    /// Changes the live breaker's configuration to `config`, in place, for the settings
    /// that can change: the failure-rate threshold, the slow-call-rate threshold, the
    /// minimum number of calls and the maximum wait in half-open (with where it goes
    /// then). The window keeps its calls; the state, its period, the backoff and the
    /// counts stay as they are.
    ///
    /// `config` is checked as at construction ([`BreakerConfig::validate`]: an error names
    /// the field and its range), and its other settings must be the breaker's own (start
    /// from [`config`](Self::config)): the slow-call duration and the half-open permits are
    /// read outside the critical section, and the open duration is the backoff's, given at
    /// construction, so a different one is refused with a [`ConfigError`] naming it
    /// rather than ignored. On an error nothing changes.
    ///
    /// **When it takes effect**: the thresholds and the minimum number of calls from the
    /// next recorded outcome, as resilience4j checks its thresholds. The call itself does
    /// not move the state: a closed breaker whose window is already at or above a lowered
    /// threshold opens when the next outcome (a success too) is recorded, not before; in
    /// half-open, the next probe outcome decides with the new values (after
    /// `min(minimum_calls, permitted_calls_in_half_open)` probes). Outcomes recorded
    /// before the call, even those of calls still running when it is made, were judged by
    /// the old values. The maximum wait from the next half-open period (the current one
    /// keeps the deadline it was entered with); where the breaker goes when a wait runs
    /// out, from the next time one does.
    ///
    /// One critical section. On targets with native 64-bit atomics it also ends the
    /// breaker's lock-free recording (the success batch, the quiet flag and the failure
    /// streak in the state word, whose limits came from the old thresholds), taking what
    /// the word counted into the window first: the next outcome takes the critical
    /// section, which derives them again from the new values.
    ///
    /// ```
    /// use core::time::Duration;
    /// use stanchion::breaker::{BreakerConfig, CircuitBreaker, State, window::CountWindow};
    /// use stanchion::sync::CriticalSectionRawMutex;
    /// use stanchion::Instant;
    ///
    /// let config = BreakerConfig::new().failure_rate_threshold(50).minimum_calls(10);
    /// let breaker: CircuitBreaker<CountWindow<10>, CriticalSectionRawMutex> =
    ///     CircuitBreaker::new(config, CountWindow::new()?)?;
    /// let ms = Duration::from_millis(1);
    /// for failed in [true, false, true, false, true, false, false, false, false] {
    ///     let permit = breaker.try_acquire_at(Instant::ZERO)?;
    ///     if failed { permit.failure(ms) } else { permit.success(ms) }
    /// }
    /// // 3 failures of 9: below the minimum of 10. Lower the threshold to 30 %.
    /// breaker.reconfigure(breaker.config().failure_rate_threshold(30))?;
    /// assert_eq!(breaker.metrics_at(Instant::ZERO).failures, 3);
    /// breaker.try_acquire_at(Instant::ZERO)?.success(ms); // 3 of 10: 30 % reaches it
    /// assert_eq!(breaker.state(), State::Open);
    ///
    /// let refused = breaker
    ///     .reconfigure(breaker.config().slow_call_duration(Duration::from_secs(1)))
    ///     .unwrap_err();
    /// assert_eq!(refused.field(), "slow_call_duration");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reconfigure(&self, config: BreakerConfig) -> Result<(), ConfigError> {
        self.check_reconfigure(&config)?;
        self.inner.with(|inner| {
            inner.failure_rate_threshold = config.failure_rate_threshold;
            inner.slow_call_rate_threshold = config.slow_call_rate_threshold;
            inner.minimum_calls = config.minimum_calls;
            inner.max_wait_nanos = config.max_wait_nanos;
            inner.after_max_wait = config.after_max_wait;
            self.end_unlocked_records(inner);
        });
        Ok(())
    }

    /// What [`reconfigure`](Self::reconfigure) would say of `config`, changing nothing:
    /// `Ok` if it would apply it, or the error naming the field it would refuse. For a
    /// caller that checks several changes before it applies any (a reload that is all or
    /// nothing).
    pub fn check_reconfigure(&self, config: &BreakerConfig) -> Result<(), ConfigError> {
        config.validate()?;
        match self.fixed.first_difference(config) {
            Some(field) => Err(ConfigError::new(field, UNCHANGEABLE)),
            None => Ok(()),
        }
    }

    /// Takes what the state word counted into the window and clears its streak, quiet
    /// and batch flags, so that every outcome takes the critical section until one there
    /// publishes them again ([`update_quiet`](Self::update_quiet), from the thresholds
    /// then in force). Inside the critical section. Only closed and metrics-only words
    /// carry the flags. A success that read the batch flag before the store below may
    /// still be counted in a stripe: of the current period, which the next critical
    /// section sweeps into the window (as it does any). A call that read the quiet flag
    /// before it counted nothing, as it would have before this call.
    fn end_unlocked_records(&self, inner: &mut Inner<W, B>) {
        if !WORD_RECORDS {
            return;
        }
        let word = self.word_in(inner);
        if matches!(state_of(word), State::Closed | State::MetricsOnly) {
            // After `drain` the batch (without stripes) and the streak are out of the word
            // and nothing but this critical section writes it: a store, as in
            // `update_quiet`, which also clears the busy flag that `drain` set.
            let word = self.drain(inner, word);
            self.store_word(inner, word & !(QUIET | BATCH | STREAK | BUSY));
        }
    }

    /// The listener.
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// The current state. Transitions in time are lazy: an open breaker whose open
    /// duration has passed reads [`State::Open`] until the next acquire moves it.
    pub fn state(&self) -> State {
        state_of(self.load_word())
    }

    /// The state at `now` and when time alone moves it on (the end of the open duration,
    /// the maximum wait in half-open), without side effects: no rejection is counted, no
    /// listener event is reported, no transition is made, even when one is due (see
    /// [`StateAt`]). One critical section.
    ///
    /// ```
    /// use core::time::Duration;
    /// use stanchion::breaker::{BreakerConfig, CircuitBreaker, State, window::ConsecutiveWindow};
    /// use stanchion::sync::CriticalSectionRawMutex;
    /// use stanchion::Instant;
    ///
    /// let config = BreakerConfig::new().open_duration(Duration::from_secs(30));
    /// let breaker: CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex> =
    ///     CircuitBreaker::new(config, ConsecutiveWindow::new(1)?)?;
    /// breaker.try_acquire_at(Instant::ZERO)?.failure(Duration::ZERO);
    /// let now = Instant::from_secs(10);
    /// let at = breaker.state_at(now);
    /// assert_eq!(at.state, State::Open);
    /// assert_eq!(at.until, Some(Instant::from_nanos(30_000_000_001)));
    /// assert_eq!(at.retry_after, Some(Duration::from_nanos(20_000_000_001)));
    /// assert_eq!(breaker.metrics_at(now).rejected, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state_at(&self, now: Instant) -> StateAt {
        // Inside the critical section, where the state and the deadline change together.
        let (word, deadline) = self.inner.with(|inner| {
            (
                self.word_in(inner),
                self.deadline_in(inner, Ordering::Acquire),
            )
        });
        let state = state_of(word);
        let (until, retry_after) = match state {
            State::Open => (
                Some(Instant::from_nanos(deadline.saturating_add(1))),
                if now.as_nanos() <= deadline {
                    let wait = deadline.saturating_sub(now.as_nanos()).saturating_add(1);
                    Some(duration_from_nanos(wait))
                } else {
                    None
                },
            ),
            State::HalfOpen if deadline != NEVER => (Some(Instant::from_nanos(deadline)), None),
            _ => (None, None),
        };
        StateAt {
            state,
            until,
            retry_after,
        }
    }

    /// The state word, read inside the critical section.
    #[inline]
    fn word_in(&self, inner: &Inner<W, B>) -> u64 {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        return {
            let _ = inner;
            self.word.load(Ordering::Acquire)
        };
        #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
        return {
            let _ = self;
            inner.word
        };
    }

    /// Writes the state word inside the critical section; returns what it held.
    #[inline]
    fn swap_word(&self, inner: &mut Inner<W, B>, word: u64) -> u64 {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        return {
            let _ = inner;
            self.word.swap(word, Ordering::AcqRel)
        };
        #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
        return {
            let _ = self;
            core::mem::replace(&mut inner.word, word)
        };
    }

    /// Writes the state word inside the critical section.
    #[inline]
    fn store_word(&self, inner: &mut Inner<W, B>, word: u64) {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        {
            let _ = inner;
            self.word.store(word, Ordering::Release);
        }
        #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
        {
            let _ = self;
            inner.word = word;
        }
    }

    /// The deadline, read inside the critical section.
    #[inline]
    fn deadline_in(&self, inner: &Inner<W, B>, order: Ordering) -> u64 {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        return {
            let _ = inner;
            self.deadline.load(order)
        };
        #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
        return {
            let _ = (self, order);
            inner.deadline
        };
    }

    /// The rejection count, read inside the critical section.
    #[inline]
    fn rejected_in(&self, inner: &Inner<W, B>) -> u64 {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        return {
            let _ = inner;
            self.rejected.load(Ordering::Relaxed)
        };
        #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
        return {
            let _ = self;
            inner.rejected
        };
    }

    /// Clears the rejection count inside the critical section.
    #[inline]
    fn clear_rejected(&self, inner: &mut Inner<W, B>) {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        {
            let _ = inner;
            self.rejected.store(0, Ordering::Relaxed);
        }
        #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
        {
            let _ = self;
            inner.rejected = 0;
        }
    }

    /// Writes the deadline inside the critical section.
    #[inline]
    fn store_deadline(&self, inner: &mut Inner<W, B>, deadline: u64) {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        {
            let _ = inner;
            self.deadline.store(deadline, Ordering::Release);
        }
        #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
        {
            let _ = self;
            inner.deadline = deadline;
        }
    }

    /// Asks to make a call at `now`.
    ///
    /// Closed, disabled, metrics-only: a permit. Open: rejected until the first acquire
    /// strictly after the open duration, which moves the breaker to half-open and takes
    /// the first probe slot. Half-open: a permit while probe slots are left; past the
    /// maximum wait, the configured transition first. Forced-open: rejected.
    #[inline]
    pub fn try_acquire_at(&self, now: Instant) -> Result<Permit<&Self>, Rejected> {
        match self.acquire_word(now) {
            Ok(issued) => Ok(Permit::new(self, issued, now)),
            Err(rejected) => Err(rejected),
        }
    }

    /// [`try_acquire_at`](Self::try_acquire_at) through any pointer to the breaker that
    /// the permit then owns, such as an `Arc<CircuitBreaker<..>>`: for a permit that must
    /// be `'static`, held by a future that outlives the borrow (a tower response future).
    #[inline]
    pub fn try_acquire_owned_at<R: Deref<Target = Self>>(
        this: R,
        now: Instant,
    ) -> Result<Permit<R>, Rejected> {
        match this.acquire_word(now) {
            Ok(issued) => Ok(Permit::new(this, issued, now)),
            Err(rejected) => Err(rejected),
        }
    }

    /// The decision of an acquire: the state word that issues the permit.
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    #[inline]
    fn acquire_word(&self, now: Instant) -> Result<u64, Rejected> {
        let word = self.word.load(Ordering::Acquire);
        if passes(word) {
            return Ok(word);
        }
        self.try_acquire_slow(word, now)
    }

    /// The decision of an acquire: the state word that issues the permit. Without native
    /// 64-bit atomics, one critical section, whatever the state.
    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
    #[inline]
    fn acquire_word(&self, now: Instant) -> Result<u64, Rejected> {
        match self.with_events(now, |this, inner, events| {
            let decided = this.acquire_locked(inner, now, events);
            if decided.is_err() {
                // Wrapping, as the lock-free form's `fetch_add`: 2^64 rejections are out of
                // reach (584 years at one a nanosecond), and saturating here cost 36 bytes
                // of flash on thumbv7em.
                inner.rejected = inner.rejected.wrapping_add(1);
            }
            decided
        }) {
            Ok(word) => Ok(word),
            Err((state, retry_after)) => Err(self.reject(state, retry_after, now)),
        }
    }

    /// The decision of an acquire inside the critical section, where the word and the
    /// deadline are plain fields: the word that issues the permit, or the state that
    /// rejects and when to retry. The same decisions as
    /// [`try_acquire_slow`](Self::try_acquire_slow)'s.
    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
    #[inline]
    fn acquire_locked(
        &self,
        inner: &mut Inner<W, B>,
        now: Instant,
        events: &mut Events,
    ) -> Result<u64, (State, Option<Duration>)> {
        loop {
            let word = inner.word;
            let deadline = inner.deadline;
            match state_of(word) {
                State::Closed | State::Disabled | State::MetricsOnly => return Ok(word),
                State::ForcedOpen => return Err((State::ForcedOpen, None)),
                State::Open => {
                    if now.as_nanos() <= deadline {
                        let wait = deadline.saturating_sub(now.as_nanos()).saturating_add(1);
                        return Err((State::Open, Some(duration_from_nanos(wait))));
                    }
                    // Past the open duration: half-open, with the first probe slot taken.
                    return Ok(self.enter(inner, word, State::HalfOpen, now, None, 1, events));
                }
                State::HalfOpen => {
                    if deadline == NEVER || now.as_nanos() < deadline {
                        let slots = slots_of(word);
                        if slots >= self.fixed.permitted_calls_in_half_open {
                            return Err((State::HalfOpen, None));
                        }
                        inner.word =
                            pack(State::HalfOpen, slots.saturating_add(1), period_of(word));
                        return Ok(inner.word);
                    }
                    // Past the maximum wait: to open (which rejects) or closed (which
                    // admits), and the decision again.
                    let to = inner.after_max_wait.state();
                    self.enter(inner, word, to, now, None, 0, events);
                }
            }
        }
    }

    /// The open, half-open and forced-open part of [`try_acquire_at`](Self::try_acquire_at).
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    fn try_acquire_slow(&self, mut word: u64, now: Instant) -> Result<u64, Rejected> {
        // One rejection at the end, whichever state rejects, and one call of the critical
        // section for the moves time makes: their code is compiled once.
        let (state, retry_after) = loop {
            match state_of(word) {
                State::Closed | State::Disabled | State::MetricsOnly => {
                    return Ok(word);
                }
                State::ForcedOpen => break (State::ForcedOpen, None),
                State::Open => {
                    let until = self.deadline.load(Ordering::Acquire);
                    let again = self.word.load(Ordering::Acquire);
                    if again != word {
                        word = again;
                        continue;
                    }
                    if now.as_nanos() <= until {
                        let wait = until.saturating_sub(now.as_nanos()).saturating_add(1);
                        break (State::Open, Some(duration_from_nanos(wait)));
                    }
                    // Past the open duration: on to half-open, below.
                }
                State::HalfOpen => {
                    // No re-read of the word is needed here: a deadline of a later period
                    // either sends us to the critical section, which re-checks the period,
                    // or lets us try the compare-and-swap, which fails if the word moved.
                    let deadline = self.deadline.load(Ordering::Acquire);
                    if deadline == NEVER || now.as_nanos() < deadline {
                        let slots = slots_of(word);
                        if slots >= self.fixed.permitted_calls_in_half_open {
                            break (State::HalfOpen, None);
                        }
                        let taken = pack(State::HalfOpen, slots.saturating_add(1), period_of(word));
                        match self.word.compare_exchange_weak(
                            word,
                            taken,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => return Ok(taken),
                            Err(actual) => word = actual,
                        }
                        continue;
                    }
                    // Past the maximum wait: out of half-open, below.
                }
            }
            // Time has moved the state on: the critical section moves it (from open, it
            // also issues the first probe's permit), and the acquire starts again.
            if let Some(issued) = self.leave_in_time(word, now) {
                return Ok(issued);
            }
            word = self.word.load(Ordering::Acquire);
        };
        Err(self.reject(state, retry_after, now))
    }

    /// [`try_acquire_at`](Self::try_acquire_at) at `clock.now()`.
    #[inline]
    pub fn try_acquire<C: Clock>(&self, clock: &C) -> Result<Permit<&Self>, Rejected> {
        self.try_acquire_at(clock.now())
    }

    /// A snapshot of the counts, rates and state at `now`.
    pub fn metrics_at(&self, now: Instant) -> BreakerMetrics {
        let (word, totals, rates, rejected, at_entry) = self.inner.with(|inner| {
            let (word, totals, rates) = self.counts_in(inner, now);
            (
                word,
                totals,
                rates,
                self.rejected_in(inner),
                inner.rejected_at_entry,
            )
        });
        let state = state_of(word);
        BreakerMetrics {
            state,
            calls: totals.calls,
            successes: totals.calls.saturating_sub(totals.failures),
            failures: totals.failures,
            slow_calls: totals.slow,
            rejected,
            rejected_in_state: rejected.saturating_sub(at_entry),
            failure_rate: rates.0,
            slow_call_rate: rates.1,
            half_open_permits_taken: if state == State::HalfOpen {
                slots_of(word)
            } else {
                0
            },
        }
    }

    /// The word, counts and rates that [`metrics_at`](Self::metrics_at) reports. Inside
    /// the critical section.
    fn counts_in(
        &self,
        inner: &mut Inner<W, B>,
        now: Instant,
    ) -> (u64, Totals, (Option<u16>, Option<u16>)) {
        let decision = self.fixed.half_open_decision_calls(inner.minimum_calls);
        {
            let word = self.word_in(inner);
            // Only closed and metrics-only words carry these flags, and only their periods
            // have successes counted in stripes.
            let counted = WORD_RECORDS
                && (word & (BATCH | STREAK) != 0
                    || (S > 0 && matches!(state_of(word), State::Closed | State::MetricsOnly)));
            if counted {
                let word = self.drain(inner, word);
                self.update_quiet(inner, word);
            }
            // Forced-open and disabled report an empty window, as DESIGN.md says (the
            // window they were entered with stays, unreported, until the next closed or
            // metrics-only period clears it), and so does an open period entered from
            // them by hand; an open period reports what opened it.
            let empty = (word, Totals::ZERO, (None, None));
            let probes = match state_of(word) {
                State::HalfOpen => true,
                State::Open => match state_of(u64::from(inner.entered_from)) {
                    State::HalfOpen => true,
                    State::ForcedOpen | State::Disabled => return empty,
                    _ => false,
                },
                State::ForcedOpen | State::Disabled => return empty,
                State::Closed | State::MetricsOnly => false,
            };
            if probes {
                let t = inner.probes;
                let rates = (
                    t.rate_basis_points(t.failures, decision),
                    t.rate_basis_points(t.slow, decision),
                );
                (word, t, rates)
            } else {
                let minimum = Self::thresholds(inner).minimum_calls;
                let t = inner.window.totals(now);
                (word, t, inner.window.rates(now, minimum))
            }
        }
    }

    /// [`metrics_at`](Self::metrics_at) at `clock.now()`.
    pub fn metrics<C: Clock>(&self, clock: &C) -> BreakerMetrics {
        self.metrics_at(clock.now())
    }

    /// Moves to `to` by hand at `now`.
    ///
    /// To [`State::Open`], the open duration is drawn as at an automatic opening (the
    /// backoff grows); to [`State::HalfOpen`], no slot is taken. A transition to the
    /// current state does nothing and reports nothing. Closed and metrics-only cannot go to
    /// half-open, nor metrics-only to open ([`State::can_transition_to`]): an
    /// [`IllegalTransition`] error, and nothing changes.
    pub fn transition_at(&self, to: State, now: Instant) -> Result<(), IllegalTransition> {
        self.manual(to, None, now)
    }

    /// Moves to [`State::Open`] until `now + duration` (rejecting up to and including that
    /// instant), without touching the backoff. Already open, the open period is replaced,
    /// silently. From metrics-only, an [`IllegalTransition`] (metrics-only never opens).
    pub fn open_for_at(&self, duration: Duration, now: Instant) -> Result<(), IllegalTransition> {
        self.manual(State::Open, Some(now.saturating_add(duration)), now)
    }

    /// Moves to [`State::Open`] until `until` (inclusive), without touching the backoff.
    /// From metrics-only, an [`IllegalTransition`] (metrics-only never opens).
    pub fn open_until_at(&self, until: Instant, now: Instant) -> Result<(), IllegalTransition> {
        self.manual(State::Open, Some(until), now)
    }

    /// Back to a fresh closed breaker: the window, backoff and rejection count are cleared
    /// and permits issued before are void. Reported as resilience4j does: the transition
    /// to closed (unless already closed), then the reset.
    pub fn reset_at(&self, now: Instant) {
        self.with_events(now, |this, inner, events| {
            let word = this.word_in(inner);
            // Cleared first: the new period counts its rejections from zero.
            this.clear_rejected(inner);
            this.enter(inner, word, State::Closed, now, None, 0, events);
            events.push(Event::Reset(state_of(word)));
        });
    }

    fn manual(
        &self,
        to: State,
        until: Option<Instant>,
        now: Instant,
    ) -> Result<(), IllegalTransition> {
        self.with_events(now, |this, inner, events| {
            let word = this.word_in(inner);
            let from = state_of(word);
            if !from.can_transition_to(to) {
                return Err(IllegalTransition { from, to });
            }
            if from == to && until.is_none() {
                return Ok(());
            }
            let entered_from = inner.entered_from;
            this.enter(inner, word, to, now, until, 0, events);
            if from == to {
                // Open again by hand: the metrics still report what opened it first.
                inner.entered_from = entered_from;
            }
            Ok(())
        })
    }

    /// The thresholds in force, the minimum number of calls clamped to the window's size.
    /// Inside the critical section.
    fn thresholds(inner: &Inner<W, B>) -> Thresholds {
        Thresholds {
            failure_rate_percent: inner.failure_rate_threshold,
            slow_call_rate_percent: inner.slow_call_rate_threshold,
            minimum_calls: inner.minimum_calls.min(inner.window.max_calls()),
        }
    }

    /// Reports a rejection, and counts it where 64-bit atomics are native (elsewhere
    /// the critical section that rejected has counted it).
    fn reject(&self, state: State, retry_after: Option<Duration>, now: Instant) -> Rejected {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let rejected = Rejected { retry_after, state };
        self.listener.on_rejected(rejected, now);
        rejected
    }

    /// Runs `f` inside the critical section, then reports the events it collected.
    fn with_events<R>(
        &self,
        now: Instant,
        f: impl FnOnce(&Self, &mut Inner<W, B>, &mut Events) -> R,
    ) -> R {
        let mut events = Events::new();
        let result = self.inner.with(|inner| f(self, inner, &mut events));
        if !self.listener.listens() {
            return result;
        }
        for event in events.list.iter().take(events.len).flatten() {
            match *event {
                Event::Transition(from, to) => self.listener.on_state_transition(from, to, now),
                Event::Exceeded(kind, rate) => self.listener.on_threshold_exceeded(kind, rate, now),
                Event::Reset(from) => self.listener.on_reset(from, now),
            }
        }
        result
    }

    /// Enters `to` from `from` (the word read under the lock), starting a new period with
    /// `slots` half-open slots taken. Must run inside the critical section.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn enter(
        &self,
        inner: &mut Inner<W, B>,
        from: u64,
        to: State,
        now: Instant,
        open_until: Option<Instant>,
        slots: u16,
        events: &mut Events,
    ) -> u64 {
        // Half-open probes that re-open the breaker stay, for its metrics.
        inner.entered_from = from as u8;
        inner.rejected_at_entry = self.rejected_in(inner);
        // Open: until the given instant, or for the backoff's next delay; half-open: for
        // the maximum wait, in nanoseconds (none saturates to `NEVER`).
        let mut deadline = NEVER;
        let mut delay = None;
        match to {
            State::Open => match open_until {
                Some(until) => deadline = until.as_nanos(),
                None => delay = Some(inner.backoff.next_delay(&mut inner.rng)),
            },
            State::HalfOpen => {
                inner.probes = Totals::ZERO;
                deadline = now.as_nanos().saturating_add(inner.max_wait_nanos);
            }
            State::Closed | State::MetricsOnly => {
                inner.window.reset();
                inner.backoff.reset();
                inner.reported = Exceeded::NONE;
            }
            State::Disabled | State::ForcedOpen => inner.backoff.reset(),
        }
        if let Some(delay) = delay {
            deadline = now.saturating_add(delay).as_nanos();
        }
        self.store_deadline(inner, deadline);
        let mut word = pack(to, slots, next_period(from));
        if WORD_RECORDS && matches!(to, State::Closed | State::MetricsOnly) {
            if let Some(streak) = self.streak_mode(inner, word) {
                word = streak;
            } else if inner.window.success_is_noop() {
                word |= QUIET;
            }
        }
        // A swap, not a store: the word may have moved since `from` was read, outside the
        // critical section (a half-open slot taken or given back, a success counted in a
        // batch), and what it held is what this transition ends. Its period is `from`'s:
        // only the critical section changes periods.
        let ended = self.swap_word(inner, word);
        let keeps = !records(word);
        if S > 0 {
            // Successes counted for the period that ended belong to the window it keeps;
            // those counted after this sweep are late.
            self.sweep(inner, period_of(ended), keeps);
        }
        if WORD_RECORDS && keeps {
            // Calls recorded in the word before the transition belong to the window it
            // keeps.
            if S == 0 && ended & BATCH != 0 {
                inner.window.record_successes(slots_of(ended));
            } else if W::KEEPS_FAILURE_STREAKS && ended & STREAK != 0 {
                inner.window.set_failure_streak(u32::from(slots_of(ended)));
            }
        }
        let from = state_of(from);
        if self.listener.listens() && from != to {
            events.push(Event::Transition(from, to));
        }
        word
    }

    /// The moves that time makes, lazily, on an acquire: open to half-open on the first
    /// acquire strictly after the open duration, which takes the first probe slot (the
    /// word that issues it is returned; `None` if another caller changed the state
    /// first); out of a half-open `seen` whose maximum wait has run out (`None`). One
    /// function for both, so that the critical section is compiled once for them.
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    #[cold]
    fn leave_in_time(&self, seen: u64, now: Instant) -> Option<u64> {
        self.with_events(now, |this, inner, events| {
            if is(seen, State::HalfOpen) {
                this.leave_half_open_if_expired(inner, seen, now, events);
                return None;
            }
            let word = this.word_in(inner);
            if word != seen || now.as_nanos() <= this.deadline_in(inner, Ordering::Acquire) {
                return None;
            }
            Some(this.enter(inner, word, State::HalfOpen, now, None, 1, events))
        })
    }

    /// Leaves half-open if its maximum wait has run out at `now`, for the configured
    /// state. Inside the critical section.
    fn leave_half_open_if_expired(
        &self,
        inner: &mut Inner<W, B>,
        seen: u64,
        now: Instant,
        events: &mut Events,
    ) -> bool {
        let word = self.word_in(inner);
        let deadline = self.deadline_in(inner, Ordering::Acquire);
        if !is(word, State::HalfOpen)
            || period_of(word) != period_of(seen)
            || deadline == NEVER
            || now.as_nanos() < deadline
        {
            return false;
        }
        self.enter(
            inner,
            word,
            inner.after_max_wait.state(),
            now,
            None,
            0,
            events,
        );
        true
    }

    /// Gives back a half-open slot taken in `issued`'s period, if that period is current.
    /// Without native 64-bit atomics, in the critical section.
    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
    fn release_slot(&self, issued: u64) {
        self.inner.with(|inner| {
            let word = inner.word;
            if period_of(word) != period_of(issued) || !is(word, State::HalfOpen) {
                return;
            }
            if let Some(slots) = slots_of(word).checked_sub(1) {
                inner.word = pack(State::HalfOpen, slots, period_of(word));
            }
        });
    }

    /// Gives back a half-open slot taken in `issued`'s period, if that period is current.
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    fn release_slot(&self, issued: u64) {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if period_of(word) != period_of(issued) || !is(word, State::HalfOpen) {
                return;
            }
            let Some(slots) = slots_of(word).checked_sub(1) else {
                return;
            };
            let freed = pack(State::HalfOpen, slots, period_of(word));
            match self
                .word
                .compare_exchange_weak(word, freed, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// Records the outcome of a call admitted in `issued`'s period, which took `nanos`
    /// (saturating) and ended at `end`.
    #[inline]
    fn record(&self, issued: u64, outcome: Outcome, nanos: u64, end: Instant) {
        let call = match outcome {
            Outcome::Ignored => {
                if is(issued, State::HalfOpen) {
                    self.release_slot(issued);
                }
                return;
            }
            Outcome::Success | Outcome::Failure => CallRecord {
                failure: outcome == Outcome::Failure,
                slow: nanos > self.fixed.slow_call_nanos,
            },
        };
        if is(issued, State::Disabled) {
            return;
        }
        if WORD_RECORDS
            && !call.slow
            && (!call.failure || W::KEEPS_FAILURE_STREAKS)
            && self.record_unlocked(issued, call.failure, end)
        {
            return;
        }
        self.record_locked(issued, call, end);
    }

    /// Records a call that is not slow (a failure only for a window that keeps failure
    /// streaks) without the critical section, if the word of the permit's period says so:
    /// quiet (a success: nothing to record), batch (a success, counted in the word with one
    /// compare-and-swap, if it ends within the window's bound) or streak (the streak in the
    /// word reset by a success, one compare-and-swap unless it is zero already, or grown
    /// by a failure, one compare-and-swap, while it stays within its limit). `false` sends
    /// it to the critical section.
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    #[inline]
    fn record_unlocked(&self, issued: u64, failure: bool, end: Instant) -> bool {
        // In closed and metrics-only the flags are set only inside the critical section,
        // and what is counted in the word is taken out only there, so a flagged word of
        // the permit's period means no outcome has disturbed the window since.
        let mut word = self.word.load(Ordering::Acquire);
        let mut spins = BUSY_SPINS;
        loop {
            if period_of(word) != period_of(issued) {
                return false;
            }
            let count = slots_of(word);
            let next = if W::KEEPS_FAILURE_STREAKS && word & STREAK != 0 {
                if !failure {
                    if count == 0 {
                        return true;
                    }
                    Some(0)
                } else if u64::from(count) < self.deadline.load(Ordering::Acquire) {
                    Some(count.saturating_add(1))
                } else {
                    None // this failure may reach the threshold: the critical section decides
                }
            } else if failure {
                None
            } else if word & QUIET != 0 {
                return true;
            } else if word & BATCH != 0
                && (S > 0 || count < u16::MAX)
                && end.as_nanos() <= self.deadline.load(Ordering::Acquire)
            {
                if S > 0 {
                    return self.count_in_stripe(period_of(word));
                }
                Some(count.saturating_add(1))
            } else {
                None
            };
            let Some(next) = next else {
                if word & BUSY == 0 || spins == 0 {
                    return false;
                }
                // A critical section has taken the batch or the streak out and is about
                // to say whether it goes back: wait for it, briefly, rather than queue on
                // its lock.
                spins = spins.saturating_sub(1);
                spin();
                word = self.word.load(Ordering::Acquire);
                continue;
            };
            match self.word.compare_exchange_weak(
                word,
                with_slots(word, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
    }

    /// Without native 64-bit atomics nothing is recorded in the word ([`WORD_RECORDS`]).
    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
    #[inline]
    fn record_unlocked(&self, _issued: u64, _failure: bool, _end: Instant) -> bool {
        false
    }

    /// Counts a success of `period` in one of the stripes (`S > 0`): one compare-and-swap
    /// on the stripe this thread's stack picks, or on the next one if another thread
    /// changed it meanwhile. `false` (the critical section then records it) when every
    /// stripe tried is full or holds another period's count.
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    #[inline]
    fn count_in_stripe(&self, period: u64) -> bool {
        let marker = 0u8;
        // The page of a local of this call: it stays put within a thread, and the threads
        // of one pool, whose stacks the operating system maps one after the other (a
        // power-of-two size and a guard page apart), fall on consecutive stripes. Under
        // loom, always the first stripe: its threads' stacks are not the operating
        // system's, and a model must explore the same code whatever their addresses. Under
        // Miri too: it gives every local a fresh address of its own choosing, so the page
        // would change from one call to the next on one thread.
        let mut at = if cfg!(any(loom, miri)) {
            0
        } else {
            core::ptr::addr_of!(marker).addr() >> 12
        };
        for _ in 0..S {
            at = at.checked_rem(S).unwrap_or(0);
            let Some(stripe) = self.stripes.get(at) else {
                return false;
            };
            let seen = stripe.0.load(Ordering::Relaxed);
            let next = if seen >> 24 == period && seen & STRIPE_COUNT < STRIPE_COUNT {
                seen.saturating_add(1)
            } else if seen & STRIPE_COUNT == 0 {
                (period << 24) | 1
            } else {
                at = at.wrapping_add(1);
                continue;
            };
            if stripe
                .0
                .compare_exchange(seen, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
            at = at.wrapping_add(1);
        }
        false
    }

    /// Empties the stripes, and records in the window the successes they counted for
    /// `period` if `record`. Inside the critical section.
    fn sweep(&self, inner: &mut Inner<W, B>, period: u64, record: bool) {
        let mut total: u64 = 0;
        for stripe in &self.stripes {
            if stripe.0.load(Ordering::Relaxed) != 0 {
                let taken = stripe.0.swap(0, Ordering::AcqRel);
                if taken >> 24 == period {
                    total = total.saturating_add(taken & STRIPE_COUNT);
                }
            }
        }
        if record {
            while total > 0 {
                let n = u16::try_from(total).unwrap_or(u16::MAX);
                inner.window.record_successes(n);
                total = total.saturating_sub(u64::from(n));
            }
        }
    }

    /// Takes what the word holds for the window (the successes counted while the batch
    /// flag is set, or the failure streak while the streak flag is set) out of it and
    /// into the window; returns the word without it. Inside the critical section; only
    /// closed and metrics-only words carry these flags. Without native 64-bit atomics
    /// nothing is recorded in the word ([`WORD_RECORDS`]): the word as it is.
    #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
    #[inline]
    fn drain(&self, _inner: &mut Inner<W, B>, word: u64) -> u64 {
        word
    }

    /// Takes what the word holds for the window (the successes counted while the batch
    /// flag is set, or the failure streak while the streak flag is set) out of it and
    /// into the window; returns the word without it. Inside the critical section; only
    /// closed and metrics-only words carry these flags.
    #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
    fn drain(&self, inner: &mut Inner<W, B>, word: u64) -> u64 {
        // The flags are set and cleared only inside the critical section, so the word read
        // inside it shows them as the last holder left them; without them, nothing can
        // have been recorded in the word since.
        if !WORD_RECORDS {
            return word;
        }
        if S > 0 {
            self.sweep(inner, period_of(word), true);
        }
        let flag = word
            & (if S == 0 { BATCH } else { 0 } | if W::KEEPS_FAILURE_STREAKS { STREAK } else { 0 });
        if flag == 0 {
            return word;
        }
        // A read-modify-write, not a store: calls may still be recorded in the word until
        // the flag is off. It also sets the busy flag (known clear: only a critical section
        // sets it, and every one that does ends with a store or swap of a word without it),
        // which tells those calls that the flags are about to be published again. The
        // count stays in the word, meaningless without its flag, until that store or swap.
        let before = self.word.fetch_xor(flag | BUSY, Ordering::AcqRel);
        let count = slots_of(before);
        if !W::KEEPS_FAILURE_STREAKS || flag == BATCH {
            if count > 0 {
                inner.window.record_successes(count);
            }
        } else {
            inner.window.set_failure_streak(u32::from(count));
        }
        (before & !(flag | SLOT_FIELD)) | BUSY
    }

    /// The part of [`record`](Self::record) inside the critical section.
    fn record_locked(&self, issued: u64, call: CallRecord, end: Instant) {
        self.with_events(end, |this, inner, events| {
            let word = this.word_in(inner);
            if period_of(word) != period_of(issued) {
                return; // late: admitted in an earlier period
            }
            let word = this.drain(inner, word);
            match state_of(word) {
                // One arm for both states that record into the window, so that the window's
                // code is compiled once into this function, not once per state.
                state @ (State::Closed | State::MetricsOnly) => {
                    inner.window.record(call, end);
                    let thresholds = Self::thresholds(inner);
                    let exceeded = inner.window.exceeded(end, &thresholds);
                    if state == State::Closed {
                        if exceeded.any() {
                            this.report_exceeded(
                                inner,
                                exceeded,
                                thresholds.minimum_calls,
                                end,
                                events,
                            );
                            this.enter(inner, word, State::Open, end, None, 0, events);
                        } else {
                            this.update_quiet(inner, word);
                        }
                        return;
                    }
                    this.update_quiet(inner, word);
                    if !this.listener.listens() {
                        return; // what was reported matters only to a listener
                    }
                    let new = Exceeded {
                        failure_rate: exceeded.failure_rate && !inner.reported.failure_rate,
                        slow_call_rate: exceeded.slow_call_rate && !inner.reported.slow_call_rate,
                    };
                    if new.any() {
                        inner.reported.failure_rate |= new.failure_rate;
                        inner.reported.slow_call_rate |= new.slow_call_rate;
                        this.report_exceeded(inner, new, thresholds.minimum_calls, end, events);
                    }
                }
                State::HalfOpen => {
                    if this.leave_half_open_if_expired(inner, word, end, events) {
                        return; // the wait ran out first: this outcome came too late
                    }
                    inner.probes.add(call);
                    let needed = this.fixed.half_open_decision_calls(inner.minimum_calls);
                    if inner.probes.calls >= needed {
                        let thresholds = Self::thresholds(inner);
                        let to = if inner.probes.exceeded(&thresholds, needed).any() {
                            State::Open
                        } else {
                            State::Closed
                        };
                        this.enter(inner, word, to, end, None, 0, events);
                    }
                }
                State::Open | State::ForcedOpen | State::Disabled => {}
            }
        });
    }

    /// Publishes how calls that are not slow are recorded without the critical section
    /// (streak, quiet, batch, or not at all). Inside the critical section, in closed or
    /// metrics-only, after [`drain`](Self::drain) (so the batch and streak flags are off
    /// and nothing else writes the word).
    #[inline]
    fn update_quiet(&self, inner: &mut Inner<W, B>, word: u64) {
        if !WORD_RECORDS {
            return;
        }
        let mut flags = word & !(QUIET | BATCH | BUSY);
        if let Some(streak) = self.streak_mode(inner, flags) {
            flags = streak;
        } else if inner.window.success_is_noop() {
            flags |= QUIET;
        } else {
            let thresholds = Self::thresholds(inner);
            if let Some(until) = inner.window.batch_until(&thresholds) {
                // With stripes, stored only when it changes: successes read it at every
                // call, from other cores, and an unchanged line stays in their caches.
                if S == 0 || self.deadline_in(inner, Ordering::Relaxed) != until.as_nanos() {
                    self.store_deadline(inner, until.as_nanos());
                }
                flags |= BATCH;
            }
        }
        if flags != word {
            self.store_word(inner, flags);
        }
    }

    /// `word` (closed or metrics-only, without flags) with the window's failure streak in
    /// it and the streak flag set, if the window hands its streak out
    /// ([`Window::failure_streak`]) and it fits; the streak's limit is stored in
    /// `deadline`, before the caller publishes the word.
    #[inline]
    fn streak_mode(&self, inner: &mut Inner<W, B>, word: u64) -> Option<u64> {
        if !W::KEEPS_FAILURE_STREAKS {
            return None;
        }
        let thresholds = Self::thresholds(inner);
        let streak = inner.window.failure_streak(&thresholds)?;
        let limit = streak.limit.min(u32::from(u16::MAX));
        let failures = u16::try_from(streak.failures).ok()?;
        if u32::from(failures) > limit {
            return None;
        }
        self.store_deadline(inner, u64::from(limit));
        Some(with_slots(word, failures) | STREAK)
    }

    fn report_exceeded(
        &self,
        inner: &mut Inner<W, B>,
        exceeded: Exceeded,
        minimum: u32,
        now: Instant,
        events: &mut Events,
    ) {
        if !self.listener.listens() {
            return;
        }
        let (failure, slow) = inner.window.rates(now, minimum);
        if exceeded.failure_rate {
            events.push(Event::Exceeded(
                Threshold::FailureRate,
                failure.unwrap_or(10_000),
            ));
        }
        if exceeded.slow_call_rate {
            events.push(Event::Exceeded(
                Threshold::SlowCallRate,
                slow.unwrap_or(10_000),
            ));
        }
    }
}

impl<W, M: RawMutex, B, L, const S: usize> CircuitBreaker<W, M, B, L, S> {
    /// The state word, read outside the critical section.
    #[inline]
    fn load_word(&self) -> u64 {
        #[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
        return self.word.load(Ordering::Acquire);
        #[cfg(any(not(target_has_atomic = "64"), stanchion_breaker_locked))]
        return self.inner.with(|inner| inner.word);
    }
}

impl<W, M: RawMutex, B, L, const S: usize> fmt::Debug for CircuitBreaker<W, M, B, L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.load_word();
        f.debug_struct("CircuitBreaker")
            .field("state", &state_of(word))
            .field(
                "half_open_slots",
                &if state_of(word) == State::HalfOpen {
                    slots_of(word)
                } else {
                    0
                },
            )
            .field("period", &period_of(word))
            .field("config", &self.inner.with(|inner| self.fixed.with(inner)))
            .finish_non_exhaustive()
    }
}

mod sealed {
    pub trait Sealed {}
}

impl<W: Window, M: RawMutex, B: Backoff, L: BreakerListener, const S: usize> sealed::Sealed
    for CircuitBreaker<W, M, B, L, S>
{
}

/// What a [`Permit`] needs from the breaker that issued it. Implemented by every
/// [`CircuitBreaker`] and by nothing else (sealed); it lets a permit hold any pointer to
/// its breaker (`&CircuitBreaker`, `Arc<CircuitBreaker>`, ...).
pub trait IssuesPermits: sealed::Sealed {
    #[doc(hidden)]
    fn settle(&self, issued: u64, outcome: Outcome, nanos: u64, end: Instant);
    #[doc(hidden)]
    fn release(&self, issued: u64);
}

impl<W: Window, M: RawMutex, B: Backoff, L: BreakerListener, const S: usize> IssuesPermits
    for CircuitBreaker<W, M, B, L, S>
{
    #[inline]
    fn settle(&self, issued: u64, outcome: Outcome, nanos: u64, end: Instant) {
        self.record(issued, outcome, nanos, end);
    }

    #[inline]
    fn release(&self, issued: u64) {
        if is(issued, State::HalfOpen) {
            self.release_slot(issued);
        }
    }
}

/// The `issued` word of a permit whose outcome is in: a closed word, so that its drop
/// releases nothing.
const SETTLED: u64 = 0;

/// Permission to make one call, issued by [`CircuitBreaker::try_acquire_at`] (holding
/// `&CircuitBreaker`) or [`CircuitBreaker::try_acquire_owned_at`] (holding any pointer to
/// it, such as an `Arc`).
///
/// Record the call's outcome with [`success`](Permit::success),
/// [`failure`](Permit::failure) or [`ignored`](Permit::ignored). Dropping it without an
/// outcome (a cancelled call, a future dropped at an `.await`) records nothing and gives
/// back its half-open slot if it took one and that half-open period is still current.
///
/// A permit belongs to the period that issued it: an outcome recorded after the breaker
/// has changed state since (a call admitted before a trip, a probe of an earlier half-open
/// period) changes nothing.
#[must_use = "a permit records nothing unless its outcome is given"]
pub struct Permit<R: Deref>
where
    R::Target: IssuesPermits,
{
    breaker: R,
    issued: u64,
    acquired_at: Instant,
}

impl<R: Deref> Permit<R>
where
    R::Target: IssuesPermits,
{
    #[inline]
    fn new(breaker: R, issued: u64, acquired_at: Instant) -> Self {
        Permit {
            breaker,
            issued,
            acquired_at,
        }
    }

    /// The state in which the permit was issued.
    pub fn state(&self) -> State {
        state_of(self.issued)
    }

    /// When the permit was issued.
    pub fn acquired_at(&self) -> Instant {
        self.acquired_at
    }

    /// The call succeeded after `duration` (it ended at `acquired_at + duration`).
    #[inline]
    pub fn success(self, duration: Duration) {
        self.record(Outcome::Success, duration);
    }

    /// The call failed after `duration` (it ended at `acquired_at + duration`).
    #[inline]
    pub fn failure(self, duration: Duration) {
        self.record(Outcome::Failure, duration);
    }

    /// The call's outcome does not count: nothing is recorded, and a half-open slot is
    /// given back.
    #[inline]
    pub fn ignored(self) {
        self.record(Outcome::Ignored, Duration::ZERO);
    }

    /// Records `outcome` for a call that took `duration` (ending at
    /// `acquired_at + duration`).
    #[inline]
    pub fn record(mut self, outcome: Outcome, duration: Duration) {
        // The outcome replaces the release: the drop that follows finds a settled word.
        let issued = core::mem::replace(&mut self.issued, SETTLED);
        let end = self.acquired_at.saturating_add(duration);
        self.breaker
            .settle(issued, outcome, duration_to_nanos_saturating(duration), end);
    }

    /// Records `outcome` for a call that ended at `end` (its duration is
    /// `end - acquired_at`, zero if the clock stepped backwards).
    #[inline]
    pub fn record_at(mut self, outcome: Outcome, end: Instant) {
        let issued = core::mem::replace(&mut self.issued, SETTLED);
        let nanos = end.as_nanos().saturating_sub(self.acquired_at.as_nanos());
        self.breaker
            .settle(issued, outcome, nanos, end.max(self.acquired_at));
    }
}

impl<R: Deref> Drop for Permit<R>
where
    R::Target: IssuesPermits,
{
    #[inline]
    fn drop(&mut self) {
        self.breaker.release(self.issued);
    }
}

impl<R: Deref> fmt::Debug for Permit<R>
where
    R::Target: IssuesPermits,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("state", &state_of(self.issued))
            .field("period", &period_of(self.issued))
            .field("acquired_at", &self.acquired_at)
            .finish()
    }
}

#[cfg(all(test, loom))]
impl<W, M: RawMutex, B, L, const S: usize> CircuitBreaker<W, M, B, L, S> {
    /// The state word, for tests of its flags.
    pub(crate) fn word_for_test(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    /// The window's counts as the last critical section left them, for tests of what a
    /// state that reports an empty window (forced-open) keeps.
    pub(crate) fn window_for_test(&self, now: Instant) -> Totals
    where
        W: Window,
    {
        self.inner.with(|inner| inner.window.totals(now))
    }

    /// The successes counted in the stripes (any period), for tests.
    pub(crate) fn stripes_for_test(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Acquire) & STRIPE_COUNT)
            .sum()
    }
}

/// A pause in a busy wait: the processor's spin hint; under loom, a yield, so that the
/// model runs the thread being waited for.
#[cfg(all(target_has_atomic = "64", not(stanchion_breaker_locked)))]
#[inline]
fn spin() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

// The tests of the word's flags and the stripes: they need the lock-free form.
#[cfg(all(test, not(loom), not(stanchion_breaker_locked)))]
mod tests {
    use super::*;
    use crate::breaker::window::{ConsecutiveWindow, CountWindow};
    use crate::sync::CriticalSectionRawMutex;

    /// With stripes: a batched success is counted in a stripe, tagged with its period,
    /// and the state word is not written; a critical section sweeps the stripes into the
    /// window and, while the batch stays allowed, leaves the word as it was; a transition
    /// sweeps them too.
    #[test]
    fn batched_successes_go_to_the_stripes_and_the_word_stays_put() {
        type Striped =
            CircuitBreaker<CountWindow<8>, CriticalSectionRawMutex, FixedOpenDuration, (), 4>;
        let config = BreakerConfig::new()
            .minimum_calls(2)
            .failure_rate_threshold(50);
        let b: Striped = CircuitBreaker::new(config, CountWindow::new().unwrap()).unwrap();
        let ms = Duration::from_millis(1);
        let at = Instant::ZERO;
        let word = |b: &Striped| b.word.load(Ordering::Acquire);
        let stripes = |b: &Striped| -> [u64; 4] {
            core::array::from_fn(|i| b.stripes[i].0.load(Ordering::Acquire))
        };
        let in_window = |b: &Striped| b.inner.with(|inner| inner.window.totals(at).calls);
        b.try_acquire_at(at).unwrap().success(ms);
        b.try_acquire_at(at).unwrap().success(ms);
        let armed = word(&b);
        assert_eq!(armed & (BATCH | BUSY | QUIET | STREAK), BATCH);
        for _ in 0..3 {
            b.try_acquire_at(at).unwrap().success(ms);
        }
        assert_eq!(word(&b), armed);
        assert_eq!(in_window(&b), 2);
        // One thread, one stack page: all three in one stripe, for period 0.
        let counted = stripes(&b);
        assert_eq!(counted.iter().filter(|&&s| s != 0).count(), 1);
        assert_eq!(counted.iter().sum::<u64>(), 3);
        b.try_acquire_at(at).unwrap().failure(ms); // sweeps, records, stays armed
        assert_eq!((word(&b), stripes(&b), in_window(&b)), (armed, [0; 4], 6));
        b.try_acquire_at(at).unwrap().success(ms);
        assert_eq!(b.metrics_at(at).calls, 7); // a metrics read sweeps too
        assert_eq!((word(&b), stripes(&b)), (armed, [0; 4]));
        b.try_acquire_at(at).unwrap().success(ms);
        b.transition_at(State::ForcedOpen, at).unwrap(); // the window it keeps has it
        assert_eq!(stripes(&b), [0; 4]);
        assert_eq!(b.state(), State::ForcedOpen);
        let kept = b.inner.with(|inner| inner.window.totals(at));
        assert_eq!((kept.calls, kept.failures), (8, 1));
        // A success of an earlier period left in a stripe is not counted in a later one.
        b.transition_at(State::Closed, at).unwrap();
        let period = period_of(word(&b));
        b.stripes[0]
            .0
            .store(((period - 1) << 24) | 5, Ordering::Release);
        b.try_acquire_at(at).unwrap().success(ms);
        b.try_acquire_at(at).unwrap().success(ms);
        assert_eq!(b.metrics_at(at).calls, 2);
        assert_eq!(stripes(&b), [0; 4]);
    }

    /// A consecutive window's failure streak is kept in the state word: successes and the
    /// failures below the streak length are recorded there, without the critical section;
    /// the failure that reaches the length, slow calls, metrics reads and transitions take
    /// the critical section, which takes the streak back into the window first.
    #[test]
    fn the_failure_streak_is_kept_in_the_word() {
        let config = BreakerConfig::new().slow_call_duration(Duration::from_millis(100));
        let b: CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex> =
            CircuitBreaker::new(config, ConsecutiveWindow::new(3).unwrap()).unwrap();
        let (fast, slow) = (Duration::from_millis(1), Duration::from_millis(101));
        let at = Instant::ZERO;
        let word = |b: &CircuitBreaker<_, _>| b.word.load(Ordering::Acquire);
        let flags = |b: &CircuitBreaker<_, _>| word(b) & (STREAK | BUSY | BATCH | QUIET);
        let streak = |b: &CircuitBreaker<_, _>| slots_of(word(b));
        // The window's own failure count, as the last critical section left it (reading it
        // takes the lock but, unlike a metrics read, does not hand the word's streak over).
        let in_window = |b: &CircuitBreaker<ConsecutiveWindow, _>| {
            b.inner.with(|inner| inner.window.totals(at).failures)
        };

        b.try_acquire_at(at).unwrap().success(fast); // a new breaker publishes nothing yet
        assert_eq!(flags(&b), STREAK);
        b.try_acquire_at(at).unwrap().failure(fast);
        b.try_acquire_at(at).unwrap().failure(fast);
        assert_eq!((streak(&b), in_window(&b)), (2, 0));
        b.try_acquire_at(at).unwrap().success(fast); // ends the streak: one CAS
        b.try_acquire_at(at).unwrap().success(fast); // no streak: one load
        b.try_acquire_at(at).unwrap().failure(fast);
        assert_eq!((streak(&b), in_window(&b)), (1, 0));

        // A metrics read takes the streak into the window and puts it back.
        assert_eq!(b.metrics_at(at).failures, 1);
        assert_eq!((flags(&b), streak(&b), in_window(&b)), (STREAK, 1, 1));

        // A slow call takes the streak out, and while a slow streak runs it stays out.
        b.try_acquire_at(at).unwrap().success(slow);
        assert_eq!((flags(&b), in_window(&b)), (0, 0));
        let m = b.metrics_at(at);
        assert_eq!((m.failures, m.slow_calls), (0, 1));
        assert_eq!(flags(&b), 0); // a metrics read does not put it back either
        b.try_acquire_at(at).unwrap().failure(fast); // ends the slow streak
        assert_eq!((flags(&b), streak(&b), in_window(&b)), (STREAK, 1, 1));
        b.try_acquire_at(at).unwrap().success(fast);
        assert_eq!((flags(&b), streak(&b), in_window(&b)), (STREAK, 0, 1));

        // A transition keeps the streak in the window it leaves with.
        b.try_acquire_at(at).unwrap().failure(fast);
        b.try_acquire_at(at).unwrap().failure(fast);
        assert_eq!((streak(&b), in_window(&b)), (2, 1));
        b.transition_at(State::ForcedOpen, at).unwrap();
        assert_eq!(flags(&b), 0);
        assert_eq!(in_window(&b), 2);

        // The failure that reaches the length takes the critical section and opens.
        b.transition_at(State::Closed, at).unwrap();
        assert_eq!((flags(&b), streak(&b)), (STREAK, 0));
        b.try_acquire_at(at).unwrap().failure(fast);
        b.try_acquire_at(at).unwrap().failure(fast);
        assert_eq!((streak(&b), in_window(&b)), (2, 0));
        b.try_acquire_at(at).unwrap().failure(fast);
        assert_eq!((b.state(), flags(&b)), (State::Open, 0));
        assert_eq!(b.metrics_at(at).failures, 3);
    }

    /// Without stripes: every critical section that takes the batch out ends with the
    /// busy flag clear (so successes do not wait for a section that is over) and, while
    /// the window still allows it, the batch flag set again.
    #[test]
    fn critical_sections_leave_the_busy_flag_clear() {
        type InWord =
            CircuitBreaker<CountWindow<8>, CriticalSectionRawMutex, FixedOpenDuration, (), 0>;
        let config = BreakerConfig::new()
            .minimum_calls(2)
            .failure_rate_threshold(50);
        let b: InWord = CircuitBreaker::new(config, CountWindow::new().unwrap()).unwrap();
        let ms = Duration::from_millis(1);
        let at = Instant::ZERO;
        let flags = |b: &InWord| b.word.load(Ordering::Acquire) & (BUSY | BATCH);
        b.try_acquire_at(at).unwrap().success(ms);
        assert_eq!(flags(&b), 0); // below the minimum: no batch yet
        b.try_acquire_at(at).unwrap().success(ms);
        assert_eq!(flags(&b), BATCH);
        b.try_acquire_at(at).unwrap().success(ms); // counted in the word
        assert_eq!(slots_of(b.word.load(Ordering::Acquire)), 1);
        b.try_acquire_at(at).unwrap().failure(ms); // takes the batch out, records, re-arms
        assert_eq!(flags(&b), BATCH);
        assert_eq!(slots_of(b.word.load(Ordering::Acquire)), 0);
        b.try_acquire_at(at).unwrap().success(ms);
        assert_eq!(b.metrics_at(at).calls, 5);
        assert_eq!(flags(&b), BATCH);
        for _ in 0..3 {
            b.try_acquire_at(at).unwrap().failure(ms); // 4 failures of 8: opens
        }
        assert_eq!(b.state(), State::Open);
        assert_eq!(flags(&b), 0);
    }
}
