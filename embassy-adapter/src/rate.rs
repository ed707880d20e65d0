//! [`RateLimitQueue`]: waiting for a rate limiter, first come, first served.
//!
//! Any core [`RateLimiter`] (a [`TokenBucket`](stanchion::rate::TokenBucket), a
//! [`SharedLimiter`](stanchion::rate::SharedLimiter) window, ...) decides; this runner
//! only waits. The task at the front of the queue asks the limiter; on a denial its task
//! is woken at the instant the denial names (`now + retry_after`, rounded up to the next
//! tick, as `Timer::at` rounds) and asks again (woken earlier, it only asks again: a
//! denial takes nothing). The others wait behind it in arrival order, so a large
//! request is never starved by a stream of small ones. At most `N` tasks wait, the front
//! one included; the next one is refused at once (with `N = 0`, every task that cannot
//! have its permits at once is refused).
//!
//! A caller gives a [`Deadline`]. The request is refused at once, without waiting in line,
//! when the limiter alone already says its wait would end at or after the deadline; the front
//! task is refused as soon as its own wait would; a task still queued when the deadline
//! passes is refused then. A refusal is the limiter's [`RateLimitError`] at that moment
//! ([`Denied`] says how long until the limiter, not the queue, would grant). A request
//! above the limiter's [`max_acquire`](RateLimiter::max_acquire) is refused at once, with
//! the limiter's own [`RateLimitError::InsufficientCapacity`].
//!
//! Dropping the future (a timeout, a `select`) leaves the queue and passes the turn on; it
//! takes nothing from the limiter. Tasks that call the limiter directly (an interrupt
//! handler, say) are not queued: the front task simply finds fewer permits.
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use stanchion::rate::{Quota, TokenBucket};
//! use stanchion::sync::NoopRawMutex;
//! use stanchion::Deadline;
//! use stanchion_embassy::RateLimitQueue;
//!
//! let queue: RateLimitQueue<NoopRawMutex, TokenBucket, 4> =
//!     RateLimitQueue::new(TokenBucket::new(Quota::per_second(10)?));
//! // Ten at once, then one every 100 ms.
//! assert!(doc_block_on(queue.acquire(10, Deadline::NEVER)).is_ok());
//! assert!(doc_block_on(queue.acquire(1, Deadline::NEVER)).is_ok());
//! assert_eq!(embassy_time::Instant::now().as_millis(), 100);
//! # fn doc_block_on<F: core::future::Future>(f: F) -> F::Output {
//! #     let mut f = core::pin::pin!(f);
//! #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! #     loop {
//! #         if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_ticks(1));
//! #     }
//! # }
//! # Ok::<(), stanchion::ConfigError>(())
//! ```
//!
//! Cost: the limiter, plus the line: `N` waker slots, `N` words for their order and two
//! more, behind a blocking mutex of kind `M` (`CriticalSectionRawMutex` when interrupt
//! handlers wake tasks in it, `NoopRawMutex` when only one executor uses it). The future
//! of `acquire` holds a reference, `n`, the deadline and a slot index. An uncontended
//! `acquire` is one critical section to enter and one to leave around the limiter's
//! decision.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use stanchion::rate::{Denied, RateLimitError, RateLimiter};
use stanchion::sync::RawMutex;
use stanchion::{Clock, Deadline};

use crate::EmbassyClock;
#[cfg(feature = "defmt")]
use crate::events::event;
use crate::fifo::{Fifo, Place, Turn, wake_at};

/// A rate limiter that tasks wait for in arrival order, at most `N` at a time (the front
/// one included). See the
/// [module docs](self).
pub struct RateLimitQueue<M: RawMutex, L, const N: usize> {
    limiter: L,
    fifo: Fifo<M, N>,
}

