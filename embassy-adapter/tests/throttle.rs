//! `throttle::call` and `throttle::call_classified` on embassy-time's mock driver. The
//! driver is global: one test runs the steps in order.

mod common;

use core::pin::pin;
use core::time::Duration;

use common::*;
use stanchion::Instant;
use stanchion::retry::Ratio;
use stanchion::throttle::{AdaptiveThrottle, Throttled};
use stanchion_embassy::throttle::{self, ThrottleError};

#[test]
fn throttle_runner_on_the_mock_driver() {
    reset();
    let t = AdaptiveThrottle::<10>::new(Duration::from_secs(10), Ratio::TWO).unwrap();
    let mut rng = fastrand::Rng::with_seed(5);

    // A backend that answers "not found": an error, but an accept for the classifier.
    for _ in 0..10 {
        let call = pin!(throttle::call_classified(
            &t,
            &mut rng,
            || async { Err::<(), _>("not found") },
            |r| r.is_err(),
        ));
        assert_eq!(ready(call), Err(ThrottleError::Operation("not found")));
    }
    assert_eq!(t.counts_at(Instant::ZERO), (10, 10));

    // Then an overloaded one, every 100 ms for 10 s: what goes out falls to K = 2 times
    // the accepts, which stay in the window until it slides past them.
    let (mut sent, mut refused) = (0, 0);
    for step in 1..=100 {
        advance_to(step * 100 * MS);
        let call = pin!(throttle::call(&t, &mut rng, || async {
            Err::<(), _>("overloaded")
        }));
        match ready(call) {
            Err(ThrottleError::Operation(_)) => sent += 1,
            Err(ThrottleError::Throttled(Throttled { requests, accepts })) => {
                assert!(requests > 2 * accepts);
                refused += 1;
            }
            Ok(()) => unreachable!(),
        }
    }
    // The 10 accepts cover 10 more sends (K * 10 = 20 requests); after that request r
    // goes out with probability 21 / (r + 1): 10 + 21 * (H(110) - H(20)) = 45.4 expected.
    assert_eq!((sent, refused), (45, 55));
    // At 10 s the bucket of second 0, and its accepts, have left the window.
    let at = |ms: u64| Instant::from_millis(ms);
    assert_eq!(t.counts_at(at(10_000)), (91, 0));

    // The operation does not run when refused.
    let ran = core::cell::Cell::new(false);
    let call = pin!(throttle::call(&t, &mut rng, || {
        ran.set(true);
        async { Ok::<(), ()>(()) }
    }));
    let refused = matches!(ready(call), Err(ThrottleError::Throttled(_)));
    assert_eq!((refused, ran.get()), (true, false));
}
