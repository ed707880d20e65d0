//! [`Pipeline`]: the patterns composed in core's order
//! ([`Layer::ORDER`](stanchion::pipeline::Layer::ORDER)), returning core's
//! [`PipelineError`], as the std adapter's pipeline does.
//!
//! Outermost first:
//!
//! 1. **overall timeout** ([`Pipeline::overall_timeout`]): one [`Deadline`] for the whole
//!    call, waits included; when it passes, the call ends with [`PipelineError::Timeout`]
//!    (the rate limiter's wait is refused up front instead, if it would pass it). It is
//!    also the retry policy's deadline for the call (without an overall timeout, none).
//! 2. **rate limit** ([`Pipeline::rate_limit`], a [`RateLimitQueue`]): one permit per
//!    call, waited for in line; a wait that would pass the deadline is refused at once
//!    ([`PipelineError::RateLimited`]).
//! 3. **bulkhead** ([`Pipeline::bulkhead`], a [`BulkheadQueue`]): one slot per call, held
//!    across all its attempts; a full queue is [`PipelineError::BulkheadFull`].
//! 4. **circuit breaker** ([`Pipeline::breaker`]): one permit per *attempt*. A refusal of
//!    the first attempt is [`PipelineError::CircuitOpen`]; of a retry, it ends the retries
//!    ([`PipelineError::GaveUp`] with [`AttemptError::CircuitOpen`], reason
//!    [`GiveUpReason::Permanent`]; `attempts` counts the attempts that ran, as in the tokio
//!    adapter). The breaker records `Ok`
//!    as a success, `Err` and a per-attempt timeout as failures, with the attempt's
//!    duration.
//! 5. **retry**: the caller's [`RetryPolicy`], [`reset`](RetryPolicy::reset) at the start
//!    of each call; the pipeline sleeps as it says. Its classifier sees the operation's
//!    outcomes; a per-attempt timeout is a transient failure.
//! 6. **per-attempt timeout** ([`Pipeline::attempt_timeout`]); an attempt whose timeout
//!    would end at or after the overall deadline runs under the overall deadline alone, so
//!    that running out of overall time is always [`PipelineError::Timeout`].
//! 7. **fault injection** ([`Pipeline::fault_injection`], a [`FaultInjection`]): in place
//!    of the operation, an injected error or outcome answers the attempt without running
//!    it, and injected latency delays it (within the attempt's timeout). Every layer above
//!    meets it as the operation's own outcome. Its draws come from the retry policy's
//!    generator, one per attempt while the injector is on.
//!
//! Layers left out cost nothing (`()` stands in for them). Everything is borrowed: a
//! pipeline is a few pointers and two optional durations, built per call site or kept in
//! a `static`. Dropping the call's future drops whatever it holds: the bulkhead slot, the
//! breaker permit (recording nothing), its place in a queue.
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::num::NonZeroU32;
//! use core::time::Duration;
//! use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
//! use stanchion::rate::{Quota, TokenBucket};
//! use stanchion::retry::{Constant, RetryPolicy};
//! use stanchion::sync::NoopRawMutex;
//! use stanchion_embassy::{BulkheadQueue, Pipeline, RateLimitQueue};
//!
//! let limiter: RateLimitQueue<NoopRawMutex, TokenBucket, 4> =
//!     RateLimitQueue::new(TokenBucket::new(Quota::per_second(100)?));
//! let pool: BulkheadQueue<NoopRawMutex, 4> = BulkheadQueue::new(NonZeroU32::new(2).unwrap());
//! let breaker: CircuitBreaker<ConsecutiveWindow, NoopRawMutex> =
//!     CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(5)?)?;
//! let pipeline = Pipeline::new()
//!     .overall_timeout(Duration::from_millis(500))
//!     .rate_limit(&limiter)
//!     .bulkhead(&pool)
//!     .breaker(&breaker)
//!     .attempt_timeout(Duration::from_millis(100));
//! let mut policy =
//!     RetryPolicy::new(Constant::new(Duration::from_millis(10)), 3, fastrand::Rng::with_seed(7))?;
//! let answer: Result<u32, _> = doc_block_on(pipeline.call(&mut policy, |attempt| async move {
//!     if attempt == 1 { Err("glitch") } else { Ok(7) }
//! }));
//! assert_eq!(answer, Ok(7));
//! assert_eq!(embassy_time::Instant::now().as_millis(), 10); // one retry, 10 ms later
//! # fn doc_block_on<F: core::future::Future>(f: F) -> F::Output {
//! #     let mut f = core::pin::pin!(f);
//! #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! #     loop {
//! #         if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_ticks(1));
//! #     }
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::future::{Future, ready};
use core::time::Duration;

