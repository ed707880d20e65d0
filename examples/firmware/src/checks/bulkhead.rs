//! The bulkhead: tasks wait for its one slot in arrival order, in a bounded queue.

use core::num::NonZeroU32;
use core::time::Duration;

use embassy_time::Timer;
use stanchion::bulkhead::BulkheadFull;
use stanchion::sync::CriticalSectionRawMutex;
use stanchion::{Clock, Deadline, Instant};
use stanchion_embassy::{BulkheadQueue, EmbassyClock, QueuedPermit};

use super::{LATE, join3};
use crate::report::{Failure, Outcome};
use crate::{ensure, ensure_eq};

/// One slot; two tasks may wait for it.
static POOL: BulkheadQueue<CriticalSectionRawMutex, 2> = BulkheadQueue::new(NonZeroU32::MIN);

/// Waits for the slot (one call site of the runner: compiled once).
async fn acquire(
    deadline: Deadline,
) -> Result<QueuedPermit<'static, CriticalSectionRawMutex, 2>, BulkheadFull> {
    POOL.acquire(deadline).await
}

/// Holds the slot for 5 ms; returns when it got it.
async fn use_slot(deadline: Deadline) -> Option<Instant> {
    let _permit = acquire(deadline).await.ok()?;
    let got = EmbassyClock.now();
    Timer::after_millis(5).await;
    Some(got)
}

/// Three tasks share one slot, 5 ms each: they get it at 0, 5 and 10 ms, in arrival
/// order. While two wait, a fourth is refused at once; one whose deadline passes first
/// gives up at its deadline.
pub async fn run() -> Outcome {
    let start = EmbassyClock.now();
    let probe = async {
        // Arrives after the second and third are waiting: the queue (two) is full.
        Timer::after_millis(1).await;
        let refused = acquire(Deadline::NEVER).await.err();
        (refused, EmbassyClock.now())
    };
    let third_and_probe = async {
        let (third, probed, ()) = join3(use_slot(Deadline::NEVER), probe, async {}).await;
        (third, probed)
    };
    let (first, second, (third, (refused, refused_at))) = join3(
        use_slot(Deadline::NEVER),
        use_slot(Deadline::NEVER),
        third_and_probe,
    )
    .await;
    let (Some(first), Some(second), Some(third)) = (first, second, third) else {
        return Err(Failure {
            what: "a waiter was refused",
            values: None,
        });
    };
    ensure!(
        first - start <= LATE,
        "the first task waited for a free slot"
    );
    ensure!(
        second - first >= Duration::from_millis(5)
            && second - first <= Duration::from_millis(5) + LATE,
        "the second task did not get the slot when the first freed it"
    );
    ensure!(
        third - second >= Duration::from_millis(5)
            && third - second <= Duration::from_millis(5) + LATE,
        "the third task did not get the slot when the second freed it"
    );
    let Some(full) = refused else {
        return Err(Failure {
            what: "a task got past a full queue",
            values: None,
        });
    };
    ensure_eq!(
        u64::from(full.max_concurrent()),
        1,
        "maximum in the refusal"
    );
    // Refused when it came (after 1 ms), not when a slot would have freed (15 ms).
    ensure!(
        refused_at - start <= Duration::from_millis(1) + LATE,
        "the refusal waited"
    );

    // The slot is held for 5 ms; a task that may wait 3 ms gives up at 3 ms.
    let start = EmbassyClock.now();
    let holder = use_slot(Deadline::NEVER);
    let impatient = async {
        let r = POOL
            .acquire(Deadline::after(
                EmbassyClock.now(),
                Duration::from_millis(3),
            ))
            .await;
        (r.is_err(), EmbassyClock.now())
    };
    let (held, (gave_up, at), ()) = join3(holder, impatient, async {}).await;
    ensure!(held.is_some(), "the holder got no slot");
    ensure!(gave_up, "a task waited past its deadline");
    ensure!(
        at - start >= Duration::from_millis(3) && at - start <= Duration::from_millis(3) + LATE,
        "the wait did not end at its deadline"
    );
    ensure_eq!(
        u64::from(POOL.bulkhead().in_use()),
        0,
        "slots in use at the end"
    );
    Ok(())
}
