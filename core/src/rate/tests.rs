//! Scenario tests on virtual time, reference-model property tests and extreme inputs for
//! every rate limiter.

extern crate std;

use core::time::Duration;
use std::collections::HashMap;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::clock::ManualClock;
use crate::sync::CriticalSectionRawMutex;

type Cs = CriticalSectionRawMutex;

const MS: u64 = 1_000_000;

fn at(nanos: u64) -> Instant {
    Instant::from_nanos(nanos)
}

fn ms(m: u64) -> Instant {
    Instant::from_millis(m)
}

fn denied(retry_nanos: u64) -> Result<(), RateLimitError> {
    Err(RateLimitError::Denied(Denied::new(Duration::from_nanos(
        retry_nanos,
    ))))
}

fn too_large(max: u32) -> Result<(), RateLimitError> {
    Err(RateLimitError::InsufficientCapacity(
        InsufficientCapacity::new(max),
    ))
}

/// After a denial of `n` at `now`, the same request is granted exactly `retry_after`
/// later and not one nanosecond sooner (checked without consuming).
fn assert_retry_exact(l: &impl RateLimiter, n: u32, now: Instant) {
    let Err(RateLimitError::Denied(d)) = l.peek_at(n, now) else {
        return;
    };
    let r = d.retry_after();
    assert!(r > Duration::ZERO);
    let go = now + r;
    if go == Instant::MAX {
        return; // the end of time: nothing to check past it
    }
    assert_eq!(l.peek_at(n, go), Ok(()), "not granted at now + retry_after");
    if r > Duration::from_nanos(1) {
        assert!(
            l.peek_at(n, go - Duration::from_nanos(1)).is_err(),
            "granted before now + retry_after"
        );
    }
}

