//! [`TokenBudget`]: gRPC-style retry throttling, a token bucket that failures drain and
//! successes refill.
//!
//! The bucket holds up to `max_tokens` tokens and starts full. Each failed attempt that
//! would be retried takes one token (not below zero); the retry is allowed only if more
//! than `max_tokens / 2` tokens are left afterwards. Each success puts `token_ratio`
//! tokens back (not above `max_tokens`). So during an outage retries stop after about
//! `max_tokens / 2` failures and resume once successes have refilled the bucket above
//! half; with a ratio of 0.1, ten successes pay for one retry.
//!
//! Choose it when the service is called at an irregular rate (time plays no part) or to
//! match a gRPC service config's `retryThrottling`. Choose
//! [`RatioBudget`](super::RatioBudget) to bound retries as a share of recent traffic.
//!
//! ```
//! use stanchion::Instant;
//! use stanchion::retry::{Ratio, RetryBudget, TokenBudget};
//!
//! static BUDGET: TokenBudget = stanchion::const_config!(TokenBudget::new(10, Ratio::percent(10)));
//! let now = Instant::ZERO;
//! let allowed = (0..20).filter(|_| BUDGET.try_withdraw_at(now)).count();
//! assert_eq!(allowed, 4); // 9, 8, 7, 6 tokens left are above 5; 5 and below are not
//! assert_eq!(BUDGET.milli_tokens(), 0);
//! for _ in 0..61 {
//!     BUDGET.record_success_at(now); // 0.1 token each: 6.1 tokens
//! }
//! assert!(BUDGET.try_withdraw_at(now)); // 5.1 left, above half
//! assert!(!BUDGET.try_withdraw_at(now));
//! ```
//!
//! Differences from gRPC: only failures that the policy would otherwise retry take a
//! token (a permanent error, or the last allowed attempt, takes none); tokens are counted
//! in thousandths, as gRPC's three-decimal ratio is.
//!
//! Sharing: the state is one `AtomicU32` of milli-tokens; each failure and each success
//! that changes it is one compare-and-swap (a success with the bucket full and a failure
//! with it empty write nothing). Lock-free; shareable by `&` across threads and interrupt
//! handlers (on targets without compare-and-swap through `portable-atomic`'s critical
//! section). Cost: 12 bytes. [`set_settings`](TokenBudget::set_settings) changes the
//! size and the refill in place, keeping the tokens left.
//!
//! Source: gRPC proposal A6, "Client Retries", retry throttling
//! (<https://github.com/grpc/proposal/blob/master/A6-client-retries.md>).

use super::{Ratio, RetryBudget};
use crate::ConfigError;
use crate::Instant;
use crate::sync::{AtomicU32, Ordering};

/// Thousandths of a token per token.
const MILLI: u32 = 1000;

/// The largest `max_tokens`, so that milli-tokens fit a `u32` with room for a refund.
pub const MAX_TOKENS: u32 = 1_000_000;

/// gRPC-style retry throttling: a token bucket of retries. See the [module docs](self).
#[derive(Debug)]
pub struct TokenBudget {
    milli_tokens: AtomicU32,
    /// The bucket's size and a success's refill, in milli-tokens: atomics only so that
    /// [`set_settings`](TokenBudget::set_settings) can change them through `&self`.
    max: AtomicU32,
    refund: AtomicU32,
}

/// `max_tokens` and `token_ratio` in milli-tokens, or the field that is out of range.
const fn milli_settings(max_tokens: u32, token_ratio: Ratio) -> Result<(u32, u32), ConfigError> {
    if max_tokens == 0 || max_tokens > MAX_TOKENS {
        return Err(ConfigError::new("max_tokens", "in 1..=1000000"));
    }
    let refund = match (token_ratio.num() as u64)
        .saturating_mul(MILLI as u64)
        .checked_div(token_ratio.den() as u64)
    {
        Some(r) => r,
        None => 0,
    };
    let max = max_tokens.saturating_mul(MILLI);
    if refund == 0 || refund > max as u64 {
        return Err(ConfigError::new("token_ratio", "in 0.001..=max_tokens"));
    }
    Ok((max, refund as u32))
}

