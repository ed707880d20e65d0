//! Timeouts: a future bounded by a span or by a [`Deadline`].
//!
//! [`timeout_at`] and [`timeout`] return a [`Timeout`] future (as embassy-time's
//! `with_deadline` and `with_timeout` do, with the span's deadline fixed when `timeout` is
//! called). It races the future against `embassy_time::Timer::at` the deadline's
//! instant, rounded up to the next tick (so it never fires before the deadline; the
//! deadline is expired from its instant on, inclusive). [`Deadline::NEVER`] sets no timer
//! at all. The future is polled first, so one that is ready at its first poll wins even
//! against an expired deadline. When the timeout fires, the future is dropped: whatever it
//! held (a breaker permit, a bulkhead slot) is released, and a breaker permit records
//! nothing.
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::time::Duration;
//! use stanchion_embassy::{Elapsed, timeout};
//!
//! # doc_block_on(async {
//! let answer = timeout(Duration::from_millis(10), async { 42 }).await;
//! assert_eq!(answer, Ok(42));
//! let never = timeout(Duration::ZERO, core::future::pending::<()>()).await;
//! assert_eq!(never, Err(Elapsed));
//! # });
//! # fn doc_block_on<F: core::future::Future>(f: F) -> F::Output {
//! #     let mut f = core::pin::pin!(f);
//! #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! #     loop {
//! #         if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_ticks(1));
//! #     }
//! # }
//! ```
//!
//! Cost: a `Timer` (an instant and a flag) beside the future, which stays in place inside
//! the [`Timeout`] (never copied once polled); no allocation. With a tick rate that divides
//! 10^9, [`timeout`] finds its deadline without a 64-bit division.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use embassy_time::Timer;
use pin_project_lite::pin_project;
use stanchion::Deadline;

use crate::EmbassyClock;

/// The timeout fired before the future finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl core::error::Error for Elapsed {}

/// Runs `fut` until it finishes or `deadline` passes, whichever comes first.
///
/// The returned future holds `fut` in place (it is never moved again once polled) and,
/// unless the deadline is [`Deadline::NEVER`], a `Timer` for the deadline.
pub fn timeout_at<F: Future>(deadline: Deadline, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        timer: if deadline.is_never() {
            None
        } else {
            Some(Timer::at(EmbassyClock::to_embassy(deadline.instant())))
        },
    }
}

/// Runs `fut` for at most `budget` from now (the deadline is `now + budget`, saturating;
/// "now" is read when `timeout` is called, as `embassy_time::with_timeout` does).
pub fn timeout<F: Future>(budget: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        timer: EmbassyClock::deadline_after(budget).map(Timer::at),
    }
}

pin_project! {
    /// The future of [`timeout`] and [`timeout_at`]: `fut`'s output, or [`Elapsed`] once
    /// the deadline has passed. `fut` is polled first, then the timer.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        // `None` for `Deadline::NEVER`: no timer at all.
        timer: Option<Timer>,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.fut.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if let Some(timer) = this.timer {
            if Pin::new(timer).poll(cx).is_ready() {
                return Poll::Ready(Err(Elapsed));
            }
        }
        Poll::Pending
    }
}
