//! Hedging over tokio: core's [`Hedge`] decides when another attempt of a call starts
//! (its delay, fixed or learned, its attempts per call, its budget); [`Hedging`] runs the
//! attempts side by side on tokio's timer and answers with the first acceptable one,
//! dropping the others (cancelling them).
//!
//! Only for idempotent calls: see [`stanchion::hedge`] for when to choose it, and what
//! wins. In short: the first answer the classifier accepts (by default `Ok`) wins and the
//! attempts still in flight are dropped at once; an unacceptable answer is held while
//! another attempt is in flight, and is the call's answer (the last of them) once every
//! attempt started has failed. The first attempt's latency (or, when a hedge won, the
//! time it had run when it was dropped) teaches a learned delay.
//!
//! ```
//! use std::time::Duration;
//! use stanchion::hedge::{Hedge, HedgeConfig};
//! use stanchion::retry::NoBudget;
//! use stanchion_std::hedge::Hedging;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), stanchion::ConfigError> {
//! // Hedge after 10 ms, at most 2 attempts per call.
//! let hedge: Hedge<_> = Hedge::new(HedgeConfig::fixed(Duration::from_millis(10), 2)?, NoBudget)?;
//! let hedging = Hedging::new(hedge);
//! let start = tokio::time::Instant::now();
//! let mut attempt = 0;
//! let answer = hedging
//!     .call(|| {
//!         attempt += 1;
//!         // The first attempt is stuck for a second; the hedge answers in 5 ms.
//!         let latency = if attempt == 1 { 1_000 } else { 5 };
//!         async move {
//!             tokio::time::sleep(Duration::from_millis(latency)).await;
//!             Ok::<_, ()>(attempt)
//!         }
//!     })
//!     .await;
//! assert_eq!(answer, Ok(2));
//! assert_eq!(start.elapsed(), Duration::from_millis(15)); // 10 ms delay + 5 ms
//! # Ok(())
//! # }
//! ```
//!
//! Cost: a call that answers before its hedge is due allocates nothing; it reads the
//! clock at the start and at the answer, reads the histogram once (a learned delay) and
//! arms one tokio timer (when a hedge may come). Each hedge is one boxed future in a
//! `Vec`. With feature `tower`, the same runner is `tower::HedgeLayer`.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use stanchion::Clock;
use stanchion::hedge::{DEFAULT_BUCKETS, Hedge, HedgeCall};
use stanchion::retry::RetryBudget;
use tokio::time::Sleep;

use crate::TokioClock;
use crate::events::event;

/// Core's [`Hedge`] with the clock its decisions read: what a service shares (through an
/// `Arc` for the tower layer) between the calls to one dependency. See the
/// [module docs](self).
#[derive(Debug)]
pub struct Hedging<Bu, const B: usize = DEFAULT_BUCKETS> {
    hedge: Hedge<Bu, B>,
    clock: TokioClock,
}

impl<Bu: RetryBudget, const B: usize> Hedging<Bu, B> {
    /// Runs `hedge`'s decisions on [`TokioClock::new`], the process-wide tokio clock.
    pub fn new(hedge: Hedge<Bu, B>) -> Self {
        Hedging::with_clock(hedge, TokioClock::new())
    }

    /// Runs `hedge`'s decisions on `clock` (the one its budget's instants come from).
    pub fn with_clock(hedge: Hedge<Bu, B>, clock: TokioClock) -> Self {
        Hedging { hedge, clock }
    }

    /// The decision: its configuration, current delay, histogram and budget.
    pub fn hedge(&self) -> &Hedge<Bu, B> {
        &self.hedge
    }

    /// Runs `op` (which makes one attempt each time it is called) and hedges it; the
    /// first `Ok` wins. See the [module docs](self).
    pub fn call<A, T, E>(&self, op: A) -> Hedged<&Self, A, A::Future, IsOk<T, E>>
    where
        A: Attempts,
        A::Future: Future<Output = Result<T, E>>,
    {
        Hedged::new(self, op, Result::is_ok)
    }

    /// Runs `op` and hedges it; the first answer that `acceptable` accepts wins.
    pub fn call_if<A, C>(&self, op: A, acceptable: C) -> Hedged<&Self, A, A::Future, C>
    where
        A: Attempts,
        C: FnMut(&<A::Future as Future>::Output) -> bool,
    {
        Hedged::new(self, op, acceptable)
    }
}

/// The classifier of [`Hedging::call`]: an `Ok` is acceptable.
pub type IsOk<T, E> = fn(&Result<T, E>) -> bool;

/// What makes the attempts of one hedged call: each [`start`](Attempts::start) returns
/// a new attempt's future. Implemented for every `FnMut() -> impl Future`; the tower
/// layer implements it to clone the request and the service.
pub trait Attempts {
    /// One attempt.
    type Future: Future;

    /// Starts an attempt (the future runs when polled).
    fn start(&mut self) -> Self::Future;
}

impl<F, Fut> Attempts for F
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    type Future = Fut;

    #[inline]
    fn start(&mut self) -> Fut {
        self()
    }
}

