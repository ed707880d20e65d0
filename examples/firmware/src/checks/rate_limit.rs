//! Rate limiting: tasks waiting in line for a token bucket, and two limiters shared with an
//! interrupt handler while both take from them.

use core::time::Duration;

use embassy_time::Timer;
use portable_atomic::{AtomicU32, Ordering};
use stanchion::rate::{
    FixedWindow, Quota, RateLimitError, RateLimiter, SharedLimiter, TokenBucket, WindowQuota,
};
use stanchion::sync::CriticalSectionRawMutex;
use stanchion::{Clock, Deadline, Instant};
use stanchion_embassy::{EmbassyClock, RateLimitQueue};

use super::{LATE, join3, nanos};
use crate::irq;
use crate::report::Outcome;
use crate::{ensure, ensure_eq};

const fn quota(period_ms: u64, burst: u32) -> Quota {
    match Quota::per_period(Duration::from_millis(period_ms)) {
        Ok(q) => match q.with_burst(burst) {
            Ok(q) => q,
            Err(_) => panic!("bad burst"),
        },
        Err(_) => panic!("bad period"),
    }
}

/// Two at once, then one every 10 ms; up to two tasks wait in line.
static QUEUE: RateLimitQueue<CriticalSectionRawMutex, TokenBucket, 2> =
    RateLimitQueue::new(TokenBucket::new(quota(10, 2)));

/// Waits for one permit (one call site of the runner: compiled once).
async fn acquire(deadline: Deadline) -> Result<(), RateLimitError> {
    QUEUE.acquire(1, deadline).await
}

/// Three tasks want one permit each from a bucket of two: the third waits its turn, 10 ms;
/// a fourth, whose deadline comes before its permit, is refused at once.
pub async fn queue() -> Outcome {
    QUEUE.limiter().reset();
    let start = EmbassyClock.now();
    let take = || async {
        acquire(Deadline::NEVER).await.ok()?;
        Some(EmbassyClock.now())
    };
    let (a, b, c) = join3(take(), take(), take()).await;
    let (Some(a), Some(b), Some(c)) = (a, b, c) else {
        return Err(crate::report::Failure {
            what: "a waiter was refused",
            values: None,
        });
    };
    ensure!(a - start <= LATE, "the first permit waited");
    ensure!(b - a <= LATE, "the second permit, from the burst, waited");
    // The bucket filled up at its reset, before `start`: its third permit is 10 ms after
    // the first two, which came at `start` or later.
    ensure!(
        c - start >= Duration::from_millis(10),
        "the third permit came before the bucket refilled"
    );
    ensure!(
        c - a <= Duration::from_millis(10) + LATE,
        "the third permit came more than 5 ms late"
    );

    // Empty again: the next permit is 10 ms away, the deadline 5 ms.
    let now = EmbassyClock.now();
    let refused = acquire(Deadline::after(now, Duration::from_millis(5))).await;
    let Err(refused) = refused else {
        return Err(crate::report::Failure {
            what: "granted past its deadline",
            values: None,
        });
    };
    ensure!(
        EmbassyClock.now() - now < Duration::from_millis(1),
        "the refusal waited"
    );
    ensure!(
        refused
            .retry_after()
            .is_some_and(|d| d > Duration::from_millis(5)),
        "refused with a wait shorter than the deadline"
    );
    Ok(())
}

/// One permit every 2 ms, burst 4, shared with the interrupt handler.
static BUCKET: TokenBucket = TokenBucket::new(quota(2, 4));
/// Three per 10 ms window, shared with the interrupt handler through a critical section.
static WINDOW: SharedLimiter<CriticalSectionRawMutex, FixedWindow> = SharedLimiter::new(
    FixedWindow::new(match WindowQuota::new(3, Duration::from_millis(10)) {
        Ok(q) => q,
        Err(_) => panic!("bad window quota"),
    }),
);
static BUCKET_BY_IRQ: AtomicU32 = AtomicU32::new(0);
static WINDOW_BY_IRQ: AtomicU32 = AtomicU32::new(0);

const PERIOD_NS: u64 = 2_000_000;
const WINDOW_NS: u64 = 10_000_000;

fn on_interrupt() {
    let now = EmbassyClock.now();
    if BUCKET.acquire_at(1, now).is_ok() {
        BUCKET_BY_IRQ.fetch_add(1, Ordering::AcqRel);
    }
    if WINDOW.acquire_at(1, now).is_ok() {
        WINDOW_BY_IRQ.fetch_add(1, Ordering::AcqRel);
    }
}

/// Thread mode and the interrupt take permits from both limiters as fast as they are
/// granted, for about 100 ms. No grant is lost or made twice: the total equals what the
/// quota allows over the time from the first request to the last (the bucket's burst plus
/// one per period; the window's limit per window touched).
pub async fn interrupt() -> Outcome {
    BUCKET.reset();
    WINDOW.reset();
    BUCKET_BY_IRQ.store(0, Ordering::Release);
    WINDOW_BY_IRQ.store(0, Ordering::Release);
    let (mut bucket, mut window) = (0u64, 0u64);
    let first = EmbassyClock.now();
    let drain = |now: Instant, bucket: &mut u64, window: &mut u64| {
        while BUCKET.acquire_at(1, now).is_ok() {
            *bucket += 1;
        }
        while WINDOW.acquire_at(1, now).is_ok() {
            *window += 1;
        }
    };
    drain(first, &mut bucket, &mut window);
    let first_run = irq::install(on_interrupt);
    let mut steps: u32 = 0;
    while irq::runs().wrapping_sub(first_run) < 100 && steps < 1_000_000 {
        let now = EmbassyClock.now();
        if BUCKET.acquire_at(1, now).is_ok() {
            bucket += 1;
        }
        if WINDOW.acquire_at(1, now).is_ok() {
            window += 1;
        }
        steps += 1;
        if steps.is_multiple_of(64) {
            Timer::after_ticks(1).await;
        }
    }
    let interrupts = irq::uninstall().wrapping_sub(first_run);
    let last = EmbassyClock.now();
    drain(last, &mut bucket, &mut window);

    ensure!(interrupts >= 100, "the interrupt ran fewer than 100 times");
    let by_irq = u64::from(BUCKET_BY_IRQ.load(Ordering::Acquire));
    ensure!(by_irq > 0, "the interrupt took no token from the bucket");
    let span = nanos(last - first);
    ensure_eq!(
        bucket + by_irq,
        4 + span / PERIOD_NS,
        "token-bucket grants, thread + interrupt"
    );
    let windows = last.as_nanos() / WINDOW_NS - first.as_nanos() / WINDOW_NS + 1;
    ensure_eq!(
        window + u64::from(WINDOW_BY_IRQ.load(Ordering::Acquire)),
        3 * windows,
        "window grants, thread + interrupt"
    );
    Ok(())
}
