//! The runnable examples of stanchion, as a library so that the guided tour (`tour`) and
//! the per-family binaries share one implementation of each scenario.
//!
//! Every scenario runs on virtual time (explicit [`stanchion::Instant`]s, a
//! [`stanchion::ManualClock`], or tokio's paused clock through
//! `stanchion_std::TokioClock`) with seeded random generators, so it finishes at once and
//! prints the same lines on every run. The tests in `examples/tests/` run each binary and
//! check its key lines.
//!
//! | module | binary | what it shows |
//! |---|---|---|
//! | [`rate_limiting`] | `rate_limiting` | five limiters on the same bursty traffic |
//! | [`retry_patterns`] | `retry_patterns` | backoffs and jitter on one outage, the stops, a retry budget |
//! | [`circuit_breaker`] | `circuit_breaker` | three breaker windows on one failure pattern |
//! | [`combined_patterns`] | `combined_patterns` | every layer in front of one flaky downstream |
//! | [`throttling`] | `tour` (section 7) | adaptive client-side throttling against a retry budget |
//! | [`fault_injection`] | `tour` (section 8) | fault injection in front of a healthy downstream, met by the retry and the attempt timeout |
//! | [`fallback`] | `tour` (section 9) | a fallback answering what the pipeline refuses, with the layer each stand-in answered for |
//! | [`hedging`] | `tour` (section 10) | hedging at a learned p90 on a downstream with a long tail, within a budget |
//! | all of the above | `tour` | the highlights and a summary table |
//! | [`service`] | `service` | an HTTP service (axum) with every pattern in front of a flaky downstream |

pub mod circuit_breaker;
pub mod combined_patterns;
pub mod fallback;
pub mod fault_injection;
pub mod hedging;
pub mod rate_limiting;
pub mod retry_patterns;
pub mod service;
pub mod throttling;
pub mod timeline;
