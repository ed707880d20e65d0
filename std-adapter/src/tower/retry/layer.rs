use std::any::Any;
use std::collections::hash_map::RandomState;
use std::error::Error;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stanchion::pipeline::Layer as PipelineLayer;
use stanchion::retry::{Classify, RetryPolicy, Verdict};
use tower_layer::Layer;

use super::RetryService;
use crate::TokioClock;
use crate::pipeline::splitmix64;
use crate::tower::{
    BoxError, BulkheadRejected, CircuitOpen, Elapsed, RateLimited, Refusal, refusal,
};

/// A server's hint of when to retry, read from an attempt's result (an HTTP
/// `Retry-After`); it replaces the backoff's delay, bounded by the policy's
/// `max_retry_after`.
///
/// Implemented by [`NoHint`] and by every closure `Fn(&Result<Response, Error>) ->
/// Option<Duration>`; with feature `http`,
/// `http::RetryAfterHeader` reads the response's field.
pub trait RetryHint<Response, Error> {
    /// The hint in `result`, if any.
    fn retry_after(&self, result: &Result<Response, Error>) -> Option<Duration>;
}

impl<Response, Error, F> RetryHint<Response, Error> for F
where
    F: Fn(&Result<Response, Error>) -> Option<Duration>,
{
    #[inline]
    fn retry_after(&self, result: &Result<Response, Error>) -> Option<Duration> {
        self(result)
    }
}

/// No hints: the backoff alone sets the delays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoHint;

impl<Response, Error> RetryHint<Response, Error> for NoHint {
    #[inline]
    fn retry_after(&self, _: &Result<Response, Error>) -> Option<Duration> {
        None
    }
}

/// A classifier for a stack of this module's layers: `Ok` is a success; a refusal by a
/// rate limiter, bulkhead or circuit breaker, or an overall timeout, is permanent (the
/// breaker opened: stop); every other error, a per-attempt timeout included, is
/// transient.
///
/// [`RetryLayer`] already treats those refusals as permanent, whatever the policy's
/// classifier, unless [`RetryLayer::retry_refusals`] says otherwise; this classifier is
/// for runners that ask the policy alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RefusalsArePermanent;

impl<T> Classify<Result<T, BoxError>> for RefusalsArePermanent {
    fn classify(&self, outcome: &Result<T, BoxError>) -> Verdict {
        match outcome {
            Ok(_) => Verdict::Success,
            Err(e) if is_permanent_refusal(refusal(&**e)) => Verdict::Permanent,
            Err(_) => Verdict::Transient,
        }
    }
}

/// Whether `refused` is a refusal not worth retrying: any but a per-attempt timeout.
fn is_permanent_refusal(refused: Option<Refusal>) -> bool {
    refused.is_some_and(|r| r.layer != PipelineLayer::AttemptTimeout)
}

/// Whether `error`, of any error type, is a refusal of this module's layers (as
/// [`refusal`] finds it) that is not worth retrying: a rate limit, a full bulkhead, an
/// open breaker or an overall timeout. Errors boxed as [`BoxError`] (or as
/// `Box<dyn Error + Send>`, `Box<dyn Error>`) and the refusal types themselves are looked
/// into; any other error type is not a refusal.
pub(super) fn is_permanent_stack_refusal<E: 'static>(error: &E) -> bool {
    let error: &dyn Any = error;
    let refused = if let Some(e) = error.downcast_ref::<BoxError>() {
        refusal(&**e)
    } else if let Some(e) = error.downcast_ref::<Box<dyn Error + Send>>() {
        refusal(&**e)
    } else if let Some(e) = error.downcast_ref::<Box<dyn Error>>() {
        refusal(&**e)
    } else if let Some(e) = error.downcast_ref::<RateLimited>() {
        Some(e.refusal())
    } else if let Some(e) = error.downcast_ref::<BulkheadRejected>() {
        Some(e.refusal())
    } else if let Some(e) = error.downcast_ref::<CircuitOpen>() {
        Some(e.refusal())
    } else {
        error.downcast_ref::<Elapsed>().map(Elapsed::refusal)
    };
    is_permanent_refusal(refused)
}

