//! A counting global allocator for bench binaries: how many heap allocations (and bytes)
//! a stretch of code makes, counted outside criterion's timing.
//!
//! A bench binary installs it with
//! `#[global_allocator] static GLOBAL: CountingAllocator = CountingAllocator;` and wraps
//! the calls it counts in [`start`] and [`stop`]. While not counting, each allocation
//! costs one relaxed load more than `System`'s, the same for every row of a table.
// A global allocator is an `unsafe impl`; it only forwards to `System` and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// The allocator: `System`, plus counters of allocations (a `realloc` counts as one) and
/// of the bytes asked for, while counting is on (on any thread).
#[derive(Debug)]
pub struct CountingAllocator;

fn count(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counters are atomics, which do not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above; `ptr` was allocated by `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations counted between [`start`] and [`stop`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// Heap allocations (including reallocations).
    pub allocations: u64,
    /// Bytes asked for by those allocations.
    pub bytes: u64,
}

impl Counted {
    /// Allocations per call over `calls` calls, formatted (`0`, `7`, `2.5`).
    pub fn allocations_per_call(&self, calls: u64) -> String {
        per_call(self.allocations, calls)
    }

    /// Bytes per call over `calls` calls, formatted.
    pub fn bytes_per_call(&self, calls: u64) -> String {
        per_call(self.bytes, calls)
    }
}

fn per_call(total: u64, calls: u64) -> String {
    if calls == 0 {
        return "—".into();
    }
    if total.checked_rem(calls) == Some(0) {
        format!("{}", total / calls)
    } else {
        format!("{:.1}", total as f64 / calls as f64)
    }
}

/// Reset the counters and start counting.
pub fn start() {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
}

/// Stop counting; what was counted since [`start`].
pub fn stop() -> Counted {
    COUNTING.store(false, Ordering::SeqCst);
    Counted {
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_per_call() {
        assert_eq!(per_call(0, 1000), "0");
        assert_eq!(per_call(7000, 1000), "7");
        assert_eq!(per_call(2500, 1000), "2.5");
        assert_eq!(per_call(5, 0), "—");
    }
}
