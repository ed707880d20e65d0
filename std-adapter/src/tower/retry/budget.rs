use std::sync::Arc;

use stanchion::Instant;
use stanchion::retry::RetryBudget;

/// A retry budget shared through an `Arc`, for policies that must be `'static` (one per
/// request of a tower service). A `&'static` budget works as it is.
///
/// ```
/// use stanchion::retry::{Ratio, TokenBudget};
/// use stanchion_std::tower::SharedBudget;
///
/// let budget = SharedBudget::new(TokenBudget::new(10, Ratio::new(1, 10).unwrap()).unwrap());
/// let for_a_request = budget.clone(); // the same budget
/// # let _ = for_a_request;
/// ```
#[derive(Debug, Default)]
pub struct SharedBudget<R>(pub Arc<R>);

impl<R> SharedBudget<R> {
    /// Shares `budget`.
    pub fn new(budget: R) -> Self {
        SharedBudget(Arc::new(budget))
    }
}

impl<R> Clone for SharedBudget<R> {
    fn clone(&self) -> Self {
        SharedBudget(Arc::clone(&self.0))
    }
}

impl<R: RetryBudget> RetryBudget for SharedBudget<R> {
    const USES_TIME: bool = R::USES_TIME;

    #[inline]
    fn deposit_at(&self, now: Instant) {
        self.0.deposit_at(now);
    }

    #[inline]
    fn record_success_at(&self, now: Instant) {
        self.0.record_success_at(now);
    }

    #[inline]
    fn try_withdraw_at(&self, now: Instant) -> bool {
        self.0.try_withdraw_at(now)
    }
}
