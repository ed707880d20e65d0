//! The service's metrics, through the [`metrics`] facade, rendered in the Prometheus text
//! format (version 0.0.4) by `metrics-exporter-prometheus`'s recorder on the service's own
//! `GET /metrics` (no listener of the exporter's own).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `stanchion_admitted_total` | counter | `layer` | requests a layer let through (`rate_limit`, `bulkhead`; `circuit_breaker` counts attempts) |
//! | `stanchion_rejected_total` | counter | `layer` | requests refused, by the layer that refused (core's [`Layer::name`]) |
//! | `stanchion_retries_total` | counter | | attempts after the first |
//! | `stanchion_api_responses_total` | counter | `status` | responses of `/api/*`, by status code (a code shows once it was sent) |
//! | `stanchion_breaker_state` | gauge | `state` | 1 for the breaker's current state, 0 for the others |
//! | `stanchion_bulkhead_in_use` | gauge | | downstream calls in flight |
//! | `stanchion_retry_budget_milli_tokens` | gauge | | retries left in the budget, in thousandths |
//! | `stanchion_downstream_failure_rate_percent` | gauge | | the downstream's current failure rate |
//! | `stanchion_downstream_latency_milliseconds` | gauge | | the downstream's current latency |
//! | `stanchion_connections_open` | gauge | | HTTP connections open now |
//! | `stanchion_connections_refused_total` | counter | `cap` | connections closed at once because a cap was reached (`total`, `per_ip`) |
//! | `stanchion_connections_timed_out_total` | counter | `timeout` | connections closed by a timeout (`header_read`, `idle`) |
//! | `stanchion_accept_errors_total` | counter | | failed accepts (such as the open-file limit reached) |
//! | `stanchion_clients_untracked_total` | counter | | requests refused with a 503 because the IP table could not hold their IP |
//! | `stanchion_redis_fallback` | gauge | `limiter` | with `--redis-url`: 1 while the limiter answers from its fallback (Redis out of reach), else 0 |
//! | `stanchion_redis_fallback_answers_total` | counter | `limiter` | with `--redis-url`: requests the fallback answered |
//! | `stanchion_redis_fallback_entered_total` | counter | `limiter` | with `--redis-url`: times the limiter entered the fallback |
//!
//! The names, labels and types are those `prometheus-client` wrote before; what changed
//! with the move to the facade is the format around them: the body is the Prometheus text
//! format (`text/plain; version=0.0.4`), not OpenMetrics, so it has no `# EOF` line, a
//! blank line ends each family and the families come in no fixed order; the `# HELP` and
//! `# TYPE` lines of a counter name it with its `_total`; a gauge holds a float, written
//! with no fraction when whole (`3`), as before.
//!
//! The counters every request touches are plain atomics in [`Metrics`]: counting is one
//! `fetch_add` on a field chosen by a `match`, with no label lookup, lock or allocation
//! (the service's hot path was profiled in issue 23). A scrape reads them and hands them
//! to the facade (`Counter::absolute`, `Gauge::set`), then renders. The recorder is the
//! service's own, used through [`metrics::with_local_recorder`] rather than installed for
//! the process, so that a test can run several services (or [`Metrics`]) in one process.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use metrics::{counter, describe_counter, describe_gauge, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use stanchion::breaker::State;
use stanchion::pipeline::Layer;

use super::clients::FallbackStatus;

/// Why a connection was closed at once: which cap it would have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionCap {
    /// `--max-connections`.
    Total,
    /// `--max-connections-per-ip`.
    PerIp,
}

impl ConnectionCap {
    /// Both caps, in the order of their counters.
    const ALL: [ConnectionCap; 2] = [ConnectionCap::Total, ConnectionCap::PerIp];

    /// The label.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionCap::Total => "total",
            ConnectionCap::PerIp => "per_ip",
        }
    }
}

/// Which timeout closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionTimeout {
    /// `--header-read-timeout`.
    HeaderRead,
    /// `--idle-timeout`.
    Idle,
}

