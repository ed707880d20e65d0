//! Every rate limiter under an arbitrary configuration, arbitrary requests and an
//! arbitrary clock (extreme instants, steps backwards). Checks: no panic; never more
//! grants than the quota allows (token bucket: `burst + elapsed / period` over any
//! stretch; fixed window and sliding window counter: `limit` per fixed window; sliding
//! log: `limit` in any span of one window); the leaky bucket's reservations are spaced
//! one period apart and never wait past `max_delay`; `remaining_at` is the largest
//! grantable `n`; a denial's `retry_after` is exact (the same request then fits).
#![no_main]

use arbitrary::Arbitrary;
use core::time::Duration;
use libfuzzer_sys::fuzz_target;
use stanchion::Instant;
use stanchion::rate::{
    FixedWindow, LeakyBucket, Quota, RateLimitError, RateLimitState, RateLimiter,
    SlidingWindowCounter, SlidingWindowLog, Spacing, TokenBucket, WindowQuota,
};
use stanchion_fuzz::{FuzzClock, Tick, duration};

#[derive(Arbitrary, Debug)]
enum Limiter {
    TokenBucket {
        n: u32,
        interval: u64,
        scale: u8,
        burst: Option<u32>,
    },
    LeakyBucket {
        period: u64,
        pscale: u8,
        max_delay: u64,
        dscale: u8,
    },
    FixedWindow {
        limit: u32,
        window: u64,
        scale: u8,
    },
    SlidingWindowCounter {
        limit: u32,
        window: u64,
        scale: u8,
    },
    SlidingWindowLog {
        limit: u8,
        window: u64,
        scale: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Tick(Tick),
    Acquire(u8),
    AcquireHuge(u32),
    Peek(u8),
    Reset,
    /// A new quota of the same kind (tracking restarts: the bound is per quota).
    Requota(u32, u64, u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    limiter: Limiter,
    start: u64,
    ops: Vec<Op>,
}

const MAX_OPS: usize = 512;

/// Grants so far, as `(instant on the monotonic clock, n)`.
#[derive(Default)]
struct Grants(Vec<(u128, u64)>);

impl Grants {
    fn push(&mut self, at: u128, n: u32) {
        self.0.push((at, u64::from(n)));
    }

    /// Over every stretch from grant `i` to grant `j`: at most `burst + elapsed / period`.
    fn check_token_bucket(&self, burst: u32, period: u64) {
        let Some(&(t_j, _)) = self.0.last() else {
            return;
        };
        let mut sum = 0u64;
        for &(t_i, n) in self.0.iter().rev() {
            sum += n;
            let bound = u64::from(burst).saturating_add(((t_j - t_i) / u128::from(period)) as u64);
            assert!(
                sum <= bound,
                "token bucket: {sum} granted in {} ns, bound {bound} (burst {burst}, period {period} ns)",
                t_j - t_i
            );
        }
    }

    /// At most `limit` in each fixed window `[k * w, (k + 1) * w)`.
    fn check_fixed_windows(&self, limit: u32, w: u64) {
        let w = u128::from(w);
        let Some(&(t_j, _)) = self.0.last() else {
            return;
        };
        let k = t_j / w;
        let sum: u64 = self
            .0
            .iter()
            .filter(|(t, _)| t / w == k)
            .map(|(_, n)| n)
            .sum();
        assert!(
            sum <= u64::from(limit),
            "{sum} granted in window {k} (limit {limit})"
        );
    }

    /// At most `limit` in any span `(t - w, t]`.
    fn check_sliding_span(&self, limit: u32, w: u64) {
        let w = u128::from(w);
        let Some(&(t_j, _)) = self.0.last() else {
            return;
        };
        let sum: u64 = self
            .0
            .iter()
            .filter(|(t, _)| t_j - t < w)
            .map(|(_, n)| n)
            .sum();
        assert!(
            sum <= u64::from(limit),
            "{sum} granted within one window of {t_j} (limit {limit})"
        );
    }
}

fn window_quota(limit: u32, window: u64, scale: u8) -> Option<WindowQuota> {
    WindowQuota::new(limit, duration(window, scale)).ok()
}

fuzz_target!(|input: Input| {
    let mut clock = FuzzClock::new(input.start);
    let ops = &input.ops[..input.ops.len().min(MAX_OPS)];
    match input.limiter {
        Limiter::TokenBucket {
            n,
            interval,
            scale,
            burst,
        } => {
            let Ok(mut quota) = Quota::per_interval(n, duration(interval, scale)) else {
                return;
            };
            if let Some(b) = burst {
                let Ok(q) = quota.with_burst(b % 1_000 + 1) else {
                    return;
                };
                quota = q;
            }
            token_bucket(TokenBucket::new(quota), &mut clock, ops);
        }
        Limiter::LeakyBucket {
            period,
            pscale,
            max_delay,
            dscale,
        } => {
            let Ok(spacing) = Spacing::new(duration(period, pscale), duration(max_delay, dscale))
            else {
                return;
            };
            leaky_bucket(LeakyBucket::new(spacing), &mut clock, ops);
        }
        Limiter::FixedWindow {
            limit,
            window,
            scale,
        } => {
            let Some(q) = window_quota(limit, window, scale) else {
                return;
            };
            windows(
                FixedWindow::new(q),
                &mut clock,
                ops,
                |l| l.quota(),
                |l, q| l.set_quota(q),
                false,
            );
        }
        Limiter::SlidingWindowCounter {
            limit,
            window,
            scale,
        } => {
            let Some(q) = window_quota(limit, window, scale) else {
                return;
            };
            windows(
                SlidingWindowCounter::new(q),
                &mut clock,
                ops,
                |l| l.quota(),
                |l, q| l.set_quota(q),
                false,
            );
        }
        Limiter::SlidingWindowLog {
            limit,
            window,
            scale,
        } => {
            let Some(q) = window_quota(u32::from(limit % 16), window, scale) else {
                return;
            };
            let Ok(log) = SlidingWindowLog::<16>::new(q) else {
                return;
            };
            windows(
                log,
                &mut clock,
                ops,
                |l| l.quota(),
                |l, q| {
                    let _ = l.set_quota(q);
                },
                true,
            );
        }
    }
});

/// Checks a denial: `n` above the maximum is `InsufficientCapacity`; otherwise the same
/// request fits exactly `retry_after` later (on a clock that has not stepped back). Within
/// `headroom` of `Instant::MAX` the limiter's arithmetic saturates (it denies rather
/// than overflow, and time cannot pass beyond `MAX`), so the promise is not checked there.
fn check_denial(
    err: RateLimitError,
    n: u32,
    max: u32,
    clock: &FuzzClock,
    headroom: Duration,
    peek: impl Fn(Instant) -> bool,
) {
    match err {
        RateLimitError::InsufficientCapacity(e) => {
            assert!(n > max, "n = {n} within max {max} called insufficient");
            assert_eq!(e.max(), max);
        }
        RateLimitError::Denied(d) => {
            assert!(n <= max);
            let wait = d.retry_after();
            assert!(wait > Duration::ZERO);
            if clock.is_monotonic() {
                let saturates = clock
                    .now
                    .checked_add(wait)
                    .and_then(|t| t.checked_add(headroom));
                if let (Some(later), Some(_)) = (clock.now.checked_add(wait), saturates) {
                    assert!(
                        peek(later),
                        "n = {n} not granted after retry_after {wait:?}"
                    );
                }
            }
        }
    }
}

fn token_bucket(bucket: TokenBucket, clock: &mut FuzzClock, ops: &[Op]) {
    let mut grants = Grants::default();
    for op in ops {
        let quota = bucket.quota();
        let (burst, period) = (quota.burst(), quota.period().as_nanos() as u64);
        let n = match *op {
            Op::Tick(t) => {
                clock.tick(t);
                continue;
            }
            Op::Reset => {
                bucket.reset();
                clock.forget();
                grants = Grants::default();
                continue;
            }
            Op::Requota(n, interval, scale) => {
                if let Ok(q) = Quota::per_interval(n % 10_000, duration(interval, scale))
                    && bucket.set_quota(q).is_ok()
                {
                    grants = Grants::default();
                }
                continue;
            }
            Op::Peek(n) => {
                let n = u32::from(n);
                clock.observe();
                let remaining = bucket.remaining_at(clock.now);
                assert!(remaining <= burst);
                assert_eq!(bucket.peek_at(n, clock.now).is_ok(), n <= remaining);
                continue;
            }
            Op::Acquire(n) => u32::from(n % 16),
            Op::AcquireHuge(n) => n,
        };
        clock.observe();
        let remaining = bucket.remaining_at(clock.now);
        match bucket.acquire_at(n, clock.now) {
            Ok(()) => {
                assert!(n <= remaining, "granted {n} with {remaining} remaining");
                if n > 0 {
                    clock.granted();
                    grants.push(u128::from(clock.high.as_nanos()), n);
                    grants.check_token_bucket(burst, period);
                }
            }
            Err(e) => {
                assert!(n > remaining, "denied {n} with {remaining} remaining");
                let headroom = quota.burst_refill_time().saturating_add(quota.period());
                check_denial(e, n, burst, clock, headroom, |t| {
                    bucket.peek_at(n, t).is_ok()
                });
            }
        }
    }
}

fn leaky_bucket(bucket: LeakyBucket, clock: &mut FuzzClock, ops: &[Op]) {
    // The end of the last reservation: the next one may not start before it.
    let mut free_from = Instant::ZERO;
    for op in ops {
        let spacing = bucket.spacing();
        let period = spacing.period().as_nanos() as u64;
        let n = match *op {
            Op::Tick(t) => {
                clock.tick(t);
                continue;
            }
            Op::Reset => {
                RateLimiter::reset(&bucket);
                clock.forget();
                free_from = Instant::ZERO;
                continue;
            }
            Op::Requota(_, raw, scale) => {
                if let Ok(s) = Spacing::new(duration(raw, scale), duration(raw >> 7, scale >> 3)) {
                    let _ = bucket.set_spacing(s);
                }
                continue;
            }
            Op::Peek(n) => {
                let n = u32::from(n);
                clock.observe();
                let remaining = bucket.remaining_at(clock.now);
                assert_eq!(bucket.peek_at(n, clock.now).is_ok(), n <= remaining);
                continue;
            }
            Op::Acquire(n) => u32::from(n % 16),
            Op::AcquireHuge(n) => n,
        };
        clock.observe();
        match bucket.reserve_n_at(n, clock.now) {
            Ok(at) if n == 0 => assert_eq!(at, clock.now),
            Ok(at) => {
                assert!(
                    at >= clock.now,
                    "reserved {at:?} before now {:?}",
                    clock.now
                );
                assert!(
                    at >= free_from,
                    "reserved {at:?} inside the previous reservation (until {free_from:?})"
                );
                let last = at
                    .as_nanos()
                    .saturating_add(u64::from(n - 1).saturating_mul(period));
                let wait = last.saturating_sub(clock.now.as_nanos());
                assert!(
                    wait <= spacing.max_delay().as_nanos() as u64,
                    "the last of {n} waits {wait} ns, over max_delay {:?}",
                    spacing.max_delay()
                );
                free_from = Instant::from_nanos(last.saturating_add(period));
                clock.granted();
            }
            Err(e) => {
                let headroom = spacing
                    .max_delay()
                    .saturating_add(spacing.period().saturating_mul(n));
                check_denial(e, n, bucket.max_acquire(), clock, headroom, |t| {
                    bucket.peek_at(n, t).is_ok()
                })
            }
        }
    }
}

fn windows<L: RateLimitState>(
    mut limiter: L,
    clock: &mut FuzzClock,
    ops: &[Op],
    quota: impl Fn(&L) -> WindowQuota,
    set_quota: impl Fn(&mut L, WindowQuota),
    sliding: bool,
) {
    let mut grants = Grants::default();
    for op in ops {
        let q = quota(&limiter);
        let (limit, w) = (q.limit(), q.window().as_nanos() as u64);
        let n = match *op {
            Op::Tick(t) => {
                clock.tick(t);
                continue;
            }
            Op::Reset => {
                limiter.reset();
                clock.forget();
                grants = Grants::default();
                continue;
            }
            Op::Requota(limit, window, scale) => {
                let limit = if sliding { limit % 16 } else { limit };
                if let Some(q) = window_quota(limit, window, scale) {
                    // The count of the current window is kept, but windows of the new
                    // length are aligned anew: tracking starts again.
                    set_quota(&mut limiter, q);
                    clock.forget();
                    grants = Grants::default();
                }
                continue;
            }
            Op::Peek(n) => {
                let n = u32::from(n);
                clock.observe();
                let remaining = limiter.remaining_at(clock.now);
                assert!(remaining <= limit);
                assert_eq!(limiter.peek_at(n, clock.now).is_ok(), n <= remaining);
                continue;
            }
            Op::Acquire(n) => u32::from(n % 16),
            Op::AcquireHuge(n) => n,
        };
        clock.observe();
        let remaining = limiter.remaining_at(clock.now);
        match limiter.acquire_at(n, clock.now) {
            Ok(()) => {
                assert!(n <= remaining, "granted {n} with {remaining} remaining");
                if n > 0 {
                    clock.granted();
                    if sliding {
                        grants.push(clock.elapsed, n);
                        grants.check_sliding_span(limit, w);
                    } else {
                        grants.push(u128::from(clock.high.as_nanos()), n);
                        grants.check_fixed_windows(limit, w);
                    }
                }
            }
            Err(e) => {
                assert!(n > remaining, "denied {n} with {remaining} remaining");
                let headroom = q.window().saturating_mul(2);
                check_denial(e, n, limiter.max_acquire(), clock, headroom, |t| {
                    limiter.peek_at(n, t).is_ok()
                });
            }
        }
    }
}
