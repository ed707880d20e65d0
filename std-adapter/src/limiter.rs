//! Rate limiters a service can `await`: one interface for the in-process limiters of core
//! and for limiters whose state lives elsewhere (the Redis-backed limiter), so that the
//! tower layer, the waiting runner and the service example take either.

use std::future::{Future, ready};
use std::sync::Arc;

use stanchion::Clock;
use stanchion::rate::{KeyedRateLimiter, RateLimitError, RateLimiter, WithClock};

/// What a granted request learns: the permits left right after it, for the IETF
/// `RateLimit` header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Admission {
    /// Permits that could still be taken at the instant of the grant.
    pub remaining: u32,
}

/// A rate limiter whose decision may need I/O.
///
/// In-process limiters answer at once: [`WithClock`] over any core [`RateLimiter`]
/// implements it with a ready future. A remote limiter (Redis) implements it with a round
/// trip, and applies its configured policy when the store is unreachable, so the future
/// always resolves to a decision.
///
/// ```
/// use stanchion::rate::{Quota, TokenBucket, WithClock};
/// use stanchion_std::{AsyncRateLimiter, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stanchion::ConfigError> {
/// let limiter = WithClock::new(TokenBucket::new(Quota::per_second(2)?), TokioClock::new());
/// assert_eq!(limiter.admit(1).await.unwrap().remaining, 1);
/// assert_eq!(limiter.admit(1).await.unwrap().remaining, 0);
/// assert!(limiter.admit(1).await.is_err());
/// # Ok(())
/// # }
/// ```
pub trait AsyncRateLimiter: Send + Sync {
    /// Takes `n` permits now, all or nothing, and says how many are left.
    fn admit(&self, n: u32) -> impl Future<Output = Result<Admission, RateLimitError>> + Send;

    /// The largest `n` that can ever be granted at once (the burst or window limit), for
    /// the `RateLimit-Policy` header field.
    fn max_acquire(&self) -> u32;

    /// The decision for `n` permits now, if this limiter can take it without waiting: an
    /// in-process limiter answers `Some`, so that callers which cannot hold a borrowing
    /// future (a tower service's `call`) take the fast path with no allocation. The
    /// default, `None`, means "await [`admit`](Self::admit)" (a remote limiter).
    fn admit_now(&self, n: u32) -> Option<Result<Admission, RateLimitError>> {
        let _ = n;
        None
    }

    /// [`admit_now`](Self::admit_now) for a caller that does not need the permits left:
    /// the same decision, without computing `remaining` (a division in the token
    /// bucket). `None` by default.
    fn acquire_now(&self, n: u32) -> Option<Result<(), RateLimitError>> {
        let _ = n;
        None
    }
}

/// A limiter shared behind an `Arc` (a registry's named limiter, one limiter for a
/// pipeline and a tower layer) decides as the limiter does.
impl<T: AsyncRateLimiter + ?Sized> AsyncRateLimiter for Arc<T> {
    #[inline]
    fn admit(&self, n: u32) -> impl Future<Output = Result<Admission, RateLimitError>> + Send {
        (**self).admit(n)
    }

    fn max_acquire(&self) -> u32 {
        (**self).max_acquire()
    }

    #[inline]
    fn admit_now(&self, n: u32) -> Option<Result<Admission, RateLimitError>> {
        (**self).admit_now(n)
    }

    #[inline]
    fn acquire_now(&self, n: u32) -> Option<Result<(), RateLimitError>> {
        (**self).acquire_now(n)
    }
}

impl<L, C> AsyncRateLimiter for WithClock<L, C>
where
    L: RateLimiter + Send + Sync,
    C: Clock + Send + Sync,
{
    fn admit(&self, n: u32) -> impl Future<Output = Result<Admission, RateLimitError>> + Send {
        let now = self.clock().now();
        ready(self.limiter().acquire_at(n, now).map(|()| Admission {
            remaining: self.limiter().remaining_at(now),
        }))
    }

    fn max_acquire(&self) -> u32 {
        self.limiter().max_acquire()
    }

    fn admit_now(&self, n: u32) -> Option<Result<Admission, RateLimitError>> {
        let now = self.clock().now();
        Some(self.limiter().acquire_at(n, now).map(|()| Admission {
            remaining: self.limiter().remaining_at(now),
        }))
    }

    fn acquire_now(&self, n: u32) -> Option<Result<(), RateLimitError>> {
        Some(self.limiter().acquire_at(n, self.clock().now()))
    }
}

