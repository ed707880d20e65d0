//! Fault injection on embassy: core's [`FaultInjector`] decides which calls get a
//! [`Fault`]; [`call`] carries it out (returns the fault's error or outcome without
//! running the operation, or runs it after the fault's latency on embassy's timer).
//!
//! Use it to rehearse a peripheral's or a link's failure on the bench: one call in ten
//! to a sensor fails, or a radio answers 200 ms late, and the retries, breaker and
//! timeouts around it are seen to cope. The injector can be a `static`, switched on and
//! off at run time ([`FaultInjector::set_enabled`], one atomic store, safe from an
//! interrupt handler), so a debug command or a button turns the rehearsal on. The draws
//! come from the caller's generator, seeded by the caller: a seed injects into the same
//! calls every run. When to choose it: see [`stanchion::fault`].
//!
//! In the [`Pipeline`](crate::Pipeline), a [`FaultInjection`] (an injector with its
//! fault) is the innermost position ([`fault_injection`](crate::Pipeline::fault_injection)),
//! drawing from the retry policy's generator.
//!
//! ```standalone_crate
//! # embassy_time::MockDriver::get().reset();
//! use core::time::Duration;
//! use stanchion::fault::{Fault, FaultInjector, Share};
//! use stanchion_embassy::fault;
//!
//! static FAULTS: FaultInjector = FaultInjector::new(stanchion::const_config!(Share::percent(10)));
//! const SENSOR_FAULT: Fault<u16, &str> = Fault::Error("injected");
//! let mut rng = fastrand::Rng::with_seed(42);
//! let failed: Vec<u32> = (0..50)
//!     .filter(|_| doc_block_on(fault::call(&FAULTS, &SENSOR_FAULT, &mut rng, || async { Ok(512) })).is_err())
//!     .collect();
//! assert_eq!(failed, [3, 25, 28, 36, 42]); // seed 42 picks these, every run
//! # fn doc_block_on<F: core::future::Future>(f: F) -> F::Output {
//! #     let mut f = core::pin::pin!(f);
//! #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! #     loop {
//! #         if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_ticks(1));
//! #     }
//! # }
//! ```
//!
//! Cost: one atomic load while the injector is off; on, a second load and one draw, and
//! for latency a timer.

use core::future::Future;

use stanchion::fault::{Fault, FaultInjector};

use crate::sleep::sleep;

/// Runs `op`, unless `injector` picks this call (drawing from `rng`): then `fault`'s error
/// or outcome is returned without running `op`, or `op` runs after `fault`'s latency.
pub async fn call<T, E, F, Fut>(
    injector: &FaultInjector,
    fault: &Fault<T, E>,
    rng: &mut fastrand::Rng,
    op: F,
) -> Result<T, E>
where
    T: Clone,
    E: Clone,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    if injector.inject(rng) {
        if let Some(answer) = fault.answer() {
            return answer;
        }
        // No timer for no latency: an embassy timer yields once even for a zero span.
        if let Some(wait) = fault.wait() {
            sleep(wait).await;
        }
    }
    op().await
}

/// A [`FaultInjector`] with the [`Fault`] it injects: the pipeline's fault position.
/// `const`-constructible, so it can be a `static`.
#[derive(Debug)]
pub struct FaultInjection<T, E> {
    injector: FaultInjector,
    fault: Fault<T, E>,
}

impl<T, E> FaultInjection<T, E> {
    /// Injects `fault` into the calls `injector` picks.
    pub const fn new(injector: FaultInjector, fault: Fault<T, E>) -> Self {
        FaultInjection { injector, fault }
    }

    /// The injector: its switch and its share.
    pub const fn injector(&self) -> &FaultInjector {
        &self.injector
    }

    /// The fault injected.
    pub const fn fault(&self) -> &Fault<T, E> {
        &self.fault
    }
}

/// The fault-injection position of the [`Pipeline`](crate::Pipeline): a reference to a
/// [`FaultInjection`], or `()` for none.
pub trait FaultLayer<T, E> {
    /// Runs one attempt, `op`, or answers for it, drawing from `rng`.
    fn run<Fut>(
        &self,
        rng: &mut fastrand::Rng,
        op: impl FnOnce() -> Fut,
    ) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>;
}

impl<T, E> FaultLayer<T, E> for () {
    #[inline]
    fn run<Fut>(
        &self,
        _rng: &mut fastrand::Rng,
        op: impl FnOnce() -> Fut,
    ) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        op()
    }
}

impl<T, E, X: FaultLayer<T, E> + ?Sized> FaultLayer<T, E> for &X {
    #[inline]
    fn run<Fut>(
        &self,
        rng: &mut fastrand::Rng,
        op: impl FnOnce() -> Fut,
    ) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        (**self).run(rng, op)
    }
}

impl<T: Clone, E: Clone> FaultLayer<T, E> for FaultInjection<T, E> {
    fn run<Fut>(
        &self,
        rng: &mut fastrand::Rng,
        op: impl FnOnce() -> Fut,
    ) -> impl Future<Output = Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        call(&self.injector, &self.fault, rng, op)
    }
}
