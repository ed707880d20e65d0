//! [`BulkheadQueue`]: waiting for a bulkhead slot, first come, first served, in a bounded
//! queue.
//!
//! Core's [`Bulkhead`] decides; this runner waits as its docs ask of an adapter: a task
//! tries the bulkhead only at the front of the queue (a newcomer never overtakes a
//! waiter), at most `N` tasks wait, the front one included (the next is refused at
//! once; with `N = 0` no one waits), and the front task
//! sleeps until the bulkhead's listener, a [`SlotSignal`] (the waiting line itself), says
//! a slot may have freed (a permit dropped, or the maximum raised), then tries again.
//! Dropping the future leaves the queue and passes the turn on.
//!
//! A caller gives a [`Deadline`]; a task that has no slot when it passes is refused with
//! [`BulkheadFull`] (the usage at that moment, from [`Bulkhead::full`]), as is a task that
//! finds the queue full.
//!
//! Permits are core's [`BulkheadPermit`]: dropped, they free the slot and wake the front
//! waiter, also when dropped by an interrupt handler (with `M = CriticalSectionRawMutex`).
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::num::NonZeroU32;
//! use stanchion::sync::CriticalSectionRawMutex;
//! use stanchion::{Clock, Deadline};
//! use stanchion_embassy::BulkheadQueue;
//!
//! static POOL: BulkheadQueue<CriticalSectionRawMutex, 4> = BulkheadQueue::new(NonZeroU32::MIN);
//! # fn poll_once<F: core::future::Future>(f: core::pin::Pin<&mut F>) -> core::task::Poll<F::Output> {
//! #     f.poll(&mut core::task::Context::from_waker(core::task::Waker::noop()))
//! # }
//! let first = POOL.bulkhead().try_acquire().unwrap();
//! let mut second = core::pin::pin!(POOL.acquire(Deadline::NEVER));
//! assert!(poll_once(second.as_mut()).is_pending()); // full: waits
//! drop(first);
//! assert!(poll_once(second.as_mut()).is_ready()); // woken, takes the slot
//! ```
//!
//! Cost: the bulkhead (8 bytes) and, as its listener, the line: `N` waker slots, `N` words
//! for their order and two more, behind one blocking mutex of kind `M`; the future of
//! `acquire` holds a reference, the deadline and a slot index. An uncontended acquire is the bulkhead's one
//! compare-and-swap plus the line's two short critical sections.

use core::future::Future;
use core::num::NonZeroU32;
use core::pin::Pin;
use core::task::{Context, Poll};

use stanchion::bulkhead::{Bulkhead, BulkheadFull, BulkheadListener, BulkheadPermit};
use stanchion::sync::RawMutex;
use stanchion::{Clock, Deadline};

use crate::EmbassyClock;
use crate::events::event;
use crate::fifo::{Fifo, Place, Turn, wake_at};

/// The waiting line of a [`BulkheadQueue`], and its bulkhead's listener: when a slot may
/// have freed (a permit dropped, or the maximum raised), it wakes the task at the front of
/// the line. Living in the bulkhead, it needs no waker of its own.
pub struct SlotSignal<M: RawMutex, const N: usize> {
    line: Fifo<M, N>,
}

impl<M: RawMutex, const N: usize> SlotSignal<M, N> {
    /// An empty line.
    pub const fn new() -> Self {
        SlotSignal { line: Fifo::new() }
    }
}

impl<M: RawMutex, const N: usize> Default for SlotSignal<M, N> {
    fn default() -> Self {
        SlotSignal::new()
    }
}

impl<M: RawMutex, const N: usize> BulkheadListener for SlotSignal<M, N> {
    fn on_released(&self, _in_use: u32) {
        self.line.wake_front();
    }

    fn on_max_changed(&self, old: u32, new: u32) {
        if new > old {
            self.line.wake_front();
        }
    }
}

/// A permit of a [`BulkheadQueue`]'s bulkhead: it frees the slot when dropped.
pub type QueuedPermit<'a, M, const N: usize> =
    BulkheadPermit<&'a Bulkhead<SlotSignal<M, N>>, SlotSignal<M, N>>;

/// A bulkhead that tasks wait for in arrival order, at most `N` at a time (the front one
/// included). See the
/// [module docs](self).
pub struct BulkheadQueue<M: RawMutex, const N: usize> {
    bulkhead: Bulkhead<SlotSignal<M, N>>,
}

impl<M: RawMutex, const N: usize> BulkheadQueue<M, N> {
    /// A bulkhead of `max_concurrent` slots, with room for `N` waiting tasks.
    ///
    /// The maximum is a `NonZeroU32` rather than a checked `u32`: a `Result` holding this
    /// type (it owns wakers) could not be matched on in a `static`'s initialiser.
    pub const fn new(max_concurrent: NonZeroU32) -> Self {
        BulkheadQueue {
            bulkhead: Bulkhead::with_nonzero_max(max_concurrent.get(), SlotSignal::new()),
        }
    }

    /// The bulkhead: its metrics, its maximum (which may be changed at run time), and
    /// `try_acquire` for callers that must not wait (they do not queue, and may take a
    /// slot ahead of the waiters).
    pub const fn bulkhead(&self) -> &Bulkhead<SlotSignal<M, N>> {
        &self.bulkhead
    }

    /// Tasks queued now behind the one at the front (which holds the turn).
    pub fn waiting(&self) -> usize {
        self.line().waiting()
    }

    fn line(&self) -> &Fifo<M, N> {
        &self.bulkhead.listener().line
    }

    /// A slot, waiting in line for it until `deadline` at the latest.
    pub fn acquire(
        &self,
        deadline: Deadline,
    ) -> impl Future<Output = Result<QueuedPermit<'_, M, N>, BulkheadFull>> {
        Acquire {
            queue: self,
            deadline,
            place: Place::NEW,
        }
    }
}

/// The future of [`BulkheadQueue::acquire`]: a few words, polled in place. Dropped before
/// it is ready, it leaves the line.
struct Acquire<'a, M: RawMutex, const N: usize> {
    queue: &'a BulkheadQueue<M, N>,
    deadline: Deadline,
    place: Place,
}

impl<'a, M: RawMutex, const N: usize> Future for Acquire<'a, M, N> {
    type Output = Result<QueuedPermit<'a, M, N>, BulkheadFull>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let q = this.queue;
        let turn = q.line().poll_turn(&mut this.place, cx);
        // The line holds the front task's waker from before it tries, so that a release
        // between the two is not missed.
        let permit = if turn == Turn::Front {
            q.bulkhead.try_acquire().ok()
        } else {
            None
        };
        if permit.is_none()
            && turn != Turn::Full
            && N != 0
            && !this.deadline.is_expired(EmbassyClock.now())
        {
            wake_at(this.deadline.instant(), cx);
            return Poll::Pending;
        }
        q.line().leave(&mut this.place);
        // Refused (the queue full, the deadline passed, or no room to wait): the usage now.
        Poll::Ready(permit.ok_or_else(|| {
            let full = q.bulkhead.full();
            event!(debug, "bulkhead: refused, {}", full);
            full
        }))
    }
}

impl<M: RawMutex, const N: usize> Drop for Acquire<'_, M, N> {
    fn drop(&mut self) {
        self.queue.line().leave(&mut self.place);
    }
}
