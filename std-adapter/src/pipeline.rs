//! [`Pipeline`]: the patterns composed in core's order, over tokio, returning core's
//! [`PipelineError`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stanchion::breaker::Outcome;
use stanchion::bulkhead::{Bulkhead, BulkheadListener, NoBulkheadListener};
use stanchion::fallback::FallbackWhen;
use stanchion::pipeline::{AttemptError, PipelineError};
use stanchion::retry::{
    Backoff, Classify, Decision, GiveUpReason, HintBound, Immediate, MaxRetryAfter, NoBudget,
    RetryBudget, RetryPolicy, TransientErrors, Verdict,
};
use stanchion::{Clock, Deadline};

use crate::events::event;
use crate::fault::{FaultLayer, NoFaults};
use crate::{
    AsyncRateLimiter, BreakerLayer, BulkheadQueue, ClassifyOutcome, ErrorsAreFailures, NoBreaker,
    NoRateLimit, RateLimitQueue, TimedOut, TokioClock,
};

/// The resilience patterns around one operation, composed in the order of
/// [`stanchion::pipeline::Layer::ORDER`], outermost first:
///
/// | # | layer | set with | refuses with |
/// |---|---|---|---|
/// | 1 | overall timeout | [`overall_timeout`](Pipeline::overall_timeout) | [`PipelineError::Timeout`] |
/// | 2 | rate limit (waits in a FIFO line) | [`rate_limit`](Pipeline::rate_limit) | [`PipelineError::RateLimited`], with `retry_after` |
/// | 3 | bulkhead (waits in a FIFO line; or a shared one, tried once) | [`bulkhead`](Pipeline::bulkhead), [`shared_bulkhead`](Pipeline::shared_bulkhead) | [`PipelineError::BulkheadFull`] |
/// | 4 | circuit breaker, one permit per attempt | [`circuit_breaker`](Pipeline::circuit_breaker) | [`PipelineError::CircuitOpen`], with `retry_after` |
/// | 5 | retry | [`retry`](Pipeline::retry), [`retry_from`](Pipeline::retry_from) | [`PipelineError::GaveUp`] |
/// | 6 | per-attempt timeout | [`attempt_timeout`](Pipeline::attempt_timeout) | an [`AttemptError::Timeout`], which the breaker records as a failure and the retry may retry |
/// | 7 | fault injection, in place of the operation | [`fault_injection`](Pipeline::fault_injection) | nothing of its own: an injected error is the operation's ([`AttemptError::Operation`]), injected latency counts against the attempt's timeout |
///
/// Why this order: see [`stanchion::pipeline`]. In short, the caller's budget bounds
/// everything; a call over quota is refused before it takes a bulkhead slot, a breaker
/// probe or a retry; one admitted call holds one rate-limit grant and one bulkhead slot
/// for all its attempts; each attempt asks the breaker, so an open breaker cuts the
/// retries short; and a timed-out attempt is a failure the breaker sees. Faults are
/// injected innermost, so that every layer above meets them as it would the operation's.
///
/// Every layer is optional: a pipeline starts empty ([`Pipeline::new`]) and each
/// builder method adds one layer. An empty pipeline runs the operation once.
///
/// One other order is offered, the one core names as an option:
/// [`rate_limit_per_attempt`](Pipeline::rate_limit_per_attempt) moves the rate limit
/// inside the retry, so that every attempt takes quota (for a limit on requests sent).
///
/// # Deadlines
///
/// With an overall timeout, every call gets one [`Deadline`]: the rate limit and
/// bulkhead waits are bounded by it (and refuse with their own error when it would pass),
/// the retry policy never sleeps past it (it gives up with [`GiveUpReason::Deadline`]),
/// and an attempt still running when it passes is cancelled
/// ([`PipelineError::Timeout`]). A cancelled attempt records nothing in the breaker (its
/// permit is dropped, as for any cancelled call), unlike one cut by the per-attempt
/// timeout, which is a failure. Dropping the call's future cancels it the same way at any
/// point: a waiter leaves its line, a held slot is released.
///
/// # Retries
///
/// The retry layer takes a [`RetryPolicy`] as a template: each call gets a copy, reset
/// to the call's deadline, with a random stream of its own (seeded from the template's
/// generator and a call counter, so concurrent calls do not jitter in step). Its
/// classifier reads the operation's `Result`; a timed-out attempt is transient. A
/// breaker that refuses a retry ends the call: [`PipelineError::GaveUp`] with
/// `last: AttemptError::CircuitOpen`, reason [`GiveUpReason::Permanent`], and the
/// attempts that ran. An `Ok` that the classifier calls transient (an HTTP 503) is
/// returned as `Ok` once the policy gives up, as the last outcome. Without a retry layer
/// a failed attempt is `GaveUp` with [`GiveUpReason::AttemptsExhausted`] after 1 attempt.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
/// use stanchion::pipeline::PipelineError;
/// use stanchion::rate::{Quota, TokenBucket, WithClock};
/// use stanchion::retry::{Exponential, Ratio, RetryPolicy};
/// use stanchion::Clock;
/// use stanchion_std::{BulkheadQueue, Pipeline, RateLimitQueue, StdRawMutex, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = TokioClock::starting_now();
/// let backoff = Exponential::new(Duration::from_millis(100), Ratio::TWO, Duration::from_secs(1))?;
/// let breaker: CircuitBreaker<_, StdRawMutex> =
///     CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(5)?)?;
/// let pipeline = Pipeline::new(clock)
///     .overall_timeout(Duration::from_secs(10))
///     .rate_limit(RateLimitQueue::new(
///         WithClock::new(TokenBucket::new(Quota::per_second(100)?), clock),
///         clock,
///     ))
///     .bulkhead(BulkheadQueue::new(32, 64, clock)?)
///     .circuit_breaker(breaker)
///     .retry(RetryPolicy::new(backoff, 3, fastrand::Rng::with_seed(7))?)
///     .attempt_timeout(Duration::from_secs(2));
///
/// let answer = pipeline
///     .call(|attempt| async move { if attempt < 2 { Err("flaky") } else { Ok(42) } })
///     .await;
/// assert_eq!(answer, Ok(42));
/// assert_eq!(clock.now().as_millis(), 100); // one retry after 100 ms
///
/// let down: Result<(), _> = pipeline.call(|_| async { Err("down") }).await;
/// assert!(matches!(down, Err(PipelineError::GaveUp { attempts: 3, .. })));
/// # Ok(())
/// # }
/// ```
///
/// # Cost
///
/// No heap allocation per call in the pipeline's own code (asserted by a test under a
/// counting allocator): the waits use tokio's intrusive semaphore, `Notify` and timer;
/// the retry policy is copied onto the call's future. Waiting lines are touched only
/// when someone waits. Clock reads on the success path: one at the start (shared by the
/// deadline and the first attempt) and one at the end of each attempt with a breaker;
/// more only after a wait or a failure.
///
/// Share a pipeline between tasks with an `Arc`; its layers keep one state for all
/// calls.
#[derive(Debug)]
pub struct Pipeline<
    L = NoRateLimit,
    BL: BulkheadListener = NoBulkheadListener,
    CB = NoBreaker,
    BK = ErrorsAreFailures,
    RB = Immediate,
    RK = TransientErrors,
    RR = NoBudget,
    FI = NoFaults,
