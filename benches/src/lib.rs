//! Shared helpers for the benchmarks (see `benches/`).

pub mod report;
