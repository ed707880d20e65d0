//! What differs between the Arm and the RISC-V images, behind one interface: starting the
//! core (the time driver's timer and the hook interrupt of [`crate::irq`]), printing and
//! exiting over semihosting, pending the hook interrupt, and the fault handlers. The checks
//! and the time driver's queue are the same code on every machine.
//!
//! Each module provides `init()`, `hprintln!`, `exit(success)`, `pend_hook()`.

#[cfg(target_arch = "arm")]
mod arm;
#[cfg(target_arch = "arm")]
pub use arm::*;

#[cfg(target_arch = "riscv32")]
mod riscv32;
#[cfg(target_arch = "riscv32")]
pub use riscv32::*;
