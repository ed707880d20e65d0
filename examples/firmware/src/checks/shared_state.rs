//! State shared between an interrupt handler and thread-mode code, both updating it while
//! both run: every update must land (no lost update, no double grant) and nothing may
//! deadlock, in every atomics set-up the firmware runs in (`cargo xtask firmware`).
//!
//! The interrupt is the hook interrupt (PendSV on Arm, the machine software interrupt on
//! RISC-V), pended on every tick ([`crate::irq`]). Thread mode updates the
//! same state in a loop, and sleeps now and then so the executor runs too:
//!
//! - a [`Locked`] tally behind a [`CriticalSectionRawMutex`]: how a rate limiter or breaker
//!   whose state does not fit one word is shared with an interrupt handler;
//! - one [`TokenBucket`], hammered from both sides: its state is a 64-bit word, which no
//!   Cortex-M has atomics for, so every grant is an emulated 64-bit compare-and-swap. It
//!   never refills during the check (one token an hour), so the grants add up exactly to
//!   its burst per fill. portable-atomic's default emulation on the Cortex-M3, a spinlock,
//!   deadlocks here, and the watchdog in [`crate::irq`] reports it; stanchion refuses to
//!   build that way (its `critical-section` or `single-core` feature is required);
//! - one [`Bulkhead`] of one slot (its state is a 64-bit word too): thread mode holds the
//!   slot for a moment on every iteration, and the interrupt, which preempts thread mode,
//!   must never be granted it while thread mode holds it;
//! - a control: a plain load, the updates above, then a store. The interrupt must lose some
//!   of these updates, or it never landed inside the updates and the check proved nothing.

use core::time::Duration;

use embassy_time::Timer;
use portable_atomic::{AtomicBool, AtomicU32, Ordering};
use stanchion::Clock;
use stanchion::bulkhead::Bulkhead;
use stanchion::rate::{Quota, TokenBucket};
use stanchion::sync::{CriticalSectionRawMutex, Locked};
use stanchion_embassy::EmbassyClock;

use crate::arch::hprintln;
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

/// Tokens in one fill of [`BUCKET`].
const TOKENS: u32 = 1000;
/// One token an hour (none refills during the check), [`TOKENS`] at once.
static BUCKET: TokenBucket = TokenBucket::new(match Quota::per_period(Duration::from_secs(3600)) {
    Ok(q) => match q.with_burst(TOKENS) {
        Ok(q) => q,
        Err(_) => panic!("bad burst"),
    },
    Err(_) => panic!("bad period"),
});
/// One slot.
static SLOT: Bulkhead = match Bulkhead::new(1) {
    Ok(b) => b,
    Err(_) => panic!("bad bulkhead"),
};
/// Whether thread mode holds [`SLOT`] now.
static THREAD_HOLDS_SLOT: AtomicBool = AtomicBool::new(false);
static CONTROL: AtomicU32 = AtomicU32::new(0);

/// Counts kept by the interrupt handler.
static IRQ_GRANTS: AtomicU32 = AtomicU32::new(0);
static IRQ_DENIALS: AtomicU32 = AtomicU32::new(0);
static IRQ_SLOTS: AtomicU32 = AtomicU32::new(0);
static IRQ_SLOTS_REFUSED: AtomicU32 = AtomicU32::new(0);
/// Slots granted to the interrupt while thread mode held the one slot: must stay 0.
static DOUBLE_SLOTS: AtomicU32 = AtomicU32::new(0);

/// Interrupts to wait for before stopping: ~300 ms of ticks.
const INTERRUPTS: u32 = 300;
/// Step limit: loop iterations at most, so a bug cannot loop forever.
const MAX_STEPS: u64 = 1_000_000;
/// Sleep for a tick every this many iterations, so the executor sleeps and wakes too.
const SLEEP_EVERY: u64 = 64;
/// Token requests (one token each) per thread-mode iteration, at most, made between the
/// control's load and its store: most of the loop's time, so that most interrupts land
/// inside the control's window and inside a 64-bit update (a 64-bit atomic that is not
/// sound against interrupt handlers, such as a spinlock, then deadlocks at once, and the
/// watchdog in [`crate::irq`] reports it).
const THREAD_BURST: u32 = 64;

/// The number of token requests of each thread-mode iteration: 1 to [`THREAD_BURST`], from
/// a xorshift generator. QEMU counts time in instructions (`-icount`), so a loop of one
/// fixed length would meet each tick at the same point of its body, every time; lengths
/// that vary move the interrupt across the whole body.
struct Burst(u32);

impl Burst {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x % THREAD_BURST + 1
    }
}
/// Token requests (two tokens each) per interrupt.
const IRQ_BURST: u32 = 8;
/// Tokens per interrupt request.
const IRQ_N: u32 = 2;

