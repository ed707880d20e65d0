//! [`AdaptiveThrottle`]: client-side throttling that sheds load before it leaves the
//! client, in proportion to how much of it the backend has been refusing (the Google SRE
//! book's "adaptive throttling").
//!
//! Over the last `window`, in `N` buckets, the throttle counts the *requests* the
//! application made (sent or refused here) and the *accepts* the backend answered. Each
//! new request is refused locally with probability
//!
//! ```text
//! max(0, (requests - K * accepts) / (requests + 1))
//! ```
//!
//! While the backend accepts everything, requests stay below `K * accepts` and nothing is
//! refused. When it accepts only some of them (it is overloaded and rejects the rest
//! cheaply), the client refuses more and more of its own requests until what it sends
//! falls towards `K` times what the backend accepts: the backend's accepted work is
//! unchanged, and it spends less on rejections. `K = 2` is the book's usual setting;
//! lower is more aggressive (`K = 1.1` sends barely more than is accepted), higher lets
//! more through. Some requests always get through (the probability stays below 1), so
//! the client notices when the backend recovers, as accepts come back within one window.
//!
//! # When to choose it
//!
//! - Over a **retry budget** ([`RatioBudget`](crate::retry::RatioBudget),
//!   [`TokenBudget`](crate::retry::TokenBudget)): a budget caps only the *extra* load of
//!   retries; every first attempt still goes out. The throttle cuts first attempts too,
//!   so a backend at 30% of its demand receives about `K` times its capacity instead of
//!   all of the demand. The two combine: retries are requests to the throttle. In this
//!   module's scenario test (100 calls a second wanted, 30 served), one minute sends
//!   6,000 calls unprotected, 6,642 under a 10% retry budget and 3,546 throttled with
//!   `K = 2`, and the backend accepts 1,800 in each.
//! - Over a **circuit breaker**: a breaker is all or nothing (open refuses every call
//!   for a while). The throttle refuses a share that follows the backend's acceptance,
//!   call by call, so a backend at partial capacity keeps serving it fully, and there is
//!   no open period to tune.
//! - What counts as accepted is the caller's call: a response the backend *processed*,
//!   errors included (a 404 is an accept), and not a rejection for overload (a 429 or
//!   503, a timeout).
//!
//! # Example
//!
//! ```
//! use core::time::Duration;
//! use stanchion::Instant;
//! use stanchion::retry::Ratio;
//! use stanchion::throttle::AdaptiveThrottle;
//!
//! // K = 2 over the last 10 s, in 10 buckets of 1 s.
//! static THROTTLE: AdaptiveThrottle<10> =
//!     stanchion::const_config!(AdaptiveThrottle::new(Duration::from_secs(10), Ratio::TWO));
//! let mut rng = fastrand::Rng::with_seed(7);
//! let now = Instant::from_secs(100);
//! // The backend accepts ten requests, then rejects ten (it is overloaded): 20 requests
//! // are still within K * accepts = 20, so nothing is refused yet.
//! for accepted in [true; 10].into_iter().chain([false; 10]) {
//!     assert!(THROTTLE.allow_at(now, &mut rng).is_ok());
//!     THROTTLE.record_at(now, accepted);
//! }
//! assert_eq!(THROTTLE.counts_at(now), (20, 10));
//! // Now each request is refused with probability (requests - 20) / (requests + 1), and
//! // counted: from 0 / 21 for the first of these to 99 / 120 for the last.
//! let refused = (0..100).filter(|_| THROTTLE.allow_at(now, &mut rng).is_err()).count();
//! assert_eq!(refused, 64); // the mean of those probabilities is 0.63
//! ```
//!
//! # Sharing and cost
//!
//! Lock-free, as [`RatioBudget`](crate::retry::RatioBudget), whose bucketed words it
//! shares: each bucket is two `AtomicU64` words (requests, accepts) holding the bucket's
//! number and a count. [`allow_at`](AdaptiveThrottle::allow_at) reads the `2N` words,
//! draws one number from the caller's generator only when the probability is above
//! zero, and counts the request (one compare-and-swap); [`record_at`](AdaptiveThrottle::record_at)
//! with an accept is one compare-and-swap, without one it writes nothing. State:
//! `16 * N + 16` bytes. On chips without 64-bit atomics (Cortex-M) they are emulated as
//! core's crate docs describe ("Firmware").
//!
//! Integer arithmetic: `K` is kept as 16.16 fixed point, rounded down (at most 1/65536
//! low, a hair more throttling), and the draw is uniform over `(requests + 1) * 2^16`.
//! Limits as [`RatioBudget`](crate::retry::RatioBudget)'s: a bucket counts at most
//! 16,777,215 requests or accepts, more are not counted; a clock that steps backwards
//! counts into the latest bucket.
//!
//! Source: Beyer et al., *Site Reliability Engineering* (O'Reilly, 2016), chapter 21,
//! "Handling Overload", section "Client-side throttling"
//! (<https://sre.google/sre-book/handling-overload/>).

