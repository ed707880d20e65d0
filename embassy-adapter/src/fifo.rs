//! [`Fifo`]: a first-come, first-served turn with a bounded queue, shared by the waiting
//! runners ([`RateLimitQueue`](crate::RateLimitQueue), [`BulkheadQueue`](crate::BulkheadQueue)).
//!
//! Every waiter takes a slot of a ring, in arrival order; the one in the front slot holds
//! the turn (it is the one that waits on the limiter or the bulkhead), the others wait
//! behind it. At most `N` tasks wait, the front one included; with `N = 0` there is no
//! line: every task tries at once and no one ever waits.
//! A waiter whose future is dropped leaves its place (and, if it was at the front, passes
//! the turn on), so cancellation never strands the tasks behind it.
//!
//! The runners' futures are written by hand around [`Fifo::poll_turn`] and
//! [`Fifo::leave`]: a few words each, polled where they lie (nothing is moved into a
//! combinator); they wake their task at an instant through [`wake_at`].
//!
//! Cost: `N` waker slots and three words, behind one blocking mutex of kind `M`; entering
//! and leaving is one short critical section each.

use core::cell::RefCell;
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

/// Where a waiter stands: not in line yet, done, or the index of its slot (a queued
/// waiter's slot never moves until it leaves).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place(usize);

impl Place {
    /// Not polled yet.
    pub(crate) const NEW: Place = Place(usize::MAX);
    /// Out of line for good: finished, or refused.
    pub(crate) const DONE: Place = Place(usize::MAX - 1);
}

struct State<const N: usize> {
    /// Whether the front waiter has taken the turn (it is woken to take it).
    held: bool,
    /// Index of the front slot in `slots`.
    start: usize,
    /// Slots in line from `start` on, counting those of waiters that left but are not yet
    /// skipped.
    len: usize,
    /// The waiters' wakers; `None` for a waiter that left (skipped when it reaches the
    /// front) and outside the line.
    slots: [Option<Waker>; N],
}

impl<const N: usize> State<N> {
    fn index(&self, offset: usize) -> usize {
        self.start.wrapping_add(offset).checked_rem(N).unwrap_or(0)
    }

    /// Wakes the front waiter, if any.
    fn wake_front(&self) {
        if self.len > 0
            && let Some(Some(waker)) = self.slots.get(self.start)
        {
            waker.wake_by_ref();
        }
    }
}

/// A first-come, first-served turn, with at most `N` tasks waiting (the front one
/// included).
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

    /// Tasks waiting for the turn (not counting the one that holds it).
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock(|s| {
            let s = s.borrow();
            s.len.saturating_sub(usize::from(s.held))
        })
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
            let mut s = s.borrow_mut();
            let i = match *place {
                Place::DONE => return Turn::Full,
                Place::NEW if s.len >= N => return Turn::Full,
                Place::NEW => {
                    let i = s.index(s.len);
                    s.len += 1;
                    *place = Place(i);
                    i
                }
                Place(i) => i,
            };
            if let Some(slot) = s.slots.get_mut(i) {
                match slot {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
            }
            if i == s.start {
                s.held = true;
                Turn::Front
            } else {
                Turn::Queued
            }
        })
    }

    /// Leaves from `place`: frees its slot and, from the front, gives the turn to the next
    /// waiter.
    pub(crate) fn leave(&self, place: &mut Place) {
        let Place(i) = core::mem::replace(place, Place::DONE);
        if i >= N {
            return;
        }
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            if let Some(slot) = s.slots.get_mut(i) {
                *slot = None;
            }
            if i == s.start {
                s.held = false;
                // Skips the front slot and those of waiters that left behind it.
                while s.len > 0 && matches!(s.slots.get(s.start), Some(None)) {
                    s.start = s.index(1);
                    s.len -= 1;
                }
                s.wake_front();
            }
        });
    }

    /// Wakes the waiter at the front, if any: what it waits for may have come.
    pub(crate) fn wake_front(&self) {
        self.state.lock(|s| s.borrow().wake_front());
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
