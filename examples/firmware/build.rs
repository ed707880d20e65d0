//! Writes the `memory.x` that the runtime's `link.x` includes (`cortex-m-rt`'s on Arm,
//! `riscv-rt`'s on RISC-V), for the machine QEMU emulates for each target, and the firmware
//! which machine it was built for (`machine.rs`).

use std::env;
use std::fs;
use std::path::PathBuf;

/// One machine's memory map and time driver clock.
struct Machine {
    target: &'static str,
    /// Where the program (code and read-only data) lies, and its size in bytes.
    flash: (u32, u32),
    /// Where the RAM (data, bss, stack) lies, and its size in bytes.
    ram: (u32, u32),
    /// The clock the time driver's timer counts: the core clock for SysTick, the timebase
    /// for RISC-V's `mtime`.
    timer_hz: u32,
    /// The machine QEMU emulates.
    qemu_machine: &'static str,
}

const MACHINES: &[Machine] = &[
    // Texas Instruments LM3S6965 (Cortex-M3): 256 KiB flash at 0x0, 64 KiB SRAM at
    // 0x2000_0000, 12 MHz from QEMU's reset clock configuration.
    Machine {
        target: "thumbv7m-none-eabi",
        flash: (0x0000_0000, 256 * 1024),
        ram: (0x2000_0000, 64 * 1024),
        timer_hz: 12_000_000,
        qemu_machine: "lm3s6965evb",
    },
    // Nordic nRF51822 on the BBC micro:bit (Cortex-M0): 256 KiB flash, 16 KiB SRAM, 16 MHz.
    // A larger RAM here puts the initial stack pointer outside RAM and hard-faults at boot.
    Machine {
        target: "thumbv6m-none-eabi",
        flash: (0x0000_0000, 256 * 1024),
        ram: (0x2000_0000, 16 * 1024),
        timer_hz: 16_000_000,
        qemu_machine: "microbit",
    },
    // Built only for the size report; the LM3S6965's map is as good as any.
    Machine {
        target: "thumbv7em-none-eabihf",
        flash: (0x0000_0000, 256 * 1024),
        ram: (0x2000_0000, 64 * 1024),
        timer_hz: 12_000_000,
        qemu_machine: "none: size report only",
    },
    // QEMU's RISC-V `virt` machine, run with `-bios none`: no flash to boot from, so QEMU
    // loads the ELF into its DRAM (128 MiB at 0x8000_0000) and jumps to 0x8000_0000 in
    // machine mode. The image takes a microcontroller's share of it: 256 KiB for the
    // program at the start, 64 KiB of RAM after it. The CLINT's `mtime` counts at 10 MHz
    // (the device tree's `timebase-frequency`).
    Machine {
        target: "riscv32imc-unknown-none-elf",
        flash: (0x8000_0000, 256 * 1024),
        ram: (0x8004_0000, 64 * 1024),
        timer_hz: 10_000_000,
        qemu_machine: "virt",
    },
];

fn main() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let machine = MACHINES
        .iter()
        .find(|m| m.target == target)
        .unwrap_or_else(|| panic!("no memory map for target {target}: add one to build.rs"));
    let ((flash_at, flash), (ram_at, ram)) = (machine.flash, machine.ram);
    let mut memory = format!(
        "MEMORY\n{{\n  FLASH : ORIGIN = {flash_at:#010x}, LENGTH = {flash}\n  \
         RAM : ORIGIN = {ram_at:#010x}, LENGTH = {ram}\n}}\n"
    );
    if env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch.starts_with("riscv")) {
        // `riscv-rt` places each section by region alias: program and read-only data in
        // FLASH (where `.data`'s initial values are copied from), the rest in RAM.
        for (alias, region) in [
            ("REGION_TEXT", "FLASH"),
            ("REGION_RODATA", "FLASH"),
            ("REGION_DATA", "RAM"),
            ("REGION_BSS", "RAM"),
            ("REGION_HEAP", "RAM"),
            ("REGION_STACK", "RAM"),
        ] {
            memory.push_str(&format!("REGION_ALIAS(\"{alias}\", {region});\n"));
        }
    }
    fs::write(out_dir().join("memory.x"), memory).expect("write memory.x");
    fs::write(
        out_dir().join("machine.rs"),
        format!(
            "/// The target this image is built for.\n\
             pub const TARGET: &str = {target:?};\n\
             /// The machine QEMU emulates for it.\n\
             pub const MACHINE: &str = {:?};\n\
             /// The clock the time driver's timer counts (SysTick: the core clock; RISC-V:\n\
             /// `mtime`'s timebase).\n\
             pub const TIMER_HZ: u32 = {};\n",
            machine.qemu_machine, machine.timer_hz
        ),
    )
    .expect("write machine.rs");
    println!("cargo:rustc-link-search={}", out_dir().display());
    // defmt's log frames are interned in sections its own linker script lays out.
    if env::var_os("CARGO_FEATURE_LOG_DEFMT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

fn out_dir() -> PathBuf {
    PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
}
