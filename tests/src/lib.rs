//! Cross-crate scenarios for stanchion: the same scenario driven through core on a
//! `ManualClock`, through the tokio adapter on tokio's paused clock, and through the
//! embassy adapter on its mock driver, with identical decision traces.
//!
//! The scenarios themselves live in `tests/`; this library holds what they share.
#![deny(missing_docs)]

use core::time::Duration;

use stanchion::{Clock, Instant};

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