impl<M: RawMutex, L: RateLimiter, const N: usize> RateLimitQueue<M, L, N> {
    /// Queues tasks for `limiter` (a limiter, or a reference to a shared one).
    pub const fn new(limiter: L) -> Self {
        RateLimitQueue {
            limiter,
            fifo: Fifo::new(),
        }
    }

    /// The limiter, to use directly (without waiting) or to inspect.
    pub const fn limiter(&self) -> &L {
        &self.limiter
    }

    /// Tasks queued now behind the one at the front (which holds the turn).
    pub fn waiting(&self) -> usize {
        self.fifo.waiting()
    }

    /// Takes `n` permits, waiting in line for them until `deadline` at the latest. See the
    /// [module docs](self) for when it refuses.
    pub fn acquire(
        &self,
        n: u32,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(), RateLimitError>> + '_ {
        Acquire {
            queue: self,
            n,
            deadline,
            place: Place::NEW,
        }
    }
}

/// The future of [`RateLimitQueue::acquire`]: a few words, polled in place. Dropped
/// before it is ready, it leaves the line and takes nothing from the limiter.
struct Acquire<'a, M: RawMutex, L: RateLimiter, const N: usize> {
    queue: &'a RateLimitQueue<M, L, N>,
    n: u32,
    deadline: Deadline,
    place: Place,
}

impl<M: RawMutex, L: RateLimiter, const N: usize> Future for Acquire<'_, M, L, N> {
    type Output = Result<(), RateLimitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (q, n, deadline) = (this.queue, this.n, this.deadline);
        let now = EmbassyClock.now();
        let (new, expired) = (this.place == Place::NEW, deadline.is_expired(now));
        let turn = q.fifo.poll_turn(&mut this.place, cx);
        let front = turn == Turn::Front;
        if !front && !new && !expired {
            // Waiting in line.
            wake_at(deadline.instant(), cx);
            return Poll::Pending;
        }
        // The front task takes; a task that gets no turn asks what the limiter would
        // answer, to refuse with it: at once if the limiter alone says the wait would
        // pass the deadline, when the line is full, or once its deadline passed.
        let answer = if front {
            q.limiter.acquire_at(n, now)
        } else {
            q.limiter.peek_at(n, now)
        };
        let wake = match answer {
            // Refused: the wait would reach the deadline, or never end.
            Err(refused) if would_pass(refused, now, deadline) => None,
            // The front task asks again when the wait is over (or if woken before: a
            // denial takes nothing).
            Err(RateLimitError::Denied(denied)) if front && N != 0 => Some(denied.earliest(now)),
            // A newcomer queued behind others waits its turn, until its deadline at most.
            _ if turn == Turn::Queued && !expired => Some(deadline.instant()),
            // Granted, the line full, the deadline passed in it, or no room to wait.
            _ => None,
        };
        if let Some(at) = wake {
            wake_at(at, cx);
            return Poll::Pending;
        }
        q.fifo.leave(&mut this.place);
        let answer = match answer {
            // Free now, but others were in line first: come back after the shortest wait.
            Ok(()) if !front => Err(Denied::from_nanos(1).into()),
            answer => answer,
        };
        #[cfg(feature = "defmt")]
        if let Err(refused) = answer {
            event!(
                debug,
                "rate limit: refused {=u32} permit(s): {}",
                n,
                refused
            );
        }
        Poll::Ready(answer)
    }
}

impl<M: RawMutex, L: RateLimiter, const N: usize> Drop for Acquire<'_, M, L, N> {
    fn drop(&mut self) {
        self.queue.fifo.leave(&mut self.place);
    }
}

/// Whether waiting out `refused` from `now` would reach `deadline` (or never end).
fn would_pass(refused: RateLimitError, now: stanchion::Instant, deadline: Deadline) -> bool {
    match refused {
        RateLimitError::Denied(denied) => {
            !deadline.is_never() && denied.earliest(now) >= deadline.instant()
        }
        RateLimitError::InsufficientCapacity(_) => true,
    }
}
