//! `tracing` events (feature `tracing`): what the runners and the pipeline decide, and
//! listeners that turn core's breaker and bulkhead events into `tracing` events.
//!
//! Every event has target `stanchion`. Levels: state changes of a breaker and changes of
//! a bulkhead's maximum at `INFO`; thresholds exceeded and calls given up at `WARN`;
//! refusals and retries at `DEBUG`; permits taken and released at `TRACE`. Without the
//! feature, the event macros below expand to nothing and cost nothing.

/// An event at `level` (`debug`, `info`, `warn`) when the `tracing` feature is on;
/// nothing otherwise (the arguments are not evaluated).
#[cfg(feature = "tracing")]
macro_rules! event {
    (debug, $($arg:tt)*) => { tracing::debug!(target: "stanchion", $($arg)*) };
    (warn, $($arg:tt)*) => { tracing::warn!(target: "stanchion", $($arg)*) };
}

/// An event at `level` when the `tracing` feature is on; nothing otherwise.
#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {};
}

pub(crate) use event;

#[cfg(feature = "tracing")]
pub use listeners::{TracingBreakerListener, TracingBulkheadListener};

#[cfg(feature = "tracing")]
mod listeners {
    use stanchion::Instant;
    use stanchion::breaker::{BreakerListener, Rejected, State, Threshold};
    use stanchion::bulkhead::{BulkheadFull, BulkheadListener};

    /// A [`BreakerListener`] that reports every event of a circuit breaker as a `tracing`
    /// event with field `breaker` = its name: transitions (`INFO`), rejections
    /// (`DEBUG`), thresholds exceeded (`WARN`) and resets (`INFO`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stanchion::breaker::{BreakerConfig, CircuitBreaker, FixedOpenDuration};
    /// use stanchion::breaker::window::ConsecutiveWindow;
    /// use stanchion_std::{StdRawMutex, TracingBreakerListener};
    ///
    /// let breaker: CircuitBreaker<_, StdRawMutex, _, _> = CircuitBreaker::from_parts(
    ///     BreakerConfig::new(),
    ///     ConsecutiveWindow::new(5)?,
    ///     FixedOpenDuration(Duration::from_secs(30)),
    ///     7,
    ///     TracingBreakerListener::new("payments"),
    /// )?;
    /// # let _ = breaker;
    /// # Ok::<(), stanchion::ConfigError>(())
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct TracingBreakerListener {
        name: &'static str,
    }

    impl TracingBreakerListener {
        /// A listener that names the breaker `name` in its events.
        pub const fn new(name: &'static str) -> Self {
            TracingBreakerListener { name }
        }
    }

    impl BreakerListener for TracingBreakerListener {
        fn on_state_transition(&self, from: State, to: State, at: Instant) {
            tracing::info!(
                target: "stanchion",
                breaker = self.name,
                from = %from,
                to = %to,
                at_ns = at.as_nanos(),
                "circuit breaker state changed"
            );
        }

        fn on_rejected(&self, rejected: Rejected, at: Instant) {
            tracing::debug!(
                target: "stanchion",
                breaker = self.name,
                state = %rejected.state,
                retry_after_ms = rejected.retry_after.map(|d| d.as_millis() as u64),
                at_ns = at.as_nanos(),
                "circuit breaker rejected a call"
            );
        }

        fn on_threshold_exceeded(&self, kind: Threshold, rate_basis_points: u16, at: Instant) {
            tracing::warn!(
                target: "stanchion",
                breaker = self.name,
                threshold = ?kind,
                rate_basis_points,
                at_ns = at.as_nanos(),
                "circuit breaker threshold exceeded"
            );
        }

        fn on_reset(&self, from: State, at: Instant) {
            tracing::info!(
                target: "stanchion",
                breaker = self.name,
                from = %from,
                at_ns = at.as_nanos(),
                "circuit breaker reset"
            );
        }
    }

    /// A [`BulkheadListener`] that reports a bulkhead's events as `tracing` events with
    /// field `bulkhead` = its name: refusals (`DEBUG`), changes of the maximum (`INFO`),
    /// permits taken and released (`TRACE`). Give it to a
    /// [`BulkheadQueue`](crate::BulkheadQueue) with
    /// [`with_listener`](crate::BulkheadQueue::with_listener).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct TracingBulkheadListener {
        name: &'static str,
    }

    impl TracingBulkheadListener {
        /// A listener that names the bulkhead `name` in its events.
        pub const fn new(name: &'static str) -> Self {
            TracingBulkheadListener { name }
        }
    }

    impl BulkheadListener for TracingBulkheadListener {
        fn on_acquired(&self, in_use: u32) {
            tracing::trace!(target: "stanchion", bulkhead = self.name, in_use, "bulkhead permit taken");
        }

        fn on_rejected(&self, full: BulkheadFull) {
            tracing::debug!(
                target: "stanchion",
                bulkhead = self.name,
                in_use = full.in_use(),
                max_concurrent = full.max_concurrent(),
                "bulkhead full"
            );
        }

        fn on_released(&self, in_use: u32) {
            tracing::trace!(target: "stanchion", bulkhead = self.name, in_use, "bulkhead permit released");
        }

        fn on_max_changed(&self, old: u32, new: u32) {
            tracing::info!(target: "stanchion", bulkhead = self.name, old, new, "bulkhead maximum changed");
        }
    }
}
