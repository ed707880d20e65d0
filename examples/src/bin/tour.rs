//! The guided tour of stanchion: the README's first command.
//!
//! ```text
//! cargo run -p stanchion-examples --bin tour
//! ```
//!
//! Everything runs on virtual time, so the tour finishes at once however many simulated
//! hours it covers.

use std::time::Duration;

use stanchion::{Clock, Instant, ManualClock};
use stanchion_std::TokioClock;

fn main() {
    println!("stanchion tour: resilience patterns on virtual time\n");
    time_model();
    tokio_virtual_time();
    println!("\nThe patterns join this tour as they land; see the README's feature table.");
}

/// Core's time model: saturating instants and a manual clock.
fn time_model() {
    println!("1. Time in core: u64 nanoseconds, saturating, never panicking");
    let clock = ManualClock::new();
    let start = clock.now();
    clock.advance(Duration::from_secs(3600));
    println!(
        "   advanced a ManualClock by one hour:          {} (elapsed {:?})",
        clock.now(),
        clock.now() - start
    );
    clock.set(Instant::from_secs(10));
    println!(
        "   stepped it back to {}: elapsed reads     {:?} (never negative)",
        clock.now(),
        clock.now() - Instant::from_secs(3600)
    );
    println!(
        "   Instant::MAX + 1 s =                         {} (saturates)",
        Instant::MAX + Duration::from_secs(1)
    );
}

/// The tokio clock honours paused time, so async code is testable in zero wall time.
fn tokio_virtual_time() {
    println!("\n2. Tokio's paused clock drives TokioClock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let wall = std::time::Instant::now();
    let virtual_elapsed = rt.block_on(async {
        let clock = TokioClock::new();
        for hour in 1..=24 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            if hour % 8 == 0 {
                println!(
                    "   slept {hour:>2} h of virtual time: clock reads {}",
                    clock.now()
                );
            }
        }
        clock.now()
    });
    println!(
        "   a virtual day ({}) took {:?} of wall time",
        virtual_elapsed,
        wall.elapsed()
    );
}