/// Runs from the hook interrupt on every tick.
fn on_interrupt() {
    TALLY.with(|t| {
        t.interrupt = t.interrupt.wrapping_add(1);
        t.total = t.total.wrapping_add(1);
    });
    let now = EmbassyClock.now();
    for _ in 0..IRQ_BURST {
        if BUCKET.acquire_at(IRQ_N, now).is_ok() {
            IRQ_GRANTS.fetch_add(1, Ordering::Relaxed);
        } else {
            IRQ_DENIALS.fetch_add(1, Ordering::Relaxed);
        }
    }
    match SLOT.try_acquire() {
        Ok(permit) => {
            if THREAD_HOLDS_SLOT.load(Ordering::Acquire) {
                DOUBLE_SLOTS.fetch_add(1, Ordering::Relaxed);
            }
            IRQ_SLOTS.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        }
        Err(_) => {
            IRQ_SLOTS_REFUSED.fetch_add(1, Ordering::Relaxed);
        }
    }
    let seen = CONTROL.load(Ordering::Relaxed);
    CONTROL.store(seen.wrapping_add(1), Ordering::Relaxed);
}

/// Thread mode and an interrupt update the same state while both run; every update lands.
pub async fn interrupt_and_thread() -> Outcome {
    BUCKET.reset();
    for counter in [
        &IRQ_GRANTS,
        &IRQ_DENIALS,
        &IRQ_SLOTS,
        &IRQ_SLOTS_REFUSED,
        &DOUBLE_SLOTS,
        &CONTROL,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    let before = TALLY.with(|t| *t);

    let first_run = irq::install(on_interrupt);
    let mut steps: u64 = 0;
    let mut backwards: u64 = 0;
    let (mut thread_tokens, mut fills, mut thread_slots): (u64, u64, u64) = (0, 1, 0);
    let mut last = EmbassyClock.now();
    let mut burst = Burst(0x9e37_79b9);
    while irq::runs().wrapping_sub(first_run) < INTERRUPTS && steps < MAX_STEPS {
        TALLY.with(|t| {
            t.thread = t.thread.wrapping_add(1);
            t.total = t.total.wrapping_add(1);
        });
        let seen = CONTROL.load(Ordering::Relaxed);
        let now = EmbassyClock.now();
        for _ in 0..burst.next() {
            if BUCKET.acquire_at(1, now).is_ok() {
                thread_tokens += 1;
            } else {
                // Empty (a request for one token is refused only then, and nothing refills):
                // fill it again.
                BUCKET.reset();
                fills += 1;
            }
        }
        if let Ok(permit) = SLOT.try_acquire() {
            THREAD_HOLDS_SLOT.store(true, Ordering::Release);
            thread_slots += 1;
            THREAD_HOLDS_SLOT.store(false, Ordering::Release);
            drop(permit);
        }
        CONTROL.store(seen.wrapping_add(1), Ordering::Relaxed);

        if now < last {
            backwards += 1;
        }
        last = now;
        steps += 1;
        if steps.is_multiple_of(SLEEP_EVERY) {
            Timer::after_ticks(1).await;
        }
    }
    let interrupts = u64::from(irq::uninstall().wrapping_sub(first_run));
    // What is left of the last fill.
    let now = EmbassyClock.now();
    while BUCKET.acquire_at(1, now).is_ok() {
        thread_tokens += 1;
    }
    let load = |counter: &AtomicU32| u64::from(counter.load(Ordering::Relaxed));
    let (irq_grants, irq_denials) = (load(&IRQ_GRANTS), load(&IRQ_DENIALS));
    let updates = steps + interrupts;

    ensure!(
        interrupts >= u64::from(INTERRUPTS),
        "the interrupt ran fewer than 300 times before the step limit"
    );
    ensure_eq!(backwards, 0, "clock reads that went backwards");
    let tally = TALLY.with(|t| *t);
    ensure_eq!(
        tally.thread - before.thread,
        steps,
        "thread-mode updates in the Locked tally"
    );
    ensure_eq!(
        tally.interrupt - before.interrupt,
        interrupts,
        "interrupt updates in the Locked tally"
    );
    ensure_eq!(tally.total - before.total, updates, "Locked tally total");
    ensure_eq!(
        irq_grants + irq_denials,
        interrupts * u64::from(IRQ_BURST),
        "token requests made by the interrupt"
    );
    ensure!(
        irq_grants > 0,
        "the interrupt took no token from the bucket"
    );
    ensure!(fills > 1, "the bucket never ran empty");
    ensure_eq!(
        thread_tokens + irq_grants * u64::from(IRQ_N),
        fills * u64::from(TOKENS),
        "tokens granted, thread + interrupt, against the fills"
    );
    ensure_eq!(thread_slots, steps, "bulkhead slots granted to thread mode");
    ensure_eq!(
        load(&IRQ_SLOTS) + load(&IRQ_SLOTS_REFUSED),
        interrupts,
        "bulkhead requests made by the interrupt"
    );
    ensure_eq!(
        load(&DOUBLE_SLOTS),
        0,
        "slots granted to the interrupt while thread mode held the only one"
    );
    ensure_eq!(u64::from(SLOT.in_use()), 0, "bulkhead slots left in use");
    ensure!(
        load(&CONTROL) < updates,
        "the unsynchronised control lost no update: no interrupt landed mid-update"
    );
    // What the check hammered, for the log (the checks above hold whatever the counts).
    hprintln!(
        "  shared state: {} thread iterations, {} interrupts; {} tokens to thread mode, {} to the interrupt, over {} fills; the interrupt refused the slot {} times",
        steps,
        interrupts,
        thread_tokens,
        irq_grants * u64::from(IRQ_N),
        fills,
        load(&IRQ_SLOTS_REFUSED)
    );
    Ok(())
}