pin_project! {
    /// A hedged call: the future of [`Hedging::call`], [`Hedging::call_if`] and the tower
    /// layer. Polls the first attempt inline and each hedge in a box; starts a hedge when
    /// the decision says one is due; answers with the first acceptable answer and drops
    /// the attempts still running, or with the last unacceptable one once all failed.
    ///
    /// Polled again after it answered, it stays pending.
    pub struct Hedged<H, A, Fut, C>
    where
        Fut: Future,
    {
        hedging: H,
        attempts: A,
        acceptable: C,
        call: HedgeCall,
        #[pin]
        first: Option<Fut>,
        hedges: Vec<Option<Pin<Box<Fut>>>>,
        #[pin]
        timer: Option<Sleep>,
        last: Option<Fut::Output>,
        done: bool,
    }
}

impl<H, A, Fut, C> fmt::Debug for Hedged<H, A, Fut, C>
where
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedged")
            .field("call", &self.call)
            .field("first_running", &self.first.is_some())
            .field(
                "hedges_running",
                &self.hedges.iter().filter(|h| h.is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

impl<H, A, C, Bu, const B: usize> Hedged<H, A, A::Future, C>
where
    H: Deref<Target = Hedging<Bu, B>>,
    A: Attempts,
    Bu: RetryBudget,
{
    /// Starts a hedged call of `attempts` on `hedging` (a reference or an `Arc`): its
    /// first attempt is made now (and runs when this future is polled).
    pub fn new(hedging: H, mut attempts: A, acceptable: C) -> Self {
        let call = hedging.hedge.start_at(hedging.clock.now());
        let first = attempts.start();
        Hedged {
            hedging,
            attempts,
            acceptable,
            call,
            first: Some(first),
            hedges: Vec::new(),
            timer: None,
            last: None,
            done: false,
        }
    }
}

impl<H, A, C, Bu, const B: usize> Future for Hedged<H, A, A::Future, C>
where
    H: Deref<Target = Hedging<Bu, B>>,
    A: Attempts,
    Bu: RetryBudget,
    C: FnMut(&<A::Future as Future>::Output) -> bool,
{
    type Output = <A::Future as Future>::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let hedging: &Hedging<Bu, B> = this.hedging;
        if *this.done {
            return Poll::Pending; // answered already: start nothing more
        }
        // Attempts first (a call that answers before its hedge is due never arms the
        // timer), then the timer; a hedge it starts is polled on the next turn. Bounded:
        // one turn per attempt at most, whatever the timer does.
        for _ in 0..=stanchion::hedge::MAX_ATTEMPTS {
            let mut answer = None;
            // Whether the first attempt's latency (or a lower bound) goes into the
            // histogram: it answered acceptably, or it is still running when another wins.
            let mut first_won = false;
            if let Some(first) = this.first.as_mut().as_pin_mut() {
                if let Poll::Ready(out) = first.poll(cx) {
                    this.first.set(None);
                    if (this.acceptable)(&out) {
                        first_won = true;
                        answer = Some(out);
                    } else {
                        *this.last = Some(out);
                    }
                }
            }
            if answer.is_none() {
                for slot in this.hedges.iter_mut() {
                    let Some(hedge) = slot else { continue };
                    if let Poll::Ready(out) = hedge.as_mut().poll(cx) {
                        *slot = None;
                        if (this.acceptable)(&out) {
                            answer = Some(out);
                            break;
                        }
                        *this.last = Some(out);
                    }
                }
            }
            if let Some(out) = answer {
                let now = hedging.clock.now();
                if first_won || this.first.is_some() {
                    // When a hedge won, the first attempt ran at least this long.
                    hedging.hedge.record_latency_at(this.call, now);
                }
                hedging.hedge.record_success_at(now);
                // Cancel the losers now, not when the caller drops this future.
                this.first.set(None);
                this.hedges.clear();
                this.timer.set(None);
                *this.done = true;
                return Poll::Ready(out);
            }
            // The next hedge: arm the timer for it; when it fires, start the hedge (if
            // the budget allows) and go round to poll it. A hedge due by now starts
            // before the call concludes that every attempt failed.
            if this.timer.is_none() {
                if let Some(at) = this.call.next_hedge_at() {
                    this.timer
                        .set(Some(tokio::time::sleep_until(hedging.clock.to_tokio(at))));
                }
            }
            if let Some(timer) = this.timer.as_mut().as_pin_mut() {
                if timer.poll(cx).is_ready() {
                    this.timer.set(None);
                    if hedging.hedge.try_hedge_at(this.call, hedging.clock.now()) {
                        event!(
                            debug,
                            attempts = this.call.attempts(),
                            "hedging: started another attempt"
                        );
                        this.hedges.push(Some(Box::pin(this.attempts.start())));
                    }
                    continue;
                }
            }
            let running = this.first.is_some() || this.hedges.iter().any(Option::is_some);
            if running {
                return Poll::Pending; // an attempt or the timer wakes the task
            }
            // Every attempt failed: the last answer is the call's.
            this.timer.set(None);
            *this.done = true;
            return match this.last.take() {
                Some(out) => Poll::Ready(out),
                None => Poll::Pending,
            };
        }
        // Out of turns (a timer that keeps firing without a hedge due): wait for a wake.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
