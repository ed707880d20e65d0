//! The adaptive throttle (the SRE book's client-side throttling) through
//! `stanchion_embassy::throttle::call`: nothing refused while the backend keeps up; once it
//! rejects everything, the client sends only a share, the exact one its seeded generator
//! gives on the host too; a refused call does not run; the window forgets.

use core::cell::Cell;
use core::time::Duration;

use embassy_time::Timer;
use stanchion::retry::Ratio;
use stanchion::throttle::AdaptiveThrottle;
use stanchion::{Clock, const_config};
use stanchion_embassy::EmbassyClock;
use stanchion_embassy::throttle::{self, ThrottleError};

use crate::ensure;
use crate::report::Outcome;

/// K = 2 over the last 200 ms, in 10 buckets of 20 ms.
static THROTTLE: AdaptiveThrottle<10> = const_config!(AdaptiveThrottle::new(
    Duration::from_millis(200),
    Ratio::TWO
));

/// One call through the throttle to a backend that accepts when `ok`; whether it ran.
async fn call(rng: &mut fastrand::Rng, ok: bool) -> (Result<(), ThrottleError<()>>, bool) {
    let ran = Cell::new(false);
    let result = throttle::call(&THROTTLE, rng, || {
        ran.set(true);
        async move { if ok { Ok(()) } else { Err(()) } }
    })
    .await;
    (result, ran.get())
}

/// Five accepted calls and five rejected ones all go out (10 requests <= 2 * 5 accepts);
/// of the next 100 rejected ones, 28 go out (seed 0x5EED, as on the host); 200 ms later
/// the window is empty and a call goes out again.
pub async fn run() -> Outcome {
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    for i in 0..10 {
        let (result, ran) = call(&mut rng, i < 5).await;
        ensure!(
            ran && !matches!(result, Err(ThrottleError::Throttled(_))),
            "refused while within K times the accepts"
        );
    }
    let mut sent = 0;
    for _ in 0..100 {
        let (result, ran) = call(&mut rng, false).await;
        match result {
            Err(ThrottleError::Throttled(_)) => ensure!(!ran, "a refused call ran"),
            _ => {
                ensure!(ran, "a sent call did not run");
                sent += 1;
            }
        }
    }
    ensure!(sent == 28, "not the host's share of calls sent");
    ensure!(
        THROTTLE.counts_at(EmbassyClock.now()) == (110, 5),
        "requests or accepts miscounted"
    );
    Timer::after_millis(250).await;
    ensure!(
        THROTTLE.counts_at(EmbassyClock.now()) == (0, 0),
        "the window did not forget"
    );
    let (result, ran) = call(&mut rng, true).await;
    ensure!(ran && result == Ok(()), "refused with an empty window");
    Ok(())
}
