//! `with_throttle` on tokio's paused clock: the throttle's rule, over an async call.

use std::cell::Cell;
use std::time::Duration;

use stanchion::retry::Ratio;
use stanchion::throttle::AdaptiveThrottle;
use stanchion_std::TokioClock;
use stanchion_std::throttle::{ThrottleError, with_throttle};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn an_overloaded_backend_sees_traffic_fall_to_k_times_its_accepts() {
    // K = 2 over 10 s. The backend serves 10 calls a second (one per 100 ms) and rejects
    // the rest; the client asks 30 a second for 60 s.
    let throttle: AdaptiveThrottle<10> =
        AdaptiveThrottle::new(Duration::from_secs(10), Ratio::TWO).unwrap();
    let clock = TokioClock::starting_now();
    let mut rng = fastrand::Rng::with_seed(5);
    let start = Instant::now();
    let next_free = Cell::new(start);
    let (mut sent, mut accepted, mut refused) = ([0u32; 6], [0u32; 6], [0u32; 6]);
    for i in 0..1_800u32 {
        let tenth = (i / 300) as usize; // which 10 s of the run
        let backend = async {
            let now = Instant::now();
            if now >= next_free.get() {
                next_free.set(now + Duration::from_millis(100));
                Ok(())
            } else {
                Err("overloaded")
            }
        };
        match with_throttle(&throttle, &mut rng, &clock, Result::is_ok, backend).await {
            Ok(()) => {
                sent[tenth] += 1;
                accepted[tenth] += 1;
            }
            Err(ThrottleError::Operation(_)) => sent[tenth] += 1,
            Err(ThrottleError::Throttled(_)) => refused[tenth] += 1,
        }
        tokio::time::sleep_until(start + Duration::from_millis(u64::from(i + 1) * 100 / 3)).await;
    }
    // Every call either ran or was refused without running.
    for t in 0..6 {
        assert_eq!(sent[t] + refused[t], 300);
    }
    // Seeded draws: the same run every time, ten seconds at a time.
    assert_eq!(sent, [152, 175, 159, 136, 129, 137]);
    assert_eq!(accepted, [81, 78, 74, 72, 66, 69]);
    // Once the window is full, what is sent falls to K = 2 times what is accepted (within
    // 10%), from 300 a window without the throttle.
    for t in 3..6 {
        assert!(
            sent[t] * 10 <= 2 * accepted[t] * 11,
            "{} sent for {} accepted",
            sent[t],
            accepted[t]
        );
    }
}
