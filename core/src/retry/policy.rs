//! [`RetryPolicy`]: the per-operation state that answers, after each attempt, "done",
//! "retry after `d`" or "give up, because ...".
//!
//! A runner is a short loop: run the attempt, tell the policy its outcome, sleep for
//! what it says or stop.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::retry::{Decision, Exponential, GiveUpReason, Ratio, RetryPolicy};
//! use stanchion::{Clock, Deadline, Instant, ManualClock};
//!
//! let clock = ManualClock::new();
//! let backoff = Exponential::new(Duration::from_millis(100), Ratio::TWO, Duration::from_secs(2))
//!     .unwrap();
//! let mut policy = RetryPolicy::new(backoff, 4, fastrand::Rng::with_seed(7))
//!     .unwrap()
//!     .with_deadline(Deadline::after(clock.now(), Duration::from_secs(10)));
//!
//! let mut calls = 0;
//! let mut flaky = || -> Result<u32, &'static str> {
//!     calls += 1;
//!     if calls < 3 { Err("busy") } else { Ok(42) }
//! };
//! let result = loop {
//!     let outcome = flaky();
//!     match policy.on_outcome_at(clock.now(), &outcome, None) {
//!         Decision::Retry { after, .. } => {
//!             clock.advance(after); // an async runner sleeps here
//!         }
//!         Decision::Done | Decision::GiveUp { .. } => break outcome,
//!     }
//! };
//! assert_eq!(result, Ok(42));
//! assert_eq!(policy.attempt(), 3);
//! assert_eq!(clock.now(), Instant::from_millis(300)); // 100 ms, then 200 ms
//! ```
//!
//! # The stops, in the order they are checked after a failure
//!
//! 1. **Classifier** ([`Classify`]): a permanent failure gives up at once
//!    ([`GiveUpReason::Permanent`]), and so does an attempt a layer below refused
//!    ([`Verdict::Refused`], not counted as an attempt); a success-like outcome is
//!    [`Decision::Done`]. The
//!    default, [`TransientErrors`], treats every `Err` as transient and every `Ok` as
//!    success; a closure `Fn(&O) -> Verdict` can also retry `Ok` values (an HTTP 503).
//! 2. **Max attempts**, counting the first call: `max_attempts = 3` makes one call and
//!    at most two retries ([`GiveUpReason::AttemptsExhausted`]).
//! 3. **Delay**: the backoff's next delay; a server hint (`Retry-After`), when given,
//!    replaces it, bounded by [`with_max_retry_after`](RetryPolicy::with_max_retry_after)
//!    (default 60 s): a longer hint is shortened to the bound.
//! 4. **Overall deadline**: never overslept. If the deadline has passed, or the wait
//!    would end at or after it (leaving no time for the next attempt), the retry is
//!    refused ([`GiveUpReason::Deadline`]); the wait is never shortened to fit, since a
//!    shortened wait would not give the peer the time the backoff (or the server) asked
//!    for.
//! 5. **Budget** ([`RetryBudget`]): asked last, so a retry that a stop above refuses
//!    spends nothing ([`GiveUpReason::BudgetExhausted`]).
//!
//! The attempt number is visible: [`attempt`](RetryPolicy::attempt) is the number of the
//! attempt in flight or last made (1 for the first call), and [`Decision::Retry`] carries
//! the number of the attempt it allows.
//!
//! # Use
//!
//! One policy per operation: build it (cheap: a few words, no allocation), drive it, and
//! drop it, or [`reset`](RetryPolicy::reset) it for the next operation. After
//! [`Decision::Done`] or [`Decision::GiveUp`] the operation is over; the policy does not
//! stop a caller that keeps going. Budgets are shared by reference.
//!
//! Cost: the backoff, the classifier, the budget reference, a random generator (8 bytes)
//! and 16 bytes (24 with a bound on server hints other than the default): 64 bytes over
//! an [`Exponential`](super::Exponential) backoff, which firmware copies inline. A decision is the classifier, a few comparisons and the backoff's
//! `next_delay`, plus the budget's calls.
//!
//! Sources: the stops of Polly v8's retry strategy and resilience4j's `Retry`; budgets
//! after gRPC and Finagle.

use core::fmt;
use core::time::Duration;

use super::{Backoff, NoBudget, RetryBudget};
use crate::time::{ShowDuration, duration_to_nanos_saturating};
use crate::{Clock, ConfigError, Deadline, Instant};

/// What an attempt's outcome means for the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verdict {
    /// The operation succeeded: stop.
    Success,
    /// A failure that may go away: retry if the stops allow.
    Transient,
    /// A failure that will not go away: stop.
    Permanent,
    /// The attempt did not run: a layer it passes through refused it (an open circuit
    /// breaker). Stop, as for [`Permanent`](Verdict::Permanent) (the reason given), and do
    /// not count the refused call: [`RetryPolicy::attempt`] is then the number of
    /// attempts that ran, which the runners report. The classifiers for a retry around a
    /// breaker's call return it for the breaker's refusal.
    Refused,
}

