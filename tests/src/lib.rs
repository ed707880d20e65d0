//! Cross-crate scenarios for stanchion: the same scenario driven through core on a
//! `ManualClock`, through the tokio adapter on tokio's paused clock, and through the
//! embassy adapter on its mock driver, with identical decision traces.
//!
//! This library holds what the three drivers share: the scenarios as data
//! ([`scenarios`]), the trace type ([`Event`]) and its comparison
//! ([`assert_same_trace`]), the reference traces of core on a `ManualClock`
//! ([`mod@reference`]), and a join that polls a scenario's tasks in a fixed order ([`join`]).
//! The drivers live in `tests/`: `tokio_paused.rs` (the std adapter under tokio's paused
//! clock) and `embassy_mock.rs` (the embassy adapter under its mock driver, in a binary of
//! its own since the driver is global).
#![deny(missing_docs)]

pub mod join;
pub mod reference;
pub mod scenarios;
mod trace;

pub use trace::{CallOutcome, Event, LastError, Recorder, assert_same_trace, first_difference};

use core::time::Duration;

use stanchion::{Clock, Instant};

/// Steps for [`clock_trace`]: the smallest step, a common one, an hour, and none.
pub const CLOCK_STEPS: [Duration; 4] = [
    Duration::from_nanos(1),
    Duration::from_millis(250),
    Duration::from_secs(3600),
    Duration::ZERO,
];

/// Reads `clock` at each of `steps` after advancing it with `advance`, and returns the
/// instants read: the trace every clock must reproduce for the same steps.
pub fn clock_trace<C: Clock>(
    clock: &C,
    steps: &[Duration],
    mut advance: impl FnMut(Duration),
) -> Vec<Instant> {
    let start = clock.now();
    steps
        .iter()
        .map(|&step| {
            advance(step);
            Instant::from_nanos(
                (clock.now() - start)
                    .as_nanos()
                    .try_into()
                    .unwrap_or(u64::MAX),
            )
        })
        .collect()
}
