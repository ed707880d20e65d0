//! What each pattern costs an application in flash: `cargo xtask size` builds this image
//! with no pattern feature (the baseline: executor, time driver, startup) and with each
//! pattern's feature alone, and reports the differences. It is never run.
//!
//! Each pattern is built the way an application would use it: one limiter, one retry
//! policy, one breaker (over a count window, and over a consecutive-failures window), one
//! bulkhead, one timeout, one pipeline, one adaptive throttle, one fault injector, one hedge, each a `static` or a local built once, and its
//! main operations called on inputs the compiler cannot see ([`black_box`]), so that
//! nothing is folded away. There is no formatting and no message:
//! the panic handler halts, so a panicking path that survives in the library costs only its
//! call, and shows up as a `core::panicking` symbol in the image rather than hiding in the
//! baseline's formatting code.
//!
//! The `peer-*` features build the same patterns with the crates an application would pick
//! instead (backon, governor, reliakit-circuit, embassy-sync's semaphore, embassy-time
//! alone), in [`peers`], configured and called like stanchion's, for the comparison
//! `cargo xtask size` prints beside stanchion's rows.
//!
//! The full firmware (`src/main.rs`) measures more: each pattern's QEMU check, with its
//! async state machines and messages. Its sizes are reported beside these for context.
#![no_std]
#![no_main]

#[path = "../time_driver.rs"]
mod time_driver;

/// The counting `defmt` logger, so that the image links with the firmware's `log-defmt`
/// feature too (the size probe is measured without it).
#[cfg(feature = "log-defmt")]
#[allow(dead_code)]
#[path = "../defmt_log.rs"]
mod defmt_log;

/// The machine this image is built for, written by `build.rs`.
#[allow(dead_code)]
mod machine {
    include!(concat!(env!("OUT_DIR"), "/machine.rs"));
}

/// The time driver's tick hook: the probe has no interrupt-sharing checks.
mod irq {
    pub fn on_tick() {}
}

/// The core operations the probe needs. It is measured on Arm (thumbv7em); for RISC-V it
/// only builds, so that every binary of the crate builds (and is linted) for every target.
mod core_ops {
    /// Halts (the panic handler, and what cannot happen).
    #[cfg(target_arch = "arm")]
    pub use cortex_m::asm::udf as halt;
    #[cfg(target_arch = "riscv32")]
    pub fn halt() -> ! {
        loop {
            riscv::asm::wfi();
        }
    }

    /// Starts the time driver's timer.
    #[cfg(target_arch = "arm")]
    #[inline(always)]
    pub fn start_time() {
        let Some(core) = cortex_m::Peripherals::take() else {
            halt()
        };
        crate::time_driver::start(core.SYST);
    }
    #[cfg(target_arch = "riscv32")]
    pub fn start_time() {
        crate::time_driver::start();
    }
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
    core_ops::halt()
}

/// An operation whose outcome the compiler cannot see: what a driver call returns.
#[allow(dead_code)]
async fn operation(attempt: u32) -> Result<u32, u8> {
    black_box(if black_box(attempt).is_multiple_of(2) {
        Ok(attempt)
    } else {
        Err(1)
    })
}

/// 10 ms, as a `Duration` the compiler cannot see through. The constant is hidden whole:
/// `Duration::from_millis` of an unknown `u64` would divide by 1,000 and link the 64-bit
/// division routine (about 930 bytes) into every row, stanchion's and the peers', for the
/// probe's own sake; an application writes such constants as constants.
#[allow(dead_code)]
fn millis() -> Duration {
    black_box(Duration::from_millis(10))
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    core_ops::start_time();
    #[cfg(feature = "peer-heap")]
    peers::init_heap();
    #[cfg(feature = "peer-governor")]
    let limiter = peers::rate_limiter();
    loop {
        #[cfg(feature = "deadline")]
        patterns::deadline().await;
        #[cfg(feature = "rate-limit")]
        patterns::rate_limit().await;
        #[cfg(feature = "retry")]
        patterns::retry().await;
        #[cfg(feature = "breaker")]
        patterns::breaker().await;
        #[cfg(feature = "breaker-consecutive")]
        patterns::breaker_consecutive().await;
        #[cfg(feature = "bulkhead")]
        patterns::bulkhead().await;
        #[cfg(feature = "timeout")]
        patterns::timeout().await;
        #[cfg(feature = "pipeline")]
        patterns::pipeline().await;
        #[cfg(feature = "throttle")]
        patterns::throttle().await;
        #[cfg(feature = "fault")]
        patterns::fault().await;
        #[cfg(feature = "fallback")]
        patterns::fallback().await;
        #[cfg(feature = "hedge")]
        patterns::hedge().await;
        #[cfg(feature = "peer-embassy-time-deadline")]
        peers::deadline().await;
        #[cfg(feature = "peer-governor")]
        peers::rate_limit(&limiter).await;
        #[cfg(feature = "peer-backon")]
        peers::retry().await;
        #[cfg(feature = "peer-reliakit-circuit")]
        peers::breaker().await;
        #[cfg(feature = "peer-reliakit-circuit-consecutive")]
        peers::breaker_consecutive().await;
        #[cfg(feature = "peer-embassy-sync-semaphore")]
        peers::bulkhead().await;
        #[cfg(feature = "peer-embassy-time-timeout")]
        peers::timeout().await;
        #[cfg(feature = "peer-pipeline")]
        peers::pipeline(&limiter).await;
        #[cfg(feature = "peer-heap")]
        peers::heap();
        embassy_time::Timer::after_millis(black_box(1)).await;
    }
}

