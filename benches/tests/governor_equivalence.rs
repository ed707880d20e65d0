//! stanchion's token bucket against governor, side by side on governor's
//! `FakeRelativeClock`: for the same quota and arrivals, every decision and every wait
//! must be equal to the nanosecond.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, FakeRelativeClock};
use governor::{Quota as GQuota, RateLimiter as GLimiter};
use stanchion::Instant;
use stanchion::rate::{FullTablePolicy, KeyedTokenBucket, Quota, RateLimitError, TokenBucket};

/// What governor answered, in stanchion's terms.
fn governor_outcome(
    r: Result<
        Result<(), governor::NotUntil<governor::nanos::Nanos>>,
        governor::InsufficientCapacity,
    >,
    clock: &FakeRelativeClock,
) -> Result<(), (Option<Duration>, Option<u32>)> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err((Some(not_until.wait_time_from(clock.now())), None)),
        Err(governor::InsufficientCapacity(max)) => Err((None, Some(max))),
    }
}

fn ours(r: Result<(), RateLimitError>) -> Result<(), (Option<Duration>, Option<u32>)> {
    match r {
        Ok(()) => Ok(()),
        Err(RateLimitError::Denied(d)) => Err((Some(d.retry_after()), None)),
        Err(RateLimitError::InsufficientCapacity(e)) => Err((None, Some(e.max()))),
    }
}

fn quotas(rng: &mut fastrand::Rng) -> (GQuota, Quota) {
    let burst = rng.u32(1..=20);
    if rng.bool() {
        let per_second = rng.u32(1..=5_000);
        (
            GQuota::per_second(NonZeroU32::new(per_second).unwrap())
                .allow_burst(NonZeroU32::new(burst).unwrap()),
            Quota::per_second(per_second)
                .unwrap()
                .with_burst(burst)
                .unwrap(),
        )
    } else {
        let period = Duration::from_nanos(rng.u64(1..=2_000_000));
        (
            GQuota::with_period(period)
                .unwrap()
                .allow_burst(NonZeroU32::new(burst).unwrap()),
            Quota::per_period(period)
                .unwrap()
                .with_burst(burst)
                .unwrap(),
        )
    }
}

#[test]
fn token_bucket_decisions_and_waits_equal_governors() {
    let mut checked = 0u64;
    for seed in 0..300u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (gq, q) = quotas(&mut rng);
        assert_eq!(q.period(), gq.replenish_interval());
        let clock = FakeRelativeClock::default();
        let governor = GLimiter::direct_with_clock(gq, clock.clone());
        let bucket = TokenBucket::new(q);
        let scale = q.period().as_nanos() as u64;
        let mut now = 0u64;
        for _ in 0..2_000 {
            // Gaps from zero to a few periods, so that buckets fill, drain and refill.
            let gap = match rng.u8(0..4) {
                0 => 0,
                1 => rng.u64(0..=scale / 4 + 1),
                2 => rng.u64(0..=scale * 2),
                _ => rng.u64(0..=scale * 25),
            };
            clock.advance(Duration::from_nanos(gap));
            now += gap;
            let n = rng.u32(1..=q.burst() + 2);
            let expected = governor_outcome(governor.check_n(NonZeroU32::new(n).unwrap()), &clock);
            let got = ours(bucket.acquire_at(n, Instant::from_nanos(now)));
            assert_eq!(got, expected, "seed {seed}, t = {now} ns, n = {n}");
            checked += 1;
        }
    }
    assert_eq!(checked, 600_000);
}

#[test]
fn keyed_decisions_and_waits_equal_governors() {
    for seed in 0..50u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (gq, q) = quotas(&mut rng);
        let clock = FakeRelativeClock::default();
        let governor = GLimiter::hashmap_with_clock(gq, clock.clone());
        // Room for every key, so that no eviction can differ.
        let mut keyed: KeyedTokenBucket<256> =
            KeyedTokenBucket::new(q, FullTablePolicy::DenyNewKeys, (seed, !seed));
        let scale = q.period().as_nanos() as u64;
        let mut now = 0u64;
        for _ in 0..3_000 {
            let gap = rng.u64(0..=scale);
            clock.advance(Duration::from_nanos(gap));
            now += gap;
            let key = rng.u32(0..40);
            let n = rng.u32(1..=q.burst() + 1);
            let expected = governor_outcome(
                governor.check_key_n(&key, NonZeroU32::new(n).unwrap()),
                &clock,
            );
            let got = ours(keyed.acquire_at(&key, n, Instant::from_nanos(now)));
            assert_eq!(
                got, expected,
                "seed {seed}, t = {now} ns, key {key}, n = {n}"
            );
        }
    }
}
