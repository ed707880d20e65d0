use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::{KeyedRateLimitService, RateLimitService};
use crate::Admission;

/// The quota a limiter enforces, as the IETF `RateLimit-Policy` field describes it: a
/// name, the quota (permits per window) and the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimitPolicy {
    /// The policy's name, a structured-field token or string (`"default"`).
    pub name: &'static str,
    /// Permits per window. `None`: the limiter's
    /// [`max_acquire`](crate::AsyncRateLimiter::max_acquire) (its burst).
    pub quota: Option<u32>,
    /// The window, in which `quota` permits may be taken; `None` leaves the `w`
    /// parameter out.
    pub window: Option<Duration>,
}

impl RateLimitPolicy {
    /// The policy named `"default"`, with the limiter's burst as its quota and no window.
    pub const DEFAULT: RateLimitPolicy = RateLimitPolicy::new("default");

    /// A policy named `name`, with the limiter's burst as its quota and no window.
    pub const fn new(name: &'static str) -> RateLimitPolicy {
        RateLimitPolicy {
            name,
            quota: None,
            window: None,
        }
    }

    /// The same policy with `quota` permits per window.
    pub const fn quota(self, quota: u32) -> RateLimitPolicy {
        RateLimitPolicy {
            quota: Some(quota),
            ..self
        }
    }

    /// The same policy over `window`.
    pub const fn window(self, window: Duration) -> RateLimitPolicy {
        RateLimitPolicy {
            window: Some(window),
            ..self
        }
    }

    /// The quota, `max_acquire` standing in when none was given.
    pub(crate) const fn resolved(self, max_acquire: u32) -> RateLimitPolicy {
        match self.quota {
            Some(_) => self,
            None => self.quota(max_acquire),
        }
    }
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        RateLimitPolicy::DEFAULT
    }
}

/// What a rate limit layer does to a granted response: given the [`Admission`]
/// (permits left) and the policy. The default, [`SilentAdmission`], does nothing; with
/// feature `http`, `http::RateLimitHeaders` adds the
/// `RateLimit` fields.
pub trait OnAdmission<Response> {
    /// Whether [`on_admission`](Self::on_admission) reads the [`Admission`]. When
    /// `false`, the layer asks the limiter for the decision alone
    /// ([`AsyncRateLimiter::acquire_now`](crate::AsyncRateLimiter::acquire_now)), saving
    /// the count of permits left, and passes an admission of 0 remaining.
    const USES_ADMISSION: bool = true;

    /// Called on the inner service's successful response.
    fn on_admission(&self, response: &mut Response, admission: Admission, policy: &RateLimitPolicy);
}

/// Leaves granted responses as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SilentAdmission;

impl<Response> OnAdmission<Response> for SilentAdmission {
    const USES_ADMISSION: bool = false;

    #[inline]
    fn on_admission(&self, _: &mut Response, _: Admission, _: &RateLimitPolicy) {}
}

/// Applies a rate limiter, shared by every service it makes, to each request: `permits`
/// permits per request (1 by default).
///
/// ```
/// use std::sync::Arc;
/// use stanchion::rate::{FixedWindow, SharedLimiter, WindowQuota, WithClock};
/// use stanchion_std::tower::{RateLimitLayer, RateLimitPolicy};
/// use stanchion_std::{StdRawMutex, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stanchion::ConfigError> {
/// let window = SharedLimiter::<StdRawMutex, _>::new(FixedWindow::new(WindowQuota::per_minute(100)?));
/// let layer = RateLimitLayer::new(Arc::new(WithClock::new(window, TokioClock::new())))
///     .policy(RateLimitPolicy::new("api").window(std::time::Duration::from_secs(60)));
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RateLimitLayer<L, A = SilentAdmission> {
    limiter: Arc<L>,
    permits: u32,
    policy: RateLimitPolicy,
    on_admission: A,
}

impl<L> RateLimitLayer<L> {
    /// A layer taking one permit of `limiter` per request, with the default policy.
    pub const fn new(limiter: Arc<L>) -> Self {
        RateLimitLayer {
            limiter,
            permits: 1,
            policy: RateLimitPolicy::DEFAULT,
            on_admission: SilentAdmission,
        }
    }
}

impl<L, A> RateLimitLayer<L, A> {
    /// The same layer taking `permits` permits per request (a cost; 0 always passes).
    pub fn permits(self, permits: u32) -> Self {
        RateLimitLayer { permits, ..self }
    }

