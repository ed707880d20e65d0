//! [`Fifo`]: a first-come, first-served turn with a bounded queue, shared by the waiting
//! runners ([`RateLimitQueue`](crate::RateLimitQueue), [`BulkheadQueue`](crate::BulkheadQueue)).
//!
//! One task at a time holds the turn (it is the one that waits on the limiter or the
//! bulkhead); the others wait in arrival order behind it, each in a slot of a ring. At
//! most `N` tasks wait, the holder included; a task can always take a free turn to *try*,
//! so with `N = 0` no one ever waits.
//! A waiter whose future is dropped leaves its place (and, if the turn was passing to it,
//! passes it on), so cancellation never strands the tasks behind it.
//!
//! The runners' futures are written by hand around [`Fifo::poll_turn`] and
//! [`Fifo::leave`]: a few words each, polled where they lie (nothing is moved into a
//! combinator); they wake their task at an instant through [`wake_at`].
//!
//! Cost: `N` waker slots and three words, behind one blocking mutex of kind `M`; entering
//! and leaving is one short critical section each.

use core::cell::RefCell;
use core::task::Context;

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

/// Where a waiter stands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Not polled yet.
    New,
    /// Queued in the slot of this index.
    Queued(usize),
    /// Holding the turn.
    Front,
    /// Finished: the turn (or place) is given back.
    Done,
}

struct State<const N: usize> {
    /// Whether a task holds the turn.
    held: bool,
    /// Index of the front slot in `slots`.
    start: usize,
    /// Waiters queued, counting those that left but are not yet skipped.
    len: usize,
    /// The waiters' wakers, from `start` on, `len` of them; `None` for a waiter that left
    /// (skipped when it reaches the front). A queued waiter's slot never moves, so its
    /// index is its place.
    slots: [Option<core::task::Waker>; N],
}

impl<const N: usize> State<N> {
    fn index(&self, offset: usize) -> usize {
        self.start.wrapping_add(offset).checked_rem(N).unwrap_or(0)
    }

    /// Skips the waiters that left, then wakes the front one if the turn is free. Run
    /// after every change, so the front slot is never one that left.
    fn settle(&mut self) {
        while self.len > 0 {
            let start = self.start;
            match self.slots.get(start) {
                Some(Some(waker)) => {
                    if !self.held {
                        waker.wake_by_ref();
                    }
                    return;
                }
                _ => {
                    self.start = self.index(1);
                    self.len -= 1;
                }
            }
        }
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
                start: 0,
                len: 0,
                slots: [const { None }; N],
            })),
        }
    }

    /// Tasks waiting for the turn (not counting its holder).
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock(|s| s.borrow().len)
    }

    /// Moves a waiter at `place` towards the turn: [`Turn::Front`] once it holds it (at
    /// once if no one holds it or waits for it, otherwise after everyone who came before;
    /// its task is woken when the turn passes to it); [`Turn::Full`] if `N` tasks wait
    /// already (the holder counts).
    pub(crate) fn poll_turn(&self, place: &mut Place, cx: &mut Context<'_>) -> Turn {
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            match *place {
                Place::Front => return Turn::Front,
                Place::Done => return Turn::Full,
                Place::New if !s.held && s.len == 0 => {}
                Place::New => {
                    // Waiting now: those queued, and the holder (it holds the turn only
                    // to wait at the front).
                    if s.len + usize::from(s.held) >= N {
                        return Turn::Full;
                    }
                    let i = s.index(s.len);
                    if let Some(slot) = s.slots.get_mut(i) {
                        *slot = Some(cx.waker().clone());
                    }
                    s.len += 1;
                    *place = Place::Queued(i);
                    return Turn::Queued;
                }
                Place::Queued(i) if !s.held && i == s.start => {
                    s.start = s.index(1);
                    s.len -= 1;
                    if let Some(slot) = s.slots.get_mut(i) {
                        *slot = None;
                    }
                }
                Place::Queued(i) => {
                    if let Some(Some(waker)) = s.slots.get_mut(i)
                        && !waker.will_wake(cx.waker())
                    {
                        *waker = cx.waker().clone();
                    }
                    return Turn::Queued;
                }
            }
            s.held = true;
            *place = Place::Front;
            Turn::Front
        })
    }

    /// Leaves from `place`: gives the turn (or the place in line) to the next waiter.
    pub(crate) fn leave(&self, place: &mut Place) {
        let left = core::mem::replace(place, Place::Done);
        if let Place::Queued(_) | Place::Front = left {
            self.state.lock(|s| {
                let mut s = s.borrow_mut();
                match left {
                    Place::Queued(i) => {
                        if let Some(slot) = s.slots.get_mut(i) {
                            *slot = None;
                        }
                    }
                    _ => s.held = false,
                }
                s.settle();
            });
        }
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
