//! [`BulkheadQueue`]: wait for a slot of a core [`Bulkhead`], first come first served,
//! with a bounded line and a bounded wait.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use stanchion::bulkhead::{
    Bulkhead, BulkheadFull, BulkheadListener, BulkheadPermit, NoBulkheadListener,
};
use stanchion::{Clock, ConfigError, Deadline};
use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use crate::TokioClock;
use crate::events::event;
use crate::line::Place;

/// The listener a [`BulkheadQueue`] gives its bulkhead: it wakes the head of the line
/// when a slot may have freed (a release, or a higher maximum), and passes every event on
/// to `L`.
#[derive(Debug, Default)]
pub struct WakeOnRelease<L = NoBulkheadListener> {
    inner: L,
    freed: Notify,
}

impl<L> WakeOnRelease<L> {
    /// The listener events are passed on to.
    pub fn inner(&self) -> &L {
        &self.inner
    }
}

impl<L: BulkheadListener> BulkheadListener for WakeOnRelease<L> {
    #[inline]
    fn on_acquired(&self, in_use: u32) {
        self.inner.on_acquired(in_use);
    }

    /// Passed on. The queue's own tries do not report (see [`BulkheadQueue`]): a caller
    /// that finds the bulkhead full waits in line, and is reported refused only if it
    /// leaves the line without a slot.
    #[inline]
    fn on_rejected(&self, full: BulkheadFull) {
        self.inner.on_rejected(full);
    }

    #[inline]
    fn on_released(&self, in_use: u32) {
        self.inner.on_released(in_use);
        self.freed.notify_one();
    }

    #[inline]
    fn on_max_changed(&self, old: u32, new: u32) {
        self.inner.on_max_changed(old, new);
        if new > old {
            self.freed.notify_one();
        }
    }
}

/// A permit of a [`BulkheadQueue`]'s bulkhead: the slot is given back when it drops.
pub type QueuedPermit<'a, L = NoBulkheadListener> =
    BulkheadPermit<&'a Bulkhead<WakeOnRelease<L>>, WakeOnRelease<L>>;

/// A core [`Bulkhead`] with a FIFO line of callers waiting for a slot.
///
/// # What it does
///
/// [`acquire(deadline)`](BulkheadQueue::acquire) returns a permit (the slot is given
/// back when it drops), waiting if the bulkhead is full, as core's bulkhead docs
/// ("Waiting") prescribe:
///
/// 1. A newcomer tries the bulkhead only when nobody waits, so it never overtakes a
///    waiter; otherwise it joins the line, unless `max_waiting` callers already wait (it
///    is then refused at once with [`BulkheadFull`]).
/// 2. Only the head of the line waits on the bulkhead: the bulkhead's listener
///    ([`WakeOnRelease`]) wakes it on every release and on every rise of the maximum;
///    it tries again and, if another thread took the slot first, stays at the head.
/// 3. A waiter whose future is dropped leaves the line; if it was the head, the next
///    waiter becomes the head and tries at once.
/// 4. A waiter whose deadline passes is refused with [`BulkheadFull`] (the count in use
///    at that moment).
/// 5. The listener hears of a refusal (`on_rejected`) once per caller refused, when it is
///    refused (the line full, or its wait over): not each time a caller that goes on
///    waiting finds the bulkhead full. A `try_acquire` on [`bulkhead`](Self::bulkhead)
///    outside the queue is reported as core's bulkhead reports it.
///
/// # When to choose it
///
/// When a call that finds the bulkhead full should wait a little for a slot (a short
/// burst above the limit) instead of failing at once; bound the line and the wait so
/// that waiting never becomes the outage. With `max_waiting = 0` it is core's bulkhead,
/// refusing at once.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use stanchion::{Clock, Deadline};
/// use stanchion_std::{BulkheadQueue, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = TokioClock::starting_now();
/// let pool = BulkheadQueue::new(1, 8, clock)?; // 1 at a time, up to 8 waiting
/// let first = pool.acquire(Deadline::NEVER).await?;
/// let soon = Deadline::after(clock.now(), Duration::from_secs(1));
/// let refused = pool.acquire(soon).await.unwrap_err(); // waits 1 s, then gives up
/// assert_eq!((refused.in_use(), clock.now().as_secs()), (1, 1));
/// drop(first);
/// assert!(pool.acquire(Deadline::NEVER).await.is_ok());
/// # Ok(())
/// # }
/// ```
///
/// # Cost
///
/// A granted call with nobody waiting: one atomic load and the bulkhead's
/// compare-and-swap; a release adds one `Notify::notify_one` (one atomic operation when
/// nobody waits).
/// Waiting uses tokio's semaphore and `Notify` (intrusive lists) and timer: no
/// allocation. Memory: the bulkhead (8 bytes plus the listener) and about 80 bytes.
///
/// # Where it comes from
///
/// resilience4j's `SemaphoreBulkhead` with `maxWaitDuration`, and tower's
/// `ConcurrencyLimit` (a fair tokio semaphore); the line discipline is the one core's
/// bulkhead docs prescribe for adapters.
#[derive(Debug)]
pub struct BulkheadQueue<L: BulkheadListener = NoBulkheadListener> {
    bulkhead: Bulkhead<WakeOnRelease<L>>,
    pub(crate) clock: TokioClock,
    head: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl BulkheadQueue<NoBulkheadListener> {
    /// A bulkhead of `max_concurrent` slots with a line of at most `max_waiting` callers
    /// (`0`: never wait), deadlines read on `clock`.
    ///
    /// # Errors
    ///
    /// `max_concurrent` of 0.
    pub fn new(
        max_concurrent: u32,
        max_waiting: usize,
        clock: TokioClock,
    ) -> Result<Self, ConfigError> {
        BulkheadQueue::with_listener(max_concurrent, max_waiting, NoBulkheadListener, clock)
    }
}

impl<L: BulkheadListener> BulkheadQueue<L> {
    /// [`new`](BulkheadQueue::new), passing the bulkhead's events on to `listener` (a
    /// `TracingBulkheadListener` with feature `tracing`, or metrics of your own).
    ///
    /// # Errors
    ///
    /// `max_concurrent` of 0.
    pub fn with_listener(
        max_concurrent: u32,
        max_waiting: usize,
        listener: L,
        clock: TokioClock,
    ) -> Result<Self, ConfigError> {
        let wake = WakeOnRelease {
            inner: listener,
            freed: Notify::const_new(),
        };
        Ok(BulkheadQueue {
            bulkhead: Bulkhead::with_listener(max_concurrent, wake)?,
            clock,
            head: Semaphore::const_new(1),
            waiting: AtomicUsize::new(0),
            max_waiting,
        })
    }