use stanchion::breaker::{
    BreakerListener, CircuitBreaker, Outcome, Permit, Rejected, window::Window,
};
use stanchion::bulkhead::BulkheadFull;
use stanchion::fallback::FallbackWhen;
use stanchion::pipeline::{AttemptError, PipelineError};
use stanchion::rate::{RateLimitError, RateLimiter};
use stanchion::retry::{
    Backoff, Classify, Decision, GiveUpReason, HintBound, RetryBudget, RetryPolicy, Verdict,
};
use stanchion::sync::RawMutex;
use stanchion::{Clock, Deadline, Instant};

use crate::EmbassyClock;
use crate::bulkhead::{BulkheadQueue, QueuedPermit};
#[cfg(feature = "defmt")]
use crate::events::event;
#[cfg(doc)]
use crate::fault::FaultInjection;
use crate::fault::FaultLayer;
use crate::rate::RateLimitQueue;
use crate::sleep::sleep_until;
use crate::timeout::{Elapsed, timeout_at};

/// The rate-limit layer: a [`RateLimitQueue`], or `()` for none.
pub trait RateLimitLayer {
    /// Takes one permit, waiting in line until `deadline` at the latest.
    fn admit(&self, deadline: Deadline) -> impl Future<Output = Result<(), RateLimitError>>;
}

impl RateLimitLayer for () {
    fn admit(&self, _deadline: Deadline) -> impl Future<Output = Result<(), RateLimitError>> {
        ready(Ok(()))
    }
}

impl<M: RawMutex, L: RateLimiter, const N: usize> RateLimitLayer for RateLimitQueue<M, L, N> {
    fn admit(&self, deadline: Deadline) -> impl Future<Output = Result<(), RateLimitError>> {
        self.acquire(1, deadline)
    }
}

/// The bulkhead layer: a [`BulkheadQueue`], or `()` for none.
pub trait BulkheadLayer {
    /// What holds the slot; dropping it frees the slot.
    type Slot<'a>
    where
        Self: 'a;

    /// Takes a slot, waiting in line for it.
    fn enter(&self) -> impl Future<Output = Result<Self::Slot<'_>, BulkheadFull>>;
}

impl BulkheadLayer for () {
    type Slot<'a> = ();

    fn enter(&self) -> impl Future<Output = Result<(), BulkheadFull>> {
        ready(Ok(()))
    }
}

impl<M: RawMutex, const N: usize> BulkheadLayer for BulkheadQueue<M, N> {
    type Slot<'a>
        = QueuedPermit<'a, M, N>
    where
        Self: 'a;

    fn enter(&self) -> impl Future<Output = Result<QueuedPermit<'_, M, N>, BulkheadFull>> {
        // The overall timeout bounds the wait: running out of time there is a timeout.
        self.acquire(Deadline::NEVER)
    }
}

/// The circuit-breaker layer: a [`CircuitBreaker`], or `()` for none.
pub trait BreakerLayer {
    /// Permission for one attempt.
    type Permit<'a>
    where
        Self: 'a;

    /// A permit for an attempt starting at `now`, or the breaker's refusal.
    fn try_acquire_at(&self, now: Instant) -> Result<Self::Permit<'_>, Rejected>;

    /// Records the attempt's outcome, ending at `end`.
    fn record(permit: Self::Permit<'_>, outcome: Outcome, end: Instant);
}

impl BreakerLayer for () {
    type Permit<'a> = ();

    fn try_acquire_at(&self, _now: Instant) -> Result<(), Rejected> {
        Ok(())
    }

    fn record(_permit: (), _outcome: Outcome, _end: Instant) {}
}

impl<W: Window, M: RawMutex, B: Backoff, L: BreakerListener, const S: usize> BreakerLayer
    for CircuitBreaker<W, M, B, L, S>
{
    type Permit<'a>
        = Permit<&'a Self>
    where
        Self: 'a;

    fn try_acquire_at(&self, now: Instant) -> Result<Permit<&Self>, Rejected> {
        CircuitBreaker::try_acquire_at(self, now)
    }

    fn record(permit: Permit<&Self>, outcome: Outcome, end: Instant) {
        permit.record_at(outcome, end);
    }
}

/// The patterns in core's order, over borrowed layers. See the [module docs](self).
pub struct Pipeline<'a, R: ?Sized = (), H: ?Sized = (), B: ?Sized = (), F = ()> {
    rate: &'a R,
    bulkhead: &'a H,
    breaker: &'a B,
    /// By value (`()`, or a reference to a [`FaultInjection`]), so that none costs nothing.
    faults: F,
    overall: Option<Duration>,
    attempt: Option<Duration>,
}

