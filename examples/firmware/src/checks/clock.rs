//! `EmbassyClock` against `Timer`: time advances exactly as the time driver says.

use core::time::Duration;

use embassy_time::Timer;
use stanchion::Clock;
use stanchion_embassy::EmbassyClock;

use super::{LATE, nanos};
use crate::report::Outcome;
use crate::{ensure, ensure_eq};

/// `Timer::after(d)` is seen by `EmbassyClock` as at least `d` (never early) and at most
/// `d + LATE`; one tick is exactly one millisecond.
pub async fn follows_timer() -> Outcome {
    ensure_eq!(
        EmbassyClock::ticks_to_instant(1).as_nanos(),
        1_000_000,
        "nanoseconds in one tick at 1 kHz"
    );
    for ms in [1, 10, 100] {
        let d = Duration::from_millis(ms);
        let start = EmbassyClock.now();
        Timer::after_millis(ms).await;
        let elapsed = EmbassyClock.now() - start;
        ensure!(
            elapsed >= d,
            "Timer::after woke before its duration had passed"
        );
        ensure!(elapsed <= d + LATE, "Timer::after woke more than 5 ms late");
    }
    Ok(())
}

/// `Timer::at(EmbassyClock::to_embassy(t))` for an instant between two ticks wakes at or
/// after `t`: the conversion rounds up, so a sleep never ends early.
pub async fn sleep_until_rounds_up() -> Outcome {
    let target = EmbassyClock.now() + Duration::from_nanos(25_000_001);
    let wake = EmbassyClock::to_embassy(target);
    ensure_eq!(
        nanos(EmbassyClock::from_embassy(wake) - target),
        999_999,
        "rounding of a between-ticks instant up to the next tick (ns)"
    );
    Timer::at(wake).await;
    let now = EmbassyClock.now();
    ensure!(now >= target, "woke before the instant asked for");
    ensure!(now - target <= LATE, "woke more than 5 ms late");
    Ok(())
}