/// One function per pattern, each gated on its feature.
#[allow(dead_code, unused_imports)]
mod patterns {
    use core::hint::black_box;
    use core::num::NonZeroU32;
    use core::time::Duration;

    use stanchion::breaker::window::{ConsecutiveWindow, CountWindow};
    use stanchion::breaker::{BreakerConfig, CircuitBreaker};
    use stanchion::rate::{Quota, TokenBucket};
    use stanchion::retry::{Exponential, Jitter, Ratio, RetryPolicy};
    use stanchion::sync::CriticalSectionRawMutex;
    use stanchion::{Clock, Deadline, const_config};
    use stanchion_embassy::{BulkheadQueue, EmbassyClock, Pipeline, RateLimitQueue};

    use super::{millis, operation};

    /// A token bucket: three at once, then one every 100 ms; two tasks may wait in line.
    static RATE: RateLimitQueue<CriticalSectionRawMutex, TokenBucket, 2> =
        RateLimitQueue::new(TokenBucket::new(const_config!(
            const_config!(Quota::per_period(Duration::from_millis(100))).with_burst(3)
        )));

    /// Two slots; two tasks may wait for one.
    static POOL: BulkheadQueue<CriticalSectionRawMutex, 2> =
        BulkheadQueue::new(match NonZeroU32::new(2) {
            Some(n) => n,
            None => panic!("zero"),
        });

    /// Opens when half of the last 32 calls (at least 8) failed, for 1 s.
    static BREAKER: CircuitBreaker<CountWindow<32>, CriticalSectionRawMutex> =
        const_config!(CircuitBreaker::new(
            BreakerConfig::new()
                .failure_rate_threshold(50)
                .minimum_calls(8)
                .open_duration(Duration::from_secs(1)),
            const_config!(CountWindow::new()),
        ));

    /// Opens after 5 failures in a row, for 1 s; one probe in half-open decides.
    static CONSECUTIVE: CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex> =
        const_config!(CircuitBreaker::new(
            BreakerConfig::new()
                .permitted_calls_in_half_open(1)
                .open_duration(Duration::from_secs(1)),
            const_config!(ConsecutiveWindow::new(5)),
        ));

    /// K = 2 over the last 10 s, in 10 buckets.
    #[cfg(feature = "throttle")]
    static THROTTLE: stanchion::throttle::AdaptiveThrottle<10> = const_config!(
        stanchion::throttle::AdaptiveThrottle::new(Duration::from_secs(10), Ratio::TWO)
    );

    /// One call in a hundred.
    #[cfg(feature = "fault")]
    static FAULTS: stanchion::fault::FaultInjector =
        stanchion::fault::FaultInjector::new(const_config!(stanchion::fault::Share::percent(1)));

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
        stanchion_embassy::sleep(black_box(wait)).await;
        stanchion_embassy::sleep_until(deadline.instant()).await;
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