> {
    clock: TokioClock,
    overall: Option<Duration>,
    rate: Option<RateLimitQueue<L>>,
    permits: u32,
    rate_per_attempt: bool,
    bulkhead: Option<Bulkheads<BL>>,
    breaker: Option<CB>,
    classify: BK,
    retry: Option<RetryTemplate<RB, RK, RR>>,
    attempt_timeout: Option<Duration>,
    faults: FI,
}

/// The bulkhead layer: the pipeline's own bulkhead with a line, or a bulkhead shared
/// with others, which has no line.
#[derive(Debug)]
enum Bulkheads<BL: BulkheadListener> {
    Queue(BulkheadQueue<BL>),
    Shared(Arc<Bulkhead<BL>>),
}

/// The retry policy of each call, and where each call's random stream comes from.
/// Its bound on server hints is kept as a value, whatever type the policy was given
/// with (the 8 bytes a firmware policy saves do not matter here, one type parameter less
/// does).
#[derive(Debug)]
struct RetryTemplate<B, K, R> {
    policies: Policies<B, K, R>,
    seed: u64,
    calls: AtomicU64,
}

/// Where each call's retry policy comes from.
enum Policies<B, K, R> {
    /// A copy of this one ([`Pipeline::retry`]).
    Copy(RetryPolicy<B, K, R, MaxRetryAfter>),
    /// This closure's, made for each call ([`Pipeline::retry_from`]).
    Made(MakePolicy<B, K, R>),
}