impl TokenBudget {
    crate::sync::const_fn_unless_loom! {
        /// A full bucket of `max_tokens` (in `1..=1_000_000`), refilled by `token_ratio`
        /// tokens per success (in `0.001..=max_tokens`, rounded down to a thousandth).
        pub fn new(max_tokens: u32, token_ratio: Ratio) -> Result<TokenBudget, ConfigError> {
            match milli_settings(max_tokens, token_ratio) {
                Ok((max, refund)) => Ok(TokenBudget {
                    milli_tokens: AtomicU32::new(max),
                    max: AtomicU32::new(max),
                    refund: AtomicU32::new(refund),
                }),
                Err(e) => Err(e),
            }
        }
    }

    /// Changes the bucket's size and refill in place, checked as [`new`](Self::new)
    /// checks them (a bad value changes nothing). The tokens left stay, down to the new
    /// `max_tokens` if they are above it: a larger bucket is not filled by the change,
    /// so an outage that drained it is not forgotten. A withdrawal or a success racing
    /// the change sees the old or the new value of each setting (so each success racing a
    /// lowered size may still add its refill above it, which withdrawals then spend).
    ///
    /// ```
    /// use stanchion::Instant;
    /// use stanchion::retry::{Ratio, RetryBudget, TokenBudget};
    ///
    /// let budget = TokenBudget::new(10, Ratio::percent(10))?;
    /// assert!(budget.try_withdraw_at(Instant::ZERO)); // 9 tokens left
    /// budget.set_settings(4, Ratio::ONE)?;
    /// assert_eq!(budget.milli_tokens(), 4_000); // down to the new size
    /// assert!(budget.try_withdraw_at(Instant::ZERO)); // 3 left, above half of 4
    /// assert!(!budget.try_withdraw_at(Instant::ZERO)); // 2 left: not above half
    /// # Ok::<(), stanchion::ConfigError>(())
    /// ```
    pub fn set_settings(&self, max_tokens: u32, token_ratio: Ratio) -> Result<(), ConfigError> {
        let (max, refund) = milli_settings(max_tokens, token_ratio)?;
        self.max.store(max, Ordering::Relaxed);
        self.refund.store(refund, Ordering::Relaxed);
        self.milli_tokens.fetch_min(max, Ordering::Relaxed);
        Ok(())
    }

    /// The bucket's size, in whole tokens.
    pub fn max_tokens(&self) -> u32 {
        self.max.load(Ordering::Relaxed) / MILLI
    }

    /// Tokens left, in thousandths.
    pub fn milli_tokens(&self) -> u32 {
        self.milli_tokens.load(Ordering::Relaxed)
    }

    /// Whether a retry would be allowed now (taking a token leaves more than half).
    pub fn would_allow(&self) -> bool {
        self.allows(self.milli_tokens().saturating_sub(MILLI))
    }

    #[inline]
    fn allows(&self, after: u32) -> bool {
        after > self.max.load(Ordering::Relaxed) / 2
    }
}

impl RetryBudget for TokenBudget {
    const USES_TIME: bool = false;

    #[inline]
    fn deposit_at(&self, _now: Instant) {}