    #[cfg(feature = "breaker-consecutive")]
    pub async fn breaker_consecutive() {
        let _ = black_box(
            stanchion_embassy::breaker::call(&CONSECUTIVE, || operation(black_box(0))).await,
        );
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

    #[cfg(feature = "throttle")]
    pub async fn throttle() {
        let mut rng = fastrand::Rng::with_seed(black_box(7));
        let _ = black_box(
            stanchion_embassy::throttle::call(&THROTTLE, &mut rng, || operation(black_box(0)))
                .await,
        );
    }

    /// The fault chosen at run time, so that the error, the outcome and the latency are
    /// all built; the switch flipped as an operator would.
    #[cfg(feature = "fault")]
    pub async fn fault() {
        use stanchion::fault::Fault;
        let mut rng = fastrand::Rng::with_seed(black_box(7));
        let fault: Fault<u32, u8> = match black_box(0u8) {
            0 => Fault::Error(2),
            1 => Fault::Outcome(0),
            _ => Fault::Latency(millis()),
        };
        FAULTS.set_enabled(black_box(true));
        let _ = black_box(
            stanchion_embassy::fault::call(&FAULTS, &fault, &mut rng, || operation(black_box(0)))
                .await,
        );
    }

    /// The pipeline of [`pipeline`], its refusals answered by a fallback: the `pipeline`
    /// row plus what the fallback adds.
    #[cfg(feature = "fallback")]
    pub async fn fallback() {
        let Some(mut policy) = policy() else { return };
        let pipeline = Pipeline::new()
            .overall_timeout(Duration::from_secs(1))
            .rate_limit(&RATE)
            .bulkhead(&POOL)
            .breaker(&BREAKER)
            .attempt_timeout(millis());
        let answer = pipeline
            .call_or_else(
                &mut policy,
                operation,
                stanchion::fallback::FallbackOn::REFUSALS,
                |refused| async move { black_box(refused.layer()) as u32 },
            )
            .await;
        let _ = black_box(answer);
    }

    /// A hedge at the learned p90 (a 120-bucket histogram) with a 10% budget.
    #[cfg(feature = "hedge")]
    static HEDGE: stanchion::hedge::Hedge<stanchion::retry::RatioBudget<10>, 120> =
        const_config!(stanchion::hedge::Hedge::new(
            const_config!(stanchion::hedge::HedgeConfig::learned(900, 2)),
            const_config!(stanchion::retry::RatioBudget::new(
                Duration::from_secs(10),
                Ratio::percent(10),
                1
            )),
        ));

    /// One call of up to 2 attempts through the hedge.
    #[cfg(feature = "hedge")]
    pub async fn hedge() {
        let _ = black_box(
            stanchion_embassy::hedge::call(&HEDGE, stanchion_embassy::hedge::InFlight::<2>, || {
                operation(black_box(0))
            })
            .await,
        );
    }
}

/// The peers: each pattern of [`patterns`] written with another crate, with the same
/// configuration and the same calls, each gated on its `peer-*` feature.
#[allow(dead_code, unused_imports)]
mod peers {
    use core::hint::black_box;
    use core::time::Duration;

    use super::{millis, operation};