/// `remaining_at` is exactly the largest `n` that would be granted.
fn assert_remaining_exact(l: &impl RateLimiter, now: Instant) {
    let r = l.remaining_at(now);
    if r > 0 {
        assert_eq!(l.peek_at(r, now), Ok(()), "remaining {r} not grantable");
    }
    if r < l.max_acquire() {
        assert!(
            l.peek_at(r + 1, now).is_err(),
            "remaining {r} is not the most"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

#[test]
fn bad_configuration_is_a_config_error() {
    assert_eq!(Quota::per_second(0).unwrap_err().field(), "n");
    assert_eq!(
        Quota::per_second(1_000_000_001).unwrap_err().field(),
        "interval"
    );
    assert_eq!(
        Quota::per_second(1_000_000_000).unwrap().period(),
        Duration::from_nanos(1)
    );
    assert_eq!(
        Quota::per_period(Duration::ZERO).unwrap_err().field(),
        "period"
    );
    assert_eq!(
        Quota::per_period(Duration::MAX).unwrap_err().field(),
        "period"
    );
    let q = Quota::per_second(10).unwrap();
    assert_eq!(q.with_burst(0).unwrap_err().field(), "burst");
    let slow = Quota::per_period(Duration::from_secs(3600 * 24 * 365)).unwrap();
    assert_eq!(slow.with_burst(1000).unwrap_err().field(), "burst");
    assert!(slow.with_burst(500).is_ok());
    assert_eq!(
        WindowQuota::new(0, Duration::from_secs(1))
            .unwrap_err()
            .field(),
        "limit"
    );
    assert_eq!(
        WindowQuota::new(1, Duration::ZERO).unwrap_err().field(),
        "window"
    );
    let wq = WindowQuota::per_second(5).unwrap();
    assert_eq!(SlidingWindowLog::<4>::new(wq).unwrap_err().field(), "limit");
    assert_eq!(SlidingWindowLog::<0>::new(wq).unwrap_err().field(), "N");
    assert_eq!(
        KeyedTokenBucket::<0>::try_new(q, FullTablePolicy::DenyNewKeys, (0, 0))
            .unwrap_err()
            .field(),
        "N"
    );
    assert_eq!(
        Spacing::new(Duration::ZERO, Duration::ZERO)
            .unwrap_err()
            .field(),
        "period"
    );
}

#[test]
fn quota_constructors_match_governors_arithmetic() {
    // governor: replenish_1_per = interval / n, rounded down to the nanosecond.
    assert_eq!(
        Quota::per_second(3).unwrap().period(),
        Duration::from_nanos(333_333_333)
    );
    assert_eq!(
        Quota::per_minute(7).unwrap().period(),
        Duration::from_nanos(8_571_428_571)
    );
    assert_eq!(
        Quota::per_hour(1).unwrap().period(),
        Duration::from_secs(3600)
    );
    let q = Quota::per_second(4).unwrap().with_burst(9).unwrap();
    assert_eq!((q.burst(), q.period()), (9, Duration::from_millis(250)));
    assert_eq!(TokenBucket::new(q).quota(), q);
}

#[test]
fn quota_share_never_exceeds_the_whole() {
    let q = Quota::per_second(3).unwrap().with_burst(10).unwrap();
    let third = q.share(1, 3).unwrap();
    // 333_333_333 ns x 3 = 999_999_999: exact, no rounding up.
    assert_eq!(
        (third.burst(), third.period()),
        (3, Duration::from_nanos(999_999_999))
    );
    let two_sevenths = q.share(2, 7).unwrap();
    // 333_333_333 x 7 / 2 = 1_166_666_665.5, rounded up; burst 20 / 7 = 2.
    assert_eq!(
        (two_sevenths.burst(), two_sevenths.period()),
        (2, Duration::from_nanos(1_166_666_666))
    );
    assert_eq!(q.share(5, 5).unwrap(), q);
    assert_eq!(q.share(0, 5).unwrap_err().field(), "numerator");
    assert_eq!(q.share(6, 5).unwrap_err().field(), "numerator");
    let slow = Quota::per_period(Duration::from_nanos(u64::MAX)).unwrap();
    assert_eq!(slow.share(1, 2).unwrap_err().field(), "denominator");
    // Over the same long run, the shares together admit no more than the whole would.
    let shares = [
        q.share(1, 3).unwrap(),
        q.share(1, 3).unwrap(),
        q.share(1, 3).unwrap(),
    ];
    let horizon = ms(60_000);
    let whole = {
        let b = TokenBucket::new(q);
        (0..=60_000)
            .filter(|&t| b.acquire_at(1, ms(t)).is_ok())
            .count()
    };
    let parts: usize = shares
        .iter()
        .map(|s| {
            let b = TokenBucket::new(*s);
            (0..=60_000)
                .filter(|&t| b.acquire_at(1, ms(t)).is_ok())
                .count()
        })
        .sum();
    assert!(parts <= whole, "{parts} > {whole} by {horizon:?}");
}

#[test]
fn errors_display_and_classify() {
    let e = RateLimitError::from(Denied::new(Duration::ZERO));
    assert_eq!(e.retry_after(), Some(Duration::from_nanos(1)));
    assert!(e.is_retryable());
    assert_eq!(std::format!("{e}"), "rate limited: retry after 1ns");
    let e = RateLimitError::from(InsufficientCapacity::new(5));
    assert_eq!(e.retry_after(), None);
    assert!(!e.is_retryable());
    assert_eq!(
        std::format!("{e}"),
        "request can never be granted: at most 5 permits at once"
    );
    assert_eq!(
        Denied::new(Duration::from_secs(1)).earliest(Instant::from_secs(2)),
        Instant::from_secs(3)
    );
}

// ---------------------------------------------------------------------------------------
// Token bucket
// ---------------------------------------------------------------------------------------

#[test]
fn token_bucket_burst_then_steady_rate() {
    // 10 per second, burst 3: period 100 ms, tolerance 200 ms.
    let b = TokenBucket::new(Quota::per_second(10).unwrap().with_burst(3).unwrap());
    let t0 = ms(5_000);
    for _ in 0..3 {
        assert_eq!(b.acquire_at(1, t0), Ok(()));
    }
    assert_eq!(b.acquire_at(1, t0), denied(100 * MS));
    assert_eq!(b.remaining_at(t0), 0);
    // Exactly one permit every 100 ms from then on, inclusive at the instant.
    for k in 1..=50u64 {
        let t = ms(5_000 + 100 * k);
        assert_eq!(b.acquire_at(1, t - Duration::from_nanos(1)), denied(1));
        assert_eq!(b.acquire_at(1, t), Ok(()));
        assert_eq!(b.acquire_at(1, t), denied(100 * MS));
    }
    // Idle long enough and the bucket is full again, never fuller.
    let later = ms(60_000);
    assert_eq!(b.remaining_at(later), 3);
    assert_eq!(b.time_to_full_at(later), Duration::ZERO);
    assert_eq!(b.acquire_at(3, later), Ok(()));
    assert_eq!(b.time_to_full_at(later), Duration::from_millis(300));
    assert_eq!(b.acquire_at(1, later), denied(100 * MS));
}

#[test]
fn token_bucket_n_permits_all_or_nothing() {
    let b = TokenBucket::new(Quota::per_second(10).unwrap().with_burst(5).unwrap());
    let t0 = ms(1_000);
    assert_eq!(b.acquire_at(4, t0), Ok(()));
    assert_eq!(b.remaining_at(t0), 1);
    assert_eq!(b.acquire_at(3, t0), denied(200 * MS)); // two more permits: 200 ms
    assert_eq!(b.remaining_at(t0), 1); // the denial took nothing
    assert_eq!(b.acquire_at(3, ms(1_199)), denied(MS));
    assert_eq!(b.acquire_at(3, ms(1_200)), Ok(()));
    assert_eq!(b.acquire_at(6, ms(9_999)), too_large(5));
    assert_eq!(b.acquire_at(u32::MAX, ms(9_999)), too_large(5));
    assert_eq!(b.acquire_at(0, ms(1_200)), Ok(()));
    assert_eq!(b.max_acquire(), 5);
    b.reset();
    assert_eq!(b.remaining_at(ms(1_200)), 5);
}

#[test]
fn token_bucket_quota_change_keeps_state() {
    let b = TokenBucket::new(Quota::per_second(10).unwrap().with_burst(2).unwrap());
    let t0 = ms(1_000);
    assert_eq!(b.acquire_at(2, t0), Ok(())); // empty; full again at 1.2 s
    assert_eq!(
        b.set_quota(Quota::per_second(100).unwrap().with_burst(10).unwrap()),
        Ok(())
    );
    // Still 200 ms of debt: under the new tolerance (90 ms) the next permit is due
    // when the debt is down to 90 ms, at 1.11 s.
    assert_eq!(b.acquire_at(1, t0), denied(110 * MS));
    assert_eq!(b.acquire_at(1, ms(1_110)), Ok(()));
    // Full again, it is full to the new burst.
    assert_eq!(b.remaining_at(ms(5_000)), 10);
    assert_eq!(b.quota().burst(), 10);
}

#[test]
fn token_bucket_extremes_never_panic_nor_admit_extra() {
    let b = TokenBucket::new(Quota::per_second(1).unwrap().with_burst(2).unwrap());
    assert_eq!(
        b.acquire_at(2, Instant::MAX),
        Err(RateLimitError::until(u64::MAX, u64::MAX))
    );
    assert_eq!(b.acquire_at(1, at(u64::MAX - 1_000_000_000)), Ok(()));
    assert!(b.acquire_at(1, Instant::MAX).is_err()); // the next would end past the end of time
    assert_eq!(b.remaining_at(Instant::MAX), 0);
    // A clock that steps backwards admits nothing extra.
    let b = TokenBucket::new(Quota::per_second(1).unwrap());
    assert_eq!(b.acquire_at(1, ms(10_000)), Ok(()));
    assert_eq!(b.acquire_at(1, ms(3_000)), denied(8_000 * MS));
    assert_eq!(b.acquire_at(1, Instant::ZERO), denied(11_000 * MS));
    assert_eq!(b.acquire_at(1, ms(11_000)), Ok(()));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a million-step loop of safe arithmetic: hours under Miri"
)]
fn token_bucket_over_a_million_requests_has_no_drift() {
    // 3 per second (period 333_333_333 ns), burst 3; a request every millisecond.
    let q = Quota::per_second(3).unwrap();
    let b = TokenBucket::new(q);
    let step = MS;
    let requests = 1_000_000u64;
    let mut granted = 0u64;
    for i in 0..requests {
        if b.acquire_at(1, at(i * step)).is_ok() {
            granted += 1;
        }
    }
    let last = (requests - 1) * step;
    let period = q.period().as_nanos() as u64;
    assert_eq!(granted, 3 + last / period);
    assert_eq!(granted, 3_002);
}

#[test]
fn token_bucket_threads_never_overshoot() {
    let b = TokenBucket::new(Quota::per_second(1000).unwrap());
    let now = ms(1);
    let granted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..2_000 {
                    if b.acquire_at(1, now).is_ok() {
                        granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        s.spawn(|| {
            // Quota changes racing with grants: every decision sees a whole quota.
            for i in 0..200 {
                let q = if i % 2 == 0 {
                    Quota::per_second(1000).unwrap()
                } else {
                    Quota::per_second(1000).unwrap().with_burst(1000).unwrap()
                };
                let _ = b.set_quota(q);
            }
        });
    });
    assert_eq!(granted.into_inner(), 1000);
}

#[cfg(not(loom))]
#[test]
fn token_bucket_in_a_static_with_a_clock() {
    static BUCKET: TokenBucket = TokenBucket::new(match Quota::per_second(2) {
        Ok(q) => q,
        Err(_) => panic!(),
    });
    let clock = ManualClock::new();
    let l = WithClock::new(&BUCKET, &clock);
    assert_eq!(l.acquire(2), Ok(()));
    assert_eq!(l.peek(1), denied(500 * MS));
    assert_eq!(l.remaining(), 0);
    clock.advance(Duration::from_millis(500));
    assert_eq!(l.remaining(), 1);
    assert_eq!(l.acquire(1), Ok(()));
    assert_eq!(l.limiter().max_acquire(), 2);
}

// ---------------------------------------------------------------------------------------
// Leaky bucket
// ---------------------------------------------------------------------------------------

#[test]
fn leaky_bucket_spaces_evenly_and_bounds_the_wait() {
    let l = LeakyBucket::new(
        Spacing::new(Duration::from_millis(10), Duration::from_millis(30)).unwrap(),
    );
    let t0 = ms(100);
    let go: Vec<_> = (0..4).map(|_| l.reserve_at(t0).unwrap()).collect();
    assert_eq!(go, [ms(100), ms(110), ms(120), ms(130)]);
    // A fifth would wait 40 ms > 30 ms: denied until the wait is 30 ms, at 110 ms.
    assert_eq!(
        l.reserve_at(t0),
        Err(RateLimitError::until(110 * MS, 100 * MS))
    );
    assert_eq!(l.peek_delay_at(1, ms(110)), Ok(Duration::from_millis(30)));
    assert_eq!(l.reserve_at(ms(110)), Ok(ms(140)));
    // After an idle spell the queue is empty: go at once.
    assert_eq!(l.reserve_at(ms(1_000)), Ok(ms(1_000)));
    assert_eq!(l.reserve_n_at(3, ms(1_000)), Ok(ms(1_010))); // slots at 1010, 1020, 1030
    // Two more would go at 1040 and 1050: the last waits 50 ms; 30 ms from 1020 on.
    assert_eq!(
        l.reserve_n_at(2, ms(1_000)),
        Err(RateLimitError::until(1_020 * MS, 1_000 * MS))
    );
    assert_eq!(l.reserve_n_at(5, ms(1_000)), too_large(4).map(|_| ms(0)));
    assert_eq!(l.max_acquire(), 4);
    assert_eq!(l.spacing().queue_capacity(), 4);
    // Changing the spacing keeps reservations made.
    assert_eq!(
        l.set_spacing(Spacing::new(Duration::from_millis(1), Duration::ZERO).unwrap()),
        Ok(())
    );
    assert_eq!(
        l.reserve_at(ms(1_030)),
        Err(RateLimitError::until(1_040 * MS, 1_030 * MS))
    );
    assert_eq!(l.reserve_at(ms(1_040)), Ok(ms(1_040)));
    assert_eq!(
        l.reserve_at(ms(1_040)),
        Err(RateLimitError::until(1_041 * MS, 1_040 * MS))
    );
    RateLimiter::reset(&l);
    assert_eq!(l.remaining_at(ms(1_040)), 1);
}

// ---------------------------------------------------------------------------------------
// Windows
// ---------------------------------------------------------------------------------------

#[test]
fn fixed_window_counts_per_window_with_the_documented_boundary_burst() {
    let mut f = FixedWindow::new(WindowQuota::per_second(3).unwrap());
    assert_eq!(f.acquire_at(2, ms(1_500)), Ok(()));
    assert_eq!(f.acquire_at(2, ms(1_600)), denied(400 * MS));
    assert_eq!(RateLimitState::remaining_at(&f, ms(1_600)), 1);
    assert_eq!(f.acquire_at(1, ms(1_999)), Ok(()));
    // Boundary burst: 3 more at 2.0 s, 6 within 1 ms.
    assert_eq!(f.acquire_at(3, ms(2_000)), Ok(()));
    assert_eq!(f.acquire_at(4, ms(2_000)), too_large(3));
    // Backwards clock: stays in the latest window, no fresh count.
    assert_eq!(f.acquire_at(1, ms(1_000)), denied(2_000 * MS));
    // Quota change keeps the window's count.
    f.set_quota(WindowQuota::per_second(5).unwrap());
    assert_eq!(f.acquire_at(2, ms(2_100)), Ok(()));
    assert_eq!(f.acquire_at(1, ms(2_100)), denied(900 * MS));
    RateLimitState::reset(&mut f);
    assert_eq!(RateLimitState::remaining_at(&f, ms(2_100)), 5);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a million-step loop of safe arithmetic: hours under Miri"
)]
fn fixed_window_over_a_million_requests_has_no_drift() {
    let mut f = FixedWindow::new(WindowQuota::per_second(100).unwrap());
    let mut granted = 0u64;
    for i in 0..1_000_000u64 {
        if f.acquire_at(1, at(i * 3 * MS)).is_ok() {
            granted += 1;
        }
    }
    // 3000 s of arrivals, 333 or 334 per window: every window exactly full.
    assert_eq!(granted, 3_000 * 100);
}

#[test]
fn sliding_window_counter_weighs_the_previous_window() {
    let mut s = SlidingWindowCounter::new(WindowQuota::per_second(10).unwrap());
    assert_eq!(s.acquire_at(10, ms(900)), Ok(()));
    // Only in the next window, once the 10 weigh at most 9: at 1.1 s.
    assert_eq!(s.acquire_at(1, ms(999)), denied(101 * MS));
    assert_eq!(s.acquire_at(1, ms(1_000)), denied(100 * MS)); // 10 * 1.0 + 1 > 10
    assert_eq!(s.acquire_at(1, ms(1_100)), Ok(())); // 10 * 0.9 + 1 = 10
    assert_eq!(s.acquire_at(1, ms(1_100)), denied(100 * MS));
    assert_eq!(RateLimitState::remaining_at(&s, ms(1_500)), 4); // 10 - 5 - 1
    assert_eq!(s.acquire_at(6, ms(1_600)), denied(100 * MS)); // 10 * 0.4 + 1 + 6 > 10
    assert_eq!(s.acquire_at(5, ms(1_600)), Ok(())); // current: 6
    // At 1.9 s: 10 * 0.1 + 6 + 4 > 10 until the previous window weighs nothing, at 2.0 s,
    // where the 6 weigh fully: 6 + 4 = 10.
    assert_eq!(s.acquire_at(4, ms(1_900)), denied(100 * MS));
    assert_eq!(s.acquire_at(4, ms(2_000)), Ok(()));
    assert_eq!(s.acquire_at(11, ms(2_000)), too_large(10));
    // Two windows of silence forget everything.
    assert_eq!(RateLimitState::remaining_at(&s, ms(4_000)), 10);
    // Quota change keeps both counts.
    s.set_quota(WindowQuota::per_second(20).unwrap());
    assert_eq!(RateLimitState::remaining_at(&s, ms(2_000)), 10);
}

#[test]
fn sliding_window_log_is_exact() {
    let mut l =
        SlidingWindowLog::<5>::new(WindowQuota::new(3, Duration::from_secs(1)).unwrap()).unwrap();
    assert_eq!(l.acquire_at(1, ms(100)), Ok(()));
    assert_eq!(l.acquire_at(2, ms(900)), Ok(()));
    assert_eq!(l.acquire_at(1, ms(1_000)), denied(100 * MS));
    assert_eq!(l.acquire_at(2, ms(1_000)), denied(900 * MS)); // both 0.9 s grants must expire
    assert_eq!(l.acquire_at(1, ms(1_100)), Ok(()));
    assert_eq!(RateLimitState::remaining_at(&l, ms(1_900)), 2);
    assert_eq!(l.acquire_at(4, ms(1_900)), too_large(3));
    // Raise the limit to the capacity, keeping the log.
    assert_eq!(l.set_quota(WindowQuota::per_second(5).unwrap()), Ok(()));
    assert_eq!(l.acquire_at(4, ms(1_900)), Ok(()));
    assert_eq!(l.acquire_at(1, ms(1_900)), denied(200 * MS));
    assert!(l.set_quota(WindowQuota::per_second(6).unwrap()).is_err());
    // Backwards clock: counted at the latest instant seen.
    assert_eq!(l.acquire_at(1, ms(100)), denied(2_000 * MS));
    RateLimitState::reset(&mut l);
    assert_eq!(l.acquire_at(5, ms(100)), Ok(()));
}

#[test]
fn shared_window_limiters_through_a_critical_section() {
    let l: SharedLimiter<Cs, FixedWindow> =
        SharedLimiter::new(FixedWindow::new(WindowQuota::per_second(1000).unwrap()));
    let granted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..500 {
                    if l.acquire_at(1, ms(10)).is_ok() {
                        granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(granted.into_inner(), 1000);
    assert_eq!(l.remaining_at(ms(10)), 0);
    l.with(|f| f.set_quota(WindowQuota::per_second(1001).unwrap()));
    assert_eq!(l.max_acquire(), 1001);
    l.reset();
    assert_eq!(l.remaining_at(ms(10)), 1001);
}

/// Above `max_acquire`, `acquire_at` and `peek_at` answer `InsufficientCapacity`, on a
/// fresh limiter and on an emptied one alike (the contract of `RateLimiter` that the
/// waiting adapters rely on to refuse at once).
fn assert_too_large_is_insufficient(l: &impl RateLimiter) {
    let max = l.max_acquire();
    for now in [ms(0), ms(1_000)] {
        assert_eq!(l.peek_at(max + 1, now), too_large(max));
        assert_eq!(l.acquire_at(max + 1, now), too_large(max));
        assert_eq!(l.peek_at(u32::MAX, now), too_large(max));
        while l.acquire_at(1, now).is_ok() {}
    }
}

#[test]
fn every_limiter_answers_insufficient_capacity_above_its_maximum() {
    let q = Quota::per_second(10).unwrap().with_burst(3).unwrap();
    let w = WindowQuota::new(3, Duration::from_secs(1)).unwrap();
    assert_too_large_is_insufficient(&TokenBucket::new(q));
    assert_too_large_is_insufficient(&LeakyBucket::new(
        Spacing::new(Duration::from_millis(100), Duration::from_millis(200)).unwrap(),
    ));
    assert_too_large_is_insufficient(&SharedLimiter::<Cs, _>::new(FixedWindow::new(w)));
    assert_too_large_is_insufficient(&SharedLimiter::<Cs, _>::new(SlidingWindowCounter::new(w)));
    assert_too_large_is_insufficient(&SharedLimiter::<Cs, _>::new(
        SlidingWindowLog::<3>::new(w).unwrap(),
    ));
}

// ---------------------------------------------------------------------------------------
// Keyed
// ---------------------------------------------------------------------------------------

const KEY: (u64, u64) = (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);

#[test]
fn keyed_buckets_are_independent_and_exact() {
    let q = Quota::per_second(10).unwrap().with_burst(2).unwrap();
    let mut k: KeyedTokenBucket<64> = KeyedTokenBucket::new(q, FullTablePolicy::DenyNewKeys, KEY);
    let t = ms(1_000);
    assert_eq!(k.acquire_at(&1u64, 2, t), Ok(()));
    assert_eq!(k.acquire_at(&1u64, 1, t), denied(100 * MS));
    assert_eq!(k.acquire_at(&2u64, 2, t), Ok(()));
    assert_eq!(k.acquire_at("a str key", 2, t), Ok(()));
    assert_eq!(k.acquire_at("a str key", 3, t), too_large(2));
    assert_eq!(k.remaining_at(&1u64, ms(1_150)), 1);
    assert_eq!(k.peek_at(&1u64, 2, ms(1_150)), denied(50 * MS));
    assert_eq!(k.active_at(t), 3);
    assert_eq!(k.active_at(ms(2_000)), 0);
    k.set_quota(Quota::per_second(10).unwrap().with_burst(4).unwrap());
    // 200 ms of debt against a 300 ms tolerance: two permits now, not three.
    assert_eq!(k.acquire_at(&1u64, 3, t), denied(100 * MS));
    assert_eq!(k.acquire_at(&1u64, 2, t), Ok(()));
    k.reset();
    assert_eq!(k.remaining_at(&1u64, t), 4);
    assert_eq!(KeyedTokenBucket::<64>::BYTES_PER_KEY, 24);
    assert!(core::mem::size_of::<KeyedTokenBucket<64>>() <= 24 * 64 + 40);
}

#[test]
fn keyed_full_table_policies() {
    let q = Quota::per_second(1).unwrap(); // one per second per key
    let t = ms(10_000);
    // Four slots; every key is in the same probe window.
    let mut deny: KeyedTokenBucket<4> = KeyedTokenBucket::new(q, FullTablePolicy::DenyNewKeys, KEY);
    for key in 0..4u64 {
        assert_eq!(
            deny.acquire_at(&key, 1, t + Duration::from_millis(key)),
            Ok(())
        );
    }
    // Full of busy keys: a fifth is denied until the earliest slot refills, and the
    // table says it cannot track it (a key it holds, denied too, it can).
    assert_eq!(deny.acquire_at(&99u64, 1, ms(10_500)), denied(500 * MS));
    assert_eq!(deny.remaining_at(&99u64, ms(10_500)), 0);
    assert!(!deny.can_track_at(&99u64, ms(10_500)));
    assert_eq!(deny.acquire_at(&3u64, 1, ms(10_500)), denied(503 * MS));
    assert!(deny.can_track_at(&3u64, ms(10_500)));
    assert!(deny.can_track_at(&99u64, ms(11_000))); // key 0's slot is full again
    // At 11 s key 0's bucket is full again: its slot is reused, no decision changes.
    assert_eq!(deny.acquire_at(&99u64, 1, ms(11_000)), Ok(()));
    assert_eq!(deny.acquire_at(&0u64, 1, ms(11_000)), denied(MS)); // key 1 is full at 11.001 s
    assert_eq!(deny.acquire_at(&0u64, 1, ms(11_001)), Ok(())); // key 1 refilled at 11.001 s
    assert_eq!(deny.acquire_at(&99u64, 1, ms(11_001)), denied(999 * MS)); // 99 kept its state

    let mut evict: KeyedTokenBucket<4> =
        KeyedTokenBucket::new(q, FullTablePolicy::EvictLeastRecentlyUsed, KEY);
    for key in 0..4u64 {
        assert_eq!(
            evict.acquire_at(&key, 1, t + Duration::from_millis(key)),
            Ok(())
        );
    }
    assert!(evict.can_track_at(&99u64, ms(10_500))); // it evicts to make room
    assert_eq!(evict.acquire_at(&2u64, 1, ms(10_500)), denied(502 * MS)); // a denial does not touch `used`
    assert_eq!(evict.acquire_at(&99u64, 1, ms(10_500)), Ok(())); // evicts key 0, least recently used
    assert_eq!(evict.acquire_at(&0u64, 1, ms(10_600)), Ok(())); // back to a full bucket: evicts key 1
    assert_eq!(evict.acquire_at(&2u64, 1, ms(10_600)), denied(402 * MS)); // key 2 untouched
    assert_eq!(evict.policy(), FullTablePolicy::EvictLeastRecentlyUsed);
    evict.set_policy(FullTablePolicy::DenyNewKeys);
    assert_eq!(evict.acquire_at(&7u64, 1, ms(10_600)), denied(402 * MS)); // key 2 refills first
}

#[test]
fn keyed_shared_across_threads() {
    let q = Quota::per_second(100).unwrap();
    let k: SharedLimiter<Cs, KeyedTokenBucket<256>> =
        SharedLimiter::new(KeyedTokenBucket::new(q, FullTablePolicy::DenyNewKeys, KEY));
    let granted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..1_000u64 {
                    if KeyedRateLimiter::acquire_at(&k, &(i % 10), 1, ms(5)).is_ok() {
                        granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(granted.into_inner(), 10 * 100);
    assert_eq!(KeyedRateLimiter::<u64>::remaining_at(&k, &3, ms(5)), 0);
    assert_eq!(KeyedRateLimiter::<u64>::max_acquire(&k), 100);
    KeyedRateLimiter::<u64>::reset(&k);
    assert_eq!(KeyedRateLimiter::<u64>::peek_at(&k, &3, 100, ms(5)), Ok(()));
}

// ---------------------------------------------------------------------------------------
// Reference models
// ---------------------------------------------------------------------------------------

/// A token bucket as most people would write it: a level of credit in nanoseconds
/// (`burst * period` when full), refilled continuously, capped, spent `n * period` at a
/// time. No GCRA in sight.
#[derive(Clone, Debug)]
struct CreditModel {
    capacity: u128,
    period: u128,
    level: u128,
    last: u128,
}

impl CreditModel {
    fn new(q: Quota) -> Self {
        let period = q.period().as_nanos();
        let capacity = period * q.burst() as u128;
        CreditModel {
            capacity,
            period,
            level: capacity,
            last: 0,
        }
    }
    fn acquire(&mut self, n: u32, now: u64) -> Result<(), RateLimitError> {
        if n == 0 {
            return Ok(());
        }
        let burst = (self.capacity / self.period) as u32;
        if n > burst {
            return too_large(burst);
        }
        let now = now as u128;
        // Monotonic arrivals only (the property tests sort them).
        let level = (self.level + (now - self.last)).min(self.capacity);
        let cost = n as u128 * self.period;
        if cost <= level {
            self.level = level - cost;
            self.last = now;
            Ok(())
        } else {
            denied((cost - level) as u64)
        }
    }
}

#[derive(Clone, Debug, Default)]
struct LogModel {
    grants: Vec<u64>,
}

fn arrivals(max_gap: u64, len: usize) -> impl Strategy<Value = Vec<(u64, u32)>> {
    proptest::collection::vec((0..max_gap, 0u32..6), 1..len).prop_map(|steps| {
        let mut t = 0u64;
        steps
            .into_iter()
            .map(|(gap, n)| {
                t += gap;
                (t, n)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::proptest_cases(256), ..ProptestConfig::default() })]

    /// The firmware form of the token bucket (one out-of-line decision for taking and
    /// peeking) answers as the host form, step by step, on the same arrivals.
    #[test]
    fn token_bucket_firmware_decision_equals_the_host_one(
        period in 1u64..5_000,
        burst in 1u32..6,
        steps in arrivals(20_000, 200),
    ) {
        let q = Quota::per_period(Duration::from_nanos(period)).unwrap().with_burst(burst).unwrap();
        let (host, firmware) = (TokenBucket::new(q), TokenBucket::new(q));
        for &(t, n) in &steps {
            prop_assert_eq!(firmware.decide_at(n, at(t), false), host.peek_at(n, at(t)));
            prop_assert_eq!(firmware.decide_at(n, at(t), true), host.acquire_at(n, at(t)));
        }
    }

    #[test]
    fn token_bucket_equals_the_credit_model(
        period in 1u64..5_000,
        burst in 1u32..6,
        steps in arrivals(20_000, 200),
    ) {
        let q = Quota::per_period(Duration::from_nanos(period)).unwrap().with_burst(burst).unwrap();
        let b = TokenBucket::new(q);
        let mut model = CreditModel::new(q);
        let mut grants: Vec<u64> = Vec::new();
        for &(t, n) in &steps {
            assert_retry_exact(&b, n, at(t));
            assert_remaining_exact(&b, at(t));
            let remaining = b.remaining_at(at(t));
            prop_assert_eq!(b.peek_at(remaining, at(t)), Ok(()));
            if remaining < burst {
                prop_assert!(b.peek_at(remaining + 1, at(t)).is_err());
            }
            let got = b.acquire_at(n, at(t));
            prop_assert_eq!(got, model.acquire(n, t));
            if got.is_ok() {
                grants.extend(core::iter::repeat_n(t, n as usize));
            }
        }
        // Never more than burst + floor(span / period) in any closed span.
        for (i, &a) in grants.iter().enumerate() {
            for (j, &z) in grants.iter().enumerate().skip(i) {
                let allowed = burst as u64 + (z - a) / period;
                prop_assert!((j - i + 1) as u64 <= allowed);
            }
        }
    }

    #[test]
    fn leaky_bucket_equals_a_queue_model(
        period in 1u64..5_000,
        max_delay in 0u64..20_000,
        steps in arrivals(10_000, 200),
    ) {
        let l = LeakyBucket::new(Spacing::new(Duration::from_nanos(period), Duration::from_nanos(max_delay)).unwrap());
        let mut next_free = 0u64;
        let mut last_go: Option<u64> = None;
        for &(t, n) in &steps {
            let n = n.max(1);
            assert_retry_exact(&l, n, at(t));
            assert_remaining_exact(&l, at(t));
            let go = next_free.max(t);
            let last_wait = go + (n as u64 - 1) * period - t;
            let got = l.reserve_n_at(n, at(t));
            if (n as u64 - 1) * period > max_delay {
                prop_assert!(matches!(got, Err(RateLimitError::InsufficientCapacity(_))));
            } else if last_wait <= max_delay {
                prop_assert_eq!(got, Ok(at(go)));
                if let Some(prev) = last_go {
                    prop_assert!(go >= prev + period); // evenly spaced
                }
                last_go = Some(go + (n as u64 - 1) * period);
                next_free = go + n as u64 * period;
            } else {
                prop_assert_eq!(got.map(|_| ()), denied(last_wait - max_delay));
            }
        }
    }

    #[test]
    fn fixed_window_equals_a_map_of_counts(
        window in 1u64..10_000,
        limit in 1u32..8,
        steps in arrivals(5_000, 200),
    ) {
        let mut f = FixedWindow::new(WindowQuota::new(limit, Duration::from_nanos(window)).unwrap());
        let shared: SharedLimiter<Cs, FixedWindow> = SharedLimiter::new(f);
        let mut counts: HashMap<u64, u32> = HashMap::new();
        for &(t, n) in &steps {
            assert_retry_exact(&shared, n, at(t));
            assert_remaining_exact(&shared, at(t));
            let idx = t / window;
            let c = counts.entry(idx).or_default();
            let expected = if n == 0 {
                Ok(())
            } else if n > limit {
                too_large(limit)
            } else if *c + n <= limit {
                *c += n;
                Ok(())
            } else {
                denied((idx + 1) * window - t)
            };
            prop_assert_eq!(shared.acquire_at(n, at(t)), expected);
            prop_assert_eq!(f.acquire_at(n, at(t)), expected);
        }
        prop_assert!(counts.values().all(|&c| c <= limit));
    }

    #[test]
    fn sliding_window_counter_equals_its_formula_and_bounds_each_window(
        window in 1u64..10_000,
        limit in 1u32..8,
        steps in arrivals(5_000, 200),
    ) {
        let quota = WindowQuota::new(limit, Duration::from_nanos(window)).unwrap();
        let shared: SharedLimiter<Cs, SlidingWindowCounter> = SharedLimiter::new(SlidingWindowCounter::new(quota));
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for &(t, n) in &steps {
            assert_retry_exact(&shared, n, at(t));
            assert_remaining_exact(&shared, at(t));
            let idx = t / window;
            let prev = if idx == 0 { 0 } else { counts.get(&(idx - 1)).copied().unwrap_or(0) };
            let cur = counts.get(&idx).copied().unwrap_or(0);
            let e = t % window;
            let fits = (prev * (window - e) + (cur + n as u64) * window) as u128
                <= limit as u128 * window as u128;
            let got = shared.acquire_at(n, at(t));
            if n == 0 {
                prop_assert_eq!(got, Ok(()));
            } else if n > limit {
                prop_assert_eq!(got, too_large(limit));
            } else {
                prop_assert_eq!(got.is_ok(), fits);
                if fits {
                    *counts.entry(idx).or_default() += n as u64;
                }
            }
        }
        prop_assert!(counts.values().all(|&c| c <= limit as u64));
    }

    #[test]
    fn sliding_window_log_equals_a_list_of_grants(
        window in 1u64..10_000,
        limit in 1u32..8,
        steps in arrivals(5_000, 200),
    ) {
        let quota = WindowQuota::new(limit, Duration::from_nanos(window)).unwrap();
        let shared: SharedLimiter<Cs, SlidingWindowLog<8>> = SharedLimiter::new(SlidingWindowLog::new(quota).unwrap());
        let mut model = LogModel::default();
        for &(t, n) in &steps {
            assert_retry_exact(&shared, n, at(t));
            assert_remaining_exact(&shared, at(t));
            let live: Vec<u64> = model.grants.iter().copied().filter(|&g| g + window > t).collect();
            let expected = if n == 0 {
                Ok(())
            } else if n > limit {
                too_large(limit)
            } else if live.len() + n as usize <= limit as usize {
                model.grants.extend(core::iter::repeat_n(t, n as usize));
                Ok(())
            } else {
                let over = live.len() + n as usize - limit as usize;
                denied(live[over - 1] + window - t)
            };
            prop_assert_eq!(shared.acquire_at(n, at(t)), expected);
            prop_assert_eq!(
                shared.remaining_at(at(t)) as usize,
                limit as usize - model.grants.iter().filter(|&&g| g + window > t).count()
            );
        }
        // No span of one window's length holds more than the limit.
        for (i, &a) in model.grants.iter().enumerate() {
            let inside = model.grants[i..].iter().filter(|&&g| g < a + window).count();
            prop_assert!(inside <= limit as usize);
        }
    }

    #[test]
    fn keyed_equals_one_credit_model_per_key(
        period in 1u64..5_000,
        burst in 1u32..4,
        steps in proptest::collection::vec((0u64..3_000, 0u64..40, 0u32..4), 1..300),
    ) {
        let q = Quota::per_period(Duration::from_nanos(period)).unwrap().with_burst(burst).unwrap();
        // Room for every key: no eviction, so every decision must equal the models'.
        let mut k: KeyedTokenBucket<512> = KeyedTokenBucket::new(q, FullTablePolicy::DenyNewKeys, KEY);
        let mut models: HashMap<u64, CreditModel> = HashMap::new();
        let mut t = 0;
        for &(gap, key, n) in &steps {
            t += gap;
            let model = models.entry(key).or_insert_with(|| CreditModel::new(q));
            prop_assert_eq!(k.peek_at(&key, n, at(t)), model.clone().acquire(n, t));
            prop_assert_eq!(k.acquire_at(&key, n, at(t)), model.acquire(n, t));
        }
    }

    #[test]
    fn keyed_small_table_never_admits_more_than_the_quota_per_key(
        period in 1u64..5_000,
        burst in 1u32..4,
        steps in proptest::collection::vec((0u64..3_000, 0u64..40), 1..300),
    ) {
        let q = Quota::per_period(Duration::from_nanos(period)).unwrap().with_burst(burst).unwrap();
        let mut k: KeyedTokenBucket<8> = KeyedTokenBucket::new(q, FullTablePolicy::DenyNewKeys, KEY);
        let mut grants: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut t = 0;
        for &(gap, key) in &steps {
            t += gap;
            if k.acquire_at(&key, 1, at(t)).is_ok() {
                grants.entry(key).or_default().push(t);
            }
        }
        for g in grants.values() {
            for (i, &a) in g.iter().enumerate() {
                for (j, &z) in g.iter().enumerate().skip(i) {
                    prop_assert!((j - i + 1) as u64 <= burst as u64 + (z - a) / period);
                }
            }
        }
    }

    #[test]
    fn extreme_inputs_never_panic_and_backwards_time_admits_nothing_extra(
        times in proptest::collection::vec(prop_oneof![
            Just(0u64), Just(u64::MAX), Just(u64::MAX - 1), (u64::MAX - 1_000_000)..u64::MAX, any::<u64>(), 0u64..1_000_000
        ], 1..60),
        ns in proptest::collection::vec(prop_oneof![Just(u32::MAX), Just(1u32), 0u32..5], 60),
        period in prop_oneof![Just(1u64), Just(u64::MAX), 1u64..1_000_000_000],
    ) {
        let q = Quota::per_period(Duration::from_nanos(period)).unwrap();
        let q = q.with_burst(3).unwrap_or(q);
        let wq = WindowQuota::new(3, Duration::from_nanos(period)).unwrap();
        let tb = TokenBucket::new(q);
        let lb = LeakyBucket::new(Spacing::new(Duration::from_nanos(period), Duration::MAX).unwrap());
        let mut fw = FixedWindow::new(wq);
        let mut sc = SlidingWindowCounter::new(wq);
        let mut log = SlidingWindowLog::<3>::new(wq).unwrap();
        let mut keyed: KeyedTokenBucket<4> = KeyedTokenBucket::new(q, FullTablePolicy::EvictLeastRecentlyUsed, KEY);
        let mut latest = 0u64;
        let mut log_grants: Vec<u64> = Vec::new();
        for (&t, &n) in times.iter().zip(&ns) {
            let now = at(t);
            for r in [
                tb.acquire_at(n, now),
                lb.acquire_at(n, now),
                fw.acquire_at(n, now),
                sc.acquire_at(n, now),
                keyed.acquire_at(&t, n, now),
            ] {
                if let Err(RateLimitError::Denied(d)) = r {
                    prop_assert!(d.retry_after() > Duration::ZERO);
                }
            }
            // The exact log never holds more than the limit in one window, however the
            // clock moves: a grant counts at the latest instant granted.
            let before = RateLimitState::remaining_at(&log, now);
            if log.acquire_at(n, now).is_ok() && n > 0 {
                prop_assert!(n <= before);
                latest = latest.max(t);
                log_grants.extend(core::iter::repeat_n(latest, n as usize));
            }
            let _ = (tb.remaining_at(now), lb.remaining_at(now), keyed.remaining_at(&t, now));
            let _ = (RateLimitState::remaining_at(&fw, now), RateLimitState::remaining_at(&sc, now));
        }
        for (i, &a) in log_grants.iter().enumerate() {
            let inside = log_grants[i..]
                .iter()
                .filter(|&&g| (g as u128) < a as u128 + period as u128)
                .count();
            prop_assert!(inside <= 3);
        }
    }

    #[test]
    fn token_bucket_backwards_clock_admits_no_more_than_frozen_time(
        period in 1u64..5_000,
        burst in 1u32..6,
        steps in proptest::collection::vec((0u64..20_000, 0u32..6), 1..200),
    ) {
        // Arrivals in any order against the credit model fed max(now, latest): GCRA may
        // deny more (it reads an earlier clock as less refill), never admit more.
        let q = Quota::per_period(Duration::from_nanos(period)).unwrap().with_burst(burst).unwrap();
        let b = TokenBucket::new(q);
        let mut granted = 0u64;
        let mut latest = 0u64;
        for &(t, n) in &steps {
            latest = latest.max(t);
            if b.acquire_at(n, at(t)).is_ok() {
                granted += n as u64;
            }
        }
        prop_assert!(granted <= burst as u64 + latest / period);
    }
}

#[test]
fn one_step_quota_and_its_leaky_twin() {
    let q = Quota::new(4, Duration::from_millis(10)).unwrap();
    assert_eq!(
        q,
        Quota::per_period(Duration::from_millis(10))
            .unwrap()
            .with_burst(4)
            .unwrap()
    );
    assert_eq!(
        Quota::new(0, Duration::from_millis(10)),
        Err(ConfigError::new("burst", "at least 1"))
    );
    assert_eq!(
        Quota::new(1, Duration::ZERO),
        Err(ConfigError::new("period", "in 1 ns..=u64::MAX ns"))
    );
    // The token bucket and the leaky bucket of one quota admit the same requests at one
    // instant from idle, and the next one at the same time.
    let bucket = TokenBucket::new(q);
    let leaky = LeakyBucket::new(Spacing::from_quota(q));
    assert_eq!(bucket.max_acquire(), 4);
    let t0 = ms(1_000);
    let granted = (0..10).filter(|_| bucket.acquire_at(1, t0).is_ok()).count();
    let queued = (0..10).filter(|_| leaky.reserve_at(t0).is_ok()).count();
    assert_eq!((granted, queued), (4, 4));
    let refused = bucket.acquire_at(1, t0).unwrap_err();
    assert_eq!(refused.retry_after_nanos(), Some(10 * MS));
    assert_eq!(
        refused.retry_after_nanos().map(Duration::from_nanos),
        refused.retry_after()
    );
    assert_eq!(
        bucket.acquire_at(5, t0).unwrap_err().retry_after_nanos(),
        None
    );
}
