//! A hand-polled executor over embassy-time's mock driver, shared by the test binaries.
//!
//! Futures are polled with a no-op waker, by the test, at the instants it chooses: a test
//! moves the driver to an instant and polls, so it can assert that a future is still
//! pending one tick before the instant it should wake at, and ready at it.
#![allow(dead_code)]

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use embassy_time::{Duration, Instant, MockDriver};

/// Ticks per millisecond on the mock driver (1 MHz).
pub const MS: u64 = 1_000;

/// Resets the driver to tick 0.
pub fn reset() {
    MockDriver::get().reset();
}

/// The driver's tick count.
pub fn now() -> u64 {
    Instant::now().as_ticks()
}

/// Moves the driver to tick `at` (which must not be in the past).
pub fn advance_to(at: u64) {
    let now = now();
    assert!(
        at >= now,
        "cannot move the mock driver back from {now} to {at}"
    );
    MockDriver::get().advance(Duration::from_ticks(at - now));
}

/// Polls `fut` once.
pub fn poll<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `fut` once and returns its output, failing if it is pending.
pub fn ready<F: Future>(fut: Pin<&mut F>) -> F::Output {
    match poll(fut) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("pending at tick {}", now()),
    }
}

/// Asserts that `fut` is pending.
pub fn pending<F: Future>(fut: Pin<&mut F>) {
    assert!(poll(fut).is_pending(), "ready at tick {}", now());
}

/// Asserts that `fut` is still pending one tick before `at`, then polls it at `at`.
pub fn wake_at<F: Future>(mut fut: Pin<&mut F>, at: u64) -> Poll<F::Output> {
    advance_to(at - 1);
    pending(fut.as_mut());
    advance_to(at);
    poll(fut)
}

/// [`wake_at`], and the output, which must be ready at `at`.
pub fn ready_at<F: Future>(fut: Pin<&mut F>, at: u64) -> F::Output {
    match wake_at(fut, at) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("still pending at tick {at}"),
    }
}

/// Polls `fut`, advancing the driver one tick between polls, at most `max_ticks` times.
pub fn run<F: Future>(fut: F, max_ticks: u64) -> F::Output {
    let mut fut = core::pin::pin!(fut);
    for _ in 0..=max_ticks {
        if let Poll::Ready(v) = poll(fut.as_mut()) {
            return v;
        }
        MockDriver::get().advance(Duration::from_ticks(1));
    }
    panic!("not done within {max_ticks} ticks");
}