    /// The same layer describing its quota as `policy` (in refusals and headers).
    pub fn policy(self, policy: RateLimitPolicy) -> Self {
        RateLimitLayer { policy, ..self }
    }

    /// The same layer doing `on_admission` to granted responses.
    pub fn on_admission<A2>(self, on_admission: A2) -> RateLimitLayer<L, A2> {
        RateLimitLayer {
            limiter: self.limiter,
            permits: self.permits,
            policy: self.policy,
            on_admission,
        }
    }

    /// The limiter.
    pub fn limiter(&self) -> &Arc<L> {
        &self.limiter
    }
}

impl<L, A: Clone> Clone for RateLimitLayer<L, A> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: Arc::clone(&self.limiter),
            permits: self.permits,
            policy: self.policy,
            on_admission: self.on_admission.clone(),
        }
    }
}

impl<S, L: crate::AsyncRateLimiter, A: Clone> Layer<S> for RateLimitLayer<L, A> {
    type Service = RateLimitService<S, L, A>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = self.policy.resolved(self.limiter.max_acquire());
        RateLimitService::new(
            inner,
            Arc::clone(&self.limiter),
            self.permits,
            policy,
            self.on_admission.clone(),
        )
    }
}

/// Applies a keyed rate limiter, shared by every service it makes: one quota per key,
/// the key drawn from each request by `key` (a client address, an API key, a tenant).
///
/// ```
/// use std::sync::Arc;
/// use stanchion::rate::{FullTablePolicy, KeyedTokenBucket, Quota, SharedLimiter, WithClock};
/// use stanchion_std::tower::KeyedRateLimitLayer;
/// use stanchion_std::{StdRawMutex, TokioClock};
///
/// struct Request { api_key: String }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stanchion::ConfigError> {
/// // 10 requests a second per API key, for up to 4096 keys at once.
/// let table = KeyedTokenBucket::<4096>::new(
///     Quota::per_second(10)?,
///     FullTablePolicy::DenyNewKeys,
///     (0x5eed, 0xcafe), // the hash keys: pick your own, at random
/// );
/// let limiter = WithClock::new(SharedLimiter::<StdRawMutex, _>::new(table), TokioClock::new());
/// let layer = KeyedRateLimitLayer::new(Arc::new(limiter), |r: &Request| r.api_key.clone());
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct KeyedRateLimitLayer<L, F, A = SilentAdmission> {
    limiter: Arc<L>,
    key: F,
    permits: u32,
    policy: RateLimitPolicy,
    on_admission: A,
}

impl<L, F> KeyedRateLimitLayer<L, F> {
    /// A layer taking one permit of `limiter` per request, for the key `key(&request)`.
    pub const fn new(limiter: Arc<L>, key: F) -> Self {
        KeyedRateLimitLayer {
            limiter,
            key,
            permits: 1,
            policy: RateLimitPolicy::DEFAULT,
            on_admission: SilentAdmission,
        }
    }
}

impl<L, F, A> KeyedRateLimitLayer<L, F, A> {
    /// The same layer taking `permits` permits per request.
    pub fn permits(self, permits: u32) -> Self {
        KeyedRateLimitLayer { permits, ..self }
    }

    /// The same layer describing its quota (per key) as `policy`.
    pub fn policy(self, policy: RateLimitPolicy) -> Self {
        KeyedRateLimitLayer { policy, ..self }
    }

    /// The same layer doing `on_admission` to granted responses.
    pub fn on_admission<A2>(self, on_admission: A2) -> KeyedRateLimitLayer<L, F, A2> {
        KeyedRateLimitLayer {
            limiter: self.limiter,
            key: self.key,
            permits: self.permits,
            policy: self.policy,
            on_admission,
        }
    }
}

impl<L, F: Clone, A: Clone> Clone for KeyedRateLimitLayer<L, F, A> {
    fn clone(&self) -> Self {
        KeyedRateLimitLayer {
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
            permits: self.permits,
            policy: self.policy,
            on_admission: self.on_admission.clone(),
        }
    }
}

impl<S, L, F: Clone, A: Clone> Layer<S> for KeyedRateLimitLayer<L, F, A> {
    type Service = KeyedRateLimitService<S, L, F, A>;

    fn layer(&self, inner: S) -> Self::Service {
        // The quota is resolved per request: the key type, and so `max_acquire`, is
        // known only there.
        KeyedRateLimitService::new(
            inner,
            Arc::clone(&self.limiter),
            self.key.clone(),
            self.permits,
            self.policy,
            self.on_admission.clone(),
        )
    }
}
