//! A firmware quick start: stanchion on embassy, on a Cortex-M3 (QEMU's LM3S6965 board).
//! `cargo run --release` builds it and boots it under QEMU; it prints over semihosting and
//! exits with success if its last reading came through.
//!
//! It reads a simulated sensor every 50 ms. A `TokenBucket` paces the reads, a
//! `CircuitBreaker` stops calling a sensor that keeps failing, and each read is retried
//! with backoff and jitter, every attempt bounded by a timeout. The limiter and the breaker
//! are `static`s, so an interrupt handler may use them too (stanchion-embassy's crate docs,
//! "Interrupt handlers", list the calls it may make).
#![no_std]
#![no_main]

mod time_driver;

use core::sync::atomic::{AtomicU16, Ordering};
use core::time::Duration;

use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::{hprint, hprintln};
use embassy_executor::Spawner;
use panic_semihosting as _;
use stanchion_embassy::stanchion::breaker::{
    BreakerConfig, CircuitBreaker, window::ConsecutiveWindow,
};
use stanchion_embassy::stanchion::rate::{Quota, TokenBucket};
use stanchion_embassy::stanchion::retry::{Exponential, Jitter, Ratio, RetryPolicy};
use stanchion_embassy::stanchion::{Clock, Deadline, const_config, sync::CriticalSectionRawMutex};
use stanchion_embassy::{Elapsed, EmbassyClock, breaker, retry, sleep, sleep_until, timeout};

// Configuration is checked at compile time: `const_config!` unwraps a constructor's
// `Result` in a `const` block, so a bad value fails the build, naming the field.

/// Two reads per 200 ms: one every 100 ms, two at once.
static LIMITER: TokenBucket = TokenBucket::new(const_config!(Quota::per_interval(
    2,
    Duration::from_millis(200)
)));

/// Opens after 3 failed reads in a row, for 100 ms; then one probe read decides.
static BREAKER: CircuitBreaker<ConsecutiveWindow, CriticalSectionRawMutex> =
    const_config!(CircuitBreaker::new(
        BreakerConfig::new()
            .open_duration(Duration::from_millis(100))
            .permitted_calls_in_half_open(1),
        const_config!(ConsecutiveWindow::new(3)),
    ));

/// 3 attempts per read; between attempts, from 5 ms, doubling, at most 40 ms, each wait
/// drawn in `0..=d`. Seed the jitter per device (from its unique ID, say), so that devices
/// do not retry in step.
const POLICY: RetryPolicy<Exponential> = const_config!(RetryPolicy::new(
    const_config!(Exponential::new(
        Duration::from_millis(5),
        Ratio::TWO,
        Duration::from_millis(40),
    ))
    .with_jitter(Jitter::FULL),
    3,
    fastrand::Rng::with_seed(0x5eed),
));

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        exit(false)
    };
    time_driver::start(core.SYST);
    // The open breaker's refusal will not go away within this read: not retried.
    let mut policy = POLICY.with_classifier(breaker::refusals_are_permanent);
    hprintln!("quickstart: a sensor read every 50 ms, rate limited, through a breaker, retried");

    let (mut next, mut last_ok) = (EmbassyClock.now(), false);
    for sample in 1..=5 {
        // A fixed rate: each sample 50 ms after the previous one was due.
        sleep_until(next).await;
        next += Duration::from_millis(50);
        // Wait as long as the limiter says (tasks that must wait in line for one limiter:
        // `RateLimitQueue`).
        while let Err(refused) = LIMITER.acquire_at(1, EmbassyClock.now()) {
            sleep(refused.retry_after().unwrap_or(Duration::from_millis(100))).await;
        }
        // Retry outermost, the breaker per attempt, the timeout inside the breaker's call:
        // a hung read ends as a failure the breaker records. A timeout outside would drop
        // the call with its permit, which records nothing: a hung sensor would never open it.
        let deadline = Deadline::after(EmbassyClock.now(), Duration::from_millis(100));
        policy.reset(deadline);
        let reading = retry(&mut policy, |_attempt| {
            breaker::call(&BREAKER, || async {
                match timeout(Duration::from_millis(10), read_sensor()).await {
                    Ok(outcome) => outcome,
                    Err(Elapsed) => Err("no answer within 10 ms"),
                }
            })
        })
        .await;
        let now = EmbassyClock.now().as_millis();
        hprint!("{:>4} ms  sample {}: ", now, sample);
        match &reading {
            Ok(value) => hprintln!("{} (attempt {})", value, policy.attempt()),
            Err(e) => hprintln!("{}", e),
        }
        last_ok = reading.is_ok();
    }
    exit(last_ok)
}

/// A simulated sensor on a bus: each read takes 2 ms. Read 0 hangs, reads 3 to 5 are not
/// acknowledged (three in a row: the breaker opens), the others answer.
async fn read_sensor() -> Result<u16, &'static str> {
    static READS: AtomicU16 = AtomicU16::new(0);
    let n = READS.fetch_add(1, Ordering::Relaxed);
    sleep(Duration::from_millis(2)).await;
    match n {
        0 => core::future::pending().await,
        3..=5 => Err("no acknowledgement"),
        _ => Ok(2100 + n),
    }
}

/// Exits QEMU through semihosting. On a board with no debugger attached, semihosting
/// faults: log with `defmt`, and reset or idle, instead.
fn exit(success: bool) -> ! {
    debug::exit(if success { EXIT_SUCCESS } else { EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}
