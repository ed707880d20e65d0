//! `Deadline` on real (emulated) time: sleeping until it, bounding a future by it, and
//! clamping a wait to it.

use core::future::pending;
use core::time::Duration;

use embassy_time::{Timer, with_deadline};
use stanchion::{Clock, Deadline};
use stanchion_embassy::EmbassyClock;

use super::{LATE, nanos};
use crate::report::Outcome;
use crate::{ensure, ensure_eq};

/// A deadline is not expired before its instant, is after a sleep until it, and bounds a
/// future that never finishes; a long wait is clamped to the time left.
pub async fn run() -> Outcome {
    let start = EmbassyClock.now();
    let deadline = Deadline::after(start, Duration::from_millis(20));
    ensure!(!deadline.is_expired(EmbassyClock.now()), "expired at once");
    Timer::at(EmbassyClock::to_embassy(deadline.instant())).await;
    let now = EmbassyClock.now();
    ensure!(
        deadline.is_expired(now),
        "not expired after sleeping until it"
    );
    ensure_eq!(
        nanos(deadline.remaining(now)),
        0,
        "time left once expired (ns)"
    );
    ensure!(now - deadline.instant() <= LATE, "woke more than 5 ms late");

    // A future that never completes, bounded by a deadline: the timeout fires at it.
    let start = EmbassyClock.now();
    let deadline = Deadline::after(start, Duration::from_millis(15));
    let bounded = with_deadline(
        EmbassyClock::to_embassy(deadline.instant()),
        pending::<()>(),
    );
    ensure!(bounded.await.is_err(), "a pending future finished");
    let now = EmbassyClock.now();
    ensure!(
        deadline.is_expired(now),
        "the timeout fired before the deadline"
    );
    ensure!(
        now - deadline.instant() <= LATE,
        "the timeout fired more than 5 ms late"
    );

    // A wait of a second, clamped to a deadline 12 ms away, ends at the deadline.
    let start = EmbassyClock.now();
    let overall = Deadline::after(start, Duration::from_millis(12));
    let wait = overall.clamp_wait(start, Duration::from_secs(1));
    ensure_eq!(nanos(wait), 12_000_000, "clamped wait (ns)");
    Timer::at(EmbassyClock::to_embassy(start + wait)).await;
    let now = EmbassyClock.now();
    ensure!(
        overall.is_expired(now),
        "the clamped wait ended before the deadline"
    );
    ensure!(
        now - overall.instant() <= LATE,
        "the clamped wait ended more than 5 ms late"
    );
    Ok(())
}