/// The closure of [`Pipeline::retry_from`], its bound on hints made a value.
type MakePolicy<B, K, R> =
    Arc<dyn Fn(&TokioClock) -> RetryPolicy<B, K, R, MaxRetryAfter> + Send + Sync>;

impl<B: fmt::Debug, K: fmt::Debug, R: fmt::Debug> fmt::Debug for Policies<B, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policies::Copy(policy) => f.debug_tuple("Copy").field(policy).finish(),
            Policies::Made(_) => f.write_str("Made(..)"),
        }
    }
}

impl<B: Backoff + Clone, K: Clone, R: RetryBudget + Clone> RetryTemplate<B, K, R> {
    fn for_call(
        &self,
        deadline: Deadline,
        clock: &TokioClock,
    ) -> RetryPolicy<B, K, R, MaxRetryAfter> {
        let mut policy = match &self.policies {
            Policies::Copy(policy) => {
                let mut policy = policy.clone();
                policy.reset(deadline);
                policy
            }
            Policies::Made(make) => {
                let mut policy = make(clock);
                // The closure's deadline (from its settings) still holds, within the
                // call's.
                let own = policy.deadline();
                policy.reset(deadline.earliest(own));
                policy
            }
        };
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        *policy.rng_mut() = fastrand::Rng::with_seed(splitmix64(self.seed ^ call));
        policy
    }
}

/// A time already read, or the clock if none was.
struct KnownOrRead {
    known: Option<stanchion::Instant>,
    clock: TokioClock,
}

impl Clock for KnownOrRead {
    #[inline]
    fn now(&self) -> stanchion::Instant {
        match self.known {
            Some(now) => now,
            None => self.clock.now(),
        }
    }
}

/// SplitMix64's finaliser: distinct inputs give well-spread, distinct seeds. Also the
/// tower retry layer's per-request seeds.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Pipeline {
    /// An empty pipeline (no layer) on `clock`: it runs the operation once. Add layers
    /// with the builder methods.
    pub fn new(clock: TokioClock) -> Pipeline {
        Pipeline::empty(clock)
    }
}

impl<L, BL: BulkheadListener, CB, RB, RK, RR>
    Pipeline<L, BL, CB, ErrorsAreFailures, RB, RK, RR, NoFaults>
{
    /// An empty pipeline of these layer types: [`Pipeline::new`]'s, and for a program
    /// that adds each layer or not, from a description (the registry's
    /// `[pipeline.NAME]`), and names one type for all its pipelines.
    pub(crate) fn empty(clock: TokioClock) -> Self {
        Pipeline {
            clock,
            overall: None,
            rate: None,
            permits: 1,
            rate_per_attempt: false,
            bulkhead: None,
            breaker: None,
            classify: ErrorsAreFailures,
            retry: None,
            attempt_timeout: None,
            faults: NoFaults,
        }
    }
}

impl<L, BL: BulkheadListener, CB, BK, RB, RK, RR, FI> Pipeline<L, BL, CB, BK, RB, RK, RR, FI> {
    /// Layer 1: every call finishes within `budget` of its start, waits included.
    pub fn overall_timeout(self, budget: Duration) -> Self {
        Pipeline {
            overall: Some(budget),
            ..self
        }
    }

    /// Layer 2: every call takes one permit from `queue`'s limiter, waiting in its line.
    /// The queue reads deadlines on the pipeline's clock from now on, so that they agree
    /// (its limiter keeps its own clock for its decisions).
    pub fn rate_limit<L2>(
        self,
        queue: RateLimitQueue<L2>,
    ) -> Pipeline<L2, BL, CB, BK, RB, RK, RR, FI> {
        let mut queue = queue;
        queue.clock = self.clock;
        Pipeline {
            clock: self.clock,
            overall: self.overall,
            rate: Some(queue),
            permits: self.permits,
            rate_per_attempt: self.rate_per_attempt,
            bulkhead: self.bulkhead,
            breaker: self.breaker,
            classify: self.classify,
            retry: self.retry,
            attempt_timeout: self.attempt_timeout,
            faults: self.faults,
        }
    }

    /// Each call takes `n` rate-limit permits instead of 1 (a weighted call).
    pub fn permits_per_call(self, n: u32) -> Self {
        Pipeline { permits: n, ..self }
    }