    /// The bulkhead (for its metrics, or to change its maximum).
    pub fn bulkhead(&self) -> &Bulkhead<WakeOnRelease<L>> {
        &self.bulkhead
    }

    /// Callers waiting now (the head included).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// The most callers that may wait at once.
    pub fn max_waiting(&self) -> usize {
        self.max_waiting
    }

    /// A slot, waiting in line until one frees or `deadline` passes. See the
    /// [type docs](BulkheadQueue) for the rules.
    pub async fn acquire(&self, deadline: Deadline) -> Result<QueuedPermit<'_, L>, BulkheadFull> {
        self.acquire_noting_wait(deadline)
            .await
            .map(|(permit, _)| permit)
    }

    /// [`acquire`](Self::acquire), also saying whether the caller waited (so that the
    /// pipeline knows whether time may have passed).
    pub(crate) async fn acquire_noting_wait(
        &self,
        deadline: Deadline,
    ) -> Result<(QueuedPermit<'_, L>, bool), BulkheadFull> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            // Nobody waits: the fast path, no queue operation at all.
            if let Ok(permit) = self.bulkhead.try_acquire_unreported() {
                return Ok((permit, false));
            }
        }
        self.wait(deadline).await.map(|permit| (permit, true))
    }

    /// The slow path: join the line and wait for a slot.
    async fn wait(&self, deadline: Deadline) -> Result<QueuedPermit<'_, L>, BulkheadFull> {
        let (_head, _place) = match self.head.try_acquire() {
            Ok(head) => match self.bulkhead.try_acquire_unreported() {
                // Nobody waits and a slot is free: the fast path.
                Ok(permit) => return Ok(permit),
                Err(full) => match Place::join(&self.waiting, self.max_waiting) {
                    Some(place) => (head, place),
                    None => return Err(self.report(full)),
                },
            },
            Err(_) => {
                let Some(place) = Place::join(&self.waiting, self.max_waiting) else {
                    return Err(self.refuse());
                };
                match self.wait_for_head(deadline).await {
                    Some(head) => (head, place),
                    None => return Err(self.refuse()),
                }
            }
        };
        // At the head: wait for a release, checking after registering for the wake-up
        // so that none is missed.
        loop {
            let mut freed = pin!(self.bulkhead.listener().freed.notified());
            freed.as_mut().enable();
            if let Ok(permit) = self.bulkhead.try_acquire_unreported() {
                return Ok(permit);
            }
            if deadline.is_never() {
                freed.await;
                continue;
            }
            if deadline.is_expired(self.clock.now()) {
                return Err(self.refuse());
            }
            let woken =
                tokio::time::timeout_at(self.clock.to_tokio(deadline.instant()), freed).await;
            if woken.is_err() {
                return Err(self.refuse());
            }
        }
    }

    /// Waits to become the head, until `deadline`; `None` if it passed first.
    async fn wait_for_head(&self, deadline: Deadline) -> Option<SemaphorePermit<'_>> {
        if deadline.is_never() {
            return self.head.acquire().await.ok();
        }
        if deadline.is_expired(self.clock.now()) {
            return None;
        }
        tokio::time::timeout_at(self.clock.to_tokio(deadline.instant()), self.head.acquire())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// The refusal of a caller that could not wait: the bulkhead's counts now.
    fn refuse(&self) -> BulkheadFull {
        self.report(self.bulkhead.full())
    }

    /// Reports a caller's refusal to the listener, and as a `tracing` event.
    fn report(&self, full: BulkheadFull) -> BulkheadFull {
        self.bulkhead.listener().inner.on_rejected(full);
        event!(
            debug,
            in_use = full.in_use(),
            max_concurrent = full.max_concurrent(),
            "bulkhead full: no place or no time left in the line"
        );
        full
    }
}