/// Decides what an outcome `O` (usually `Result<T, E>`) means.
///
/// Implemented by [`TransientErrors`] and by every closure `Fn(&O) -> Verdict`:
///
/// ```
/// use stanchion::retry::{Classify, Verdict};
///
/// let http = |status: &u16| match status {
///     200..=299 => Verdict::Success,
///     429 | 502 | 503 | 504 => Verdict::Transient,
///     _ => Verdict::Permanent,
/// };
/// assert_eq!(http.classify(&503), Verdict::Transient);
/// assert_eq!(http.classify(&404), Verdict::Permanent);
/// ```
pub trait Classify<O: ?Sized> {
    /// The verdict for `outcome`.
    fn classify(&self, outcome: &O) -> Verdict;
}

impl<O: ?Sized, F: Fn(&O) -> Verdict> Classify<O> for F {
    #[inline]
    fn classify(&self, outcome: &O) -> Verdict {
        self(outcome)
    }
}

/// The default classifier: `Ok` is success, every `Err` is transient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TransientErrors;

impl<T, E> Classify<Result<T, E>> for TransientErrors {
    #[inline]
    fn classify(&self, outcome: &Result<T, E>) -> Verdict {
        match outcome {
            Ok(_) => Verdict::Success,
            Err(_) => Verdict::Transient,
        }
    }
}

/// The policy's answer after an attempt.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Decision {
    /// The attempt succeeded: return its outcome.
    Done,
    /// Wait `after`, then make attempt number `attempt` (2 for the first retry).
    Retry {
        /// How long to wait before the next attempt.
        after: Duration,
        /// The number of the attempt this allows, counting the first call as 1.
        attempt: u32,
    },
    /// Stop and return the last outcome.
    GiveUp {
        /// Why.
        reason: GiveUpReason,
    },
}

impl fmt::Debug for Decision {
    /// As derived, with the wait printed by core's small duration printer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Done => f.write_str("Done"),
            Decision::Retry { after, attempt } => f
                .debug_struct("Retry")
                .field("after", &ShowDuration(*after))
                .field("attempt", attempt)
                .finish(),
            Decision::GiveUp { reason } => {
                f.debug_struct("GiveUp").field("reason", reason).finish()
            }
        }
    }
}

/// Why a policy gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GiveUpReason {
    /// The classifier called the failure permanent, or said a layer below refused the
    /// attempt ([`Verdict::Refused`]).
    Permanent,
    /// The attempt was the last one allowed (`max_attempts`, counting the first call).
    AttemptsExhausted,
    /// The overall deadline has passed, or the wait would reach it.
    Deadline,
    /// The shared retry budget refused the retry.
    BudgetExhausted,
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUpReason::Permanent => "permanent failure",
            GiveUpReason::AttemptsExhausted => "attempts exhausted",
            GiveUpReason::Deadline => "deadline would be passed",
            GiveUpReason::BudgetExhausted => "retry budget exhausted",
        })
    }
}

/// An operation that failed for good: its last error, why the policy stopped, and how
/// many attempts were made. What the adapters' retry runners return when they give up.
///
/// ```
/// use stanchion::retry::{GiveUpReason, RetryError};
///
/// let e = RetryError { last: "busy", reason: GiveUpReason::AttemptsExhausted, attempts: 3 };
/// assert_eq!(e.to_string(), "gave up after 3 attempt(s) (attempts exhausted): busy");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetryError<E> {
    /// The error of the last attempt.
    pub last: E,
    /// Why the policy stopped. An `Err` that the classifier called a success also ends
    /// the retries; it is reported as [`GiveUpReason::Permanent`].
    pub reason: GiveUpReason,
    /// Attempts made, counting the first; an attempt refused before it ran
    /// ([`Verdict::Refused`]) is not one.
    pub attempts: u32,
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up after {} attempt(s) ({}): {}",
            self.attempts, self.reason, self.last
        )
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for RetryError<E> {}

impl core::error::Error for GiveUpReason {}

/// The default bound on a server's retry hint.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long a server's retry hint may make a [`RetryPolicy`] wait: its fourth type
/// parameter, so that a policy with the default bound keeps no room for one.
///
/// [`DefaultMaxRetryAfter`] (the default: [`DEFAULT_MAX_RETRY_AFTER`], no bytes) or
/// [`MaxRetryAfter`] (any bound, 8 bytes), which
/// [`with_max_retry_after`](RetryPolicy::with_max_retry_after) sets.
pub trait HintBound {
    /// The bound, in nanoseconds.
    fn max_nanos(&self) -> u64;
}

/// The default [`HintBound`]: [`DEFAULT_MAX_RETRY_AFTER`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DefaultMaxRetryAfter;

impl HintBound for DefaultMaxRetryAfter {
    #[inline]
    fn max_nanos(&self) -> u64 {
        duration_to_nanos_saturating(DEFAULT_MAX_RETRY_AFTER)
    }
}

/// A [`HintBound`] of any length, set by
/// [`with_max_retry_after`](RetryPolicy::with_max_retry_after).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MaxRetryAfter {
    nanos: u64,
}

impl MaxRetryAfter {
    /// A bound of `max` (saturating at `u64::MAX` nanoseconds).
    pub const fn new(max: Duration) -> MaxRetryAfter {
        MaxRetryAfter {
            nanos: duration_to_nanos_saturating(max),
        }
    }

    /// The bound.
    pub const fn get(self) -> Duration {
        crate::time::duration_from_nanos(self.nanos)
    }
}

impl HintBound for MaxRetryAfter {
    #[inline]
    fn max_nanos(&self) -> u64 {
        self.nanos
    }
}

