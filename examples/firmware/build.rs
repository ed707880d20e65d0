//! Writes the `memory.x` that `cortex-m-rt`'s `link.x` includes, for the machine QEMU
//! emulates for each target, and the firmware which machine it was built for (`machine.rs`).

use std::env;
use std::fs;
use std::path::PathBuf;

/// (target, flash bytes, RAM bytes, core clock in Hz, QEMU machine). Flash starts at 0x0
/// and RAM at 0x2000_0000 on both machines.
const MACHINES: &[(&str, u32, u32, u32, &str)] = &[
    // Texas Instruments LM3S6965 (Cortex-M3): 256 KiB flash, 64 KiB SRAM, 12 MHz from
    // QEMU's reset clock configuration.
    (
        "thumbv7m-none-eabi",
        256 * 1024,
        64 * 1024,
        12_000_000,
        "lm3s6965evb",
    ),
    // Nordic nRF51822 on the BBC micro:bit (Cortex-M0): 256 KiB flash, 16 KiB SRAM, 16 MHz.
    // A larger RAM here puts the initial stack pointer outside RAM and hard-faults at boot.
    (
        "thumbv6m-none-eabi",
        256 * 1024,
        16 * 1024,
        16_000_000,
        "microbit",
    ),
    // Built only for the size report; the LM3S6965's map is as good as any.
    (
        "thumbv7em-none-eabihf",
        256 * 1024,
        64 * 1024,
        12_000_000,
        "none: size report only",
    ),
];

fn main() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let &(_, flash, ram, core_hz, machine) = MACHINES
        .iter()
        .find(|(t, ..)| *t == target)
        .unwrap_or_else(|| panic!("no memory map for target {target}: add one to build.rs"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(
        out.join("memory.x"),
        format!(
            "MEMORY\n{{\n  FLASH : ORIGIN = 0x00000000, LENGTH = {flash}\n  \
             RAM : ORIGIN = 0x20000000, LENGTH = {ram}\n}}\n"
        ),
    )
    .expect("write memory.x");
    fs::write(
        out.join("machine.rs"),
        format!(
            "/// The target this image is built for.\n\
             pub const TARGET: &str = {target:?};\n\
             /// The machine QEMU emulates for it.\n\
             pub const MACHINE: &str = {machine:?};\n\
             /// The core clock, which SysTick counts.\n\
             pub const CORE_HZ: u32 = {core_hz};\n"
        ),
    )
    .expect("write machine.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
}
