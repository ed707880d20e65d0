//! A simulated flaky peripheral: each call takes a fixed time, and fails, hangs or answers
//! as its schedule says.

use core::cell::Cell;
use core::future::pending;

use embassy_time::Timer;

/// The peripheral failed this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault;

/// A peripheral whose call `i` (from 0) fails when bit `i` of `fails` is set and never
/// answers when bit `i` of `hangs` is set; calls from 32 on succeed. Each call takes
/// `latency_ms` before it answers.
pub struct Flaky {
    fails: u32,
    hangs: u32,
    latency_ms: u64,
    calls: Cell<u32>,
}

impl Flaky {
    /// A peripheral with the given schedule.
    pub const fn new(fails: u32, hangs: u32, latency_ms: u64) -> Flaky {
        Flaky {
            fails,
            hangs,
            latency_ms,
            calls: Cell::new(0),
        }
    }

    /// Calls made so far (read by the retry, breaker and pipeline checks; an image built
    /// with none of them leaves it unused).
    #[allow(dead_code)]
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    /// One call: the reading (the call's number) or a fault.
    pub async fn read(&self) -> Result<u32, Fault> {
        let i = self.calls.get();
        self.calls.set(i.saturating_add(1));
        let bit = 1u32.checked_shl(i).unwrap_or(0);
        if self.latency_ms > 0 {
            Timer::after_millis(self.latency_ms).await;
        }
        if self.hangs & bit != 0 {
            pending::<()>().await;
        }
        if self.fails & bit != 0 {
            Err(Fault)
        } else {
            Ok(i)
        }
    }
}
