//! What each pattern costs an application in flash: `cargo xtask size` builds this image
//! with no pattern feature (the baseline: executor, time driver, startup) and with each
//! pattern's feature alone, and reports the differences. It is never run.
//!
//! Each pattern is built the way an application would use it: one limiter, one retry
//! policy, one breaker, one bulkhead, one timeout, one pipeline, each a `static` or a local
//! built once, and its main operations called on inputs the compiler cannot see
//! ([`black_box`]), so that nothing is folded away. There is no formatting and no message:
//! the panic handler halts, so a panicking path that survives in the library costs only its
//! call, and shows up as a `core::panicking` symbol in the image rather than hiding in the
//! baseline's formatting code.
//!
//! The full firmware (`src/main.rs`) measures more: each pattern's QEMU check, with its
//! async state machines and messages. Its sizes are reported beside these for context.
#![no_std]
#![no_main]

#[path = "../time_driver.rs"]
mod time_driver;

/// The machine this image is built for, written by `build.rs`.
#[allow(dead_code)]
mod machine {
    include!(concat!(env!("OUT_DIR"), "/machine.rs"));
}

/// The time driver's tick hook: the probe has no interrupt-sharing checks.
mod irq {
    pub fn on_tick() {}
}

use core::hint::black_box;
#[allow(unused_imports)]
use core::num::NonZeroU32;
#[allow(unused_imports)]
use core::time::Duration;

use embassy_executor::Spawner;
#[allow(unused_imports)]
use stanchion::{Clock, Deadline};
#[allow(unused_imports)]
use stanchion_embassy::EmbassyClock;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::asm::udf()
}

/// An operation whose outcome the compiler cannot see: what a driver call returns.
#[allow(dead_code)]
async fn operation(attempt: u32) -> Result<u32, u8> {
    black_box(if black_box(attempt) % 2 == 0 {
        Ok(attempt)
    } else {
        Err(1)
    })
}

#[allow(dead_code)]
fn millis() -> Duration {
    Duration::from_millis(black_box(10))
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        cortex_m::asm::udf()
    };
    time_driver::start(core.SYST);
    loop {
        #[cfg(feature = "deadline")]
        patterns::deadline().await;
        #[cfg(feature = "rate-limit")]
        patterns::rate_limit().await;
        #[cfg(feature = "retry")]
        patterns::retry().await;
        #[cfg(feature = "breaker")]
        patterns::breaker().await;
        #[cfg(feature = "bulkhead")]
        patterns::bulkhead().await;
        #[cfg(feature = "timeout")]
        patterns::timeout().await;
        #[cfg(feature = "pipeline")]
        patterns::pipeline().await;
        embassy_time::Timer::after_millis(black_box(1)).await;
    }
}

/// One function per pattern, each gated on its feature.
#[allow(dead_code, unused_imports)]
mod patterns {
    use core::hint::black_box;
    use core::num::NonZeroU32;
    use core::time::Duration;

    use stanchion::breaker::window::CountWindow;
    use stanchion::breaker::{BreakerConfig, CircuitBreaker};
    use stanchion::rate::{Quota, TokenBucket};
    use stanchion::retry::{Exponential, Jitter, Ratio, RetryPolicy};
    use stanchion::sync::CriticalSectionRawMutex;
    use stanchion::{Clock, Deadline};
    use stanchion_embassy::{BulkheadQueue, EmbassyClock, Pipeline, RateLimitQueue};

    use super::{millis, operation};

    /// A token bucket: three at once, then one every 100 ms; two tasks may wait in line.
    static RATE: RateLimitQueue<CriticalSectionRawMutex, TokenBucket, 2> = RateLimitQueue::new(
        TokenBucket::new(match Quota::per_period(Duration::from_millis(100)) {
            Ok(q) => match q.with_burst(3) {
                Ok(q) => q,
                Err(_) => panic!("bad burst"),
            },
            Err(_) => panic!("bad period"),
        }),
    );

    /// Two slots; two tasks may wait for one.
    static POOL: BulkheadQueue<CriticalSectionRawMutex, 2> =
        BulkheadQueue::new(match NonZeroU32::new(2) {
            Some(n) => n,
            None => panic!("zero"),
        });

    /// Opens when half of the last 32 calls (at least 8) failed, for 1 s.
    static BREAKER: CircuitBreaker<CountWindow<32>, CriticalSectionRawMutex> =
        match CountWindow::new() {
            Ok(window) => match CircuitBreaker::new(
                BreakerConfig::new()
                    .failure_rate_threshold(50)
                    .minimum_calls(8)
                    .open_duration(Duration::from_secs(1)),
                window,
            ) {
                Ok(b) => b,
                Err(_) => panic!("bad breaker"),
            },
            Err(_) => panic!("bad window"),
        };

    /// Exponential backoff from 10 ms, doubling, at most 1 s, full jitter; four attempts.
    fn policy() -> Option<RetryPolicy<Exponential>> {
        let backoff = Exponential::new(millis(), Ratio::TWO, Duration::from_secs(1))
            .ok()?
            .with_jitter(Jitter::FULL);
        RetryPolicy::new(
            backoff,
            black_box(4),
            fastrand::Rng::with_seed(black_box(7)),
        )
        .ok()
    }

    fn deadline_in(budget: Duration) -> Deadline {
        Deadline::after(EmbassyClock.now(), budget)
    }

    #[cfg(feature = "deadline")]
    pub async fn deadline() {
        let deadline = deadline_in(millis());
        let wait = deadline.clamp_wait(EmbassyClock.now(), millis());
        embassy_time::Timer::after(embassy_time::Duration::from_micros(
            black_box(wait).as_micros() as u64,
        ))
        .await;
        embassy_time::Timer::at(EmbassyClock::to_embassy(deadline.instant())).await;
        black_box((
            deadline.is_expired(EmbassyClock.now()),
            deadline.remaining(EmbassyClock.now()),
        ));
    }

    #[cfg(feature = "rate-limit")]
    pub async fn rate_limit() {
        let _ = black_box(RATE.acquire(black_box(1), deadline_in(millis())).await);
    }

    #[cfg(feature = "retry")]
    pub async fn retry() {
        if let Some(mut policy) = policy() {
            let _ = black_box(stanchion_embassy::retry(&mut policy, operation).await);
        }
    }

    #[cfg(feature = "breaker")]
    pub async fn breaker() {
        let _ =
            black_box(stanchion_embassy::breaker::call(&BREAKER, || operation(black_box(0))).await);
    }

    #[cfg(feature = "bulkhead")]
    pub async fn bulkhead() {
        if let Ok(permit) = POOL.acquire(deadline_in(millis())).await {
            let _ = black_box(operation(black_box(0)).await);
            drop(permit);
        }
    }

    #[cfg(feature = "timeout")]
    pub async fn timeout() {
        let _ = black_box(stanchion_embassy::timeout(millis(), operation(black_box(0))).await);
    }

    #[cfg(feature = "pipeline")]
    pub async fn pipeline() {
        let Some(mut policy) = policy() else { return };
        let pipeline = Pipeline::new()
            .overall_timeout(Duration::from_secs(1))
            .rate_limit(&RATE)
            .bulkhead(&POOL)
            .breaker(&BREAKER)
            .attempt_timeout(millis());
        let _ = black_box(pipeline.call(&mut policy, operation).await);
    }
}
