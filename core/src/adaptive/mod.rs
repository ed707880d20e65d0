//! Adaptive concurrency limits.
