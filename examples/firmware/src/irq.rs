//! A periodic interrupt that checks can load with work, to share state with thread mode.
//!
//! The SysTick handler pends PendSV on every tick while a hook is installed; PendSV runs at
//! the lowest exception priority (SysTick may preempt it) and calls the hook. So while a
//! check runs, its hook interrupts thread-mode code once a millisecond, at any instruction
//! outside a critical section: in the middle of a read-modify-write, of a `Locked::with`
//! call being entered, of an executor poll. PendSV exists on every Cortex-M (including the
//! Cortex-M0) and needs no peripheral, so the same code runs on both machines.
//!
//! A watchdog turns a deadlock into a failure: SysTick preempts PendSV, and if a hook has
//! been running for [`STUCK_TICKS`] ticks (it spins on a lock that thread mode holds, which
//! can never be released while the handler runs), the firmware says so and exits.

use core::cell::Cell;

use cortex_m::peripheral::SCB;
use cortex_m::peripheral::scb::SystemHandler;
use cortex_m_rt::exception;
use critical_section::Mutex;
use portable_atomic::{AtomicBool, AtomicU32, Ordering};

/// Work for PendSV: a plain function, so installing one needs no allocation or `'static`
/// closure state.
type Hook = fn();

/// The work PendSV does, if any.
static HOOK: Mutex<Cell<Option<Hook>>> = Mutex::new(Cell::new(None));
/// Times PendSV has run a hook, since boot.
static RUNS: AtomicU32 = AtomicU32::new(0);
/// Whether PendSV is inside a hook now.
static IN_HOOK: AtomicBool = AtomicBool::new(false);
/// Ticks seen by SysTick while the current hook runs. Written only by SysTick (load, then
/// store: PendSV never preempts SysTick) and reset by PendSV before each hook.
static TICKS_IN_HOOK: AtomicU32 = AtomicU32::new(0);

/// A hook that runs this long is stuck: it does a few microseconds of work.
const STUCK_TICKS: u32 = 100;

/// Makes PendSV the lowest-priority exception, so that SysTick (and so time) preempts it.
pub fn init(scb: &mut SCB) {
    // SAFETY: priorities only change which handler preempts which; this firmware uses no
    // priority-based critical sections (`critical-section-single-core` masks all
    // interrupts), so lowering PendSV's priority cannot break a critical section.
    unsafe { scb.set_priority(SystemHandler::PendSV, 0xff) };
}

/// Runs `hook` from PendSV once per tick until [`uninstall`]; returns the run count so far,
/// to subtract from the count [`uninstall`] returns.
pub fn install(hook: Hook) -> u32 {
    critical_section::with(|cs| HOOK.borrow(cs).set(Some(hook)));
    RUNS.load(Ordering::Acquire)
}

/// Stops running the hook and returns the run count since boot. Once this returns, the
/// hook does not run again (a PendSV already pended finds no hook).
pub fn uninstall() -> u32 {
    critical_section::with(|cs| HOOK.borrow(cs).set(None));
    RUNS.load(Ordering::Acquire)
}

/// Times PendSV has run a hook, since boot (wrapping).
pub fn runs() -> u32 {
    RUNS.load(Ordering::Acquire)
}

/// Called by the SysTick handler on every tick.
pub fn on_tick() {
    if IN_HOOK.load(Ordering::Acquire) {
        let ticks = TICKS_IN_HOOK.load(Ordering::Relaxed).saturating_add(1);
        TICKS_IN_HOOK.store(ticks, Ordering::Relaxed);
        if ticks >= STUCK_TICKS {
            crate::fail("deadlock: an interrupt handler made no progress for 100 ms");
        }
    }
    if critical_section::with(|cs| HOOK.borrow(cs).get().is_some()) {
        SCB::set_pendsv();
    }
}

#[exception]
fn PendSV() {
    // The hook runs outside this critical section: its own synchronisation is under test.
    if let Some(hook) = critical_section::with(|cs| HOOK.borrow(cs).get()) {
        TICKS_IN_HOOK.store(0, Ordering::Relaxed);
        IN_HOOK.store(true, Ordering::Release);
        hook();
        IN_HOOK.store(false, Ordering::Release);
        RUNS.fetch_add(1, Ordering::AcqRel);
    }
}
