//! The circuit breaker.
