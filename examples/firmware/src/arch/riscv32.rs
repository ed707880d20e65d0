//! 32-bit RISC-V in machine mode, on QEMU's `virt` machine: the CLINT's machine timer for
//! time, its machine software interrupt for the hook interrupt, `semihosting` for output,
//! exit and panics.
//!
//! RISC-V has no interrupt priorities in machine mode without a CLIC: a trap clears
//! `mstatus.MIE`, so handlers do not nest unless one enables interrupts again. The software
//! interrupt's handler does, around the hook (saving and restoring `mepc` and `mstatus`, as
//! [`riscv::interrupt::nested`] does), with its own interrupt masked: so the timer preempts
//! a hook, and time advances while one runs, as on Arm; the software interrupt never
//! preempts the timer's handler.

use core::ptr;

use riscv::interrupt::Interrupt;
use riscv::register::{mcause, mepc, mie, mtval};
pub use semihosting::println as hprintln;

/// Hart 0's `msip` in the CLINT of QEMU's `virt` machine: writing 1 pends its machine
/// software interrupt, writing 0 clears it.
const MSIP: *mut u32 = 0x0200_0000 as *mut u32;

/// Starts the time driver's timer and enables the timer and software interrupts. Call
/// once, first.
pub fn init() {
    crate::time_driver::start();
    // SAFETY: both handlers below are ready to run, and nothing is in a critical section
    // yet (`riscv-rt` starts `main` with interrupts disabled; this is the first thing the
    // firmware does).
    unsafe {
        mie::set_msoft();
        riscv::interrupt::enable();
    }
}

/// Exits through semihosting, with success or failure.
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}

/// Pends the hook interrupt: it runs once the current handler (or none) returns and
/// interrupts are enabled.
pub fn pend_hook() {
    // SAFETY: `MSIP` is hart 0's software interrupt register on this machine; setting it
    // only pends the interrupt whose handler is below.
    unsafe { ptr::write_volatile(MSIP, 1) };
}

#[riscv_rt::core_interrupt(Interrupt::MachineSoft)]
fn machine_soft() {
    // Cleared first: a tick during the hook pends it again, and it runs again after this.
    // SAFETY: as in `pend_hook`.
    unsafe { ptr::write_volatile(MSIP, 0) };
    // SAFETY: masking this interrupt while its handler runs with interrupts enabled keeps
    // it from nesting with itself; `nested` saves `mepc` and `mstatus` before enabling
    // interrupts and restores them after, so the timer's handler can preempt the hook and
    // this handler still returns where it was taken. Nothing here is in a critical section
    // (a trap clears `mstatus.MIE`; `nested` restores it to that).
    unsafe {
        mie::clear_msoft();
        riscv::interrupt::nested(crate::irq::run_hook);
        mie::set_msoft();
    }
}

/// Any exception (illegal instruction, access fault, misaligned access...): the RISC-V
/// counterpart of Arm's HardFault. `riscv-rt` calls it (and [`default_handler`]) through
/// an `extern "C"` declaration.
#[unsafe(export_name = "ExceptionHandler")]
extern "C" fn exception_handler(_frame: &riscv_rt::TrapFrame) -> ! {
    // `mcause` names the exception (2: illegal instruction, 5 and 7: load and store access
    // faults), `mepc` the instruction, `mtval` the address or instruction at fault.
    hprintln!(
        "firmware: exception {} at pc {:#010x}, mtval {:#010x}",
        mcause::read().code(),
        mepc::read(),
        mtval::read()
    );
    crate::fail("exception")
}

/// An interrupt this firmware does not enable.
#[unsafe(export_name = "DefaultHandler")]
extern "C" fn default_handler() {
    hprintln!(
        "firmware: unexpected interrupt (mcause {:#x})",
        mcause::read().bits()
    );
    crate::fail("unexpected interrupt")
}
