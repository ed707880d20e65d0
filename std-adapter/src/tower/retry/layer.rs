use std::time::Duration;

use stanchion::pipeline::Layer as PipelineLayer;
use stanchion::retry::{Classify, RetryPolicy, Verdict};
use tower_layer::Layer;

use super::RetryService;
use crate::TokioClock;
use crate::tower::{BoxError, refusal};

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RefusalsArePermanent;

impl<T> Classify<Result<T, BoxError>> for RefusalsArePermanent {
    fn classify(&self, outcome: &Result<T, BoxError>) -> Verdict {
        match outcome {
            Ok(_) => Verdict::Success,
            Err(e) => match refusal(&**e) {
                Some(r) if r.layer == PipelineLayer::AttemptTimeout => Verdict::Transient,
                Some(_) => Verdict::Permanent,
                None => Verdict::Transient,
            },
        }
    }
}

/// Retries requests as a per-request core policy says; see the [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use stanchion::retry::{Constant, RetryPolicy};
/// use stanchion_std::tower::RetryLayer;
///
/// let layer = RetryLayer::new(|_clock| {
///     RetryPolicy::new(Constant::new(Duration::from_millis(100)), 3, fastrand::Rng::new())
///         .expect("3 attempts is valid")
/// });
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RetryLayer<P, H = NoHint, C = TokioClock> {
    make_policy: P,
    hint: H,
    clock: C,
}

impl<P> RetryLayer<P> {
    /// A layer building each request's policy with `make_policy(&clock)`, on a
    /// [`TokioClock`] whose epoch is now.
    pub fn new<B, K, R>(make_policy: P) -> Self
    where
        P: Fn(&TokioClock) -> RetryPolicy<B, K, R>,
    {
        RetryLayer::with_clock(make_policy, TokioClock::new())
    }
}

impl<P, C> RetryLayer<P, NoHint, C> {
    /// A layer building each request's policy with `make_policy(&clock)`, reading `clock`.
    pub const fn with_clock<B, K, R>(make_policy: P, clock: C) -> Self
    where
        P: Fn(&C) -> RetryPolicy<B, K, R>,
    {
        RetryLayer {
            make_policy,
            hint: NoHint,
            clock,
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
        )
    }
}
