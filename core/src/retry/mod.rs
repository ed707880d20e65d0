//! Retry: backoff strategies, jitter, retry policies and retry budgets.

pub mod backoff;

pub use backoff::Backoff;
