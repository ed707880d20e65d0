//! `defmt` events (feature `defmt`): what the runners decide, and listeners that turn
//! core's breaker and bulkhead events into `defmt` log frames.
//!
//! Levels, as `stanchion-std`'s `tracing` events: state changes of a breaker and changes
//! of a bulkhead's maximum at `info`; thresholds exceeded and retries given up at `warn`;
//! refusals and retries at `debug`; permits taken and released at `trace`. Durations and
//! instants are printed in nanoseconds (`{=u64}`), exact and without a division on the
//! device. Without the feature the event macro expands to nothing (its arguments are not
//! evaluated), and the listeners do not exist: the runners cost not one byte more.

/// An event at `level` (`debug`, `warn`) when the `defmt` feature is on; nothing otherwise.
#[cfg(feature = "defmt")]
macro_rules! event {
    (debug, $($arg:tt)*) => { defmt::debug!($($arg)*) };
    (warn, $($arg:tt)*) => { defmt::warn!($($arg)*) };
}

/// An event at `level` when the `defmt` feature is on; nothing otherwise.
#[cfg(not(feature = "defmt"))]
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {};
}

pub(crate) use event;

#[cfg(feature = "defmt")]
pub use listeners::{DefmtBreakerListener, DefmtBulkheadListener};

#[cfg(feature = "defmt")]
mod listeners {
    use stanchion::Instant;
    use stanchion::breaker::{BreakerListener, Rejected, State, Threshold};
    use stanchion::bulkhead::{BulkheadFull, BulkheadListener};
    use stanchion::time::duration_to_nanos_saturating;

    /// A [`BreakerListener`] that logs every event of a circuit breaker with `defmt`,
    /// naming the breaker: transitions and resets (`info`), rejections (`debug`, with the
    /// wait in nanoseconds when it is known), thresholds exceeded (`warn`, the rate in
    /// basis points).
    ///
    /// ```
    /// use core::time::Duration;
    /// use stanchion::breaker::{BreakerConfig, CircuitBreaker, FixedOpenDuration};
    /// use stanchion::breaker::window::ConsecutiveWindow;
    /// use stanchion::const_config;
    /// use stanchion::sync::CriticalSectionRawMutex;
    /// use stanchion_embassy::DefmtBreakerListener;
    ///
    /// static SENSOR: CircuitBreaker<
    ///     ConsecutiveWindow,
    ///     CriticalSectionRawMutex,
    ///     FixedOpenDuration,
    ///     DefmtBreakerListener,
    /// > = const_config!(CircuitBreaker::from_parts(
    ///     BreakerConfig::new(),
    ///     const_config!(ConsecutiveWindow::new(5)),
    ///     FixedOpenDuration(Duration::from_secs(10)),
    ///     7,
    ///     DefmtBreakerListener::new("sensor"),
    /// ));
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, defmt::Format)]
    pub struct DefmtBreakerListener {
        name: &'static str,
    }

    impl DefmtBreakerListener {
        /// A listener that names the breaker `name` in its frames.
        pub const fn new(name: &'static str) -> Self {
            DefmtBreakerListener { name }
        }
    }

    impl BreakerListener for DefmtBreakerListener {
        fn on_state_transition(&self, from: State, to: State, at: Instant) {
            defmt::info!(
                "breaker {=str}: {} -> {} at {=u64} ns",
                self.name,
                from,
                to,
                at.as_nanos()
            );
        }

        fn on_rejected(&self, rejected: Rejected, at: Instant) {
            match rejected.retry_after {
                Some(wait) => defmt::debug!(
                    "breaker {=str}: {} refused a call at {=u64} ns; retry after {=u64} ns",
                    self.name,
                    rejected.state,
                    at.as_nanos(),
                    duration_to_nanos_saturating(wait)
                ),
                None => defmt::debug!(
                    "breaker {=str}: {} refused a call at {=u64} ns",
                    self.name,
                    rejected.state,
                    at.as_nanos()
                ),
            }
        }

        fn on_threshold_exceeded(&self, kind: Threshold, rate_basis_points: u16, at: Instant) {
            defmt::warn!(
                "breaker {=str}: {} threshold exceeded ({=u16} basis points) at {=u64} ns",
                self.name,
                kind,
                rate_basis_points,
                at.as_nanos()
            );
        }

        fn on_reset(&self, from: State, at: Instant) {
            defmt::info!(
                "breaker {=str}: reset from {} at {=u64} ns",
                self.name,
                from,
                at.as_nanos()
            );
        }
    }

    /// A [`BulkheadListener`] that logs a bulkhead's events with `defmt`, naming it:
    /// refusals (`debug`), changes of the maximum (`info`), permits taken and released
    /// (`trace`). Give it to a core [`Bulkhead`](stanchion::bulkhead::Bulkhead) with
    /// `Bulkhead::with_listener`. (A [`BulkheadQueue`](crate::BulkheadQueue)'s listener is
    /// its waiting line; the queue logs its refusals itself.)
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, defmt::Format)]
    pub struct DefmtBulkheadListener {
        name: &'static str,
    }

    impl DefmtBulkheadListener {
        /// A listener that names the bulkhead `name` in its frames.
        pub const fn new(name: &'static str) -> Self {
            DefmtBulkheadListener { name }
        }
    }

    impl BulkheadListener for DefmtBulkheadListener {
        fn on_acquired(&self, in_use: u32) {
            defmt::trace!(
                "bulkhead {=str}: permit taken, {=u32} in use",
                self.name,
                in_use
            );
        }

        fn on_rejected(&self, full: BulkheadFull) {
            defmt::debug!(
                "bulkhead {=str}: full ({=u32} of {=u32} in use)",
                self.name,
                full.in_use(),
                full.max_concurrent()
            );
        }

        fn on_released(&self, in_use: u32) {
            defmt::trace!(
                "bulkhead {=str}: permit released, {=u32} in use",
                self.name,
                in_use
            );
        }

        fn on_max_changed(&self, old: u32, new: u32) {
            defmt::info!(
                "bulkhead {=str}: maximum {=u32} -> {=u32}",
                self.name,
                old,
                new
            );
        }
    }
}
