//! Retry: backoff strategies, jitter, retry policies and retry budgets.
//!
//! - [`Backoff`] strategies, one per file: [`Immediate`], [`Constant`], [`Linear`],
//!   [`Exponential`], [`DecorrelatedJitter`] (AWS) and [`DecorrelatedJitterV2`] (Polly);
//! - [`Jitter`]: none, full, equal and proportional, applied before the cap;
//! - [`RetryPolicy`]: per operation, answers [`Decision::Retry`] or
//!   [`Decision::GiveUp`] after each failure (max attempts, overall deadline, classifier,
//!   server hint);
//! - [`RetryBudget`]s shared by many operations: [`TokenBudget`] (gRPC) and
//!   [`RatioBudget`] (Finagle, tower).
//!
//! Everything here is integer arithmetic: factors and ratios are [`Ratio`]s, jitter is
//! drawn from a caller-seeded [`fastrand::Rng`] over whole nanoseconds.

pub mod backoff;
pub mod budget;
pub mod constant;
pub mod decorrelated;
pub mod decorrelated_v2;
pub mod exponential;
pub mod jitter;
pub mod linear;
pub mod policy;
pub mod ratio;
pub mod ratio_budget;
pub mod token_budget;

pub use backoff::{Backoff, Delays};
pub use budget::{NoBudget, RetryBudget};
pub use constant::{Constant, Immediate};
pub use decorrelated::DecorrelatedJitter;
pub use decorrelated_v2::DecorrelatedJitterV2;
pub use exponential::Exponential;
pub use jitter::Jitter;
pub use linear::Linear;
pub use policy::{
    Classify, Decision, DefaultMaxRetryAfter, GiveUpReason, HintBound, MaxRetryAfter, RetryError,
    RetryPolicy, TransientErrors, Verdict,
};
pub use ratio::Ratio;
pub use ratio_budget::RatioBudget;
pub use token_budget::TokenBudget;
