//! The same steps through `ManualClock` and `TokioClock` read the same instants (the
//! embassy clock, whose mock driver moves by whole ticks, is in `embassy_mock.rs`).

use stanchion::{Instant, ManualClock};
use stanchion_std::TokioClock;
use stanchion_tests::{CLOCK_STEPS as STEPS, clock_trace};

fn expected() -> Vec<Instant> {
    vec![
        Instant::from_nanos(1),
        Instant::from_nanos(250_000_001),
        Instant::from_nanos(3_600_250_000_001),
        Instant::from_nanos(3_600_250_000_001),
    ]
}

#[test]
fn manual_clock_trace() {
    let clock = ManualClock::new();
    let trace = clock_trace(&clock, &STEPS, |d| {
        clock.advance(d);
    });
    assert_eq!(trace, expected());
}

#[test]
fn tokio_paused_clock_trace() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let clock = TokioClock::new();
        let mut trace = Vec::new();
        let start = stanchion::Clock::now(&clock);
        for step in STEPS {
            tokio::time::advance(step).await;
            trace.push(Instant::from_nanos(
                (stanchion::Clock::now(&clock) - start).as_nanos() as u64,
            ));
        }
        assert_eq!(trace, expected());
    });
}