use core::fmt;
use core::time::Duration;

use crate::ConfigError;
use crate::Instant;
use crate::retry::Ratio;
use crate::retry::jitter::uniform;
use crate::retry::ratio_budget::{bucket_at, bucket_nanos, count_one, new_words, sum};
use crate::sync::AtomicU64;

/// Fixed-point shift of `K` (16.16).
const K_SHIFT: u32 = 16;

/// Refuses requests locally with probability `max(0, (requests - K * accepts) /
/// (requests + 1))` over a sliding window of `N` buckets. See the [module docs](self).
#[derive(Debug)]
pub struct AdaptiveThrottle<const N: usize> {
    requests: [AtomicU64; N],
    accepts: [AtomicU64; N],
    bucket_nanos: u64,
    /// `K` in 16.16 fixed point, rounded down.
    k: u64,
}

/// A request refused locally by an [`AdaptiveThrottle`]: it was not sent.
///
/// Carries the window's counts that the decision saw (before this request was counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Throttled {
    /// Requests in the window, sent or refused.
    pub requests: u64,
    /// Requests the backend accepted in the window.
    pub accepts: u64,
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "throttled locally: the backend accepted {} of the last {} requests",
            self.accepts, self.requests
        )
    }
}

impl core::error::Error for Throttled {}

/// Why a call through a throttle did not succeed, as the adapters' runners return it
/// (`stanchion_std::throttle::with_throttle`, `stanchion_embassy::throttle::call`): the
/// throttle refused it locally (it did not run), or it ran and failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ThrottleError<E> {
    /// Refused locally: the backend has been rejecting requests; the call did not run.
    Throttled(Throttled),
    /// The call ran and failed with this error.
    Operation(E),
}

