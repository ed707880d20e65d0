//! The bounded line shared by the waiting runners ([`crate::RateLimitQueue`],
//! [`crate::BulkheadQueue`]): a count of the callers in it, with a maximum.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A place counted in the line; gives it back on drop (including cancellation).
pub(crate) struct Place<'a>(&'a AtomicUsize);

impl<'a> Place<'a> {
    /// Takes a place if fewer than `max` are taken; `None` when the line is full.
    pub(crate) fn join(count: &'a AtomicUsize, max: usize) -> Option<Place<'a>> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then(|| n.saturating_add(1))
            })
            .ok()
            .map(|_| Place(count))
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
