//! stanchion in firmware, under QEMU: a Cortex-M3 (`thumbv7m-none-eabi`, LM3S6965), a
//! Cortex-M0 (`thumbv6m-none-eabi`, nRF51 on the micro:bit, no compare-and-swap), and a
//! 32-bit RISC-V core without atomics (`riscv32imc-unknown-none-elf`, QEMU's `virt` machine
//! in machine mode, no compare-and-swap either).
//!
//! It runs a list of named checks on the embassy executor, prints `check <name>: ok` or
//! `check <name>: FAIL (<why>)` for each over semihosting, then
//! `firmware: N passed, N failed`, and exits (through semihosting) with success only if
//! every check passed. A panic or a fault exits with failure too.
//!
//! Run it with `cargo xtask firmware` from the repository, or from this folder with
//! `cargo run --release --target thumbv7m-none-eabi` (or `thumbv6m-none-eabi`, or
//! `riscv32imc-unknown-none-elf`).
//!
//! The checks are the same code on every machine; what differs per architecture (startup,
//! the tick's timer, the interrupt that shares state with thread mode, semihosting, fault
//! handlers) is in `src/arch/` and `src/time_driver/`.
//!
//! Adding a check: write `pub async fn name() -> Outcome` in `src/checks/`, using
//! [`ensure!`] and [`ensure_eq!`], and add one `report.record(...)` line below; gate both on
//! the pattern's cargo feature (see `Cargo.toml`).
#![no_std]
#![no_main]

mod arch;
mod checks;
#[cfg(feature = "log-defmt")]
mod defmt_log;
mod irq;
mod report;
mod time_driver;

/// The machine this image is built for, written by `build.rs`.
mod machine {
    include!(concat!(env!("OUT_DIR"), "/machine.rs"));
}

use embassy_executor::Spawner;

use arch::hprintln;
use report::Report;

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    arch::init();
    hprintln!(
        "firmware: stanchion on {} (QEMU {})",
        machine::TARGET,
        machine::MACHINE
    );

    let mut report = Report::default();
    report.record("clock-follows-timer", checks::clock::follows_timer().await);
    report.record(
        "sleep-until-rounds-up",
        checks::clock::sleep_until_rounds_up().await,
    );
    report.record(
        "interrupt-shared-state",
        checks::shared_state::interrupt_and_thread().await,
    );
    #[cfg(feature = "deadline")]
    report.record("deadline", checks::deadline::run().await);
    #[cfg(feature = "rate-limit")]
    report.record("rate-limit-queue", checks::rate_limit::queue().await);
    #[cfg(feature = "rate-limit")]
    report.record(
        "rate-limit-interrupt",
        checks::rate_limit::interrupt().await,
    );
    #[cfg(feature = "retry")]
    report.record("retry-jitter", checks::retry::run().await);
    #[cfg(feature = "breaker")]
    report.record("breaker-states", checks::breaker::states().await);
    #[cfg(feature = "breaker")]
    report.record("breaker-interrupt", checks::breaker::interrupt().await);
    #[cfg(feature = "breaker-consecutive")]
    report.record(
        "breaker-consecutive",
        checks::breaker_consecutive::run().await,
    );
    #[cfg(feature = "bulkhead")]
    report.record("bulkhead-queue", checks::bulkhead::run().await);
    #[cfg(feature = "timeout")]
    report.record("timeout", checks::timeout::run().await);
    #[cfg(feature = "pipeline")]
    report.record("pipeline", checks::pipeline::run().await);
    #[cfg(feature = "throttle")]
    report.record("throttle", checks::throttle::run().await);
    #[cfg(feature = "fault")]
    report.record("fault", checks::fault::run().await);
    #[cfg(feature = "fallback")]
    report.record("fallback", checks::fallback::run().await);
    #[cfg(feature = "hedge")]
    report.record("hedge", checks::hedge::run().await);
    #[cfg(feature = "log-defmt")]
    report.record("defmt-events", checks::defmt_events::run().await);

    arch::exit(report.finish());
}

/// Prints `why` and exits with failure.
pub fn fail(why: &str) -> ! {
    hprintln!("firmware: {}", why);
    arch::exit(false)
}
