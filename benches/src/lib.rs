//! Shared helpers for the benchmarks (see `benches/`).

pub mod alloc;
pub mod pipeline;
pub mod report;
