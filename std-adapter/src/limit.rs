//! [`RateLimitQueue`]: wait for a rate limiter, first come first served, bounded by a
//! deadline; a dropped waiter gives up its place and consumes nothing.

use std::future::{Future, ready};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use stanchion::rate::{Denied, InsufficientCapacity, RateLimitError};
use stanchion::{Clock, Deadline, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::events::event;
use crate::line::Place;
use crate::{Admission, AsyncRateLimiter, TokioClock};

/// A FIFO line of callers waiting for a rate limiter `L` (any [`AsyncRateLimiter`]: core's
/// in-process limiters through [`WithClock`](stanchion::rate::WithClock), or a remote
/// one).
///
/// # What it does
///
/// [`acquire(n, deadline)`](RateLimitQueue::acquire) takes `n` permits, waiting if it
/// must:
///
/// - **FIFO-fair.** Only the caller at the head of the line asks the limiter; the others
///   wait their turn in arrival order. A newcomer asks the limiter directly only when
///   nobody is waiting, so it never overtakes a waiter. The head asks, and when denied
///   sleeps for exactly the limiter's `retry_after`, then asks again.
/// - **Cancel-safe.** Dropping the future (a cancelled request, a `select!` that went
///   the other way, a timeout) leaves the line at once: a waiter behind moves up, and
///   nothing was consumed, since the limiter is only asked for a grant it can give now.
///   (With a remote limiter, a waiter dropped while its request to the store is in
///   flight may have taken permits there; the store decides, not the line.)
/// - **Bounded by a deadline.** When the limiter's `retry_after` would end at or after
///   the deadline, the head is refused at once with that denial (its `retry_after` is the
///   limiter's). A newcomer behind a head that sleeps until at or after its deadline is
///   refused at once too, and a waiter whose deadline passes while in line at its
///   deadline; both with a [`Denied`] whose `retry_after` is the head's remaining wait, a
///   lower bound of their own.
///   [`InsufficientCapacity`] (more than the limiter can ever grant) is refused at once,
///   without waiting.
/// - **Bounded line.** At most [`max_waiting`](RateLimitQueue::with_max_waiting) callers
///   wait (the head included); the next one is refused at once. `0` never waits.
///
/// # When to choose it
///
/// When callers should *wait* for quota rather than be refused: a client pacing its own
/// requests to a downstream's limit, a worker draining a queue at a fixed rate. To shed
/// load instead (a server answering 429 at once), call the limiter directly, or give the
/// line `with_max_waiting(0)`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use stanchion::rate::{Quota, TokenBucket, WithClock};
/// use stanchion::{Clock, Deadline};
/// use stanchion_std::{RateLimitQueue, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = TokioClock::starting_now();
/// let bucket = WithClock::new(TokenBucket::new(Quota::per_second(2)?), clock);
/// let queue = RateLimitQueue::new(bucket, clock);
/// for _ in 0..4 {
///     queue.acquire(1, Deadline::NEVER).await?;
/// }
/// // A burst of 2, then one every 500 ms.
/// assert_eq!(clock.now().as_millis(), 1000);
/// // A wait that would end at or after the deadline is refused at once.
/// let soon = Deadline::after(clock.now(), Duration::from_millis(100));
/// let refused = queue.acquire(1, soon).await.unwrap_err();
/// assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
/// # Ok(())
/// # }
/// ```
///
/// # Cost
///
/// A granted call with nobody waiting: one atomic load and the limiter's decision. Waiting uses tokio's semaphore (an intrusive
/// FIFO list) and timer: no allocation, for the queue or per call. Memory: the limiter
/// plus about 64 bytes.
///
/// # Where it comes from
///
/// The head-of-line discipline is that of governor's `until_ready` made fair: one sleeper
/// at a time on the limiter's exact wait, the rest in a FIFO semaphore queue (tokio's, as
/// tower's `ConcurrencyLimit` uses).
#[derive(Debug)]
pub struct RateLimitQueue<L> {
    limiter: L,
    pub(crate) clock: TokioClock,
    /// One permit: held by the head of the line. Tokio's semaphore is fair, so
    /// `try_acquire` fails while anyone is queued.
    head: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// The instant (nanoseconds on `clock`) the head is sleeping until.
    head_ready_at: AtomicU64,
}

impl<L: AsyncRateLimiter> RateLimitQueue<L> {
    /// A line in front of `limiter`, with deadlines read on `clock`, and no bound on the
    /// number of waiters (each waiter is bounded by its own deadline).
    pub fn new(limiter: L, clock: TokioClock) -> Self {
        RateLimitQueue {
            limiter,
            clock,
            head: Semaphore::const_new(1),
            waiting: AtomicUsize::new(0),
            max_waiting: usize::MAX,
            head_ready_at: AtomicU64::new(0),
        }
    }

    /// The same line, refusing at once when `max_waiting` callers already wait (the head
    /// included). `0`: never wait, refuse with the limiter's denial.
    pub fn with_max_waiting(self, max_waiting: usize) -> Self {
        RateLimitQueue {
            max_waiting,
            ..self
        }
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.limiter
    }

    /// The clock deadlines are read on.
    pub fn clock(&self) -> TokioClock {
        self.clock
    }

    /// Callers waiting now (the head included).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// The most callers that may wait at once.
    pub fn max_waiting(&self) -> usize {
        self.max_waiting
    }

    /// Takes `n` permits, waiting in line until the limiter grants them or `deadline`
    /// makes that impossible. See the [type docs](RateLimitQueue) for the rules.
    pub async fn acquire(&self, n: u32, deadline: Deadline) -> Result<Admission, RateLimitError> {
        self.acquire_noting_wait(n, deadline)
            .await
            .map(|(admission, _)| admission)
    }

    /// [`acquire`](Self::acquire), also saying whether the caller waited (so that the
    /// pipeline knows whether time may have passed).
    pub(crate) async fn acquire_noting_wait(
        &self,
        n: u32,
        deadline: Deadline,
    ) -> Result<(Admission, bool), RateLimitError> {
        let mut denied_at_the_door = None;
        if self.waiting.load(Ordering::Acquire) == 0 {
            // Nobody waits: ask at once (the fast path: no queue operation at all).
            match self.limiter.admit(n).await {
                Ok(admission) => return Ok((admission, false)),
                Err(RateLimitError::Denied(denied)) => denied_at_the_door = Some(denied),
                Err(never) => {
                    event!(debug, n, "rate limit: request can never be granted");
                    return Err(never);
                }
            }
        } else {
            let max = self.limiter.max_acquire();
            if n > max {
                event!(debug, n, max, "rate limit: request can never be granted");
                return Err(RateLimitError::InsufficientCapacity(
                    InsufficientCapacity::new(max),
                ));
            }
        }
        let (head, place) = match self.head.try_acquire() {
            // Nobody is at the head: become it; join the line only if it must wait.
            Ok(head) => (head, None),
            Err(_) => {
                // Behind a head that sleeps until at or after the deadline: this caller
                // cannot be served in time, so it is refused at once.
                let head_ready_at = self.head_ready_at.load(Ordering::Acquire);
                if !deadline.is_never() && head_ready_at >= deadline.instant().as_nanos() {
                    return Err(self.refuse_in_line());
                }
                let Some(place) = Place::join(&self.waiting, self.max_waiting) else {
                    return Err(self.refuse_in_line());
                };
                match self.wait_for_head(deadline).await {
                    // Time has passed in line: the door's denial is stale.
                    Some(head) => {
                        denied_at_the_door = None;
                        (head, Some(place))
                    }
                    None => return Err(self.refuse_in_line()),
                }
            }
        };
        self.at_head(n, deadline, head, place, denied_at_the_door)
            .await
            .map(|admission| (admission, true))
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

    /// The head's loop: ask; when denied, sleep for exactly the limiter's wait, unless
    /// it would reach the deadline.
    async fn at_head(
        &self,
        n: u32,
        deadline: Deadline,
        _head: SemaphorePermit<'_>,
        mut place: Option<Place<'_>>,
        mut denied: Option<Denied>,
    ) -> Result<Admission, RateLimitError> {
        loop {
            let denied = match denied.take() {
                Some(denied) => denied,
                None => match self.limiter.admit(n).await {
                    Ok(admission) => return Ok(admission),
                    Err(RateLimitError::Denied(denied)) => denied,
                    Err(other) => return Err(other),
                },
            };
            let now = self.clock.now();
            let ready_at = denied.earliest(now);
            if !deadline.is_never() && ready_at >= deadline.instant() {
                event!(
                    debug,
                    retry_after_ms = denied.retry_after().as_millis() as u64,
                    "rate limited: the wait would pass the deadline"
                );
                return Err(RateLimitError::Denied(denied));
            }
            if place.is_none() {
                // The head came straight from the door: it now waits, so it counts.
                match Place::join(&self.waiting, self.max_waiting) {
                    Some(p) => place = Some(p),
                    None => return Err(RateLimitError::Denied(denied)),
                }
            }
            self.head_ready_at
                .store(ready_at.as_nanos(), Ordering::Release);
            tokio::time::sleep_until(self.clock.to_tokio(ready_at)).await;
        }
    }

    /// The refusal of a caller that could not wait (the line was full, or its deadline
    /// passed in line): denied for at least the head's remaining wait.
    fn refuse_in_line(&self) -> RateLimitError {
        let now = self.clock.now();
        let ready_at = Instant::from_nanos(self.head_ready_at.load(Ordering::Acquire));
        let denied = Denied::new(ready_at.saturating_duration_since(now));
        event!(
            debug,
            retry_after_ms = denied.retry_after().as_millis() as u64,
            "rate limited: no place or no time left in the line"
        );
        RateLimitError::Denied(denied)
    }
}

/// The rate limiter of a [`Pipeline`](crate::Pipeline) without a rate limit layer: an
/// uninhabited type, so that the layer costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoRateLimit {}

impl AsyncRateLimiter for NoRateLimit {
    #[allow(unreachable_code)]
    fn admit(&self, _n: u32) -> impl Future<Output = Result<Admission, RateLimitError>> + Send {
        ready::<Result<Admission, RateLimitError>>(match *self {})
    }

    fn max_acquire(&self) -> u32 {
        match *self {}
    }
}