impl<R: ?Sized, H: ?Sized, B: ?Sized, F: Copy> Clone for Pipeline<'_, R, H, B, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R: ?Sized, H: ?Sized, B: ?Sized, F: Copy> Copy for Pipeline<'_, R, H, B, F> {}

impl Pipeline<'static> {
    /// A pipeline with no layer: a call runs its operation once per attempt the retry
    /// policy allows.
    pub const fn new() -> Self {
        Pipeline {
            rate: &(),
            bulkhead: &(),
            breaker: &(),
            faults: (),
            overall: None,
            attempt: None,
        }
    }
}

impl Default for Pipeline<'static> {
    fn default() -> Self {
        Pipeline::new()
    }
}

impl<'a, R: ?Sized, H: ?Sized, B: ?Sized, F: Copy> Pipeline<'a, R, H, B, F> {
    /// With an overall timeout of `budget` per call, from the call's start.
    pub const fn overall_timeout(self, budget: Duration) -> Self {
        Pipeline {
            overall: Some(budget),
            ..self
        }
    }

    /// With a timeout of `budget` per attempt.
    pub const fn attempt_timeout(self, budget: Duration) -> Self {
        Pipeline {
            attempt: Some(budget),
            ..self
        }
    }

    /// With `limiter` as the rate-limit layer.
    pub const fn rate_limit<'b, R2: ?Sized>(self, limiter: &'b R2) -> Pipeline<'b, R2, H, B, F>
    where
        'a: 'b,
    {
        Pipeline {
            rate: limiter,
            bulkhead: self.bulkhead,
            breaker: self.breaker,
            faults: self.faults,
            overall: self.overall,
            attempt: self.attempt,
        }
    }

    /// With `bulkhead` as the bulkhead layer.
    pub const fn bulkhead<'b, H2: ?Sized>(self, bulkhead: &'b H2) -> Pipeline<'b, R, H2, B, F>
    where
        'a: 'b,
    {
        Pipeline {
            rate: self.rate,
            bulkhead,
            breaker: self.breaker,
            faults: self.faults,
            overall: self.overall,
            attempt: self.attempt,
        }
    }

    /// With `breaker` as the circuit-breaker layer.
    pub const fn breaker<'b, B2: ?Sized>(self, breaker: &'b B2) -> Pipeline<'b, R, H, B2, F>
    where
        'a: 'b,
    {
        Pipeline {
            rate: self.rate,
            bulkhead: self.bulkhead,
            breaker,
            faults: self.faults,
            overall: self.overall,
            attempt: self.attempt,
        }
    }
}

impl<'a, R: ?Sized, H: ?Sized, B: ?Sized> Pipeline<'a, R, H, B> {
    /// With `faults` (a [`FaultInjection`]) as the fault-injection position, innermost.
    pub const fn fault_injection<'b, F2: ?Sized>(
        self,
        faults: &'b F2,
    ) -> Pipeline<'b, R, H, B, &'b F2>
    where
        'a: 'b,
    {
        Pipeline {
            rate: self.rate,
            bulkhead: self.bulkhead,
            breaker: self.breaker,
            faults,
            overall: self.overall,
            attempt: self.attempt,
        }
    }
}

