//! Adaptive client-side throttling (the SRE book's) against a retry budget, on one
//! overloaded backend: the tour's section 7.
//!
//! The client wants 100 calls a second (one every 10 ms); the backend can serve 30 a
//! second (a token bucket, burst 5) and rejects the rest at once, so it accepts 30% of
//! the demand. Two minutes on virtual time; the second minute is measured. Three
//! clients: one call per request; up to three attempts under a retry budget (10% of
//! requests plus 10 per 10 s); and one call per request through an
//! [`AdaptiveThrottle`] with `K = 2`.

use std::time::Duration;

use stanchion::Instant;
use stanchion::rate::{Quota, TokenBucket};
use stanchion::retry::{Ratio, RatioBudget, RetryBudget};
use stanchion::throttle::AdaptiveThrottle;

/// What one client did in the measured minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The client.
    pub name: &'static str,
    /// Calls that reached the backend.
    pub sent: u32,
    /// Calls the backend accepted.
    pub accepted: u32,
}

/// The three clients, in the order above.
pub fn run_all() -> [Run; 3] {
    let plain = overloaded("no protection", |now, call| {
        call(now);
    });
    let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(10), 10)
        .expect("a valid budget");
    let retried = overloaded("retry budget (3 attempts, 10%)", |now, call| {
        budget.deposit_at(now);
        let mut at = now;
        for _ in 0..3 {
            if call(at) || !budget.try_withdraw_at(at) {
                break;
            }
            at += Duration::from_millis(1);
        }
    });
    let throttle =
        AdaptiveThrottle::<10>::new(Duration::from_secs(10), Ratio::TWO).expect("a valid throttle");
    let mut rng = fastrand::Rng::with_seed(20);
    let throttled = overloaded("adaptive throttle (K = 2)", |now, call| {
        if throttle.allow_at(now, &mut rng).is_ok() {
            throttle.record_at(now, call(now));
        }
    });
    [plain, retried, throttled]
}

/// Two minutes of requests; `request` makes each one's calls through the function it is
/// given, which returns whether the backend accepted the call.
fn overloaded(
    name: &'static str,
    mut request: impl FnMut(Instant, &mut dyn FnMut(Instant) -> bool),
) -> Run {
    let backend = TokenBucket::new(
        Quota::per_second(30)
            .and_then(|q| q.with_burst(5))
            .expect("a valid quota"),
    );
    let mut run = Run {
        name,
        sent: 0,
        accepted: 0,
    };
    for step in 0..12_000u64 {
        let now = Instant::from_secs(1_000) + Duration::from_millis(step * 10);
        let measured = step >= 6_000;
        let mut call = |at: Instant| {
            let accepted = backend.acquire_at(1, at).is_ok();
            if measured {
                run.sent += 1;
                run.accepted += u32::from(accepted);
            }
            accepted
        };
        request(now, &mut call);
    }
    run
}