    /// `core::time::Duration` to embassy-time's, in microseconds (saturating).
    fn embassy(d: Duration) -> embassy_time::Duration {
        embassy_time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// A deadline `budget` from now, in embassy-time's own terms.
    fn deadline_in(budget: Duration) -> embassy_time::Instant {
        embassy_time::Instant::now().saturating_add(embassy(budget))
    }

    /// The same steps as `patterns::deadline`, with `embassy_time::Instant`.
    #[cfg(feature = "peer-embassy-time-deadline")]
    pub async fn deadline() {
        let deadline = deadline_in(millis());
        let left = deadline.saturating_duration_since(embassy_time::Instant::now());
        let wait = embassy(millis()).min(left);
        embassy_time::Timer::after(black_box(wait)).await;
        embassy_time::Timer::at(deadline).await;
        let now = embassy_time::Instant::now();
        black_box((now >= deadline, deadline.saturating_duration_since(now)));
    }

    /// governor's clock: embassy-time's, as a `Duration` since boot.
    #[cfg(feature = "peer-governor")]
    #[derive(Clone, Copy, Debug)]
    pub struct EmbassyTime;

    #[cfg(feature = "peer-governor")]
    impl governor::clock::Clock for EmbassyTime {
        type Instant = Duration;
        fn now(&self) -> Duration {
            Duration::from_micros(embassy_time::Instant::now().as_micros())
        }
    }

    /// governor's direct limiter on that clock.
    #[cfg(feature = "peer-governor")]
    pub type Limiter = governor::RateLimiter<
        governor::state::NotKeyed,
        governor::state::InMemoryState,
        EmbassyTime,
        governor::middleware::NoOpMiddleware<Duration>,
    >;

    /// Three at once, then one every 100 ms, as `patterns::RATE`. governor's constructor
    /// is not `const`, so the task builds it once and lends it.
    #[cfg(feature = "peer-governor")]
    pub fn rate_limiter() -> Limiter {
        let quota = governor::Quota::with_period(Duration::from_millis(100))
            .unwrap_or_else(|| crate::core_ops::halt())
            .allow_burst(core::num::NonZeroU32::new(3).unwrap_or(core::num::NonZeroU32::MIN));
        governor::RateLimiter::direct_with_clock(quota, EmbassyTime)
    }

    /// One permit, waiting until `deadline` at most: governor has no waiting form on
    /// no_std (its `until_ready` needs std), so this is the loop an application writes.
    #[cfg(feature = "peer-governor")]
    async fn acquire(limiter: &Limiter, deadline: embassy_time::Instant) -> bool {
        use governor::clock::Clock;
        let n = core::num::NonZeroU32::new(black_box(1)).unwrap_or(core::num::NonZeroU32::MIN);
        loop {
            match limiter.check_n(n) {
                Ok(Ok(())) => return true,
                Ok(Err(not_until)) => {
                    let at = embassy_time::Instant::now()
                        .saturating_add(embassy(not_until.wait_time_from(EmbassyTime.now())));
                    if at > deadline {
                        return false;
                    }
                    embassy_time::Timer::at(at).await;
                }
                Err(_) => return false,
            }
        }
    }

    #[cfg(feature = "peer-governor")]
    pub async fn rate_limit(limiter: &Limiter) {
        black_box(acquire(limiter, deadline_in(millis())).await);
    }

    /// Exponential from 10 ms, doubling, at most 1 s, jitter, four attempts (three retries).
    #[cfg(feature = "peer-backon")]
    fn backoff() -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(millis())
            .with_factor(2.0)
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(black_box(3))
            .with_jitter()
            .with_jitter_seed(black_box(7))
    }

    #[cfg(feature = "peer-backon")]
    pub async fn retry() {
        use backon::Retryable;
        let mut attempt = 0u32;
        let result = (|| {
            attempt = attempt.wrapping_add(1);
            operation(attempt)
        })
        .retry(backoff())
        .sleep(backon::EmbassySleeper)
        .await;
        let _ = black_box(result);
    }

    /// Opens when 16 of the last 32 calls failed (reliakit counts failures, not a rate with
    /// a minimum of calls), for 1 s (in milliseconds: the caller picks the unit).
    #[cfg(feature = "peer-reliakit-circuit")]
    static BREAKER: critical_section::Mutex<
        core::cell::RefCell<reliakit_circuit::RollingBreaker<32>>,
    > = critical_section::Mutex::new(core::cell::RefCell::new(
        reliakit_circuit::RollingBreaker::new(16, 1000),
    ));

