//! The tick on RISC-V: the CLINT's machine timer. `mtime` counts at `TIMER_HZ`; the machine
//! timer interrupt is pending while `mtime >= mtimecmp`. The handler moves `mtimecmp` one
//! tick's worth of counts on from where it was (not from `mtime`, so a handler that runs a
//! little late does not stretch the tick). If the handler runs a whole tick late (the host
//! did not run QEMU for a while), the missed ticks are dropped rather than caught up in a
//! burst: the firmware's time then pauses with QEMU instead of leaping ahead between two
//! polls of a task. Caught up, a burst wakes timers of different lengths at once, and on a
//! loaded host the checks that order events in time failed now and then (the bulkhead's
//! deadline, seen here); dropped, they passed every run.
//!
//! The addresses are those of QEMU's `virt` machine (hart 0), from its memory map.

use core::ptr;

use embassy_time_driver::TICK_HZ;
use riscv::interrupt::Interrupt;
use riscv::register::mie;

use crate::machine::TIMER_HZ;

/// `mtime`, 64 bits as two words, low first: counts since reset.
const MTIME: usize = 0x0200_bff8;
/// Hart 0's `mtimecmp`, 64 bits as two words, low first.
const MTIMECMP: usize = 0x0200_4000;

/// `mtime` counts per tick.
const PERIOD: u64 = TIMER_HZ as u64 / TICK_HZ;

/// Reads a 64-bit CLINT register that may change between its two word reads (`mtime`):
/// the high word again after the low, until it did not change.
fn read64(at: usize) -> u64 {
    let (lo, hi) = (at as *const u32, (at + 4) as *const u32);
    loop {
        // SAFETY: `at` and `at + 4` are the words of a CLINT register on this machine,
        // always mapped, readable at any time; reads have no side effects.
        let (h1, l, h2) = unsafe {
            (
                ptr::read_volatile(hi),
                ptr::read_volatile(lo),
                ptr::read_volatile(hi),
            )
        };
        if h1 == h2 {
            return (u64::from(h1) << 32) | u64::from(l);
        }
    }
}

/// Sets `mtimecmp`, never passing through a value below both the old and the new one (the
/// high word goes to all ones first), so no interrupt is raised for a moment in between.
fn set_mtimecmp(at: u64) {
    let (lo, hi) = (MTIMECMP as *mut u32, (MTIMECMP + 4) as *mut u32);
    // SAFETY: `mtimecmp` is hart 0's CLINT register on this machine, written only here, by
    // `start` before the timer interrupt is enabled and then by its handler, which does
    // not nest with itself.
    unsafe {
        ptr::write_volatile(hi, u32::MAX);
        ptr::write_volatile(lo, at as u32);
        ptr::write_volatile(hi, (at >> 32) as u32);
    }
}

/// Starts the machine timer at one interrupt per tick. Call once, before anything sleeps,
/// with interrupts still disabled (`crate::arch::init` enables them).
pub fn start() {
    set_mtimecmp(read64(MTIME).saturating_add(PERIOD));
    // SAFETY: the handler below is ready to run; enabling its interrupt breaks no
    // critical section (`mstatus.MIE` decides whether it can preempt at all).
    unsafe { mie::set_mtimer() };
}

#[riscv_rt::core_interrupt(Interrupt::MachineTimer)]
fn machine_timer() {
    let next = read64(MTIMECMP).saturating_add(PERIOD);
    let now = read64(MTIME);
    set_mtimecmp(if next > now {
        next
    } else {
        now.saturating_add(PERIOD)
    });
    super::tick();
}