    /// The other order core allows: the rate limit moves inside the retry, so that
    /// *every attempt* takes its permits (and waits for them), not only the call's first.
    /// Choose it when the quota is the downstream's (a client-side limit on requests
    /// sent: every retry is a request). A refusal on a later attempt is
    /// [`PipelineError::RateLimited`] too. The default, one grant per call with retries
    /// throttled by the retry budget, is the order of
    /// [`Layer::ORDER`](stanchion::pipeline::Layer::ORDER).
    pub fn rate_limit_per_attempt(self) -> Self {
        Pipeline {
            rate_per_attempt: true,
            ..self
        }
    }

    /// Layer 3: every call holds a slot of `queue`'s bulkhead for all its attempts,
    /// waiting in its line (reading deadlines on the pipeline's clock from now on).
    pub fn bulkhead<BL2: BulkheadListener>(
        self,
        queue: BulkheadQueue<BL2>,
    ) -> Pipeline<L, BL2, CB, BK, RB, RK, RR, FI> {
        let mut queue = queue;
        queue.clock = self.clock;
        self.with_bulkhead(Bulkheads::Queue(queue))
    }

    /// Layer 3, over a bulkhead shared with others (the tower bulkhead layer's, a
    /// registry's named one): every call holds one of its slots for all its attempts, and
    /// is refused at once when it is full. There is no line to wait in: waiting needs a
    /// bulkhead whose listener wakes the line ([`bulkhead`](Pipeline::bulkhead)'s queue
    /// owns one). Its listener hears of every grant and refusal.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stanchion::bulkhead::Bulkhead;
    /// use stanchion::pipeline::PipelineError;
    /// use stanchion_std::{Pipeline, TokioClock};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), stanchion::ConfigError> {
    /// let shared = Arc::new(Bulkhead::new(1)?);
    /// let pipeline = Pipeline::new(TokioClock::new()).shared_bulkhead(Arc::clone(&shared));
    /// let held = shared.try_acquire().expect("a free slot"); // taken elsewhere
    /// let refused: Result<u32, PipelineError<&str>> = pipeline.call(|_| async { Ok(1) }).await;
    /// assert!(matches!(refused, Err(PipelineError::BulkheadFull(_))));
    /// drop(held);
    /// assert_eq!(pipeline.call(|_| async { Ok::<u32, &str>(1) }).await, Ok(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shared_bulkhead<BL2: BulkheadListener>(
        self,
        bulkhead: Arc<Bulkhead<BL2>>,
    ) -> Pipeline<L, BL2, CB, BK, RB, RK, RR, FI> {
        self.with_bulkhead(Bulkheads::Shared(bulkhead))
    }

    /// The same pipeline with `bulkhead` as its layer 3.
    fn with_bulkhead<BL2: BulkheadListener>(
        self,
        bulkhead: Bulkheads<BL2>,
    ) -> Pipeline<L, BL2, CB, BK, RB, RK, RR, FI> {
        Pipeline {
            clock: self.clock,
            overall: self.overall,
            rate: self.rate,
            permits: self.permits,
            rate_per_attempt: self.rate_per_attempt,
            bulkhead: Some(bulkhead),
            breaker: self.breaker,
            classify: self.classify,
            retry: self.retry,
            attempt_timeout: self.attempt_timeout,
            faults: self.faults,
        }
    }

    /// Layer 4: every attempt asks `breaker` (a `CircuitBreaker`, or an `Arc` or `&` to
    /// one) for a permit; `Ok` is recorded as a success, `Err` and a timed-out attempt as
    /// failures.
    pub fn circuit_breaker<CB2: BreakerLayer>(
        self,
        breaker: CB2,
    ) -> Pipeline<L, BL, CB2, ErrorsAreFailures, RB, RK, RR, FI> {
        self.circuit_breaker_with(breaker, ErrorsAreFailures)
    }

    /// [`circuit_breaker`](Pipeline::circuit_breaker), with `classifier` reading each
    /// attempt's `Result` (a timed-out attempt is always a failure).
    pub fn circuit_breaker_with<CB2: BreakerLayer, BK2>(
        self,
        breaker: CB2,
        classifier: BK2,
    ) -> Pipeline<L, BL, CB2, BK2, RB, RK, RR, FI> {
        Pipeline {
            clock: self.clock,
            overall: self.overall,
            rate: self.rate,
            permits: self.permits,
            rate_per_attempt: self.rate_per_attempt,
            bulkhead: self.bulkhead,
            breaker: Some(breaker),
            classify: classifier,
            retry: self.retry,
            attempt_timeout: self.attempt_timeout,
            faults: self.faults,
        }
    }

    /// Layer 5: failed attempts are retried as a copy of `policy` decides (its deadline
    /// is replaced by each call's; see "Retries" above).
    pub fn retry<RB2: Backoff, RK2, RR2: RetryBudget, RM2: HintBound>(
        self,
        policy: RetryPolicy<RB2, RK2, RR2, RM2>,
    ) -> Pipeline<L, BL, CB, BK, RB2, RK2, RR2, FI> {
        let max_retry_after = policy.max_retry_after();
        let mut policy = policy.with_max_retry_after(max_retry_after);
        let seed = policy.rng_mut().u64(..);
        self.with_retry(RetryTemplate {
            policies: Policies::Copy(policy),
            seed,
            calls: AtomicU64::new(0),
        })
    }

    /// Layer 5, with each call's policy made by `make_policy(&clock)` when the call
    /// reaches the retry layer, for settings that may change between calls (a
    /// registry's named retry settings, which a reload changes). The policy keeps its
    /// own deadline (from its settings' timeout) within the call's; its random stream is
    /// replaced by one of the call's own, from a seed drawn at random, as
    /// [`retry`](Pipeline::retry) does (so the closure may seed every policy alike).
    /// The closure runs on every call's path, once: keep it cheap.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use stanchion::pipeline::PipelineError;
    /// use stanchion::retry::{Immediate, RetryPolicy};
    /// use stanchion_std::{Pipeline, TokioClock};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let attempts = Arc::new(AtomicU32::new(2));
    /// let setting = Arc::clone(&attempts);
    /// let pipeline = Pipeline::new(TokioClock::new()).retry_from(move |_clock| {
    ///     let max = setting.load(Ordering::Relaxed);
    ///     RetryPolicy::new(Immediate, max, fastrand::Rng::with_seed(0)).expect("at least 1")
    /// });
    /// let down: Result<(), _> = pipeline.call(|_| async { Err("down") }).await;
    /// assert!(matches!(down, Err(PipelineError::GaveUp { attempts: 2, .. })));
    /// attempts.store(4, Ordering::Relaxed); // the next call's policy has 4
    /// let down: Result<(), _> = pipeline.call(|_| async { Err("down") }).await;
    /// assert!(matches!(down, Err(PipelineError::GaveUp { attempts: 4, .. })));
    /// # }
    /// ```
    pub fn retry_from<F, RB2, RK2, RR2, RM2>(
        self,
        make_policy: F,
    ) -> Pipeline<L, BL, CB, BK, RB2, RK2, RR2, FI>
    where
        F: Fn(&TokioClock) -> RetryPolicy<RB2, RK2, RR2, RM2> + Send + Sync + 'static,
        RB2: Backoff,
        RR2: RetryBudget,
        RM2: HintBound,
    {
        let make: MakePolicy<RB2, RK2, RR2> = Arc::new(move |clock: &TokioClock| {
            let policy = make_policy(clock);
            let max_retry_after = policy.max_retry_after();
            policy.with_max_retry_after(max_retry_after)
        });
        self.with_retry(RetryTemplate {
            policies: Policies::Made(make),
            seed: fastrand::u64(..),
            calls: AtomicU64::new(0),
        })
    }

    fn with_retry<RB2, RK2, RR2>(
        self,
        retry: RetryTemplate<RB2, RK2, RR2>,
    ) -> Pipeline<L, BL, CB, BK, RB2, RK2, RR2, FI> {
        Pipeline {
            clock: self.clock,
            overall: self.overall,
            rate: self.rate,
            permits: self.permits,
            rate_per_attempt: self.rate_per_attempt,
            bulkhead: self.bulkhead,
            breaker: self.breaker,
            classify: self.classify,
            retry: Some(retry),
            attempt_timeout: self.attempt_timeout,
            faults: self.faults,
        }
    }

    /// Layer 6: every attempt is cancelled after `budget`; that counts as a failed
    /// attempt ([`AttemptError::Timeout`]).
    pub fn attempt_timeout(self, budget: Duration) -> Self {
        Pipeline {
            attempt_timeout: Some(budget),
            ..self
        }
    }

    /// Layer 7: every attempt goes through `faults` (a
    /// [`FaultInjection`](crate::fault::FaultInjection), or an `Arc` of one to keep a
    /// handle on its switch), which may answer for it with an injected error or outcome,
    /// or run it after injected latency. The layers above see an injected fault as the
    /// operation's own: the breaker records it, the retry classifies it, the attempt
    /// timeout bounds the latency. Its success and error types must be the operation's.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use stanchion::fault::{Fault, FaultInjector, Share};
    /// use stanchion::pipeline::{AttemptError, PipelineError};
    /// use stanchion_std::fault::FaultInjection;
    /// use stanchion_std::{Pipeline, TokioClock};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), stanchion::ConfigError> {
    /// // Every attempt answers 2 s late: the attempt timeout cuts each one at 1 s.
    /// let slow = Arc::new(FaultInjection::new(
    ///     FaultInjector::new(Share::ALL),
    ///     Fault::Latency(Duration::from_secs(2)),
    ///     fastrand::Rng::with_seed(1),
    /// ));
    /// let pipeline = Pipeline::new(TokioClock::new())
    ///     .attempt_timeout(Duration::from_secs(1))
    ///     .fault_injection(Arc::clone(&slow));
    /// let answer: Result<u32, PipelineError<&str>> = pipeline.call(|_| async { Ok(7) }).await;
    /// assert!(matches!(answer, Err(PipelineError::GaveUp { last: AttemptError::Timeout, .. })));
    /// slow.injector().set_enabled(false); // the switch
    /// assert_eq!(pipeline.call(|_| async { Ok(7) }).await, Ok(7));
    /// # Ok(())
    /// # }
    /// ```
    pub fn fault_injection<FI2>(self, faults: FI2) -> Pipeline<L, BL, CB, BK, RB, RK, RR, FI2> {
        Pipeline {
            clock: self.clock,
            overall: self.overall,
            rate: self.rate,
            permits: self.permits,
            rate_per_attempt: self.rate_per_attempt,
            bulkhead: self.bulkhead,
            breaker: self.breaker,
            classify: self.classify,
            retry: self.retry,
            attempt_timeout: self.attempt_timeout,
            faults,
        }
    }

    /// The fault-injection layer ([`NoFaults`] if none).
    pub fn faults(&self) -> &FI {
        &self.faults
    }

    /// The clock.
    pub fn clock(&self) -> TokioClock {
        self.clock
    }

    /// The rate limit layer, if any.
    pub fn rate_limiter(&self) -> Option<&RateLimitQueue<L>> {
        self.rate.as_ref()
    }

    /// The bulkhead layer, if it is the pipeline's own with a line
    /// ([`bulkhead`](Self::bulkhead)).
    pub fn bulkhead_queue(&self) -> Option<&BulkheadQueue<BL>> {
        match &self.bulkhead {
            Some(Bulkheads::Queue(queue)) => Some(queue),
            _ => None,
        }
    }

    /// The circuit breaker layer, if any.
    pub fn breaker(&self) -> Option<&CB> {
        self.breaker.as_ref()
    }
}