/// A per-operation retry policy: backoff `B`, classifier `K`, budget `R`, bound on
/// server hints `H`. See the [module docs](self).
///
/// A plain `&mut self` state machine owned by one operation; nothing in it is shared
/// except the budget, which is borrowed (`R = &TokenBudget`, for example) and is
/// lock-free.
#[derive(Clone)]
pub struct RetryPolicy<B, K = TransientErrors, R = NoBudget, H = DefaultMaxRetryAfter> {
    backoff: B,
    classifier: K,
    budget: R,
    rng: fastrand::Rng,
    deadline: Deadline,
    max_hint: H,
    /// `max_attempts` in the low 31 bits; the top bit ([`DEPOSITED`]) says whether this
    /// operation's budget deposit was made. One field for both keeps the policy over an
    /// exponential backoff at 64 bytes, which bare-metal targets copy inline (a larger
    /// one is copied by a call to `memcpy`, some 880 bytes of flash).
    max_attempts: u32,
    attempt: u32,
}

/// The flag bit of [`RetryPolicy`]'s `max_attempts` field.
const DEPOSITED: u32 = 1 << 31;

impl<B: fmt::Debug, K: fmt::Debug, R: fmt::Debug, H: fmt::Debug> fmt::Debug
    for RetryPolicy<B, K, R, H>
{
    /// Every field, with `max_attempts` and the deposit flag that shares its word apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("backoff", &self.backoff)
            .field("classifier", &self.classifier)
            .field("budget", &self.budget)
            .field("rng", &self.rng)
            .field("deadline", &self.deadline)
            .field("max_hint", &self.max_hint)
            .field("max_attempts", &(self.max_attempts & !DEPOSITED))
            .field("attempt", &self.attempt)
            .field("deposited", &(self.max_attempts & DEPOSITED != 0))
            .finish()
    }
}

impl<B: Backoff> RetryPolicy<B> {
    /// A policy making at most `max_attempts` attempts (at least 1; counting the first
    /// call; more than 2^31 - 1 is taken as 2^31 - 1, a quarter of a century of retries
    /// at one a second), waiting as `backoff` says, drawing jitter from `rng`. No deadline, every
    /// `Err` transient, no budget, server hints bounded by [`DEFAULT_MAX_RETRY_AFTER`].
    ///
    /// **Seed each operation's `rng` differently.** There is no default seed. Policies
    /// built from one seed draw the same jitter: operations that fail together (an
    /// outage) then retry together, in step, the herd that jitter exists to break. Give
    /// each device, process and operation a stream of its own: for example a seed from
    /// the device's unique id or a random source, mixed with a counter of operations.
    /// (`stanchion-std`'s tower retry layer does this for each request by default.)
    ///
    /// A `const fn`: a constant policy is checked at compile time with
    /// [`const_config!`](crate::const_config); an operation that starts from a copy of it
    /// reseeds its generator ([`rng_mut`](RetryPolicy::rng_mut)). (On an error, `backoff`
    /// is forgotten rather than dropped, which a `const fn` needs; the backoffs of this
    /// crate are plain values.)
    pub const fn new(
        backoff: B,
        max_attempts: u32,
        rng: fastrand::Rng,
    ) -> Result<RetryPolicy<B>, ConfigError> {
        if max_attempts == 0 {
            core::mem::forget(backoff);
            return Err(ConfigError::new("max_attempts", "at least 1"));
        }
        Ok(RetryPolicy {
            backoff,
            classifier: TransientErrors,
            budget: NoBudget,
            rng,
            deadline: Deadline::NEVER,
            max_hint: DefaultMaxRetryAfter,
            max_attempts: if max_attempts < DEPOSITED {
                max_attempts
            } else {
                DEPOSITED - 1
            },
            attempt: 1,
        })
    }
}

impl<B: Backoff, K, R: RetryBudget, H: HintBound> RetryPolicy<B, K, R, H> {
    /// The same policy with an overall deadline: no wait ends at or after it.
    pub fn with_deadline(self, deadline: Deadline) -> Self {
        RetryPolicy { deadline, ..self }
    }

    /// The same policy with server hints bounded by `max` (a longer hint waits `max`);
    /// the bound takes 8 bytes of the policy ([`HintBound`]).
    pub fn with_max_retry_after(self, max: Duration) -> RetryPolicy<B, K, R, MaxRetryAfter> {
        RetryPolicy {
            backoff: self.backoff,
            classifier: self.classifier,
            budget: self.budget,
            rng: self.rng,
            deadline: self.deadline,
            max_hint: MaxRetryAfter::new(max),
            max_attempts: self.max_attempts,
            attempt: self.attempt,
        }
    }

    /// The same policy with classifier `classifier`.
    pub fn with_classifier<K2>(self, classifier: K2) -> RetryPolicy<B, K2, R, H> {
        RetryPolicy {
            backoff: self.backoff,
            classifier,
            budget: self.budget,
            rng: self.rng,
            deadline: self.deadline,
            max_hint: self.max_hint,
            max_attempts: self.max_attempts,
            attempt: self.attempt,
        }
    }

    /// The same policy drawing retries from `budget` (usually a `&` to a shared one).
    pub fn with_budget<R2: RetryBudget>(self, budget: R2) -> RetryPolicy<B, K, R2, H> {
        RetryPolicy {
            backoff: self.backoff,
            classifier: self.classifier,
            budget,
            rng: self.rng,
            deadline: self.deadline,
            max_hint: self.max_hint,
            max_attempts: self.max_attempts,
            attempt: self.attempt,
        }
    }

