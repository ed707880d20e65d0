//! A time driver for embassy-time on SysTick, the timer every Cortex-M has: one interrupt
//! per tick. Copy this file as it is; call [`start`] once, before anything sleeps.
//!
//! What it assumes:
//!
//! - **SysTick counts the core clock**, at [`CORE_CLOCK_HZ`]: 12 MHz on QEMU's LM3S6965 (its
//!   clock out of reset). Set yours, as the clock set-up leaves it (a wrong value makes
//!   every sleep and timeout run fast or slow by the same ratio).
//! - **The tick rate is embassy-time's** (`TICK_HZ`, here 1 kHz from the `tick-hz-1_000`
//!   feature). It must divide the core clock, and one tick must be at most 2^24 core cycles
//!   (SysTick's counter is 24 bits); both are checked at compile time.
//! - **One core**, Cortex-M3/M4/M7 or M0/M0+ (QEMU's, or a single-core chip): all state sits
//!   behind `critical_section::with`, which on one core masks interrupts
//!   (`cortex-m/critical-section-single-core`). That is sound at any SysTick priority, so
//!   the priority is left as reset leaves it (0, the highest).
//! - **Interrupts are never masked for a whole tick** (1 ms): SysTick remembers one pending
//!   tick, not two, and a lost tick makes time run slow.
//! - **It owns SysTick** ([`start`] takes it by value): no other delay or RTOS may use it.
//!
//! The handler bumps a 64-bit tick count (it never overflows: 584 million years at 1 kHz)
//! and wakes every timer whose instant has come. Timers wait in `embassy-time-queue-utils`'
//! generic queue: 8 entries, one per timer waiting at once (every `sleep`, `sleep_until`
//! and `timeout` in progress, in any task); raise it with the `generic-queue-*` feature.
//!
//! It wakes the core every tick even when nothing waits: fine under QEMU and for a first
//! board, not for a battery. On a chip with an embassy HAL, use the HAL's driver instead
//! (a timer with a compare alarm, no interrupt until the next timer is due): delete this
//! file, `mod time_driver;` and the [`start`] call, drop the `embassy-time-driver` and
//! `embassy-time-queue-utils` dependencies, and
//!
//! - **embassy-stm32**: enable its `time-driver-any` feature (or one timer,
//!   `time-driver-tim2`, ...) and call `embassy_stm32::init(...)` first thing in `main`;
//!   keep or change the `tick-hz-*` feature;
//! - **embassy-nrf**: enable its `time-driver-rtc1` feature and call
//!   `embassy_nrf::init(...)`; it sets the tick rate (32,768 Hz) itself, so remove
//!   `tick-hz-1_000` from `embassy-time` (two tick rates do not build).
//!
//! Nothing in stanchion changes: `EmbassyClock` reads whichever driver the binary links.

use core::cell::RefCell;
use core::task::Waker;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

/// The clock SysTick counts (the core clock), in Hz.
pub const CORE_CLOCK_HZ: u32 = 12_000_000;

/// SysTick's reload value: it counts `RELOAD + 1` core cycles per tick.
const RELOAD: u32 = {
    let cycles = CORE_CLOCK_HZ as u64 / TICK_HZ;
    assert!(
        cycles * TICK_HZ == CORE_CLOCK_HZ as u64,
        "the tick rate must divide the core clock"
    );
    assert!(
        cycles >= 1 && cycles <= 1 << 24,
        "one tick must be 1 to 2^24 core cycles (SysTick counts 24 bits)"
    );
    cycles as u32 - 1
};

/// Starts SysTick at one interrupt per tick. Call once, before anything sleeps.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

struct State {
    /// Ticks since `start`.
    ticks: u64,
    /// The earliest tick at which a queued timer expires (`u64::MAX`: none).
    next_alarm: u64,
    queue: Queue,
}

/// The driver registered with embassy-time.
struct TickDriver {
    state: Mutex<RefCell<State>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: TickDriver = TickDriver {
    state: Mutex::new(RefCell::new(State {
        ticks: 0,
        next_alarm: u64::MAX,
        queue: Queue::new(),
    })),
});

impl Driver for TickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.state.borrow_ref(cs).ticks)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut state = self.state.borrow_ref_mut(cs);
            if state.queue.schedule_wake(at, waker) {
                // Recompute the next alarm: this also wakes at once a timer that is already
                // due (`at <= now`), so no wake-up waits for a tick that has passed.
                let now = state.ticks;
                state.next_alarm = state.queue.next_expiration(now);
            }
        });
    }
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let mut state = DRIVER.state.borrow_ref_mut(cs);
        state.ticks = state.ticks.wrapping_add(1);
        let now = state.ticks;
        if now >= state.next_alarm {
            // Wakes every expired timer and returns the next expiration.
            state.next_alarm = state.queue.next_expiration(now);
        }
    });
}
