//! `EmbassyClock` on embassy-time's mock driver. The driver is global, so this binary holds
//! a single test that runs its steps in order.

use embassy_time::{Duration, MockDriver, TICK_HZ};
use stanchion::{Clock, Instant};
use stanchion_embassy::EmbassyClock;

#[test]
fn embassy_clock_on_the_mock_driver() {
    // The mock driver ticks at 1 MHz: one tick is 1000 ns, converted exactly.
    assert_eq!(TICK_HZ, 1_000_000);
    let driver = MockDriver::get();
    driver.reset();
    assert_eq!(EmbassyClock.now(), Instant::ZERO);

    driver.advance(Duration::from_millis(1500));
    assert_eq!(EmbassyClock.now(), Instant::from_millis(1500));

    driver.advance(Duration::from_ticks(1));
    assert_eq!(EmbassyClock.now(), Instant::from_nanos(1_500_001_000));

    // An hour passes in no wall time.
    driver.advance(Duration::from_secs(3600));
    assert_eq!(EmbassyClock.now(), Instant::from_nanos(3_601_500_001_000));

    // Conversions: down from ticks, up to ticks.
    assert_eq!(
        EmbassyClock::ticks_to_instant(7),
        Instant::from_nanos(7_000)
    );
    assert_eq!(
        EmbassyClock::instant_to_ticks(Instant::from_nanos(7_000)),
        7
    );
    assert_eq!(
        EmbassyClock::instant_to_ticks(Instant::from_nanos(7_001)),
        8
    );
    assert_eq!(EmbassyClock::instant_to_ticks(Instant::from_nanos(1)), 1);
    assert_eq!(EmbassyClock::instant_to_ticks(Instant::ZERO), 0);

    // Extremes saturate instead of overflowing.
    assert_eq!(EmbassyClock::ticks_to_instant(u64::MAX), Instant::MAX);
    assert_eq!(
        EmbassyClock::instant_to_ticks(Instant::MAX),
        u64::MAX.div_ceil(1_000)
    );
    let round_trip = EmbassyClock::to_embassy(Instant::from_millis(42));
    assert_eq!(round_trip.as_ticks(), 42_000);
    assert_eq!(
        EmbassyClock::from_embassy(round_trip),
        Instant::from_millis(42)
    );

    driver.reset();
    assert_eq!(EmbassyClock.now(), Instant::ZERO);
}