/// Retries requests as a per-request core policy says; see the [module docs](super).
///
/// Each request's policy draws its jitter from a random stream of its own: the layer
/// reseeds the policy that the closure built with a seed derived from the layer's seed
/// and the request's number (see [`seed`](RetryLayer::seed)), so that requests failing
/// together do not retry in step even when the closure seeds every policy alike.
///
/// ```
/// use std::time::Duration;
/// use stanchion::retry::{Constant, Jitter, RetryPolicy};
/// use stanchion_std::tower::RetryLayer;
///
/// let layer = RetryLayer::new(|_clock| {
///     let backoff = Constant::new(Duration::from_millis(100)).with_jitter(Jitter::FULL);
///     // The layer gives each request a stream of its own: this seed is replaced.
///     RetryPolicy::new(backoff, 3, fastrand::Rng::with_seed(0)).expect("3 attempts is valid")
/// });
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct RetryLayer<P, H = NoHint, C = TokioClock> {
    make_policy: P,
    hint: H,
    clock: C,
    streams: Streams,
    retry_refusals: bool,
}

impl<P> RetryLayer<P> {
    /// A layer building each request's policy with `make_policy(&clock)`, on a
    /// [`TokioClock`], with random streams from a seed drawn at random.
    ///
    /// `make_policy` must be `Clone` (and so must everything it captures): each service
    /// the layer makes holds a copy. A closure that captures a value that is not `Clone`
    /// (a budget by value, say) builds a layer, but the compiler then refuses it where it
    /// is used, pointing at tower's `Stack` or `Layer`; capture an `Arc`, a
    /// [`SharedBudget`](super::SharedBudget) or a `&'static` instead.
    pub fn new<B, K, R, M>(make_policy: P) -> Self
    where
        P: Fn(&TokioClock) -> RetryPolicy<B, K, R, M>,
    {
        RetryLayer::with_clock(make_policy, TokioClock::new())
    }
}

impl<P, C> RetryLayer<P, NoHint, C> {
    /// A layer building each request's policy with `make_policy(&clock)`, reading
    /// `clock`, with random streams from a seed drawn at random. `make_policy` and
    /// `clock` must be `Clone`, as for [`new`](RetryLayer::new).
    pub fn with_clock<B, K, R, M>(make_policy: P, clock: C) -> Self
    where
        P: Fn(&C) -> RetryPolicy<B, K, R, M>,
    {
        RetryLayer {
            make_policy,
            hint: NoHint,
            clock,
            streams: Streams::random(),
            retry_refusals: false,
        }
    }
}

impl<P, H, C> RetryLayer<P, H, C> {
    /// The same layer reading server hints with `hint`.
    pub fn hint<H2>(self, hint: H2) -> RetryLayer<P, H2, C> {
        RetryLayer {
            make_policy: self.make_policy,
            hint,
            clock: self.clock,
            streams: self.streams,
            retry_refusals: self.retry_refusals,
        }
    }

    /// The same layer deriving each request's random stream from `seed` (instead of a
    /// seed drawn at random): the `n`th request through the `k`th service the layer
    /// makes or clones gets the same stream in every run, so a test or a replay that
    /// makes its services and requests in the same order sees the same jitter. Requests
    /// still get different streams.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stanchion::retry::{Constant, RetryPolicy};
    /// use stanchion_std::tower::RetryLayer;
    ///
    /// let layer = RetryLayer::new(|_clock| {
    ///     RetryPolicy::new(Constant::new(Duration::from_millis(100)), 3, fastrand::Rng::new())
    ///         .expect("3 attempts is valid")
    /// })
    /// .seed(42);
    /// # let _ = layer;
    /// ```
    pub fn seed(self, seed: u64) -> Self {
        RetryLayer {
            streams: Streams::seeded(seed),
            ..self
        }
    }

    /// The same layer leaving each policy's random generator as the closure built it.
    /// Give each request a stream of its own then: one seed for every request makes
    /// their retries jitter alike, in step, the herd that jitter exists to break.
    pub fn rng_from_policy(self) -> Self {
        RetryLayer {
            streams: Streams::FromPolicy,
            ..self
        }
    }