    /// The number of the attempt in flight or last made: 1 for the first call. After a
    /// [`Verdict::Refused`], the number of attempts that ran (the refused one is not one).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The most attempts this policy makes, counting the first call.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts & !DEPOSITED
    }

    /// The bound on server hints ([`DEFAULT_MAX_RETRY_AFTER`] unless
    /// [`with_max_retry_after`](Self::with_max_retry_after) set one).
    pub fn max_retry_after(&self) -> Duration {
        crate::time::duration_from_nanos(self.max_hint.max_nanos())
    }

    /// The overall deadline ([`Deadline::NEVER`] if none).
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// The random generator, for callers that want to draw from the same stream.
    pub fn rng_mut(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }

    /// Ready for a new operation: attempt 1, the backoff at its start, the new
    /// `deadline`. The configuration, the budget and the random stream are kept.
    pub fn reset(&mut self, deadline: Deadline) {
        self.backoff.reset();
        self.deadline = deadline;
        self.attempt = 1;
        self.max_attempts &= !DEPOSITED;
    }

    /// What the classifier makes of `outcome`, deciding nothing: for runners that need
    /// the verdict before they ask for the decision ([`on_verdict_at`](Self::on_verdict_at)).
    #[inline]
    pub fn classify<O: ?Sized>(&self, outcome: &O) -> Verdict
    where
        K: Classify<O>,
    {
        self.classifier.classify(outcome)
    }

    /// The decision after an attempt whose outcome was `outcome`, at `now`, with the
    /// server's retry hint if any.
    #[inline]
    pub fn on_outcome_at<O: ?Sized>(
        &mut self,
        now: Instant,
        outcome: &O,
        hint: Option<Duration>,
    ) -> Decision
    where
        K: Classify<O>,
    {
        let verdict = self.classifier.classify(outcome);
        self.on_verdict_at(now, verdict, hint)
    }

    /// [`on_outcome_at`](Self::on_outcome_at), reading `clock` only when the decision
    /// needs the time: always after a failure, and after a success only if the budget
    /// counts time ([`RetryBudget::USES_TIME`]). So the success path of a runner over
    /// this form costs no clock read with [`NoBudget`] or a
    /// [`TokenBudget`](super::TokenBudget).
    #[inline]
    pub fn on_outcome<O: ?Sized, C: Clock>(
        &mut self,
        clock: &C,
        outcome: &O,
        hint: Option<Duration>,
    ) -> Decision
    where
        K: Classify<O>,
    {
        let verdict = self.classifier.classify(outcome);
        let now = if verdict == Verdict::Success && !R::USES_TIME {
            // Unread: a budget that ignores time is the only user of `now` on success.
            Instant::ZERO
        } else {
            clock.now()
        };
        self.on_verdict_at(now, verdict, hint)
    }

    /// The attempt succeeded (for runners that classify outcomes themselves).
    #[inline]
    pub fn on_success_at(&mut self, now: Instant) {
        // What `on_verdict_at` does for a success, without its retry path: small enough
        // to inline into a runner's success path.
        self.deposit_once(now);
        self.budget.record_success_at(now);
    }

    /// The attempt failed transiently (for runners that classify outcomes themselves):
    /// the decision, as for [`on_outcome_at`](Self::on_outcome_at).
    #[inline]
    pub fn on_failure_at(&mut self, now: Instant, hint: Option<Duration>) -> Decision {
        self.on_verdict_at(now, Verdict::Transient, hint)
    }

    /// The decision for an already classified outcome. Every other `on_*` method ends
    /// here.
    pub fn on_verdict_at(
        &mut self,
        now: Instant,
        verdict: Verdict,
        hint: Option<Duration>,
    ) -> Decision {
        match self.decide_at::<Duration>(now, verdict, hint) {
            Ok(after) => Decision::Retry {
                after,
                attempt: self.attempt,
            },
            Err(decision) => decision,
        }
    }

    /// [`on_verdict_at`](Self::on_verdict_at) for runners that sleep until an instant:
    /// where that method says [`Decision::Retry`], `Ok` with the instant the wait ends
    /// (`now` plus the wait, saturating at [`Instant::MAX`]; the attempt it allows is
    /// [`attempt`](Self::attempt)); otherwise `Err` with the same decision. The same
    /// decision, drawn from [`Backoff::next_delay_nanos`], without turning the wait into
    /// a `Duration` and back (on a 32-bit target, a 64-bit division and a multiplication).
    ///
    /// ```
    /// use core::time::Duration;
    /// use stanchion::retry::{Constant, Decision, GiveUpReason, RetryPolicy, Verdict};
    /// use stanchion::Instant;
    ///
    /// let backoff = Constant::new(Duration::from_millis(5));
    /// let mut policy = RetryPolicy::new(backoff, 2, fastrand::Rng::with_seed(1)).unwrap();
    /// let now = Instant::from_millis(10);
    /// assert_eq!(policy.next_attempt_at(now, Verdict::Transient, None), Ok(Instant::from_millis(15)));
    /// assert_eq!(policy.attempt(), 2);
    /// assert_eq!(
    ///     policy.next_attempt_at(now, Verdict::Transient, None),
    ///     Err(Decision::GiveUp { reason: GiveUpReason::AttemptsExhausted })
    /// );
    /// ```
    pub fn next_attempt_at(
        &mut self,
        now: Instant,
        verdict: Verdict,
        hint: Option<Duration>,
    ) -> Result<Instant, Decision> {
        self.decide_at::<u64>(now, verdict, hint)
            .map(|after| Instant::from_nanos(now.as_nanos().saturating_add(after)))
    }

    /// The decision, with the wait as `W` (a `Duration`, or nanoseconds) when it is to
    /// retry.
    #[inline]
    fn decide_at<W: Wait>(
        &mut self,
        now: Instant,
        verdict: Verdict,
        hint: Option<Duration>,
    ) -> Result<W, Decision> {
        self.deposit_once(now);
        match verdict {
            Verdict::Success => {
                self.budget.record_success_at(now);
                return Err(Decision::Done);
            }
            Verdict::Permanent => return Err(give_up(GiveUpReason::Permanent)),
            Verdict::Refused => {
                self.attempt = self.attempt.saturating_sub(1);
                return Err(give_up(GiveUpReason::Permanent));
            }
            Verdict::Transient => {}
        }
        if self.attempt >= self.max_attempts() {
            return Err(give_up(GiveUpReason::AttemptsExhausted));
        }
        if self.deadline.is_expired(now) {
            return Err(give_up(GiveUpReason::Deadline));
        }
        let computed = W::next(&mut self.backoff, &mut self.rng);
        let after = match hint {
            Some(h) => {
                W::from_nanos(duration_to_nanos_saturating(h).min(self.max_hint.max_nanos()))
            }
            None => computed,
        };
        // `after >= remaining(now)`, without turning nanoseconds into a `Duration`: `now`
        // is before the deadline here, so the wait reaches it exactly when `now + after`
        // does (saturating at `Instant::MAX`, which a deadline other than NEVER is before).
        if !self.deadline.is_never()
            && now.as_nanos().saturating_add(after.nanos()) >= self.deadline.instant().as_nanos()
        {
            return Err(give_up(GiveUpReason::Deadline));
        }
        if !self.budget.try_withdraw_at(now) {
            return Err(give_up(GiveUpReason::BudgetExhausted));
        }
        self.attempt = self.attempt.saturating_add(1);
        Ok(after)
    }
}

