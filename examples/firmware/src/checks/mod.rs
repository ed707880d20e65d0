//! The checks, one file each. A check is `pub async fn name() -> Outcome`, run by one line in
//! `main.rs`; a check of a pattern is gated on the firmware's feature for that pattern, so
//! that `cargo xtask size` can measure the pattern by building without it.
//!
//! Checks run one after another on the one thread-mode task. Time is the time driver's:
//! exact in ticks (1 ms), whatever the host's load; only the upper bounds on a wake-up allow
//! for QEMU being descheduled by the host ([`LATE`]).

use core::time::Duration;

pub mod clock;
#[cfg(feature = "deadline")]
pub mod deadline;
pub mod shared_state;

/// How late a timer may wake and still pass: the wake-up itself is exact in ticks, but the
/// emulator may be paused by the host between the tick that wakes a task and the task's
/// next clock read, so a few ticks of slack keep a loaded CI machine from failing a check.
/// Waking *early* is never allowed.
pub const LATE: Duration = Duration::from_millis(5);

/// Nanoseconds in `d`, saturating (no check sleeps for 584 years).
pub fn nanos(d: Duration) -> u64 {
    stanchion::time::duration_to_nanos_saturating(d)
}