    #[cfg(any(
        feature = "peer-reliakit-circuit",
        feature = "peer-reliakit-circuit-consecutive"
    ))]
    fn now_ms() -> u64 {
        embassy_time::Instant::now().as_millis()
    }

    /// Asks the breaker; `false` when open.
    #[cfg(feature = "peer-reliakit-circuit")]
    fn breaker_allows() -> bool {
        critical_section::with(|cs| BREAKER.borrow_ref_mut(cs).allow(now_ms()))
    }

    /// Records one outcome.
    #[cfg(feature = "peer-reliakit-circuit")]
    fn breaker_records(success: bool) {
        critical_section::with(|cs| {
            let mut breaker = BREAKER.borrow_ref_mut(cs);
            if success {
                breaker.on_success();
            } else {
                breaker.on_failure(now_ms());
            }
        });
    }

    #[cfg(feature = "peer-reliakit-circuit")]
    pub async fn breaker() {
        if !breaker_allows() {
            black_box(());
            return;
        }
        let result = operation(black_box(0)).await;
        breaker_records(result.is_ok());
        let _ = black_box(result);
    }

    /// Opens after 5 failures in a row, for 1 s (in milliseconds); one success in
    /// half-open closes it, as `patterns::CONSECUTIVE`.
    #[cfg(feature = "peer-reliakit-circuit-consecutive")]
    static CONSECUTIVE: critical_section::Mutex<
        core::cell::RefCell<reliakit_circuit::CircuitBreaker>,
    > = critical_section::Mutex::new(core::cell::RefCell::new(
        reliakit_circuit::CircuitBreaker::new(5, 1000),
    ));

    #[cfg(feature = "peer-reliakit-circuit-consecutive")]
    pub async fn breaker_consecutive() {
        if !critical_section::with(|cs| CONSECUTIVE.borrow_ref_mut(cs).allow(now_ms())) {
            black_box(());
            return;
        }
        let result = operation(black_box(0)).await;
        critical_section::with(|cs| {
            let mut breaker = CONSECUTIVE.borrow_ref_mut(cs);
            if result.is_ok() {
                breaker.on_success();
            } else {
                breaker.on_failure(now_ms());
            }
        });
        let _ = black_box(result);
    }

    /// Two slots; two tasks may wait for one, in arrival order.
    #[cfg(feature = "peer-embassy-sync-semaphore")]
    static POOL: embassy_sync::semaphore::FairSemaphore<
        embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex,
        2,
    > = embassy_sync::semaphore::FairSemaphore::new(2);

    #[cfg(feature = "peer-embassy-sync-semaphore")]
    pub async fn bulkhead() {
        use embassy_sync::semaphore::Semaphore;
        if let Ok(Ok(permit)) =
            embassy_time::with_deadline(deadline_in(millis()), POOL.acquire(1)).await
        {
            let _ = black_box(operation(black_box(0)).await);
            drop(permit);
        }
    }

    #[cfg(feature = "peer-embassy-time-timeout")]
    pub async fn timeout() {
        let _ =
            black_box(embassy_time::with_timeout(embassy(millis()), operation(black_box(0))).await);
    }

    /// Why a hand-composed pipeline call failed: the layer, as `PipelineError` says.
    #[cfg(feature = "peer-pipeline")]
    #[derive(Debug)]
    pub enum Refused {
        Timeout,
        RateLimited,
        BulkheadFull,
        BreakerOpen,
        AttemptTimeout,
        Failed(u8),
    }

    /// Overall timeout 1 s, then the rate limit, the bulkhead, and retries of an attempt
    /// that asks the breaker and runs under a 10 ms timeout: stanchion's layer order.
    #[cfg(feature = "peer-pipeline")]
    pub async fn pipeline(limiter: &Limiter) {
        use backon::Retryable;
        use embassy_sync::semaphore::Semaphore;
        let deadline = deadline_in(Duration::from_secs(1));
        let call = async {
            if !acquire(limiter, deadline).await {
                return Err(Refused::RateLimited);
            }
            let Ok(_permit) = POOL.acquire(1).await else {
                return Err(Refused::BulkheadFull);
            };
            let mut attempt = 0u32;
            (|| {
                attempt = attempt.wrapping_add(1);
                let this = attempt;
                async move {
                    if !breaker_allows() {
                        return Err(Refused::BreakerOpen);
                    }
                    let outcome =
                        embassy_time::with_timeout(embassy(millis()), operation(this)).await;
                    breaker_records(matches!(outcome, Ok(Ok(_))));
                    match outcome {
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(e)) => Err(Refused::Failed(e)),
                        Err(_) => Err(Refused::AttemptTimeout),
                    }
                }
            })
            .retry(backoff())
            .sleep(backon::EmbassySleeper)
            .when(|e| !matches!(e, Refused::BreakerOpen))
            .await
        };
        let result = match embassy_time::with_deadline(deadline, call).await {
            Ok(r) => r,
            Err(_) => Err(Refused::Timeout),
        };
        let _ = black_box(result);
    }

    /// The global allocator a peer that needs `alloc` requires, over a 256-byte heap.
    #[cfg(feature = "peer-heap")]
    #[global_allocator]
    static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

    #[cfg(feature = "peer-heap")]
    pub fn init_heap() {
        use core::mem::MaybeUninit;
        const SIZE: usize = 256;
        static mut MEMORY: [MaybeUninit<u8>; SIZE] = [MaybeUninit::uninit(); SIZE];
        // SAFETY: called once, at start-up, before anything allocates; nothing else
        // touches `MEMORY`, which the heap owns from here on.
        unsafe { HEAP.init(&raw mut MEMORY as usize, SIZE) }
    }

    /// With `peer-heap` alone, one allocation keeps the allocator in the image (governor
    /// itself may not allocate on the paths the probe calls; its crate still links `alloc`).
    #[cfg(all(feature = "peer-heap", not(feature = "peer-governor")))]
    pub fn heap() {
        extern crate alloc;
        black_box(alloc::boxed::Box::new(black_box(7u32)));
    }

    #[cfg(feature = "peer-governor")]
    pub fn heap() {}
}
