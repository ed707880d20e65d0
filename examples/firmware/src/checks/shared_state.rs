//! State shared between an interrupt handler and thread-mode code, both updating it while
//! both run: every update must land (no lost update) and nothing may deadlock.
//!
//! The interrupt is the hook interrupt (PendSV on Arm, the machine software interrupt on
//! RISC-V), pended on every tick ([`crate::irq`]). Thread mode updates the same three
//! counters in a loop, and sleeps now and then so the executor runs too:
//!
//! - a [`Locked`] tally behind a [`CriticalSectionRawMutex`]: how a rate limiter or breaker
//!   whose state does not fit one word is shared with an interrupt handler;
//! - a `portable_atomic::AtomicU64`, as a one-word limiter holds its state: wider than the
//!   Cortex-M3's atomics, and with no compare-and-swap at all on the Cortex-M0 and on
//!   `riscv32imc`, so `portable-atomic` emulates it, which must mask interrupts (see
//!   `Cargo.toml`): its default for the Cortex-M3, a spinlock, deadlocks here, and the
//!   watchdog reports it;
//! - a control: a plain load, the 64-bit updates, then a store. The interrupt must lose some of these
//!   updates, or it never landed inside a read-modify-write and the check proved nothing.

use core::time::Duration;

use embassy_time::Timer;
use portable_atomic::{AtomicU32, AtomicU64, Ordering};
use stanchion::Clock;
use stanchion::sync::{CriticalSectionRawMutex, Locked};
use stanchion_embassy::EmbassyClock;

use crate::irq;
use crate::report::Outcome;
use crate::{ensure, ensure_eq};

/// Updates counted in the `Locked` tally, by side.
#[derive(Clone, Copy)]
struct Tally {
    thread: u64,
    interrupt: u64,
    total: u64,
}

static TALLY: Locked<CriticalSectionRawMutex, Tally> = Locked::new(Tally {
    thread: 0,
    interrupt: 0,
    total: 0,
});
static WIDE: AtomicU64 = AtomicU64::new(0);
static CONTROL: AtomicU32 = AtomicU32::new(0);

/// Interrupts to wait for before stopping: ~100 ms of ticks.
const INTERRUPTS: u32 = 100;
/// Step limit: loop iterations at most, so a bug cannot loop forever.
const MAX_STEPS: u64 = 1_000_000;
/// Sleep for a tick once the loop has run this long since it last woke, so the executor
/// sleeps and wakes too, and at least one tick (and the interrupt with it) lands while the
/// loop runs, whatever the emulator's speed. (Sleeping every N iterations instead locks the
/// loop in phase with the tick on a fast host: it wakes just after a tick, finishes its N
/// iterations within the tick, and sleeps again, so every interrupt runs while it sleeps and
/// none inside an update.)
const AWAKE: Duration = Duration::from_millis(2);
/// 64-bit updates per iteration, made between the control's load and its store: most of
/// the loop's time, so that most interrupts land inside the control's window and inside a
/// 64-bit update (a 64-bit atomic that is not sound against interrupt handlers, such as a
/// spinlock, then deadlocks at once, and the watchdog in [`crate::irq`] reports it).
const WIDE_BURST: u64 = 64;

/// Runs from the hook interrupt on every tick.
fn on_interrupt() {
    TALLY.with(|t| {
        t.interrupt = t.interrupt.wrapping_add(1);
        t.total = t.total.wrapping_add(1);
    });
    WIDE.fetch_add(1, Ordering::AcqRel);
    let seen = CONTROL.load(Ordering::Relaxed);
    CONTROL.store(seen.wrapping_add(1), Ordering::Relaxed);
}

/// Thread mode and an interrupt update the same state while both run; every update lands.
pub async fn interrupt_and_thread() -> Outcome {
    let first_run = irq::install(on_interrupt);
    let mut steps: u64 = 0;
    let mut backwards: u64 = 0;
    let mut last = EmbassyClock.now();
    let mut woke = last;
    while irq::runs().wrapping_sub(first_run) < INTERRUPTS && steps < MAX_STEPS {
        TALLY.with(|t| {
            t.thread = t.thread.wrapping_add(1);
            t.total = t.total.wrapping_add(1);
        });
        let seen = CONTROL.load(Ordering::Relaxed);
        for _ in 0..WIDE_BURST {
            WIDE.fetch_add(1, Ordering::AcqRel);
        }
        CONTROL.store(seen.wrapping_add(1), Ordering::Relaxed);

        let now = EmbassyClock.now();
        if now < last {
            backwards = backwards.wrapping_add(1);
        }
        last = now;
        steps = steps.wrapping_add(1);
        if now - woke >= AWAKE {
            Timer::after_ticks(1).await;
            woke = EmbassyClock.now();
        }
    }
    let interrupts = u64::from(irq::uninstall().wrapping_sub(first_run));
    let updates = steps.wrapping_add(interrupts);

    ensure!(
        interrupts >= u64::from(INTERRUPTS),
        "the interrupt ran fewer than 100 times before the step limit"
    );
    ensure_eq!(backwards, 0, "clock reads that went backwards");
    let tally = TALLY.with(|t| *t);
    ensure_eq!(
        tally.thread,
        steps,
        "thread-mode updates in the Locked tally"
    );
    ensure_eq!(
        tally.interrupt,
        interrupts,
        "interrupt updates in the Locked tally"
    );
    ensure_eq!(tally.total, updates, "Locked tally total");
    ensure_eq!(
        WIDE.load(Ordering::Acquire),
        steps.wrapping_mul(WIDE_BURST).wrapping_add(interrupts),
        "64-bit atomic total"
    );
    ensure!(
        u64::from(CONTROL.load(Ordering::Relaxed)) < updates,
        "the unsynchronised control lost no update: no interrupt landed mid-update"
    );
    Ok(())
}
