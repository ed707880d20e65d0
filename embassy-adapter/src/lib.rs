//! stanchion on embassy: clocks (and, as they land, async runners) for firmware.
//!
//! `no_std`, no allocation. The decisions live in [`stanchion`] (re-exported here); this
//! crate reads time from `embassy-time`, whose tick rate the firmware binary chooses.
#![no_std]
#![deny(missing_docs)]

mod clock;

pub use clock::EmbassyClock;
pub use stanchion;
