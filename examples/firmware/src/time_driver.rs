//! A time driver for embassy-time on a periodic timer: one interrupt per tick.
//!
//! The timer raises an interrupt once per tick (1 ms): SysTick on Arm
//! (`time_driver/systick.rs`), the CLINT's machine timer on RISC-V (`time_driver/mtimer.rs`).
//! The handler bumps a 64-bit tick counter, which never overflows (584 million years at
//! 1 kHz), and wakes every timer whose instant has come. Timers wait in
//! `embassy-time-queue-utils`' generic queue (8 entries: this firmware has one task, and
//! embassy-time needs one entry per concurrently waiting timer).
//!
//! All state sits in one `critical_section::Mutex`: the handler and thread-mode code run on
//! the same core, and masking interrupts is the only sound way to share it with an
//! interrupt handler (a spinlock taken in thread mode would deadlock the handler that
//! preempts it).
//!
//! A one-tick-per-interrupt driver is the simplest correct one; a production driver on a
//! real chip would program the compare register for the next timer's instant instead, so
//! that an idle core is not woken every millisecond.

use core::cell::RefCell;
use core::task::Waker;

use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// The timer: its `start`, and its interrupt handler, which calls [`tick`].
#[cfg_attr(target_arch = "arm", path = "time_driver/systick.rs")]
#[cfg_attr(target_arch = "riscv32", path = "time_driver/mtimer.rs")]
mod timer;

pub use timer::start;

struct State {
    /// Ticks since `start`.
    ticks: u64,
    /// The earliest tick at which a queued timer expires (`u64::MAX`: none).
    next_alarm: u64,
    queue: Queue,
}

/// The driver registered with embassy-time.
pub struct TickDriver {
    state: Mutex<RefCell<State>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: TickDriver = TickDriver {
    state: Mutex::new(RefCell::new(State {
        ticks: 0,
        next_alarm: u64::MAX,
        queue: Queue::new(),
    })),
});

impl TickDriver {
    fn on_tick(&self) {
        critical_section::with(|cs| {
            let mut state = self.state.borrow_ref_mut(cs);
            state.ticks = state.ticks.wrapping_add(1);
            let now = state.ticks;
            if now >= state.next_alarm {
                // Wakes every expired timer and returns the next expiration.
                state.next_alarm = state.queue.next_expiration(now);
            }
        });
    }
}

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

/// One tick has passed: called by the timer's interrupt handler, once per tick.
fn tick() {
    DRIVER.on_tick();
    crate::irq::on_tick();
}
