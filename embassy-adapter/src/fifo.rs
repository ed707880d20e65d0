//! [`Fifo`]: a first-come, first-served turn with a bounded queue, shared by the waiting
//! runners ([`RateLimitQueue`](crate::RateLimitQueue), [`BulkheadQueue`](crate::BulkheadQueue)).
//!
//! Every waiter takes a place in line, in arrival order; the one at the front holds the
//! turn (it is the one that waits on the limiter or the bulkhead), the others wait behind
//! it. At most `N` tasks wait, the front one included; with `N = 0` there is no line:
//! every task tries at once and no one ever waits. A waiter whose future is dropped
//! leaves at once, wherever it stands: the ones behind move up, its place is free for the
//! next arrival, and if it was at the front the turn passes on, so cancellation never
//! strands the tasks behind it.
//!
//! The runners' futures are written by hand around [`Fifo::poll_turn`] and
//! [`Fifo::leave`]: a few words each, polled where they lie (nothing is moved into a
//! combinator); they wake their task at an instant through [`wake_at`].
//!
//! Cost: `N` waker slots, `N` words for the order and two more, behind one blocking mutex
//! of kind `M`; entering and leaving is one short critical section each.

use core::cell::Cell;
use core::task::{Context, Waker};

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use stanchion::Instant;

use crate::EmbassyClock;

/// What [`Fifo::poll_turn`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The waiter holds the turn.
    Front,
    /// The waiter waits in line.
    Queued,
    /// `N` tasks wait already: no room.
    Full,
}

/// Where a waiter stands: not in line yet, done, or in line in the slot of this index
/// (a waiter's slot never changes while it is in line; its place in the order does).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place(usize);

impl Place {
    /// Not polled yet.
    pub(crate) const NEW: Place = Place(usize::MAX);
    /// Out of line for good: finished, or refused.
    pub(crate) const DONE: Place = Place(usize::MAX - 1);
}

/// The line's state, in cells: the blocking mutex gives shared access only, and cells
/// need no borrow flag (nor a panic path) where a `RefCell` would.
struct State<const N: usize> {
    /// Whether the front waiter has taken the turn (it is woken to take it).
    held: Cell<bool>,
    /// Waiters in line.
    len: Cell<usize>,
    /// Every slot once: first those of the waiters in line, in arrival order, the front
    /// one first (`len` of them), then the free ones. A waiter that leaves is taken out
    /// at once, closing the gap, and its slot goes to the free ones, for the next
    /// arrival.
    order: [Cell<usize>; N],
    /// The waker of each waiter's last poll, by slot.
    slots: [Cell<Option<Waker>>; N],
}

impl<const N: usize> State<N> {
    /// The slot of the front waiter, if any.
    fn front(&self) -> Option<usize> {
        if self.len.get() > 0 {
            self.order.first().map(Cell::get)
        } else {
            None
        }
    }

    /// Wakes the front waiter, if any.
    fn wake_front(&self) {
        if let Some(slot) = self.front().and_then(|i| self.slots.get(i)) {
            let waker = slot.take();
            if let Some(waker) = &waker {
                waker.wake_by_ref();
            }
            slot.set(waker);
        }
    }
}

/// A first-come, first-served turn, with at most `N` tasks waiting (the front one
/// included).
pub(crate) struct Fifo<M: RawMutex, const N: usize> {
    state: Mutex<M, State<N>>,
}

impl<M: RawMutex, const N: usize> Fifo<M, N> {
    pub(crate) const fn new() -> Self {
        Fifo {
            state: Mutex::new(State {
                held: Cell::new(false),
                len: Cell::new(0),
                order: {
                    let mut order = [const { Cell::new(0) }; N];
                    let mut i = 0;
                    while i < N {
                        order[i] = Cell::new(i);
                        i += 1;
                    }
                    order
                },
                slots: [const { Cell::new(None) }; N],
            }),
        }
    }

    /// Tasks waiting for the turn (not counting the one that holds it).
    pub(crate) fn waiting(&self) -> usize {
        self.state
            .lock(|s| s.len.get().saturating_sub(usize::from(s.held.get())))
    }

    /// Moves a waiter at `place` towards the turn: [`Turn::Front`] once it holds it (at
    /// once if no one waits, otherwise after everyone who came before; its task is woken
    /// when the turn passes to it); [`Turn::Full`] if `N` tasks wait already. With
    /// `N = 0`, always [`Turn::Front`], out of line.
    #[inline(never)]
    pub(crate) fn poll_turn(&self, place: &mut Place, cx: &mut Context<'_>) -> Turn {
        if N == 0 {
            *place = Place::DONE;
            return Turn::Front;
        }
        self.state.lock(|s| {
            let i = match *place {
                Place::DONE => return Turn::Full,
                Place::NEW => {
                    // The first free slot: there is one unless `N` wait.
                    let len = s.len.get();
                    let Some(i) = s.order.get(len).map(Cell::get) else {
                        return Turn::Full;
                    };
                    s.len.set(len + 1);
                    *place = Place(i);
                    i
                }
                Place(i) => i,
            };
            if let Some(slot) = s.slots.get(i) {
                let waker = match slot.take() {
                    Some(waker) if waker.will_wake(cx.waker()) => waker,
                    _ => cx.waker().clone(),
                };
                slot.set(Some(waker));
            }
            if s.front() == Some(i) {
                s.held.set(true);
                Turn::Front
            } else {
                Turn::Queued
            }
        })
    }

    /// Leaves from `place`: takes the waiter out of line and, from the front, gives the
    /// turn to the next one.
    pub(crate) fn leave(&self, place: &mut Place) {
        let Place(i) = core::mem::replace(place, Place::DONE);
        if i >= N {
            return;
        }
        self.state.lock(|s| {
            if let Some(slot) = s.slots.get(i) {
                slot.set(None);
            }
            let len = s.len.get();
            let Some(order) = s.order.get(..len) else {
                return;
            };
            let Some(at) = order.iter().position(|o| o.get() == i) else {
                return;
            };
            // The ones behind move one place up; the slot goes first among the free.
            for k in at + 1..order.len() {
                order[k - 1].set(order[k].get());
            }
            if let Some(last) = order.last() {
                last.set(i);
            }
            s.len.set(len - 1);
            if at == 0 {
                s.held.set(false);
                s.wake_front();
            }
        });
    }

    /// Wakes the waiter at the front, if any: what it waits for may have come.
    pub(crate) fn wake_front(&self) {
        self.state.lock(State::wake_front);
    }
}

/// Wakes the task at `at` (rounded up to the next tick), or never for [`Instant::MAX`]
/// (the instant of [`Deadline::NEVER`](stanchion::Deadline::NEVER)). Out of line: the one
/// place where both runners convert an instant to ticks and schedule a wake-up.
#[inline(never)]
pub(crate) fn wake_at(at: Instant, cx: &mut Context<'_>) {
    if at != Instant::MAX {
        embassy_time_driver::schedule_wake(EmbassyClock::instant_to_ticks(at), cx.waker());
    }
}
