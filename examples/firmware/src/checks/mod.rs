//! The checks, one file each. A check is `pub async fn name() -> Outcome`, run by one line in
//! `main.rs`; a check of a pattern is gated on the firmware's feature for that pattern, so
//! that `cargo xtask size` can measure the pattern by building without it.
//!
//! Checks run one after another on the one thread-mode task. Time is the time driver's:
//! exact in ticks (1 ms), whatever the host's load; only the upper bounds on a wake-up allow
//! for QEMU being descheduled by the host ([`LATE`]).

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

#[cfg(feature = "breaker")]
pub mod breaker;
#[cfg(feature = "breaker-consecutive")]
pub mod breaker_consecutive;
#[cfg(feature = "bulkhead")]
pub mod bulkhead;
pub mod clock;
#[cfg(feature = "deadline")]
pub mod deadline;
#[cfg(feature = "log-defmt")]
pub mod defmt_events;
#[cfg(feature = "fallback")]
pub mod fallback;
#[cfg(feature = "fault")]
pub mod fault;
#[cfg(feature = "hedge")]
pub mod hedge;
#[cfg(any(
    feature = "retry",
    feature = "breaker",
    feature = "timeout",
    feature = "pipeline"
))]
pub mod peripheral;
#[cfg(feature = "pipeline")]
pub mod pipeline;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "retry")]
pub mod retry;
pub mod shared_state;
#[cfg(feature = "throttle")]
pub mod throttle;
#[cfg(feature = "timeout")]
pub mod timeout;

/// How late a timer may wake and still pass: the wake-up itself is exact in ticks, but the
/// emulator may be paused by the host between the tick that wakes a task and the task's
/// next clock read, so a few ticks of slack keep a loaded CI machine from failing a check.
/// Waking *early* is never allowed.
pub const LATE: Duration = Duration::from_millis(5);

/// Nanoseconds in `d`, saturating (no check sleeps for 584 years).
pub fn nanos(d: Duration) -> u64 {
    stanchion::time::duration_to_nanos_saturating(d)
}

/// Runs three futures on the one task until all are done: a join without a dependency.
/// They share the task's waker, so each poll polls all three; the executor's timer queue
/// keeps the earliest wake-up among them.
#[allow(dead_code)]
pub async fn join3<A: Future, B: Future, C: Future>(
    a: A,
    b: B,
    c: C,
) -> (A::Output, B::Output, C::Output) {
    // Polled through `dyn Future`, so each future's poll is compiled once, not inlined
    // into every join that holds it.
    let mut a: core::pin::Pin<&mut dyn Future<Output = A::Output>> = pin!(a);
    let mut b: core::pin::Pin<&mut dyn Future<Output = B::Output>> = pin!(b);
    let mut c: core::pin::Pin<&mut dyn Future<Output = C::Output>> = pin!(c);
    let (mut ra, mut rb, mut rc) = (None, None, None);
    poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if rc.is_none()
            && let Poll::Ready(v) = c.as_mut().poll(cx)
        {
            rc = Some(v);
        }
        match (ra.take(), rb.take(), rc.take()) {
            (Some(a), Some(b), Some(c)) => Poll::Ready((a, b, c)),
            (a, b, c) => {
                (ra, rb, rc) = (a, b, c);
                Poll::Pending
            }
        }
    })
    .await
}

/// Milliseconds from `from` to `to` (zero if `to` is earlier), for timelines.
#[allow(dead_code)]
pub fn ms_between(from: stanchion::Instant, to: stanchion::Instant) -> u64 {
    nanos(to - from) / 1_000_000
}