impl<E: fmt::Display> fmt::Display for ThrottleError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThrottleError::Throttled(t) => write!(f, "{t}"),
            ThrottleError::Operation(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for ThrottleError<E> {}

impl<const N: usize> AdaptiveThrottle<N> {
    crate::sync::const_fn_unless_loom! {
        /// A throttle with multiplier `k` (at least 1) over `window`, tracked in `N`
        /// buckets (at least 1, each at least 1 ms long). Starts empty: nothing is refused
        /// until the backend refuses.
        pub fn new(window: Duration, k: Ratio) -> Result<AdaptiveThrottle<N>, ConfigError> {
            if N == 0 {
                return Err(ConfigError::new("N", "at least 1 bucket"));
            }
            if !Ratio::ONE.le(k) {
                return Err(ConfigError::new("k", "at least 1"));
            }
            let bucket_nanos = match bucket_nanos(window, N) {
                Ok(b) => b,
                Err(e) => return Err(e),
            };
            Ok(AdaptiveThrottle {
                requests: new_words(),
                accepts: new_words(),
                bucket_nanos,
                k: k.to_q32() >> 16,
            })
        }
    }

    /// Whether to send a request at `now`: `Ok` to send it, then report the backend's
    /// answer with [`record_at`](Self::record_at); [`Throttled`] to refuse it here.
    /// Either way the request is counted. Draws one number from `rng` only when the
    /// probability of refusing is above zero.
    pub fn allow_at(&self, now: Instant, rng: &mut fastrand::Rng) -> Result<(), Throttled> {
        let (index, slot) = self.bucket(now);
        let requests = sum(&self.requests, index);
        let accepts = sum(&self.accepts, index);
        if let Some(word) = self.requests.get(slot) {
            count_one(word, index);
        }
        // Refuse when a draw from 0..(requests + 1) * 2^16 falls below
        // requests * 2^16 - K * accepts (both in 16.16).
        let excess = requests
            .saturating_mul(1 << K_SHIFT)
            .saturating_sub(accepts.saturating_mul(self.k));
        if excess == 0 {
            return Ok(());
        }
        let range = requests.saturating_add(1).saturating_mul(1 << K_SHIFT);
        if uniform(rng, 0, range.saturating_sub(1)) < excess {
            Err(Throttled { requests, accepts })
        } else {
            Ok(())
        }
    }

    /// Reports the backend's answer to a request sent at [`allow_at`](Self::allow_at)'s
    /// word: `accepted` when the backend processed it (whatever its result), `false`
    /// when it refused it for overload or did not answer in time.
    pub fn record_at(&self, now: Instant, accepted: bool) {
        if !accepted {
            return;
        }
        let (index, slot) = self.bucket(now);
        if let Some(word) = self.accepts.get(slot) {
            count_one(word, index);
        }
    }

    /// Requests and accepts counted in the window at `now`.
    pub fn counts_at(&self, now: Instant) -> (u64, u64) {
        let (index, _) = self.bucket(now);
        (sum(&self.requests, index), sum(&self.accepts, index))
    }

    /// The bucket number at `now` (masked to 40 bits) and the index of its words.
    #[inline]
    fn bucket(&self, now: Instant) -> (u64, usize) {
        bucket_at(now, self.bucket_nanos, N)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::{Quota, TokenBucket};
    use crate::retry::{RatioBudget, RetryBudget};

    fn throttle() -> AdaptiveThrottle<10> {
        AdaptiveThrottle::new(Duration::from_secs(10), Ratio::TWO).unwrap()
    }

    #[test]
    fn refuses_nothing_and_draws_nothing_while_the_backend_accepts() {
        let t = throttle();
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::from_secs(5);
        for _ in 0..1000 {
            assert_eq!(t.allow_at(now, &mut rng), Ok(()));
            t.record_at(now, true);
        }
        assert_eq!(t.counts_at(now), (1000, 1000));
        assert_eq!(rng.get_seed(), 1, "no draw while the probability is zero");
        // Half accepted is still within K = 2: requests <= 2 * accepts.
        let half = throttle();
        for i in 0..1000 {
            assert_eq!(half.allow_at(now, &mut rng), Ok(()));
            half.record_at(now, i % 2 == 0);
        }
        assert_eq!(rng.get_seed(), 1);
    }

    #[test]
    #[cfg_attr(miri, ignore = "10 000 throttles: too slow under Miri")]
    fn refuses_with_the_books_probability() {
        // 30 requests, 10 accepts, K = 2: p = (30 - 20) / 31 = 0.3226.
        let now = Instant::from_secs(1);
        let mut refused = 0;
        for seed in 0..10_000 {
            let t = throttle();
            let mut setup = fastrand::Rng::with_seed(0);
            for i in 0..30 {
                let _ = t.allow_at(now, &mut setup); // counted, sent or not
                t.record_at(now, i % 3 == 0);
            }
            let mut rng = fastrand::Rng::with_seed(seed);
            // The same draw, made here: refused iff it falls below 10 * 2^16.
            let draw = uniform(&mut fastrand::Rng::with_seed(seed), 0, 31 * 65_536 - 1);
            let result = t.allow_at(now, &mut rng);
            assert_eq!(result.is_err(), draw < 10 * 65_536, "seed {seed}");
            if let Err(e) = result {
                assert_eq!(
                    e,
                    Throttled {
                        requests: 30,
                        accepts: 10
                    }
                );
                refused += 1;
            }
            assert_eq!(t.counts_at(now), (31, 10), "refused or not, it counts");
        }
        assert_eq!(refused, 3_258); // 10,000 * 10 / 31 = 3,226
    }

    #[test]
    fn a_fractional_k_is_exact_in_sixteen_sixteen() {
        // K = 1.5: 3 accepts cover 4.5 requests, so 4 requests draw nothing, 5 do.
        let t =
            AdaptiveThrottle::<1>::new(Duration::from_secs(1), Ratio::new(3, 2).unwrap()).unwrap();
        let mut rng = fastrand::Rng::with_seed(9);
        let now = Instant::ZERO;
        for _ in 0..3 {
            t.record_at(now, true);
        }
        for _ in 0..5 {
            t.allow_at(now, &mut rng).unwrap();
        }
        assert_eq!(rng.get_seed(), 9);
        let _ = t.allow_at(now, &mut rng); // 5 requests > 4.5: draws
        assert_ne!(rng.get_seed(), 9);
    }

    #[test]
    fn a_dead_backend_still_gets_probes_and_the_window_forgets() {
        let t = throttle();
        let mut rng = fastrand::Rng::with_seed(3);
        let mut sent = 0;
        for ms in (0..10_000).step_by(10) {
            let now = Instant::from_millis(10_000 + ms);
            if t.allow_at(now, &mut rng).is_ok() {
                sent += 1;
                t.record_at(now, false);
            }
        }
        // 1000 requests, none accepted: p = n / (n + 1), so a few still go out.
        assert_eq!(sent, 5);
        assert_eq!(t.counts_at(Instant::from_millis(19_999)), (1000, 0));
        // Ten seconds of silence later the window is empty: nothing is refused.
        let later = Instant::from_secs(30);
        assert_eq!(t.counts_at(later), (0, 0));
        assert_eq!(t.allow_at(later, &mut rng), Ok(()));
        t.record_at(later, false);
        assert_eq!(t.counts_at(later), (1, 0));
    }

    #[test]
    fn extremes_and_bad_configuration() {
        let t = throttle();
        let mut rng = fastrand::Rng::with_seed(5);
        for now in [Instant::ZERO, Instant::MAX, Instant::ZERO] {
            let _ = t.allow_at(now, &mut rng);
            t.record_at(now, true);
        }
        // A huge K never refuses; saturation cannot wrap it into refusing.
        let lax =
            AdaptiveThrottle::<1>::new(Duration::from_secs(1), Ratio::integer(u32::MAX)).unwrap();
        lax.record_at(Instant::ZERO, true);
        for _ in 0..100 {
            assert_eq!(lax.allow_at(Instant::ZERO, &mut rng), Ok(()));
        }
        assert_eq!(
            AdaptiveThrottle::<0>::new(Duration::from_secs(1), Ratio::TWO).unwrap_err(),
            ConfigError::new("N", "at least 1 bucket")
        );
        assert_eq!(
            AdaptiveThrottle::<1>::new(Duration::from_secs(1), Ratio::percent(99)).unwrap_err(),
            ConfigError::new("k", "at least 1")
        );
        assert_eq!(
            AdaptiveThrottle::<10>::new(Duration::from_millis(9), Ratio::TWO).unwrap_err(),
            ConfigError::new("window", "at least 1 ms per bucket")
        );
        assert!(AdaptiveThrottle::<1>::new(Duration::MAX, Ratio::ONE).is_ok());
    }

    #[test]
    fn a_clock_stepping_back_counts_into_the_latest_bucket() {
        let t = AdaptiveThrottle::<4>::new(Duration::from_secs(4), Ratio::ONE).unwrap();
        let mut rng = fastrand::Rng::with_seed(2);
        let _ = t.allow_at(Instant::from_secs(10), &mut rng);
        t.record_at(Instant::from_secs(10), true);
        // Second 6 shares the slot of second 10: the later bucket keeps counting.
        let _ = t.allow_at(Instant::from_secs(6), &mut rng);
        t.record_at(Instant::from_secs(6), true);
        assert_eq!(t.counts_at(Instant::from_secs(10)), (2, 2));
    }

    #[test]
    fn shared_across_threads_every_request_counts() {
        extern crate std;
        use std::sync::atomic::{AtomicU64 as StdAtomic, Ordering as StdOrdering};
        let t = throttle();
        let now = Instant::from_secs(50);
        let sent = StdAtomic::new(0);
        std::thread::scope(|s| {
            for seed in 0..4 {
                let (t, sent) = (&t, &sent);
                s.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(seed);
                    for _ in 0..500 {
                        if t.allow_at(now, &mut rng).is_ok() {
                            sent.fetch_add(1, StdOrdering::Relaxed);
                            t.record_at(now, true);
                        }
                    }
                });
            }
        });
        // Every request counts, sent or refused, and every accept: however the threads
        // interleave (one may see another's request before its accept, and refuse).
        let sent = sent.into_inner();
        assert_eq!(t.counts_at(now), (2000, sent));
        assert!(sent >= 1_000, "{sent}: all accepted, so few are refused");
    }

    /// One client's run against a backend that can serve 30 calls per second (a token
    /// bucket, burst 5) while the client wants 100 per second (one every 10 ms): the
    /// backend accepts 30% of the demand and rejects the rest cheaply.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Run {
        /// Calls that reached the backend in the measured minute.
        sent: u32,
        /// Calls the backend accepted in the measured minute.
        accepted: u32,
    }

    /// Two minutes of traffic; the second is measured. `send` decides each operation's
    /// calls: it gets the backend's answer function and returns nothing.
    fn overloaded(mut operation: impl FnMut(Instant, &mut dyn FnMut(Instant) -> bool)) -> Run {
        let backend = TokenBucket::new(Quota::per_second(30).unwrap().with_burst(5).unwrap());
        let mut run = Run::default();
        for step in 0..12_000u64 {
            let now = Instant::from_secs(1_000) + Duration::from_millis(step * 10);
            let measured = step >= 6_000;
            let mut call = |at: Instant| {
                let accepted = backend.acquire_at(1, at).is_ok();
                if measured {
                    run.sent += 1;
                    run.accepted += u32::from(accepted);
                }
                accepted
            };
            operation(now, &mut call);
        }
        run
    }

    #[test]
    #[cfg_attr(miri, ignore = "36 000 requests: too slow under Miri")]
    fn scenario_traffic_falls_towards_k_times_accepts_and_successes_stay() {
        // No protection: all 6000 calls of the minute go out; 1800 are accepted.
        let plain = overloaded(|now, call| {
            call(now);
        });
        assert_eq!(
            plain,
            Run {
                sent: 6_000,
                accepted: 1_800
            }
        );

        // A retry budget (three attempts, 10% of requests plus 10 per 10 s): retries are
        // capped, but every first attempt still goes out, so the load rises to 110% (plus
        // the floor), and the backend accepts no more.
        let budget =
            RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 10).unwrap();
        let retried = overloaded(|now, call| {
            budget.deposit_at(now);
            let mut at = now;
            for _ in 0..3 {
                if call(at) || !budget.try_withdraw_at(at) {
                    break;
                }
                at += Duration::from_millis(1);
            }
        });
        assert_eq!(
            retried,
            Run {
                sent: 6_642,
                accepted: 1_800
            }
        );

        // The throttle, K = 2: what is sent falls to about twice what is accepted, and
        // the backend accepts as much as before.
        let throttle = throttle();
        let mut rng = fastrand::Rng::with_seed(20);
        let throttled = overloaded(|now, call| {
            if throttle.allow_at(now, &mut rng).is_ok() {
                throttle.record_at(now, call(now));
            }
        });
        assert_eq!(
            throttled,
            Run {
                sent: 3_546,
                accepted: 1_800
            }
        );
        // K times the accepts within 2%: 41% less load than the unprotected client, 47%
        // less than the retry budget's, and the same 1,800 accepted.
        assert!(throttled.sent.abs_diff(2 * throttled.accepted) * 50 <= 2 * throttled.accepted);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_concurrent_requests_and_accepts_all_count() {
        loom::model(|| {
            let t = loom::sync::Arc::new(
                AdaptiveThrottle::<2>::new(Duration::from_secs(2), Ratio::ONE).unwrap(),
            );
            let t2 = t.clone();
            let other = loom::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(1);
                let sent = t2.allow_at(Instant::ZERO, &mut rng).is_ok();
                t2.record_at(Instant::ZERO, sent);
                sent
            });
            let mut rng = fastrand::Rng::with_seed(2);
            let sent = t.allow_at(Instant::ZERO, &mut rng).is_ok();
            t.record_at(Instant::ZERO, sent);
            let sent = u64::from(sent) + u64::from(other.join().unwrap());
            // Both requests count, and every accept; the first to decide saw an empty
            // window, so at least one was sent.
            assert_eq!(t.counts_at(Instant::ZERO), (2, sent));
            assert!(sent >= 1);
        });
    }
}