/// A wait as the policy hands it out: a `Duration` ([`RetryPolicy::on_verdict_at`]) or
/// whole nanoseconds ([`RetryPolicy::next_attempt_at`]).
impl<B, K, R: RetryBudget, H> RetryPolicy<B, K, R, H> {
    /// The budget's deposit, once per operation (the first outcome told).
    #[inline]
    fn deposit_once(&mut self, now: Instant) {
        // The flag is written every time, without a branch: with `NoBudget`, whose
        // deposit is nothing, that is one store.
        let first = self.max_attempts & DEPOSITED == 0;
        self.max_attempts |= DEPOSITED;
        if first {
            self.budget.deposit_at(now);
        }
    }
}

trait Wait: Copy {
    /// The backoff's next delay.
    fn next<B: Backoff>(backoff: &mut B, rng: &mut fastrand::Rng) -> Self;
    /// A wait of `nanos` nanoseconds.
    fn from_nanos(nanos: u64) -> Self;
    /// The wait in nanoseconds, saturating.
    fn nanos(self) -> u64;
}

impl Wait for Duration {
    #[inline]
    fn next<B: Backoff>(backoff: &mut B, rng: &mut fastrand::Rng) -> Self {
        backoff.next_delay(rng)
    }

    #[inline]
    fn from_nanos(nanos: u64) -> Self {
        crate::time::duration_from_nanos(nanos)
    }

    #[inline]
    fn nanos(self) -> u64 {
        duration_to_nanos_saturating(self)
    }
}

impl Wait for u64 {
    #[inline]
    fn next<B: Backoff>(backoff: &mut B, rng: &mut fastrand::Rng) -> Self {
        backoff.next_delay_nanos(rng)
    }

    #[inline]
    fn from_nanos(nanos: u64) -> Self {
        nanos
    }

    #[inline]
    fn nanos(self) -> u64 {
        self
    }
}