impl<L, BL, CB, BK, RB, RK, RR, FI> Pipeline<L, BL, CB, BK, RB, RK, RR, FI>
where
    L: AsyncRateLimiter,
    BL: BulkheadListener,
    CB: BreakerLayer,
    RB: Backoff + Clone,
    RK: Clone,
    RR: RetryBudget + Clone,
{
    /// Runs `operation(attempt)` (1 for the first attempt) through every layer. See the
    /// [type docs](Pipeline) for what each layer may answer.
    pub async fn call<T, E, F, Fut>(&self, mut operation: F) -> Result<T, PipelineError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        BK: ClassifyOutcome<Result<T, E>>,
        RK: Classify<Result<T, E>>,
        FI: FaultLayer<T, E>,
    {
        let needs_time =
            self.overall.is_some() || self.breaker.is_some() || self.attempt_timeout.is_some();
        // One clock read serves the deadline and, if nothing waits, the first attempt.
        let now = needs_time.then(|| self.clock.now());
        let (Some(budget), Some(start)) = (self.overall, now) else {
            return self.run(Deadline::NEVER, now, &mut operation).await;
        };
        let deadline = Deadline::after(start, budget);
        let result = if budget.is_zero() {
            Err(TimedOut)
        } else {
            // Not expired (it was just set in the future): no second clock read.
            tokio::time::timeout_at(
                self.clock.to_tokio(deadline.instant()),
                self.run(deadline, now, &mut operation),
            )
            .await
            .map_err(|_| TimedOut)
        };
        match result {
            Ok(result) => result,
            Err(TimedOut) => {
                event!(
                    debug,
                    layer = "overall_timeout",
                    "pipeline refused the call"
                );
                Err(PipelineError::Timeout)
            }
        }
    }

    /// [`call`](Self::call), with a fallback: a failure that `when` covers (a
    /// [`FallbackOn`](stanchion::fallback::FallbackOn) set of layers, or any
    /// `Fn(&PipelineError<E>) -> bool`) is answered by `fallback(error)` instead; the
    /// others are returned as they are. The fallback gets the original error, for its
    /// answer, its metrics and its logs (with the `tracing` feature, a `DEBUG` event names
    /// the layer). It runs after the call, outside every layer: no deadline, permit or
    /// slot of the call bounds it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), stanchion::ConfigError> {
    /// use std::sync::Arc;
    /// use stanchion::breaker::{BreakerConfig, CircuitBreaker, window::ConsecutiveWindow};
    /// use stanchion::fallback::FallbackOn;
    /// use stanchion::pipeline::PipelineError;
    /// use stanchion_std::{Pipeline, StdRawMutex, TokioClock};
    ///
    /// let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> =
    ///     CircuitBreaker::new(BreakerConfig::new(), ConsecutiveWindow::new(1)?)?;
    /// let pipeline = Pipeline::new(TokioClock::new()).circuit_breaker(Arc::new(breaker));
    /// // One failure opens the breaker; the next call is refused, and answered from a cache.
    /// let failed = pipeline.call(|_| async { Err::<u32, _>("down") }).await;
    /// assert!(matches!(failed, Err(PipelineError::GaveUp { .. })));
    /// let cached = pipeline
    ///     .call_or_else(
    ///         |_| async { Ok::<u32, &str>(1) },
    ///         FallbackOn::REFUSALS,
    ///         |refused| async move {
    ///             assert!(matches!(refused, PipelineError::CircuitOpen(_)));
    ///             7
    ///         },
    ///     )
    ///     .await;
    /// assert_eq!(cached, Ok(7));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call_or_else<T, E, F, Fut, W, G, GFut>(
        &self,
        operation: F,
        when: W,
        fallback: G,
    ) -> Result<T, PipelineError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        BK: ClassifyOutcome<Result<T, E>>,
        RK: Classify<Result<T, E>>,
        FI: FaultLayer<T, E>,
        W: FallbackWhen<E>,
        G: FnOnce(PipelineError<E>) -> GFut,
        GFut: Future<Output = T>,
    {
        match self.call(operation).await {
            Err(error) if when.covers(&error) => {
                event!(
                    debug,
                    layer = error.layer().name(),
                    "pipeline answered a failed call with its fallback"
                );
                Ok(fallback(error).await)
            }
            result => result,
        }
    }

    /// Layers 2 to 7, within `deadline`; `now` is the time at the call's start, if it
    /// was read.
    async fn run<T, E, F, Fut>(
        &self,
        deadline: Deadline,
        now: Option<stanchion::Instant>,
        operation: &mut F,
    ) -> Result<T, PipelineError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        BK: ClassifyOutcome<Result<T, E>>,
        RK: Classify<Result<T, E>>,
        FI: FaultLayer<T, E>,
    {
        let mut waited = false;
        if let (Some(queue), false) = (&self.rate, self.rate_per_attempt) {
            match queue.acquire_noting_wait(self.permits, deadline).await {
                Ok((_, w)) => waited |= w,
                Err(refused) => {
                    event!(debug, layer = "rate_limit", "pipeline refused the call");
                    return Err(PipelineError::RateLimited(refused));
                }
            }
        }
        // The slot, held until the call ends: the queue's, or the shared bulkhead's.
        let _slot = match &self.bulkhead {
            None => (None, None),
            Some(Bulkheads::Queue(queue)) => match queue.acquire_noting_wait(deadline).await {
                Ok((permit, w)) => {
                    waited |= w;
                    (Some(permit), None)
                }
                Err(full) => {
                    event!(debug, layer = "bulkhead", "pipeline refused the call");
                    return Err(PipelineError::BulkheadFull(full));
                }
            },
            Some(Bulkheads::Shared(bulkhead)) => match bulkhead.try_acquire() {
                Ok(permit) => (None, Some(permit)),
                Err(full) => {
                    event!(debug, layer = "bulkhead", "pipeline refused the call");
                    return Err(PipelineError::BulkheadFull(full));
                }
            },
        };
        let mut policy = self
            .retry
            .as_ref()
            .map(|t| t.for_call(deadline, &self.clock));
        let mut attempt: u32 = 1;
        // The call's start is still the time now unless a layer waited.
        let mut known_now = if waited { None } else { now };
        loop {
            if let (Some(queue), true) = (&self.rate, self.rate_per_attempt) {
                match queue.acquire_noting_wait(self.permits, deadline).await {
                    Ok((_, true)) => known_now = None,
                    Ok((_, false)) => {}
                    Err(refused) => {
                        event!(
                            debug,
                            layer = "rate_limit",
                            attempt,
                            "pipeline refused the attempt"
                        );
                        return Err(PipelineError::RateLimited(refused));
                    }
                }
            }
            let start = if self.breaker.is_some() || self.attempt_timeout.is_some() {
                known_now.take().unwrap_or_else(|| self.clock.now())
            } else {
                stanchion::Instant::ZERO
            };
            let permit = match &self.breaker {
                None => None,
                Some(breaker) => match breaker.try_acquire_at(start) {
                    Ok(permit) => Some(permit),
                    Err(rejected) if attempt == 1 => {
                        event!(
                            debug,
                            layer = "circuit_breaker",
                            "pipeline refused the call"
                        );
                        return Err(PipelineError::CircuitOpen(rejected));
                    }
                    Err(rejected) => {
                        event!(
                            warn,
                            attempts = attempt - 1,
                            "circuit breaker stopped the retries"
                        );
                        return Err(PipelineError::GaveUp {
                            last: AttemptError::CircuitOpen(rejected),
                            reason: GiveUpReason::Permanent,
                            attempts: attempt.saturating_sub(1),
                        });
                    }
                },
            };
            let outcome: Result<Result<T, E>, TimedOut> = match self.attempt_timeout {
                None => Ok(self.faults.run(|| operation(attempt)).await),
                // A zero budget has expired before the attempt starts.
                Some(budget) if budget.is_zero() => Err(TimedOut),
                // `start` was just read: the deadline is in the future, no check needed.
                Some(budget) => tokio::time::timeout_at(
                    self.clock.to_tokio(start.saturating_add(budget)),
                    self.faults.run(|| operation(attempt)),
                )
                .await
                .map_err(|_| TimedOut),
            };
            // The end of the attempt: read for the breaker; for the retry policy only if
            // its decision needs it (a failure, or a budget that counts time).
            let end = KnownOrRead {
                known: permit.is_some().then(|| self.clock.now()),
                clock: self.clock,
            };
            if let Some(permit) = permit {
                let recorded = match &outcome {
                    Ok(result) => self.classify.classify(result),
                    Err(TimedOut) => Outcome::Failure,
                };
                CB::record_at(permit, recorded, end.now());
            }
            let decision = match &mut policy {
                None => Decision::GiveUp {
                    reason: GiveUpReason::AttemptsExhausted,
                },
                Some(policy) => match &outcome {
                    Ok(result) => policy.on_outcome(&end, result, None),
                    Err(TimedOut) => policy.on_verdict_at(end.now(), Verdict::Transient, None),
                },
            };
            let reason = match decision {
                Decision::Retry {
                    after,
                    attempt: next,
                } => {
                    event!(
                        debug,
                        failed_attempt = attempt,
                        next_attempt = next,
                        after_ms = after.as_millis() as u64,
                        "pipeline retrying"
                    );
                    tokio::time::sleep(after).await;
                    attempt = next;
                    continue;
                }
                Decision::Done => GiveUpReason::Permanent,
                Decision::GiveUp { reason } => reason,
            };
            let last = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => AttemptError::Operation(error),
                Err(TimedOut) => AttemptError::Timeout,
            };
            event!(warn, attempts = attempt, reason = %reason, "pipeline gave up");
            return Err(PipelineError::GaveUp {
                last,
                reason,
                attempts: attempt,
            });
        }
    }
}
