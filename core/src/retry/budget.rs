//! The [`RetryBudget`] contract: a limit on retries shared by many operations, so that
//! retries cannot multiply the load on a service that is already failing.
//!
//! A retry policy reports to its budget, and asks it before each retry:
//!
//! 1. [`deposit_at`](RetryBudget::deposit_at) once per operation, when its first attempt
//!    finishes (success or failure): one more request;
//! 2. [`record_success_at`](RetryBudget::record_success_at) when an attempt succeeds;
//! 3. [`try_withdraw_at`](RetryBudget::try_withdraw_at) when a failed attempt is about
//!    to be retried (it is transient, attempts and deadline allow it): `true` spends one
//!    retry, `false` means give up.
//!
//! Budgets:
//!
//! | budget | retries allowed | style |
//! |---|---|---|
//! | [`NoBudget`] | all | |
//! | [`TokenBudget`](super::TokenBudget) | while a token bucket, drained by failures and refilled by a ratio per success, is above half | gRPC retry throttling |
//! | [`RatioBudget`](super::RatioBudget) | a percentage of the requests of a recent time window, plus a floor | Finagle, tower |
//!
//! Budgets are shared by `&` (the trait is implemented for `&R`): one budget per
//! downstream service, many policies borrowing it.

use crate::Instant;

/// A limit on retries shared by many operations. See the [module docs](self).
///
/// Implementations are shared by `&` across threads and never block.
pub trait RetryBudget {
    /// Whether the budget reads the `now` it is given. A budget whose accounting ignores
    /// time sets it to `false`, so that the clock-bound policy methods skip reading the
    /// clock on the success path.
    const USES_TIME: bool = true;

    /// One operation's first attempt finished: one more request in the budget's
    /// accounting.
    fn deposit_at(&self, now: Instant);

    /// An attempt succeeded.
    fn record_success_at(&self, now: Instant);

    /// A failed attempt is about to be retried: whether the budget allows it. `true`
    /// spends the retry.
    fn try_withdraw_at(&self, now: Instant) -> bool;
}

impl<R: RetryBudget + ?Sized> RetryBudget for &R {
    const USES_TIME: bool = R::USES_TIME;

    #[inline]
    fn deposit_at(&self, now: Instant) {
        (**self).deposit_at(now);
    }

    #[inline]
    fn record_success_at(&self, now: Instant) {
        (**self).record_success_at(now);
    }

    #[inline]
    fn try_withdraw_at(&self, now: Instant) -> bool {
        (**self).try_withdraw_at(now)
    }
}

/// No budget: every retry is allowed (only the policy's own stops apply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoBudget;

impl RetryBudget for NoBudget {
    const USES_TIME: bool = false;

    #[inline]
    fn deposit_at(&self, _now: Instant) {}

    #[inline]
    fn record_success_at(&self, _now: Instant) {}

    #[inline]
    fn try_withdraw_at(&self, _now: Instant) -> bool {
        true
    }
}