#[inline]
fn give_up(reason: GiveUpReason) -> Decision {
    Decision::GiveUp { reason }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::retry::{
        Constant, DecorrelatedJitter, Exponential, Immediate, Jitter, Ratio, RatioBudget,
        TokenBudget,
    };
    use proptest::prelude::*;

    fn exp() -> Exponential {
        Exponential::new(Duration::from_secs(1), Ratio::TWO, Duration::from_secs(8)).unwrap()
    }

    fn rng() -> fastrand::Rng {
        fastrand::Rng::with_seed(99)
    }

    const ERR: Result<(), ()> = Err(());

    /// Bare-metal targets copy a value of up to 64 bytes inline and a larger one through
    /// a call to `memcpy` (some 880 bytes of flash): the policy over the usual backoff,
    /// with the default hint bound, stays within it.
    #[test]
    fn a_policy_over_an_exponential_backoff_fits_64_bytes() {
        assert_eq!(core::mem::size_of::<Jitter>(), 8);
        assert_eq!(core::mem::size_of::<RetryPolicy<Exponential>>(), 64);
        let set = RetryPolicy::new(Immediate, 2, fastrand::Rng::with_seed(1))
            .unwrap()
            .with_max_retry_after(Duration::from_secs(5));
        assert_eq!(set.max_retry_after(), Duration::from_secs(5));
        let default = RetryPolicy::new(Immediate, 2, fastrand::Rng::with_seed(1)).unwrap();
        assert_eq!(default.max_retry_after(), DEFAULT_MAX_RETRY_AFTER);
    }

    /// The deposit flag shares a field with `max_attempts`: the largest count saturates
    /// below it, and the flag never shows in `max_attempts()` nor ends the retries early.
    #[test]
    fn max_attempts_saturates_below_the_deposit_flag() {
        let mut p = RetryPolicy::new(Immediate, u32::MAX, fastrand::Rng::with_seed(1)).unwrap();
        assert_eq!(p.max_attempts(), (1 << 31) - 1);
        for _ in 0..3 {
            assert!(matches!(
                p.on_outcome_at(Instant::ZERO, &ERR, None),
                Decision::Retry { .. }
            ));
        }
        assert_eq!(p.max_attempts(), (1 << 31) - 1);
        let shown = std::format!("{p:?}");
        assert!(
            shown.contains("max_attempts: 2147483647, attempt: 4, deposited: true"),
            "{shown}"
        );
        p.reset(Deadline::NEVER);
        assert_eq!((p.attempt(), p.max_attempts()), (1, (1 << 31) - 1));
    }

    #[test]
    fn max_attempts_counts_the_first_call() {
        let mut p = RetryPolicy::new(exp(), 4, rng()).unwrap();
        let t = Instant::ZERO;
        assert_eq!(p.attempt(), 1);
        let mut afters = std::vec::Vec::new();
        for _ in 0..10 {
            match p.on_outcome_at(t, &ERR, None) {
                Decision::Retry { after, attempt } => {
                    assert_eq!(attempt, p.attempt());
                    afters.push(after.as_secs());
                }
                d => {
                    assert_eq!(d, give_up(GiveUpReason::AttemptsExhausted));
                    break;
                }
            }
        }
        assert_eq!(afters, [1, 2, 4]);
        assert_eq!(p.attempt(), 4);
        let mut once = RetryPolicy::new(exp(), 1, rng()).unwrap();
        assert_eq!(
            once.on_failure_at(t, None),
            give_up(GiveUpReason::AttemptsExhausted)
        );
        assert_eq!(
            RetryPolicy::new(exp(), 0, rng()).unwrap_err(),
            ConfigError::new("max_attempts", "at least 1")
        );
        // Reset starts over.
        p.reset(Deadline::NEVER);
        assert_eq!(
            p.on_failure_at(t, None),
            Decision::Retry {
                after: Duration::from_secs(1),
                attempt: 2
            }
        );
    }

    #[test]
    fn classifier_decides_permanent_and_retryable_results() {
        let status = |s: &u16| match s {
            200 => Verdict::Success,
            503 => Verdict::Transient,
            _ => Verdict::Permanent,
        };
        let mut p = RetryPolicy::new(Constant::new(Duration::from_millis(5)), 5, rng())
            .unwrap()
            .with_classifier(status);
        let t = Instant::ZERO;
        assert_eq!(
            p.on_outcome_at(t, &503, None),
            Decision::Retry {
                after: Duration::from_millis(5),
                attempt: 2
            }
        );
        assert_eq!(p.on_outcome_at(t, &200, None), Decision::Done);
        assert_eq!(
            p.on_outcome_at(t, &404, None),
            give_up(GiveUpReason::Permanent)
        );
        let mut d = RetryPolicy::new(Immediate, 2, rng()).unwrap();
        assert_eq!(d.on_outcome_at(t, &Ok::<u8, u8>(1), None), Decision::Done);
    }

    #[test]
    fn a_refused_attempt_stops_and_is_not_counted() {
        let tokens = TokenBudget::new(10, Ratio::percent(10)).unwrap();
        let mut p = RetryPolicy::new(Immediate, 5, rng())
            .unwrap()
            .with_budget(&tokens);
        let t = Instant::ZERO;
        // Two attempts ran and failed; the third was refused below the retry.
        for attempt in 2..=3 {
            assert_eq!(
                p.on_verdict_at(t, Verdict::Transient, None),
                Decision::Retry {
                    after: Duration::ZERO,
                    attempt
                }
            );
        }
        assert_eq!(
            p.next_attempt_at(t, Verdict::Refused, None),
            Err(give_up(GiveUpReason::Permanent))
        );
        assert_eq!(p.attempt(), 2);
        // It withdrew nothing from the budget: 10 tokens less the two retries' 2.
        assert_eq!(tokens.milli_tokens(), 8_000);
        // A refusal of the first call: no attempt ran.
        p.reset(Deadline::NEVER);
        assert_eq!(
            p.on_verdict_at(t, Verdict::Refused, None),
            give_up(GiveUpReason::Permanent)
        );
        assert_eq!(p.attempt(), 0);
        p.reset(Deadline::NEVER);
        assert_eq!(p.attempt(), 1);
    }

    #[test]
    fn retry_after_overrides_and_is_bounded() {
        let mut p = RetryPolicy::new(exp(), 10, rng())
            .unwrap()
            .with_max_retry_after(Duration::from_secs(30));
        let t = Instant::from_secs(5);
        let retry = |after, attempt| Decision::Retry { after, attempt };
        assert_eq!(
            p.on_failure_at(t, Some(Duration::from_millis(1500))),
            retry(Duration::from_millis(1500), 2)
        );
        assert_eq!(
            p.on_failure_at(t, Some(Duration::from_secs(3600))),
            retry(Duration::from_secs(30), 3)
        );
        assert_eq!(
            p.on_failure_at(t, Some(Duration::MAX)),
            retry(Duration::from_secs(30), 4)
        );
        assert_eq!(
            p.on_failure_at(t, Some(Duration::ZERO)),
            retry(Duration::ZERO, 5)
        );
        // Without a hint the backoff goes on where it was (it advanced with each retry).
        assert_eq!(p.on_failure_at(t, None), retry(Duration::from_secs(8), 6));
        // The default bound is 60 s.
        let mut p = RetryPolicy::new(exp(), 10, rng()).unwrap();
        assert_eq!(
            p.on_failure_at(t, Some(Duration::from_secs(61))),
            retry(DEFAULT_MAX_RETRY_AFTER, 2)
        );
    }

    #[test]
    fn deadline_refuses_a_wait_that_reaches_it() {
        let start = Instant::from_secs(100);
        let mut p = RetryPolicy::new(exp(), 100, rng())
            .unwrap()
            .with_deadline(Deadline::after(start, Duration::from_secs(7)));
        let mut now = start;
        let mut waits = std::vec::Vec::new();
        let reason = loop {
            match p.on_failure_at(now, None) {
                Decision::Retry { after, .. } => {
                    waits.push(after.as_secs());
                    now += after;
                }
                Decision::GiveUp { reason } => break reason,
                Decision::Done => unreachable!(),
            }
        };
        // 1 + 2 = 3 s; then a 4 s wait would end at 107 s, the deadline itself.
        assert_eq!(waits, [1, 2]);
        assert_eq!(reason, GiveUpReason::Deadline);
        // A hint is bounded by the deadline too, and an expired deadline stops at once.
        let mut p = RetryPolicy::new(exp(), 100, rng())
            .unwrap()
            .with_deadline(Deadline::at(Instant::from_secs(10)));
        assert_eq!(
            p.on_failure_at(Instant::from_secs(9), Some(Duration::from_secs(2))),
            give_up(GiveUpReason::Deadline)
        );
        assert_eq!(
            p.on_failure_at(Instant::from_secs(10), Some(Duration::ZERO)),
            give_up(GiveUpReason::Deadline)
        );
        assert_eq!(
            p.on_failure_at(Instant::MAX, None),
            give_up(GiveUpReason::Deadline)
        );
    }

    #[test]
    fn next_attempt_at_decides_as_on_verdict_at() {
        // Two copies of one policy, driven through the same verdicts, hints and times:
        // the same decisions, the wake instant `now + after`, the same random stream.
        let backoff = exp().with_jitter(Jitter::FULL);
        let start = Instant::from_secs(3);
        let mut a = RetryPolicy::new(backoff, 12, rng())
            .unwrap()
            .with_deadline(Deadline::after(start, Duration::from_secs(20)));
        let mut b = a.clone();
        let hints = [
            None,
            Some(Duration::from_millis(300)),
            None,
            Some(Duration::MAX),
        ];
        let mut now = start;
        for i in 0..20 {
            let verdict = if i == 9 {
                Verdict::Permanent
            } else {
                Verdict::Transient
            };
            let hint = hints[i % hints.len()];
            let decision = a.on_verdict_at(now, verdict, hint);
            match (decision, b.next_attempt_at(now, verdict, hint)) {
                (Decision::Retry { after, attempt }, Ok(wake)) => {
                    assert_eq!(wake, now.saturating_add(after));
                    assert_eq!(attempt, b.attempt());
                    now = wake;
                }
                (d, Err(e)) => {
                    assert_eq!(d, e);
                    a.reset(Deadline::after(now, Duration::from_secs(20)));
                    b.reset(Deadline::after(now, Duration::from_secs(20)));
                }
                (d, w) => panic!("{d:?} against {w:?}"),
            }
            assert_eq!(a.attempt(), b.attempt());
        }
        assert_eq!(a.rng_mut().u64(..), b.rng_mut().u64(..));
    }

    #[test]
    fn a_cap_of_duration_max_is_not_a_deadline() {
        let b = Constant::new(Duration::MAX);
        let mut p = RetryPolicy::new(b, 3, rng()).unwrap();
        assert_eq!(
            p.on_failure_at(Instant::MAX, None),
            Decision::Retry {
                after: Duration::from_nanos(u64::MAX),
                attempt: 2
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases(256)))]

        /// No sequence of decisions sleeps past the deadline, whatever the backoff,
        /// hints, start, budget and attempts.
        #[test]
        fn never_sleeps_past_the_deadline(
            seed in any::<u64>(),
            start in any::<u64>(),
            budget_ms in 0u64..100_000,
            base_ms in 0u64..5_000,
            hints in proptest::collection::vec(proptest::option::of(0u64..200_000), 1..40),
            late_ms in proptest::collection::vec(0u64..3_000, 40),
        ) {
            let start = Instant::from_nanos(start);
            let deadline = Deadline::after(start, Duration::from_millis(budget_ms));
            let backoff = DecorrelatedJitter::new(
                Duration::from_millis(base_ms),
                Duration::from_secs(60),
            ).unwrap();
            let mut p = RetryPolicy::new(backoff, 1_000, fastrand::Rng::with_seed(seed))
                .unwrap()
                .with_deadline(deadline);
            let mut now = start;
            for (i, hint) in hints.iter().enumerate() {
                // Attempts take time too.
                now += Duration::from_millis(late_ms[i]);
                match p.on_failure_at(now, hint.map(Duration::from_millis)) {
                    Decision::Retry { after, attempt } => {
                        prop_assert_eq!(attempt as usize, i + 2);
                        now = now.checked_add(after).unwrap();
                        prop_assert!(now < deadline.instant());
                    }
                    Decision::GiveUp { reason } => {
                        prop_assert_eq!(reason, GiveUpReason::Deadline);
                        break;
                    }
                    Decision::Done => prop_assert!(false),
                }
            }
        }
    }

    #[test]
    fn budget_bounds_retries_in_an_outage_and_recovers() {
        // 50 operations per second for 60 s, every attempt fails, up to 4 attempts each.
        let budget =
            RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 5).unwrap();
        let backoff = Exponential::new(
            Duration::from_millis(1),
            Ratio::TWO,
            Duration::from_millis(4),
        )
        .unwrap()
        .with_jitter(Jitter::FULL);
        let mut now = Instant::from_secs(1);
        let (mut calls, mut first_calls) = (0u64, 0u64);
        let mut policy = RetryPolicy::new(backoff, 4, rng())
            .unwrap()
            .with_budget(&budget);
        for _ in 0..3_000 {
            policy.reset(Deadline::NEVER);
            first_calls += 1;
            for _step in 0..10 {
                calls += 1;
                match policy.on_failure_at(now, None) {
                    Decision::Retry { .. } => {}
                    _ => break,
                }
            }
            now += Duration::from_millis(20);
        }
        // At most 10% extra calls plus the floor per 10 s window (6 windows).
        let retries = calls - first_calls;
        assert!(retries <= 300 + 6 * 5, "{retries}");
        assert!(retries >= 270, "{retries}");
        // Recovery: the service is back; successes flow and a later failure retries.
        for _ in 0..100 {
            policy.reset(Deadline::NEVER);
            assert_eq!(
                policy.on_outcome_at(now, &Ok::<(), ()>(()), None),
                Decision::Done
            );
            now += Duration::from_millis(100);
        }
        policy.reset(Deadline::NEVER);
        assert!(matches!(
            policy.on_failure_at(now, None),
            Decision::Retry { attempt: 2, .. }
        ));

        // The same outage against a gRPC-style token bucket: retries stop at half.
        let tokens = TokenBudget::new(20, Ratio::percent(10)).unwrap();
        let mut policy = RetryPolicy::new(Immediate, 3, rng())
            .unwrap()
            .with_budget(&tokens);
        let mut retries = 0;
        for _ in 0..1_000 {
            policy.reset(Deadline::NEVER);
            while let Decision::Retry { .. } = policy.on_failure_at(now, None) {
                retries += 1;
            }
        }
        assert_eq!(retries, 9);
        for _ in 0..200 {
            policy.reset(Deadline::NEVER);
            policy.on_success_at(now);
        }
        policy.reset(Deadline::NEVER);
        assert!(matches!(
            policy.on_failure_at(now, None),
            Decision::Retry { .. }
        ));
    }

    #[test]
    fn clock_bound_form_reads_the_clock_only_when_needed() {
        struct CountingClock(core::cell::Cell<u32>);
        impl Clock for CountingClock {
            fn now(&self) -> Instant {
                self.0.set(self.0.get() + 1);
                Instant::from_secs(1)
            }
        }
        let clock = CountingClock(core::cell::Cell::new(0));
        let ok = Ok::<(), ()>(());
        let mut p = RetryPolicy::new(Immediate, 3, rng()).unwrap();
        assert_eq!(p.on_outcome(&clock, &ok, None), Decision::Done);
        assert_eq!(clock.0.get(), 0);
        assert!(matches!(
            p.on_outcome(&clock, &ERR, None),
            Decision::Retry { .. }
        ));
        assert_eq!(clock.0.get(), 1);
        let ratio = RatioBudget::<1>::new(Duration::from_secs(1), Ratio::ONE, 0).unwrap();
        let mut p = RetryPolicy::new(Immediate, 3, rng())
            .unwrap()
            .with_budget(&ratio);
        assert_eq!(p.on_outcome(&clock, &ok, None), Decision::Done);
        assert_eq!(clock.0.get(), 2);
        assert_eq!(ratio.counts_at(Instant::from_secs(1)), (1, 0));
    }

    #[test]
    fn clock_bound_form_and_display() {
        let clock = crate::ManualClock::starting_at(Instant::from_secs(1));
        let mut p = RetryPolicy::new(Immediate, 2, rng())
            .unwrap()
            .with_deadline(Deadline::at(Instant::from_secs(1)));
        assert_eq!(
            p.on_outcome(&clock, &ERR, None),
            give_up(GiveUpReason::Deadline)
        );
        assert_eq!(
            std::format!("{}", GiveUpReason::BudgetExhausted),
            "retry budget exhausted"
        );
        assert_eq!(p.deadline(), Deadline::at(Instant::from_secs(1)));
        assert_eq!(p.max_attempts(), 2);
        let _ = p.rng_mut().u8(..);
    }
}