impl ConnectionTimeout {
    /// Both timeouts, in the order of their counters.
    const ALL: [ConnectionTimeout; 2] = [ConnectionTimeout::HeaderRead, ConnectionTimeout::Idle];

    /// The label.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionTimeout::HeaderRead => "header_read",
            ConnectionTimeout::Idle => "idle",
        }
    }
}

/// Every breaker state, with its label.
const STATES: [(State, &str); 6] = [
    (State::Closed, "closed"),
    (State::Open, "open"),
    (State::HalfOpen, "half_open"),
    (State::Disabled, "disabled"),
    (State::ForcedOpen, "forced_open"),
    (State::MetricsOnly, "metrics_only"),
];

/// Every layer, in the order of their counters ([`slot`]): the pipeline's, then the
/// throttle (not a position of the pipeline).
const LAYERS: [Layer; 8] = [
    Layer::OverallTimeout,
    Layer::RateLimit,
    Layer::Bulkhead,
    Layer::CircuitBreaker,
    Layer::Retry,
    Layer::AttemptTimeout,
    Layer::FaultInjection,
    Layer::Throttle,
];

/// The place of `layer`'s counters (a `match`, so a new layer does not build until it
/// has one).
const fn slot(layer: Layer) -> usize {
    match layer {
        Layer::OverallTimeout => 0,
        Layer::RateLimit => 1,
        Layer::Bulkhead => 2,
        Layer::CircuitBreaker => 3,
        Layer::Retry => 4,
        Layer::AttemptTimeout => 5,
        Layer::FaultInjection => 6,
        Layer::Throttle => 7,
    }
}

/// Whether a scrape shows `layer`'s refusals even at 0: every layer of the pipeline
/// refuses, but fault injection (an injected failure is the downstream's own); the
/// throttle, not in the service's stack, shows once it counted.
fn shown_rejecting(layer: Layer) -> bool {
    !matches!(layer, Layer::FaultInjection | Layer::Throttle)
}

/// Whether a scrape shows what `layer` let through even at 0: the three layers that count
/// it.
fn shown_admitting(layer: Layer) -> bool {
    matches!(
        layer,
        Layer::RateLimit | Layer::Bulkhead | Layer::CircuitBreaker
    )
}

/// The lowest status code counted; the counters hold 100 to 999, every code an HTTP
/// response can have.
const FIRST_STATUS: u16 = 100;
/// How many status codes are counted.
const STATUSES: usize = 900;

/// What the scrape reads from the patterns at the moment it runs.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    /// The breaker's state.
    pub breaker: State,
    /// Bulkhead slots in use.
    pub bulkhead_in_use: u32,
    /// The retry budget, in thousandths of a retry.
    pub budget_milli_tokens: u32,
    /// The downstream's failure rate.
    pub failure_rate: u32,
    /// The downstream's latency.
    pub latency_ms: u64,
}

/// The service's counters (plain atomics, counted on the hot path) and the recorder that
/// a scrape hands them to (see the [module docs](self)).
#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// By [`slot`].
    admitted: [AtomicU64; LAYERS.len()],
    /// By [`slot`].
    rejected: [AtomicU64; LAYERS.len()],
    retries: AtomicU64,
    /// By status code, from [`FIRST_STATUS`].
    responses: Box<[AtomicU64]>,
    connections_open: AtomicI64,
    /// By [`ConnectionCap::ALL`].
    connections_refused: [AtomicU64; 2],
    /// By [`ConnectionTimeout::ALL`].
    connections_timed_out: [AtomicU64; 2],
    accept_errors: AtomicU64,
    untracked: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `counter`'s count now.
fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Counts one on `counter`.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Every counter at zero, with a recorder of its own.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, describe);
        Metrics {
            recorder,
            handle,
            admitted: Default::default(),
            rejected: Default::default(),
            retries: AtomicU64::new(0),
            responses: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
            connections_open: AtomicI64::new(0),
            connections_refused: Default::default(),
            connections_timed_out: Default::default(),
            accept_errors: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        }
    }

    /// A layer let a request (or, for the breaker, an attempt) through.
    #[inline]
    pub fn admitted(&self, layer: Layer) {
        bump(&self.admitted[slot(layer)]);
    }

    /// A layer refused a request.
    #[inline]
    pub fn rejected(&self, layer: Layer) {
        bump(&self.rejected[slot(layer)]);
    }

    /// An attempt after the first started.
    #[inline]
    pub fn retried(&self) {
        bump(&self.retries);
    }

    /// An `/api` response went out with `status` (a code outside 100 to 999, which no
    /// response has, is not counted).
    #[inline]
    pub fn responded(&self, status: u16) {
        let index = usize::from(status.wrapping_sub(FIRST_STATUS));
        if let Some(counter) = self.responses.get(index) {
            bump(counter);
        }
    }

    /// A connection was opened (`true`) or closed (`false`).
    pub fn connection(&self, opened: bool) {
        let change = if opened { 1 } else { -1 };
        self.connections_open.fetch_add(change, Ordering::Relaxed);
    }

    /// A connection was closed at once: it would have passed `cap`.
    pub fn connection_refused(&self, cap: ConnectionCap) {
        bump(&self.connections_refused[cap as usize]);
    }

    /// A connection was closed by `timeout`.
    pub fn connection_timed_out(&self, timeout: ConnectionTimeout) {
        bump(&self.connections_timed_out[timeout as usize]);
    }

    /// A request was refused because the IP table could not hold its IP.
    pub fn untracked(&self) {
        bump(&self.untracked);
    }

    /// An accept failed.
    pub fn accept_failed(&self) {
        bump(&self.accept_errors);
    }

    /// The text exposition: the counters, the gauges from `snapshot` and the Redis
    /// fallbacks' from `fallbacks`, handed to the recorder and rendered.
    pub fn render(&self, snapshot: Snapshot, fallbacks: &[FallbackStatus]) -> String {
        with_local_recorder(&self.recorder, || self.publish(snapshot, fallbacks));
        self.handle.render()
    }

    /// Hands every value to the facade (with the service's recorder as the local one).
    /// Counters are set with `absolute`, which keeps the larger of the recorder's and the
    /// given count: two scrapes at once cannot add a difference twice, nor take a count
    /// back.
    fn publish(&self, snapshot: Snapshot, fallbacks: &[FallbackStatus]) {
        for layer in LAYERS {
            let admitted = load(&self.admitted[slot(layer)]);
            if admitted > 0 || shown_admitting(layer) {
                counter!("stanchion_admitted_total", "layer" => layer.name()).absolute(admitted);
            }
            let rejected = load(&self.rejected[slot(layer)]);
            if rejected > 0 || shown_rejecting(layer) {
                counter!("stanchion_rejected_total", "layer" => layer.name()).absolute(rejected);
            }
        }
        counter!("stanchion_retries_total").absolute(load(&self.retries));
        for (status, count) in (FIRST_STATUS..).zip(self.responses.iter()) {
            let count = load(count);
            if count > 0 {
                counter!("stanchion_api_responses_total", "status" => status.to_string())
                    .absolute(count);
            }
        }
        for (state, label) in STATES {
            let value = if state == snapshot.breaker { 1.0 } else { 0.0 };
            gauge!("stanchion_breaker_state", "state" => label).set(value);
        }
        gauge!("stanchion_bulkhead_in_use").set(snapshot.bulkhead_in_use);
        gauge!("stanchion_retry_budget_milli_tokens").set(snapshot.budget_milli_tokens);
        gauge!("stanchion_downstream_failure_rate_percent").set(snapshot.failure_rate);
        // Gauges hold floats: exact up to 2^53, far beyond a latency or a count of
        // connections.
        gauge!("stanchion_downstream_latency_milliseconds").set(snapshot.latency_ms as f64);
        gauge!("stanchion_connections_open")
            .set(self.connections_open.load(Ordering::Relaxed) as f64);
        for (cap, count) in ConnectionCap::ALL.iter().zip(&self.connections_refused) {
            counter!("stanchion_connections_refused_total", "cap" => cap.name())
                .absolute(load(count));
        }
        for (timeout, count) in ConnectionTimeout::ALL
            .iter()
            .zip(&self.connections_timed_out)
        {
            counter!("stanchion_connections_timed_out_total", "timeout" => timeout.name())
                .absolute(load(count));
        }
        counter!("stanchion_accept_errors_total").absolute(load(&self.accept_errors));
        counter!("stanchion_clients_untracked_total").absolute(load(&self.untracked));
        for f in fallbacks {
            let falling_back = if f.falling_back { 1.0 } else { 0.0 };
            gauge!("stanchion_redis_fallback", "limiter" => f.limiter).set(falling_back);
            counter!("stanchion_redis_fallback_answers_total", "limiter" => f.limiter)
                .absolute(f.answers);
            counter!("stanchion_redis_fallback_entered_total", "limiter" => f.limiter)
                .absolute(f.entered);
        }
    }
}

