//! [`Fifo`]: a first-come, first-served turn with a bounded queue, shared by the waiting
//! runners ([`RateLimitQueue`](crate::RateLimitQueue), [`BulkheadQueue`](crate::BulkheadQueue)).
//!
//! One task at a time holds the turn (it is the one that waits on the limiter or the
//! bulkhead); the others wait in arrival order behind it, each with a ticket. At most `N`
//! tasks wait, the holder included; a task can always take a free turn to *try*, so with
//! `N = 0` no one ever waits.
//! A waiter whose future is dropped leaves its place (and, if the turn was passing to it,
//! passes it on), so cancellation never strands the tasks behind it.
//!
//! Cost: `N` waker slots and three words, behind one blocking mutex of kind `M`; entering
//! and leaving is one short critical section each.

use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;

/// `N` tasks were waiting already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueFull;

enum Slot {
    /// A waiter, with the waker of its last poll.
    Waiting(Waker),
    /// A waiter that left (its future was dropped); skipped when it reaches the front.
    Left,
}

struct State<const N: usize> {
    /// Whether a task holds the turn.
    held: bool,
    /// The ticket of the front slot.
    head: u32,
    /// Index of the front slot in `slots`.
    start: usize,
    /// Waiters queued, counting those that left but are not yet skipped.
    len: usize,
    slots: [Option<Slot>; N],
}

impl<const N: usize> State<N> {
    fn index(&self, offset: usize) -> Option<usize> {
        self.start.checked_add(offset)?.checked_rem(N)
    }

    fn front(&self) -> Option<&Slot> {
        if self.len == 0 {
            return None;
        }
        self.slots.get(self.index(0)?)?.as_ref()
    }

    fn pop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        if let Some(slot) = self.index(0).and_then(|i| self.slots.get_mut(i)) {
            *slot = None;
        }
        self.start = self.index(1).unwrap_or(0);
        self.len -= 1;
        self.head = self.head.wrapping_add(1);
    }

    /// Skips the waiters that left, then wakes the front one if the turn is free.
    fn settle(&mut self) {
        while let Some(Slot::Left) = self.front() {
            self.pop_front();
        }
        if !self.held
            && let Some(Slot::Waiting(waker)) = self.front()
        {
            waker.wake_by_ref();
        }
    }

    fn slot_of(&mut self, ticket: u32) -> Option<&mut Option<Slot>> {
        let offset = ticket.wrapping_sub(self.head) as usize;
        if offset >= self.len {
            return None;
        }
        let i = self.index(offset)?;
        self.slots.get_mut(i)
    }
}

/// A first-come, first-served turn, with at most `N` tasks waiting (its holder included).
pub(crate) struct Fifo<M: RawMutex, const N: usize> {
    state: Mutex<M, RefCell<State<N>>>,
}

impl<M: RawMutex, const N: usize> Fifo<M, N> {
    pub(crate) const fn new() -> Self {
        Fifo {
            state: Mutex::new(RefCell::new(State {
                held: false,
                head: 0,
                start: 0,
                len: 0,
                slots: [const { None }; N],
            })),
        }
    }

    /// Waits for the turn: at once if no one holds it or waits for it, otherwise after
    /// everyone who came before. Fails at once if `N` tasks wait already (the holder
    /// counts).
    pub(crate) fn enter(&self) -> Enter<'_, M, N> {
        Enter {
            fifo: self,
            ticket: None,
        }
    }

    /// Tasks waiting for the turn (not counting its holder).
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock(|s| s.borrow().len)
    }

    fn leave(&self) {
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            s.held = false;
            s.settle();
        });
    }
}

/// The turn: the next waiter gets it when this is dropped.
pub(crate) struct Turn<'a, M: RawMutex, const N: usize> {
    fifo: &'a Fifo<M, N>,
}

impl<M: RawMutex, const N: usize> Drop for Turn<'_, M, N> {
    fn drop(&mut self) {
        self.fifo.leave();
    }
}

/// The future of [`Fifo::enter`]. Dropping it before it is ready gives up its place.
pub(crate) struct Enter<'a, M: RawMutex, const N: usize> {
    fifo: &'a Fifo<M, N>,
    ticket: Option<u32>,
}

impl<'a, M: RawMutex, const N: usize> Future for Enter<'a, M, N> {
    type Output = Result<Turn<'a, M, N>, QueueFull>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let fifo = this.fifo;
        fifo.state.lock(|s| {
            let mut s = s.borrow_mut();
            s.settle();
            match this.ticket {
                None if !s.held && s.len == 0 => {
                    s.held = true;
                    Poll::Ready(Ok(Turn { fifo }))
                }
                None => {
                    // Waiting now: those queued, and the holder (it holds the turn only to
                    // wait at the front).
                    if s.len + usize::from(s.held) >= N {
                        return Poll::Ready(Err(QueueFull));
                    }
                    let ticket = s.head.wrapping_add(s.len as u32);
                    let Some(i) = s.index(s.len) else {
                        return Poll::Ready(Err(QueueFull));
                    };
                    if let Some(slot) = s.slots.get_mut(i) {
                        *slot = Some(Slot::Waiting(cx.waker().clone()));
                    }
                    s.len += 1;
                    this.ticket = Some(ticket);
                    Poll::Pending
                }
                Some(ticket) if !s.held && ticket == s.head => {
                    s.pop_front();
                    s.held = true;
                    this.ticket = None;
                    Poll::Ready(Ok(Turn { fifo }))
                }
                Some(ticket) => {
                    if let Some(Some(Slot::Waiting(waker))) = s.slot_of(ticket)
                        && !waker.will_wake(cx.waker())
                    {
                        *waker = cx.waker().clone();
                    }
                    Poll::Pending
                }
            }
        })
    }
}

impl<M: RawMutex, const N: usize> Drop for Enter<'_, M, N> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.fifo.state.lock(|s| {
                let mut s = s.borrow_mut();
                if let Some(slot) = s.slot_of(ticket) {
                    *slot = Some(Slot::Left);
                }
                s.settle();
            });
        }
    }
}
