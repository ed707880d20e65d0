//! Hedging on embassy: core's [`Hedge`] decides when another attempt of a call starts;
//! [`call`] runs up to `N` attempts side by side on embassy's timer, in a fixed array
//! inside the call's own future (no allocation; [`InFlight`] says how many), and answers
//! with the first `Ok`, dropping the others.
//!
//! Only for idempotent operations: reading a sensor over a bus that sometimes stalls,
//! asking two replicas of a service over a link. What wins, and how the budget bounds
//! the extra load: see [`stanchion::hedge`]. In short: the first acceptable answer wins
//! ([`call_if`] takes the classifier) and the attempts still running are dropped at once;
//! an unacceptable answer is held while another attempt runs, and is the answer (the
//! last of them) once all have failed.
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::time::Duration;
//! use stanchion::hedge::{Hedge, HedgeConfig};
//! use stanchion::retry::NoBudget;
//! use stanchion_embassy::hedge;
//!
//! // Hedge after 10 ms; at most 2 attempts (room for 2 in the call's future).
//! let config = HedgeConfig::fixed(Duration::from_millis(10), 2).unwrap();
//! let h: Hedge<_, 0> = Hedge::new(config, NoBudget).unwrap(); // a fixed delay needs no histogram
//! let mut attempt = 0;
//! let answer = doc_block_on(hedge::call(&h, hedge::InFlight::<2>, || {
//!     attempt += 1;
//!     // The first attempt stalls for a second; the hedge answers in 5 ms.
//!     let ms = if attempt == 1 { 1_000 } else { 5 };
//!     async move {
//!         embassy_time::Timer::after_millis(ms).await;
//!         Ok::<_, ()>(attempt)
//!     }
//! }));
//! assert_eq!(answer, Ok(2));
//! assert_eq!(embassy_time::Instant::now().as_millis(), 15);
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
//! Cost: the call's future holds `N` attempts' futures (`N` times the size of one) and a
//! timer; at most `min(N, max_attempts)` attempts start. Two clock reads per call, the
//! histogram's walk at the start (a learned delay) and its record at the answer.

use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::task::Poll;

use embassy_time::Timer;
use stanchion::Clock;
use stanchion::hedge::Hedge;
use stanchion::retry::RetryBudget;

use crate::EmbassyClock;
use crate::events::event;
use crate::sleep::sleep_until;

/// Room for `N` attempts in a call's future: the most a call of [`call`] or [`call_if`]
/// runs at once (and no more than the configuration's `max_attempts`). Each slot holds
/// one attempt's future, so a call's future is about `N` times an attempt's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InFlight<const N: usize>;

/// Runs `op` (each call of it makes one attempt) hedged by `hedge`, with up to `N`
/// attempts at once ([`InFlight`]); the first `Ok` wins. With `N` of 0 or 1, `op` runs
/// once, unhedged.
pub async fn call<T, E, F, Fut, Bu, const B: usize, const N: usize>(
    hedge: &Hedge<Bu, B>,
    in_flight: InFlight<N>,
    op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    Bu: RetryBudget,
{
    call_if(hedge, in_flight, op, Result::is_ok).await
}

/// Runs `op` hedged by `hedge`, with up to `N` attempts at once; the first answer that
/// `acceptable` accepts wins.
pub async fn call_if<F, Fut, C, Bu, const B: usize, const N: usize>(
    hedge: &Hedge<Bu, B>,
    _in_flight: InFlight<N>,
    mut op: F,
    mut acceptable: C,
) -> Fut::Output
where
    F: FnMut() -> Fut,
    Fut: Future,
    C: FnMut(&Fut::Output) -> bool,
    Bu: RetryBudget,
{
    let mut call = hedge.start_at(EmbassyClock.now());
    if N <= 1 {
        let out = op().await;
        if acceptable(&out) {
            let now = EmbassyClock.now();
            hedge.record_latency_at(&call, now);
            hedge.record_success_at(now);
        }
        return out;
    }
    let mut slots = pin!(core::array::from_fn::<Option<Fut>, N, _>(|_| None));
    slot(slots.as_mut(), 0).set(Some(op()));
    let mut started = 1usize;
    let mut last = None;
    let mut timer: Option<Timer> = None;
    let mut done = false;
    poll_fn(|cx| {
        if done {
            return Poll::Pending; // answered already: start nothing more
        }
        // Attempts first, then the timer; a hedge it starts is polled on the next turn
        // (at most one turn per attempt).
        for _ in 0..=N {
            let mut answer = None;
            let mut first_won = false;
            for i in 0..started {
                let mut s = slot(slots.as_mut(), i);
                let Some(attempt) = s.as_mut().as_pin_mut() else {
                    continue;
                };
                if let Poll::Ready(out) = attempt.poll(cx) {
                    s.set(None);
                    if acceptable(&out) {
                        first_won = i == 0;
                        answer = Some(out);
                        break;
                    }
                    last = Some(out);
                }
            }
            if let Some(out) = answer {
                let now = EmbassyClock.now();
                if first_won || slot(slots.as_mut(), 0).is_some() {
                    // When a hedge won, the first attempt ran at least this long.
                    hedge.record_latency_at(&call, now);
                }
                hedge.record_success_at(now);
                // Cancel the losers now.
                for i in 0..N {
                    slot(slots.as_mut(), i).set(None);
                }
                done = true;
                return Poll::Ready(out);
            }
            // A hedge due by now starts, even if this poll comes late (after every
            // attempt so far failed, say): it would have started on time.
            if started < N {
                if let Some(at) = call.next_hedge_at() {
                    let now = EmbassyClock.now();
                    let due = now >= at || {
                        let t = timer.get_or_insert_with(|| sleep_until(at));
                        Pin::new(t).poll(cx).is_ready()
                    };
                    if due {
                        timer = None;
                        if hedge.try_hedge_at(&mut call, EmbassyClock.now()) {
                            event!(debug, "hedge: started attempt {}", call.attempts());
                            slot(slots.as_mut(), started).set(Some(op()));
                            started = started.saturating_add(1);
                            continue; // poll it
                        }
                        continue; // refused: no more hedges; see what is running
                    }
                }
            }
            let running = (0..started).any(|i| slot(slots.as_mut(), i).is_some());
            return match last.take() {
                Some(out) if !running => {
                    done = true;
                    Poll::Ready(out)
                }
                kept => {
                    last = kept;
                    Poll::Pending // waiting for an attempt or the timer
                }
            };
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// The `i`th slot of a pinned array of attempts, pinned (the last slot if `i` is past
/// the end, which the caller never asks for).
#[allow(unsafe_code)]
fn slot<Fut, const N: usize>(slots: Pin<&mut [Option<Fut>; N]>, i: usize) -> Pin<&mut Option<Fut>> {
    let i = i.min(N.saturating_sub(1));
    // SAFETY: the array is pinned, and its elements are treated as structurally pinned:
    // this module never moves an element out of the array, never swaps two and never
    // moves the array; it replaces an element only in place, through `Pin::set` (which
    // drops the old value where it lies), and polls it only through the `Pin` returned
    // here. `N >= 2` where this is called, so `i < N` and the index is in bounds.
    unsafe { slots.map_unchecked_mut(|s| &mut s[i]) }
}