/// Every metric's `# HELP` text (with the service's recorder as the local one).
fn describe() {
    describe_counter!(
        "stanchion_admitted_total",
        "Requests a layer let through (circuit_breaker: attempts)"
    );
    describe_counter!(
        "stanchion_rejected_total",
        "Requests refused, by the layer that refused"
    );
    describe_counter!("stanchion_retries_total", "Attempts after the first");
    describe_counter!(
        "stanchion_api_responses_total",
        "Responses of /api, by status code"
    );
    describe_gauge!(
        "stanchion_breaker_state",
        "1 for the circuit breaker's current state"
    );
    describe_gauge!("stanchion_bulkhead_in_use", "Downstream calls in flight");
    describe_gauge!(
        "stanchion_retry_budget_milli_tokens",
        "Retries left in the budget, in thousandths"
    );
    describe_gauge!(
        "stanchion_downstream_failure_rate_percent",
        "The downstream's failure rate"
    );
    describe_gauge!(
        "stanchion_downstream_latency_milliseconds",
        "The downstream's latency"
    );
    describe_gauge!("stanchion_connections_open", "HTTP connections open now");
    describe_counter!(
        "stanchion_connections_refused_total",
        "Connections closed at once because a cap was reached"
    );
    describe_counter!(
        "stanchion_connections_timed_out_total",
        "Connections closed by the header-read or the idle timeout"
    );
    describe_counter!(
        "stanchion_accept_errors_total",
        "Failed accepts (such as the open-file limit reached)"
    );
    describe_counter!(
        "stanchion_clients_untracked_total",
        "Requests refused because the IP table could not hold their IP"
    );
    describe_gauge!(
        "stanchion_redis_fallback",
        "1 while the shared limiter answers from its fallback (Redis out of reach)"
    );
    describe_counter!(
        "stanchion_redis_fallback_answers_total",
        "Requests the shared limiter's fallback answered"
    );
    describe_counter!(
        "stanchion_redis_fallback_entered_total",
        "Times the shared limiter entered its fallback"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric names of the module docs' table, in its order.
    fn documented() -> Vec<&'static str> {
        include_str!("metrics.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `")?.split('`').next())
            .collect()
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            breaker: State::Open,
            bulkhead_in_use: 3,
            budget_milli_tokens: 9500,
            failure_rate: 100,
            latency_ms: 20,
        }
    }

    #[test]
    fn counts_and_states_show_in_the_text() {
        let m = Metrics::new();
        m.admitted(Layer::RateLimit);
        m.rejected(Layer::Bulkhead);
        m.rejected(Layer::Bulkhead);
        m.retried();
        m.responded(429);
        m.responded(200);
        m.responded(200);
        m.responded(999);
        // Outside the pipeline's order: a counter of its own, not another layer's.
        m.rejected(Layer::Throttle);
        m.connection(true);
        m.connection(true);
        m.connection(false);
        m.connection_refused(ConnectionCap::PerIp);
        m.connection_timed_out(ConnectionTimeout::Idle);
        m.connection_timed_out(ConnectionTimeout::Idle);
        m.accept_failed();
        let fallback = FallbackStatus {
            limiter: "ip",
            falling_back: true,
            answers: 7,
            entered: 1,
        };
        let _ = m.render(snapshot(), &[fallback]);
        // A later scrape shows the limiter's newer counts, not their sum.
        let fallback = FallbackStatus {
            answers: 9,
            ..fallback
        };
        let text = m.render(snapshot(), &[fallback]);
        for line in [
            "# TYPE stanchion_admitted_total counter",
            "# HELP stanchion_admitted_total Requests a layer let through (circuit_breaker: attempts)",
            "stanchion_admitted_total{layer=\"rate_limit\"} 1",
            "stanchion_admitted_total{layer=\"bulkhead\"} 0",
            "stanchion_rejected_total{layer=\"bulkhead\"} 2",
            "stanchion_rejected_total{layer=\"overall_timeout\"} 0",
            "stanchion_rejected_total{layer=\"throttle\"} 1",
            "stanchion_retries_total 1",
            "stanchion_api_responses_total{status=\"429\"} 1",
            "stanchion_api_responses_total{status=\"200\"} 2",
            "stanchion_api_responses_total{status=\"999\"} 1",
            "# TYPE stanchion_breaker_state gauge",
            "stanchion_breaker_state{state=\"open\"} 1",
            "stanchion_breaker_state{state=\"closed\"} 0",
            "stanchion_bulkhead_in_use 3",
            "stanchion_retry_budget_milli_tokens 9500",
            "stanchion_downstream_failure_rate_percent 100",
            "stanchion_downstream_latency_milliseconds 20",
            "stanchion_connections_open 1",
            "stanchion_connections_refused_total{cap=\"total\"} 0",
            "stanchion_connections_refused_total{cap=\"per_ip\"} 1",
            "stanchion_connections_timed_out_total{timeout=\"idle\"} 2",
            "stanchion_connections_timed_out_total{timeout=\"header_read\"} 0",
            "stanchion_accept_errors_total 1",
            "stanchion_clients_untracked_total 0",
            "stanchion_redis_fallback{limiter=\"ip\"} 1",
            "stanchion_redis_fallback_answers_total{limiter=\"ip\"} 9",
            "stanchion_redis_fallback_entered_total{limiter=\"ip\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // Not counted, not shown: what fault injection refused and the other layers let
        // through.
        for absent in [
            "stanchion_rejected_total{layer=\"fault_injection\"}",
            "stanchion_admitted_total{layer=\"retry\"}",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
    }

    #[test]
    fn each_layer_has_a_counter_of_its_own() {
        let m = Metrics::new();
        for (n, layer) in (1..).zip(LAYERS) {
            assert_eq!(slot(layer), usize::try_from(n - 1).unwrap());
            for _ in 0..n {
                m.admitted(layer);
            }
            for _ in 0..2 * n {
                m.rejected(layer);
            }
        }
        let text = m.render(snapshot(), &[]);
        for (n, layer) in (1..).zip(LAYERS) {
            let name = layer.name();
            for line in [
                format!("stanchion_admitted_total{{layer=\"{name}\"}} {n}"),
                format!("stanchion_rejected_total{{layer=\"{name}\"}} {}", 2 * n),
            ] {
                assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
            }
        }
    }

    #[test]
    fn a_scrape_lists_every_documented_metric() {
        let documented = documented();
        assert_eq!(documented.len(), 17, "{documented:?}");
        let fallback = FallbackStatus {
            limiter: "ip",
            falling_back: false,
            answers: 0,
            entered: 0,
        };
        let m = Metrics::new();
        m.responded(200);
        let text = m.render(snapshot(), &[fallback]);
        // Every family's `# TYPE` line, and no other.
        let mut typed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .collect();
        typed.sort_unstable();
        let mut expected = documented.clone();
        expected.sort_unstable();
        assert_eq!(typed, expected, "\n{text}");
        // Each with a sample.
        for name in documented {
            let sampled = text.lines().any(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            });
            assert!(sampled, "no sample of {name} in\n{text}");
        }
    }
}