    /// The same layer letting the policy's classifier decide on the refusals of this
    /// module's layers below it too. By default the layer returns a refusal by a rate
    /// limiter, a bulkhead or an open circuit breaker, or an overall timeout, at once,
    /// whatever the classifier says: retrying it with backoff only keeps asking a
    /// dependency that was just found unhealthy or a quota that is spent. Per-attempt
    /// timeouts are retried either way (as the classifier says).
    pub fn retry_refusals(self) -> Self {
        RetryLayer {
            retry_refusals: true,
            ..self
        }
    }
}

impl<S, P: Clone, H: Clone, C: Clone> Layer<S> for RetryLayer<P, H, C> {
    type Service = RetryService<S, P, H, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService::new(
            inner,
            self.make_policy.clone(),
            self.hint.clone(),
            self.clock.clone(),
            self.streams.clone(),
            self.retry_refusals,
        )
    }
}

/// Where each request's random stream (the jitter of its backoff, the throttle's draw)
/// comes from.
#[derive(Clone, Debug)]
pub(crate) enum Streams {
    /// A stream per request, derived from `seed` and the request's number, counted in
    /// `next` (shared by the layer, its services and their clones).
    Derived { seed: u64, next: Arc<AtomicU64> },
    /// The stream the policy closure built, as it is.
    FromPolicy,
}

impl Streams {
    pub(crate) fn seeded(seed: u64) -> Streams {
        Streams::Derived {
            seed,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Streams from a seed drawn at random (std's per-process random hash keys).
    pub(crate) fn random() -> Streams {
        Streams::seeded(RandomState::new().hash_one(0x5eed_u64))
    }

    /// The seed of the next request's stream; `None` to keep the policy's own.
    ///
    /// Request `n` gets splitmix64's output for `seed + (n + 1) * golden ratio`: a
    /// bijection of `n` for a given seed, so no two of the first 2^64 requests share a
    /// stream, and streams of neighbouring requests are unrelated.
    #[inline]
    pub(crate) fn next_seed(&self) -> Option<u64> {
        match self {
            Streams::Derived { seed, next } => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                Some(stream_seed(*seed, n))
            }
            Streams::FromPolicy => None,
        }
    }

    /// The first of a block of 2^32 request numbers, for one service (or clone): the
    /// service numbers its own requests from it with a plain counter, so that a request
    /// costs no atomic operation. Blocks are handed out in order from the shared count,
    /// so requests of different services never share a number (until a service has
    /// made 2^32 requests, or 2^32 services were made).
    pub(crate) fn block(&self) -> u64 {
        match self {
            Streams::Derived { next, .. } => next.fetch_add(1, Ordering::Relaxed) << 32,
            Streams::FromPolicy => 0,
        }
    }

    /// Request number `n`'s stream (see [`block`](Streams::block)), its seed not yet
    /// worked out ([`StreamOf::seed`]); `None` to keep the policy's own.
    #[inline]
    pub(crate) fn stream_of(&self, n: u64) -> Option<StreamOf> {
        match self {
            Streams::Derived { seed, .. } => Some(StreamOf { seed: *seed, n }),
            Streams::FromPolicy => None,
        }
    }
}

/// One request's stream: its seed is worked out only when needed (a request that
/// succeeds at once draws nothing).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamOf {
    seed: u64,
    n: u64,
}

impl StreamOf {
    /// The generator's seed.
    pub(crate) fn seed(self) -> u64 {
        stream_seed(self.seed, self.n)
    }
}

/// splitmix64's output for `seed + (n + 1) * golden ratio`: a bijection of `n` for a
/// given seed, and unrelated streams for neighbouring `n`.
#[inline]
fn stream_seed(seed: u64, n: u64) -> u64 {
    splitmix64(seed.wrapping_add(n.wrapping_mul(GOLDEN_GAMMA)))
}

/// 2^64 divided by the golden ratio, odd: splitmix64's increment (the finaliser adds it
/// once more).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