    #[inline]
    fn record_success_at(&self, _now: Instant) {
        let max = self.max.load(Ordering::Relaxed);
        let refund = self.refund.load(Ordering::Relaxed);
        let mut current = self.milli_tokens.load(Ordering::Relaxed);
        while current < max {
            let next = current.saturating_add(refund).min(max);
            match self.milli_tokens.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    #[inline]
    fn try_withdraw_at(&self, _now: Instant) -> bool {
        let mut current = self.milli_tokens.load(Ordering::Relaxed);
        loop {
            let after = current.saturating_sub(MILLI);
            if after == current {
                return false; // empty: nothing to write
            }
            match self.milli_tokens.compare_exchange_weak(
                current,
                after,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.allows(after),
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_to_half_then_refills() {
        let b = TokenBudget::new(100, Ratio::new(1, 2).unwrap()).unwrap();
        let now = Instant::ZERO;
        let allowed = (0..1000).filter(|_| b.try_withdraw_at(now)).count();
        assert_eq!(allowed, 49);
        assert_eq!(b.milli_tokens(), 0);
        // Successes refill half a token each; the first retry is allowed once a failure
        // leaves more than 50 tokens, that is from 51.5 tokens up: 103 successes.
        for _ in 0..102 {
            b.record_success_at(now);
        }
        assert!(!b.would_allow());
        b.record_success_at(now);
        assert!(b.would_allow());
        assert!(b.try_withdraw_at(now));
        for _ in 0..10_000 {
            b.record_success_at(now);
        }
        assert_eq!(b.milli_tokens(), 100_000);
    }

    #[test]
    fn bad_configuration() {
        assert_eq!(
            TokenBudget::new(0, Ratio::ONE).unwrap_err(),
            ConfigError::new("max_tokens", "in 1..=1000000")
        );
        assert_eq!(
            TokenBudget::new(MAX_TOKENS + 1, Ratio::ONE).unwrap_err(),
            ConfigError::new("max_tokens", "in 1..=1000000")
        );
        assert_eq!(
            TokenBudget::new(10, Ratio::new(1, 1001).unwrap()).unwrap_err(),
            ConfigError::new("token_ratio", "in 0.001..=max_tokens")
        );
        assert_eq!(
            TokenBudget::new(10, Ratio::integer(11)).unwrap_err(),
            ConfigError::new("token_ratio", "in 0.001..=max_tokens")
        );
        assert!(TokenBudget::new(MAX_TOKENS, Ratio::integer(MAX_TOKENS)).is_ok());
    }

    #[test]
    fn settings_change_in_place_keeping_the_tokens() {
        let b = TokenBudget::new(10, Ratio::percent(10)).unwrap();
        let now = Instant::ZERO;
        assert!(b.try_withdraw_at(now));
        assert!(b.try_withdraw_at(now)); // 8 tokens left
        // Larger: the 8 tokens stay (not refilled to 20), and a retry now needs more
        // than 10 left.
        b.set_settings(20, Ratio::ONE).unwrap();
        assert_eq!((b.max_tokens(), b.milli_tokens()), (20, 8_000));
        assert!(!b.would_allow());
        b.record_success_at(now); // the new refill: a whole token
        assert_eq!(b.milli_tokens(), 9_000);
        // Bad values are refused and change nothing.
        assert_eq!(
            b.set_settings(0, Ratio::ONE).unwrap_err(),
            ConfigError::new("max_tokens", "in 1..=1000000")
        );
        assert_eq!(
            b.set_settings(2, Ratio::integer(3)).unwrap_err(),
            ConfigError::new("token_ratio", "in 0.001..=max_tokens")
        );
        assert_eq!((b.max_tokens(), b.milli_tokens()), (20, 9_000));
        // Smaller: the tokens above the new size are dropped.
        b.set_settings(4, Ratio::percent(50)).unwrap();
        assert_eq!((b.max_tokens(), b.milli_tokens()), (4, 4_000));
        for _ in 0..3 {
            b.record_success_at(now);
        }
        assert_eq!(b.milli_tokens(), 4_000); // full: successes add nothing
        assert!(b.try_withdraw_at(now)); // 3 left, above 2
        assert!(!b.try_withdraw_at(now)); // 2 left
    }

    #[test]
    fn shared_across_threads() {
        extern crate std;
        let b = TokenBudget::new(1000, Ratio::ONE).unwrap();
        let allowed = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if b.try_withdraw_at(Instant::ZERO) {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        // Exactly the tokens above half are spent as allowed retries.
        assert_eq!(allowed.into_inner(), 499);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_concurrent_withdrawals_never_exceed_the_bucket() {
        loom::model(|| {
            let b = loom::sync::Arc::new(TokenBudget::new(3, Ratio::ONE).unwrap());
            let b2 = b.clone();
            let t = loom::thread::spawn(move || b2.try_withdraw_at(Instant::ZERO));
            let mine = b.try_withdraw_at(Instant::ZERO);
            let theirs = t.join().unwrap();
            // 3 tokens, threshold 1.5: exactly one of two withdrawals is allowed.
            assert_eq!(u8::from(mine) + u8::from(theirs), 1);
            assert_eq!(b.milli_tokens(), 1000);
        });
    }
}
