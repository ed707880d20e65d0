//! Cortex-M (Cortex-M3 and Cortex-M0): SysTick for time, PendSV for the hook interrupt,
//! `cortex-m-semihosting` for output and exit.
//!
//! PendSV runs at the lowest exception priority, so SysTick preempts it (and time advances
//! while a hook runs); PendSV never preempts SysTick.

use cortex_m::peripheral::scb::SystemHandler;
use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
pub use cortex_m_semihosting::hprintln;
use panic_semihosting as _;

/// Makes PendSV the lowest-priority exception and starts the time driver. Call once, first.
pub fn init() {
    let Some(mut core) = cortex_m::Peripherals::take() else {
        crate::fail("core peripherals already taken");
    };
    // SAFETY: priorities only change which handler preempts which; this firmware uses no
    // priority-based critical sections (`critical-section-single-core` masks all
    // interrupts), so lowering PendSV's priority cannot break a critical section.
    unsafe { core.SCB.set_priority(SystemHandler::PendSV, 0xff) };
    crate::time_driver::start(core.SYST);
}

/// Exits through semihosting, with success or failure.
pub fn exit(success: bool) -> ! {
    debug::exit(if success { EXIT_SUCCESS } else { EXIT_FAILURE });
    // Only reached without a debugger or emulator that honours semihosting.
    loop {
        cortex_m::asm::wfi();
    }
}

/// Pends the hook interrupt: it runs once the current handler (or none) returns.
pub fn pend_hook() {
    cortex_m::peripheral::SCB::set_pendsv();
}

#[exception]
fn PendSV() {
    crate::irq::run_hook();
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("firmware: hard fault at pc {:#010x}", frame.pc());
    crate::fail("hard fault")
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    hprintln!("firmware: unexpected exception or interrupt {}", irqn);
    crate::fail("unexpected interrupt")
}