/// A keyed rate limiter whose decision may need I/O: one quota per key (a client, an API
/// key, an IP address).
pub trait AsyncKeyedRateLimiter<K: ?Sized>: Send + Sync {
    /// Takes `n` permits for `key` now, all or nothing.
    fn admit(
        &self,
        key: &K,
        n: u32,
    ) -> impl Future<Output = Result<Admission, RateLimitError>> + Send;

    /// The largest `n` that can ever be granted at once for one key.
    fn max_acquire(&self) -> u32;

    /// The decision for `n` permits for `key` now, if this limiter can take it without
    /// waiting (see [`AsyncRateLimiter::admit_now`]); `None` by default.
    fn admit_now(&self, key: &K, n: u32) -> Option<Result<Admission, RateLimitError>> {
        let _ = (key, n);
        None
    }

    /// [`admit_now`](Self::admit_now) without computing `remaining` (see
    /// [`AsyncRateLimiter::acquire_now`]); `None` by default.
    fn acquire_now(&self, key: &K, n: u32) -> Option<Result<(), RateLimitError>> {
        let _ = (key, n);
        None
    }
}

impl<K, L, C> AsyncKeyedRateLimiter<K> for WithClock<L, C>
where
    K: ?Sized,
    L: KeyedRateLimiter<K> + Send + Sync,
    C: Clock + Send + Sync,
{
    fn admit(
        &self,
        key: &K,
        n: u32,
    ) -> impl Future<Output = Result<Admission, RateLimitError>> + Send {
        let now = self.clock().now();
        ready(self.limiter().acquire_at(key, n, now).map(|()| Admission {
            remaining: self.limiter().remaining_at(key, now),
        }))
    }

    fn max_acquire(&self) -> u32 {
        KeyedRateLimiter::max_acquire(self.limiter())
    }

    fn admit_now(&self, key: &K, n: u32) -> Option<Result<Admission, RateLimitError>> {
        let now = self.clock().now();
        Some(self.limiter().acquire_at(key, n, now).map(|()| Admission {
            remaining: self.limiter().remaining_at(key, now),
        }))
    }

    fn acquire_now(&self, key: &K, n: u32) -> Option<Result<(), RateLimitError>> {
        Some(self.limiter().acquire_at(key, n, self.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stanchion::ManualClock;
    use stanchion::rate::{
        FixedWindow, FullTablePolicy, KeyedTokenBucket, Quota, SharedLimiter, TokenBucket,
        WindowQuota,
    };

    use super::*;
    use crate::StdRawMutex;

    #[tokio::test]
    async fn in_process_limiters_answer_with_remaining() {
        let clock = ManualClock::new();
        let limiter = WithClock::new(
            SharedLimiter::<StdRawMutex, _>::new(FixedWindow::new(
                WindowQuota::per_second(3).unwrap(),
            )),
            &clock,
        );
        assert_eq!(AsyncRateLimiter::max_acquire(&limiter), 3);
        assert_eq!(limiter.admit(2).await, Ok(Admission { remaining: 1 }));
        let denied = AsyncRateLimiter::admit(&limiter, 2).await.unwrap_err();
        assert_eq!(denied.retry_after(), Some(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.admit(3).await, Ok(Admission { remaining: 0 }));
        let bucket = WithClock::new(TokenBucket::new(Quota::per_second(5).unwrap()), &clock);
        assert_eq!(bucket.admit(1).await, Ok(Admission { remaining: 4 }));
    }

    #[tokio::test]
    async fn keyed_limiters_keep_one_quota_per_key() {
        let clock = ManualClock::new();
        let table = KeyedTokenBucket::<64>::new(
            Quota::per_second(1).unwrap(),
            FullTablePolicy::DenyNewKeys,
            (7, 9),
        );
        let limiter = WithClock::new(SharedLimiter::<StdRawMutex, _>::new(table), &clock);
        assert_eq!(
            AsyncKeyedRateLimiter::admit(&limiter, "alice", 1).await,
            Ok(Admission { remaining: 0 })
        );
        assert!(
            AsyncKeyedRateLimiter::admit(&limiter, "alice", 1)
                .await
                .is_err()
        );
        assert!(
            AsyncKeyedRateLimiter::admit(&limiter, "bob", 1)
                .await
                .is_ok()
        );
        assert_eq!(AsyncKeyedRateLimiter::<str>::max_acquire(&limiter), 1);
    }
}
