//! A periodic interrupt that checks can load with work, to share state with thread mode.
//!
//! The tick's handler pends a low-priority interrupt on every tick while a hook is
//! installed, and that interrupt calls the hook: PendSV on Arm, the machine software
//! interrupt (the CLINT's `msip`) on RISC-V ([`crate::arch`]). So while a check runs, its
//! hook interrupts thread-mode code once a millisecond, at any instruction outside a
//! critical section: in the middle of a read-modify-write, of a `Locked::with` call being
//! entered, of an executor poll. PendSV exists on every Cortex-M (including the Cortex-M0)
//! and needs no peripheral, so the same code runs on both Arm machines.
//!
//! A watchdog turns a deadlock into a failure: the tick preempts the hook's interrupt (on
//! Arm by priority, on RISC-V because the software interrupt handler runs the hook with
//! interrupts enabled again), and if a hook has been running for [`STUCK_TICKS`] ticks (it
//! spins on a lock that thread mode holds, which can never be released while the handler
//! runs), the firmware says so and exits.

use core::cell::Cell;

use critical_section::Mutex;
use portable_atomic::{AtomicBool, AtomicU32, Ordering};

/// Work for the hook interrupt: a plain function, so installing one needs no allocation or
/// `'static` closure state.
type Hook = fn();

/// The work the hook interrupt does, if any.
static HOOK: Mutex<Cell<Option<Hook>>> = Mutex::new(Cell::new(None));
/// Times the hook interrupt has run a hook, since boot.
static RUNS: AtomicU32 = AtomicU32::new(0);
/// Whether the hook interrupt is inside a hook now.
static IN_HOOK: AtomicBool = AtomicBool::new(false);
/// Ticks seen by the tick's handler while the current hook runs. Written only by the tick's
/// handler (load, then store: the hook interrupt never preempts it) and reset by the hook
/// interrupt before each hook.
static TICKS_IN_HOOK: AtomicU32 = AtomicU32::new(0);

/// A hook that runs this long is stuck: it does a few microseconds of work.
const STUCK_TICKS: u32 = 100;

/// Runs `hook` from the hook interrupt once per tick until [`uninstall`]; returns the run
/// count so far, to subtract from the count [`uninstall`] returns.
pub fn install(hook: Hook) -> u32 {
    critical_section::with(|cs| HOOK.borrow(cs).set(Some(hook)));
    RUNS.load(Ordering::Acquire)
}

/// Stops running the hook and returns the run count since boot. Once this returns, the
/// hook does not run again (an interrupt already pended finds no hook).
pub fn uninstall() -> u32 {
    critical_section::with(|cs| HOOK.borrow(cs).set(None));
    RUNS.load(Ordering::Acquire)
}

/// Times the hook interrupt has run a hook, since boot (wrapping).
pub fn runs() -> u32 {
    RUNS.load(Ordering::Acquire)
}

/// Called by the tick's handler on every tick.
pub fn on_tick() {
    if IN_HOOK.load(Ordering::Acquire) {
        let ticks = TICKS_IN_HOOK.load(Ordering::Relaxed).saturating_add(1);
        TICKS_IN_HOOK.store(ticks, Ordering::Relaxed);
        if ticks >= STUCK_TICKS {
            crate::fail("deadlock: an interrupt handler made no progress for 100 ms");
        }
    }
    if critical_section::with(|cs| HOOK.borrow(cs).get().is_some()) {
        crate::arch::pend_hook();
    }
}

/// The hook interrupt's work: runs the installed hook, if any.
pub fn run_hook() {
    // The hook runs outside this critical section: its own synchronisation is under test.
    if let Some(hook) = critical_section::with(|cs| HOOK.borrow(cs).get()) {
        TICKS_IN_HOOK.store(0, Ordering::Relaxed);
        IN_HOOK.store(true, Ordering::Release);
        hook();
        IN_HOOK.store(false, Ordering::Release);
        RUNS.fetch_add(1, Ordering::AcqRel);
    }
}
