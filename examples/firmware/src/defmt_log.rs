//! A `defmt` global logger that counts frames instead of sending them anywhere: the
//! `defmt-events` check asserts how many frames stanchion-embassy's runners and listeners
//! log (feature `log-defmt`; `.cargo/config.toml` sets `DEFMT_LOG=debug`, so that the
//! `debug` events are compiled in). The frames' bytes are dropped: decoding them needs the
//! image's string table on the host, and what is checked here is that each event fires,
//! and once.

use portable_atomic::{AtomicU32, Ordering};

/// Frames logged since boot.
static FRAMES: AtomicU32 = AtomicU32::new(0);

/// The frames logged so far.
pub fn frames() -> u32 {
    FRAMES.load(Ordering::Relaxed)
}

#[defmt::global_logger]
struct Counter;

// SAFETY: the logger holds no state of its own but the counter, whose increments are
// atomic; `acquire` and `release` bracket one frame, and a frame that an interrupt handler
// logs in the middle of another only adds its own count.
unsafe impl defmt::Logger for Counter {
    fn acquire() {
        FRAMES.fetch_add(1, Ordering::Relaxed);
    }

    unsafe fn flush() {}

    unsafe fn release() {}

    unsafe fn write(_bytes: &[u8]) {}
}