impl<R, H, B, F> Pipeline<'_, R, H, B, F>
where
    R: RateLimitLayer + ?Sized,
    H: BulkheadLayer + ?Sized,
    B: BreakerLayer + ?Sized,
{
    /// Runs `op(attempt)` through every layer (attempt 1, 2, ... as the policy allows).
    /// Returns the last attempt's `Ok` (also one the classifier called transient, once
    /// the policy gives up), or the layer that refused.
    pub async fn call<T, E, Op, Fut, Bk, K, Bu, Mh>(
        &self,
        policy: &mut RetryPolicy<Bk, K, Bu, Mh>,
        op: Op,
    ) -> Result<T, PipelineError<E>>
    where
        F: FaultLayer<T, E>,
        Op: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        Bk: Backoff,
        K: Classify<Result<T, E>>,
        Bu: RetryBudget,
        Mh: HintBound,
    {
        let overall = match self.overall {
            Some(budget) => Deadline::after(EmbassyClock.now(), budget),
            None => Deadline::NEVER,
        };
        // The call's deadline replaces whatever the policy holds: the policy is reused
        // across calls, so the one it holds is the last call's, long passed.
        policy.reset(overall);
        let result = match timeout_at(overall, self.layers(policy, op, overall)).await {
            Ok(result) => result,
            Err(Elapsed) => Err(PipelineError::Timeout),
        };
        #[cfg(feature = "defmt")]
        if let Err(e) = &result {
            match e {
                PipelineError::GaveUp {
                    reason, attempts, ..
                } => event!(
                    warn,
                    "pipeline: gave up after {=u32} attempt(s): {}",
                    attempts,
                    reason
                ),
                refused => event!(
                    debug,
                    "pipeline: refused by the {=str}",
                    refused.layer().name()
                ),
            }
        }
        result
    }

    /// [`call`](Self::call), with a fallback: a failure that `when` covers (a
    /// [`FallbackOn`](stanchion::fallback::FallbackOn) set of layers, or any
    /// `Fn(&PipelineError<E>) -> bool`) is answered by `fallback(error)` instead; the
    /// others are returned as they are. The fallback gets the original error, for its
    /// answer and its logs (with the `defmt` feature, the pipeline has logged it already).
    /// It runs after the call, outside every layer: no deadline, permit or slot of the
    /// call bounds it.
    pub async fn call_or_else<T, E, Op, Fut, Bk, K, Bu, Mh, W, G, GFut>(
        &self,
        policy: &mut RetryPolicy<Bk, K, Bu, Mh>,
        op: Op,
        when: W,
        fallback: G,
    ) -> Result<T, PipelineError<E>>
    where
        F: FaultLayer<T, E>,
        Op: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        Bk: Backoff,
        K: Classify<Result<T, E>>,
        Bu: RetryBudget,
        Mh: HintBound,
        W: FallbackWhen<E>,
        G: FnOnce(PipelineError<E>) -> GFut,
        GFut: Future<Output = T>,
    {
        match self.call(policy, op).await {
            Err(error) if when.covers(&error) => Ok(fallback(error).await),
            result => result,
        }
    }

    async fn layers<T, E, Op, Fut, Bk, K, Bu, Mh>(
        &self,
        policy: &mut RetryPolicy<Bk, K, Bu, Mh>,
        mut op: Op,
        overall: Deadline,
    ) -> Result<T, PipelineError<E>>
    where
        F: FaultLayer<T, E>,
        Op: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        Bk: Backoff,
        K: Classify<Result<T, E>>,
        Bu: RetryBudget,
        Mh: HintBound,
    {
        self.rate
            .admit(overall)
            .await
            .map_err(PipelineError::RateLimited)?;
        let _slot = self
            .bulkhead
            .enter()
            .await
            .map_err(PipelineError::BulkheadFull)?;
        loop {
            // One attempt, in a block of its own so that its outcome is gone before the
            // sleep (held across it, the outcome would take room in the future).
            let wake = 'attempt: {
                let attempts = policy.attempt();
                let start = EmbassyClock.now();
                let permit = match self.breaker.try_acquire_at(start) {
                    Ok(permit) => permit,
                    Err(rejected) if attempts <= 1 => {
                        return Err(PipelineError::CircuitOpen(rejected));
                    }
                    Err(rejected) => {
                        // The policy is not told: the refused attempt did not run, and
                        // the budget took its deposit at the first outcome.
                        return Err(PipelineError::GaveUp {
                            last: AttemptError::CircuitOpen(rejected),
                            reason: GiveUpReason::Permanent,
                            // The refused attempt did not run.
                            attempts: attempts.saturating_sub(1),
                        });
                    }
                };
                let attempt_deadline = match self.attempt {
                    Some(budget) => {
                        let own = Deadline::after(start, budget);
                        if own < overall { own } else { Deadline::NEVER }
                    }
                    None => Deadline::NEVER,
                };
                let attempt = self.faults.run(policy.rng_mut(), || op(attempts));
                let result = timeout_at(attempt_deadline, attempt).await;
                let end = EmbassyClock.now();
                // One outcome for the breaker, one verdict for the policy, and what the call
                // returns if this attempt is the last.
                let (recorded, verdict, last) = match result {
                    Ok(outcome) => {
                        let recorded = if outcome.is_ok() {
                            Outcome::Success
                        } else {
                            Outcome::Failure
                        };
                        let verdict = policy.classify(&outcome);
                        (recorded, verdict, outcome.map_err(AttemptError::Operation))
                    }
                    Err(Elapsed) => (
                        Outcome::Failure,
                        Verdict::Transient,
                        Err(AttemptError::Timeout),
                    ),
                };
                B::record(permit, recorded, end);
                let reason = match policy.next_attempt_at(end, verdict, None) {
                    // Also after an `Ok` the classifier called transient.
                    Ok(wake) => break 'attempt wake,
                    Err(Decision::GiveUp { reason }) => reason,
                    // Done: an `Err` the classifier called a success ends the call, as
                    // permanent.
                    Err(_) => GiveUpReason::Permanent,
                };
                // Done, or given up (on an `Ok` the classifier called transient, too).
                return last.map_err(|last| PipelineError::GaveUp {
                    last,
                    reason,
                    attempts,
                });
            };
            sleep_until(wake).await;
        }
    }
}
