//! Fault injection over tokio: core's [`FaultInjector`] decides which calls get a
//! [`Fault`]; [`FaultInjection`] carries it out (fails the call, answers it with a chosen
//! value, or runs it after added latency on tokio's timer).
//!
//! Use it to rehearse a dependency's failure: in front of a healthy downstream, an
//! injection of 20% errors makes a flaky one whose failures fall on the same calls every
//! run of a seeded test, and an operator can switch it on and off in a running service
//! ([`FaultInjector::set_enabled`], one atomic store). The same [`FaultInjection`] is a
//! position of the [`Pipeline`](crate::Pipeline) (the innermost,
//! [`fault_injection`](crate::Pipeline::fault_injection)) and, with feature `tower`, a
//! layer (`tower::FaultInjectionLayer`, feature `tower`). When to choose it:
//! see [`stanchion::fault`].
//!
//! ```
//! use std::time::Duration;
//! use stanchion::fault::{Fault, FaultInjector, Share};
//! use stanchion_std::fault::FaultInjection;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), stanchion::ConfigError> {
//! // A quarter of the calls answer 200 ms late.
//! let slow: FaultInjection<u32, &str> = FaultInjection::new(
//!     FaultInjector::new(Share::percent(25)?),
//!     Fault::Latency(Duration::from_millis(200)),
//!     fastrand::Rng::with_seed(7),
//! );
//! let start = tokio::time::Instant::now();
//! for n in 0..8 {
//!     assert_eq!(slow.call(|| async move { Ok(n) }).await, Ok(n));
//! }
//! assert_eq!(start.elapsed(), Duration::from_millis(800)); // four of the eight were slowed
//! slow.injector().set_enabled(false);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use stanchion::fault::{Fault, FaultInjector};

use crate::events::event;

/// A [`FaultInjector`] with the [`Fault`] it injects and the generator it draws from:
/// what a service shares (through an `Arc`) between its calls. The `n`th call while the
/// injector is on takes the generator's `n`th draw, so a seed gives the same calls every
/// run (calls from several tasks at once take the draws in the order they reach it).
///
/// The fault can be changed at run time ([`set_fault`](FaultInjection::set_fault)); the
/// switch and the share are the injector's ([`injector`](FaultInjection::injector)).
/// Cost per call: one atomic load while switched off; on, a short lock around one draw
/// (and the fault's clone when it is injected).
#[derive(Debug)]
pub struct FaultInjection<T, E> {
    injector: FaultInjector,
    draws: Mutex<Draws<T, E>>,
}

#[derive(Debug)]
struct Draws<T, E> {
    rng: fastrand::Rng,
    fault: Fault<T, E>,
}

impl<T, E> FaultInjection<T, E> {
    /// Injects `fault` into the calls `injector` picks, drawing from `rng` (seed it for
    /// reproducible runs).
    pub fn new(injector: FaultInjector, fault: Fault<T, E>, rng: fastrand::Rng) -> Self {
        FaultInjection {
            injector,
            draws: Mutex::new(Draws { rng, fault }),
        }
    }

    /// The injector: its switch ([`set_enabled`](FaultInjector::set_enabled)) and share
    /// ([`set_share`](FaultInjector::set_share)).
    pub fn injector(&self) -> &FaultInjector {
        &self.injector
    }

    /// Replaces the fault injected from the next call on.
    pub fn set_fault(&self, fault: Fault<T, E>) {
        self.draws().fault = fault;
    }

    fn draws(&self) -> std::sync::MutexGuard<'_, Draws<T, E>> {
        // A poisoned lock only means a panic elsewhere while it was held: the generator
        // and the fault are still whole.
        self.draws.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Clone, E: Clone> FaultInjection<T, E> {
    /// The fault injected from the next call on.
    pub fn fault(&self) -> Fault<T, E> {
        self.draws().fault.clone()
    }

    /// The decision for one call: the fault to inject, or `None` to run it as it is.
    pub fn decide(&self) -> Option<Fault<T, E>> {
        if !self.injector.is_enabled() {
            return None;
        }
        let mut draws = self.draws();
        let Draws { rng, fault } = &mut *draws;
        self.injector.inject(rng).then(|| fault.clone())
    }

    /// Runs `op` unless this call gets the fault: then the fault's error or outcome is
    /// returned without running `op`, or `op` runs after the fault's latency (on tokio's
    /// timer, so a paused clock drives it).
    pub async fn call<F, Fut>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(fault) = self.decide() {
            if let Some(answer) = fault.answer() {
                event!(debug, "fault injection: answered a call without running it");
                return answer;
            }
            event!(
                debug,
                latency_ms = u64::try_from(fault.delay().as_millis()).unwrap_or(u64::MAX),
                "fault injection: delayed a call"
            );
            // No timer for no latency (a zero sleep still takes the timer driver's lock);
            // tokio saturates a sleep past its far future.
            if let Some(wait) = fault.wait() {
                tokio::time::sleep(wait).await;
            }
        }
        op().await
    }
}

/// The fault-injection position of the [`Pipeline`](crate::Pipeline): a
/// [`FaultInjection`] (or an `Arc` of one), or [`NoFaults`] for none.
pub trait FaultLayer<T, E> {
    /// Runs one attempt, `op`, or answers for it.
    fn run<Fut>(&self, op: impl FnOnce() -> Fut) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>;
}

/// No fault injection: the operation runs as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoFaults;

impl<T, E> FaultLayer<T, E> for NoFaults {
    #[inline]
    fn run<Fut>(&self, op: impl FnOnce() -> Fut) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        op()
    }
}

impl<T: Clone, E: Clone> FaultLayer<T, E> for FaultInjection<T, E> {
    fn run<Fut>(&self, op: impl FnOnce() -> Fut) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.call(op)
    }
}

impl<T: Clone, E: Clone> FaultLayer<T, E> for Arc<FaultInjection<T, E>> {
    fn run<Fut>(&self, op: impl FnOnce() -> Fut) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.as_ref().call(op)
    }
}
