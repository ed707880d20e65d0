//! The tick on Arm: SysTick counts the core clock down from `TIMER_HZ / TICK_HZ` and raises
//! its exception at zero, once per tick.

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use embassy_time_driver::TICK_HZ;

use crate::machine::TIMER_HZ;

/// SysTick's reload value: it counts `RELOAD + 1` core cycles per tick.
const RELOAD: u32 = TIMER_HZ / TICK_HZ as u32 - 1;

/// Starts SysTick at one exception per tick. Call once, before anything sleeps.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    super::tick();
}
