//! The service's metrics, in the Prometheus (OpenMetrics) text format, through
//! `prometheus-client`.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `stanchion_admitted_total` | `layer` | requests a layer let through (`rate_limit`, `bulkhead`; `circuit_breaker` counts attempts) |
//! | `stanchion_rejected_total` | `layer` | requests refused, by the layer that refused (core's [`Layer::name`]) |
//! | `stanchion_retries_total` | | attempts after the first |
//! | `stanchion_api_responses_total` | `status` | responses of `/api/*`, by status code |
//! | `stanchion_breaker_state` | `state` | 1 for the breaker's current state, 0 for the others |
//! | `stanchion_bulkhead_in_use` | | downstream calls in flight |
//! | `stanchion_retry_budget_milli_tokens` | | retries left in the budget, in thousandths |
//! | `stanchion_downstream_failure_rate_percent`, `stanchion_downstream_latency_milliseconds` | | the downstream's current settings |
//! | `stanchion_connections_open` | | HTTP connections open now |
//! | `stanchion_connections_refused_total` | `cap` | connections closed at once because a cap was reached (`total`, `per_ip`) |
//! | `stanchion_connections_timed_out_total` | `timeout` | connections closed by a timeout (`header_read`, `idle`) |
//! | `stanchion_accept_errors_total` | | failed accepts (such as the open-file limit reached) |
//! | `stanchion_clients_untracked_total` | | requests refused with a 503 because the IP table could not hold their IP |
//! | `stanchion_redis_fallback` | `limiter` | with `--redis-url`: 1 while the limiter answers from its fallback (Redis out of reach), else 0 |
//! | `stanchion_redis_fallback_answers_total` | `limiter` | requests the fallback answered |
//! | `stanchion_redis_fallback_entered_total` | `limiter` | times the limiter entered the fallback |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use stanchion::breaker::State;
use stanchion::pipeline::Layer;

use super::clients::FallbackStatus;

/// A `layer` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabel {
    layer: &'static str,
}

/// A `status` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

/// A `cap` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CapLabel {
    cap: &'static str,
}

/// A `timeout` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabel {
    timeout: &'static str,
}

/// Why a connection was closed at once: which cap it would have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionCap {
    /// `--max-connections`.
    Total,
    /// `--max-connections-per-ip`.
    PerIp,
}

impl ConnectionCap {
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
    /// The label.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionTimeout::HeaderRead => "header_read",
            ConnectionTimeout::Idle => "idle",
        }
    }
}

/// A `limiter` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimiterLabel {
    limiter: &'static str,
}

/// A `state` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
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

/// Counters looked up once, by [`Layer::ORDER`]'s index (see [`Metrics`]); `None` for
/// a label not shown from the start, looked up in its family if it ever counts.
#[derive(Debug, Default)]
struct HotCounters {
    admitted: [Option<Counter>; Layer::ORDER.len()],
    rejected: [Option<Counter>; Layer::ORDER.len()],
    /// Status 200's, looked up at the first.
    ok: std::sync::OnceLock<Counter>,
}

/// `layer`'s counter among `counters` (indexed by [`Layer::ORDER`]), if it has one (the
/// throttle is not in the order).
fn hot(counters: &[Option<Counter>], layer: Layer) -> Option<&Counter> {
    let i = Layer::ORDER.iter().position(|l| *l == layer)?;
    counters.get(i)?.as_ref()
}

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

/// The service's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    admitted: Family<LayerLabel, Counter>,
    rejected: Family<LayerLabel, Counter>,
    retries: Counter,
    responses: Family<StatusLabel, Counter>,
    /// The counters of the families above that every request touches, looked up once:
    /// a family's lookup hashes the label and takes a read lock.
    hot: HotCounters,
    breaker: Family<StateLabel, Gauge>,
    in_use: Gauge,
    budget: Gauge,
    failure_rate: Gauge,
    latency: Gauge,
    connections_open: Gauge,
    connections_refused: Family<CapLabel, Counter>,
    connections_timed_out: Family<TimeoutLabel, Counter>,
    accept_errors: Counter,
    untracked: Counter,
    fallback: Family<LimiterLabel, Gauge>,
    fallback_answers: Family<LimiterLabel, Counter>,
    fallback_entered: Family<LimiterLabel, Counter>,
    /// Held while the counters above are brought up to the limiters' own counts, so that
    /// two scrapes at once do not add the same difference twice.
    sync: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            admitted: Family::default(),
            rejected: Family::default(),
            retries: Counter::default(),
            responses: Family::default(),
            breaker: Family::default(),
            in_use: Gauge::default(),
            budget: Gauge::default(),
            failure_rate: Gauge::default(),
            latency: Gauge::default(),
            connections_open: Gauge::default(),
            connections_refused: Family::default(),
            connections_timed_out: Family::default(),
            accept_errors: Counter::default(),
            untracked: Counter::default(),
            fallback: Family::default(),
            fallback_answers: Family::default(),
            fallback_entered: Family::default(),
            hot: HotCounters::default(),
            sync: std::sync::Mutex::new(()),
        };
        let mut registry = Registry::default();
        registry.register(
            "stanchion_admitted",
            "Requests a layer let through (circuit_breaker: attempts)",
            m.admitted.clone(),
        );
        registry.register(
            "stanchion_rejected",
            "Requests refused, by the layer that refused",
            m.rejected.clone(),
        );
        registry.register(
            "stanchion_retries",
            "Attempts after the first",
            m.retries.clone(),
        );
        registry.register(
            "stanchion_api_responses",
            "Responses of /api, by status code",
            m.responses.clone(),
        );
        registry.register(
            "stanchion_breaker_state",
            "1 for the circuit breaker's current state",
            m.breaker.clone(),
        );
        registry.register(
            "stanchion_bulkhead_in_use",
            "Downstream calls in flight",
            m.in_use.clone(),
        );
        registry.register(
            "stanchion_retry_budget_milli_tokens",
            "Retries left in the budget, in thousandths",
            m.budget.clone(),
        );
        registry.register(
            "stanchion_downstream_failure_rate_percent",
            "The downstream's failure rate",
            m.failure_rate.clone(),
        );
        registry.register(
            "stanchion_downstream_latency_milliseconds",
            "The downstream's latency",
            m.latency.clone(),
        );
        registry.register(
            "stanchion_connections_open",
            "HTTP connections open now",
            m.connections_open.clone(),
        );
        registry.register(
            "stanchion_connections_refused",
            "Connections closed at once because a cap was reached",
            m.connections_refused.clone(),
        );
        registry.register(
            "stanchion_connections_timed_out",
            "Connections closed by the header-read or the idle timeout",
            m.connections_timed_out.clone(),
        );
        registry.register(
            "stanchion_accept_errors",
            "Failed accepts (such as the open-file limit reached)",
            m.accept_errors.clone(),
        );
        registry.register(
            "stanchion_clients_untracked",
            "Requests refused because the IP table could not hold their IP",
            m.untracked.clone(),
        );
        registry.register(
            "stanchion_redis_fallback",
            "1 while the shared limiter answers from its fallback (Redis out of reach)",
            m.fallback.clone(),
        );
        registry.register(
            "stanchion_redis_fallback_answers",
            "Requests the shared limiter's fallback answered",
            m.fallback_answers.clone(),
        );
        registry.register(
            "stanchion_redis_fallback_entered",
            "Times the shared limiter entered its fallback",
            m.fallback_entered.clone(),
        );
        // Every label that will ever appear, at zero, so that a scrape sees them all.
        for cap in [ConnectionCap::Total, ConnectionCap::PerIp] {
            let _ = m
                .connections_refused
                .get_or_create(&CapLabel { cap: cap.name() });
        }
        for timeout in [ConnectionTimeout::HeaderRead, ConnectionTimeout::Idle] {
            let _ = m.connections_timed_out.get_or_create(&TimeoutLabel {
                timeout: timeout.name(),
            });
        }
        // Every label that will ever appear, at zero, its counter kept for the requests.
        // Fault injection refuses nothing (an injected failure is the downstream's own);
        // three layers count what they admit.
        let counter = |family: &Family<LayerLabel, Counter>, layer: Layer| {
            family
                .get_or_create(&LayerLabel {
                    layer: layer.name(),
                })
                .clone()
        };
        let hot = HotCounters {
            rejected: Layer::ORDER
                .map(|layer| (layer != Layer::FaultInjection).then(|| counter(&m.rejected, layer))),
            admitted: Layer::ORDER.map(|layer| {
                matches!(
                    layer,
                    Layer::RateLimit | Layer::Bulkhead | Layer::CircuitBreaker
                )
                .then(|| counter(&m.admitted, layer))
            }),
            ok: std::sync::OnceLock::new(),
        };
        Metrics { registry, hot, ..m }
    }

    /// A layer let a request (or, for the breaker, an attempt) through.
    pub fn admitted(&self, layer: Layer) {
        match hot(&self.hot.admitted, layer) {
            Some(counter) => counter.inc(),
            None => self
                .admitted
                .get_or_create(&LayerLabel {
                    layer: layer.name(),
                })
                .inc(),
        };
    }

    /// A layer refused a request.
    pub fn rejected(&self, layer: Layer) {
        match hot(&self.hot.rejected, layer) {
            Some(counter) => counter.inc(),
            None => self
                .rejected
                .get_or_create(&LayerLabel {
                    layer: layer.name(),
                })
                .inc(),
        };
    }

    /// An attempt after the first started.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// An `/api` response went out with `status`.
    pub fn responded(&self, status: u16) {
        if status == 200 {
            self.hot
                .ok
                .get_or_init(|| {
                    self.responses
                        .get_or_create(&StatusLabel { status })
                        .clone()
                })
                .inc();
        } else {
            self.responses.get_or_create(&StatusLabel { status }).inc();
        }
    }

    /// A connection was opened (`true`) or closed (`false`).
    pub fn connection(&self, opened: bool) {
        if opened {
            self.connections_open.inc();
        } else {
            self.connections_open.dec();
        }
    }

    /// A connection was closed at once: it would have passed `cap`.
    pub fn connection_refused(&self, cap: ConnectionCap) {
        self.connections_refused
            .get_or_create(&CapLabel { cap: cap.name() })
            .inc();
    }

    /// A connection was closed by `timeout`.
    pub fn connection_timed_out(&self, timeout: ConnectionTimeout) {
        self.connections_timed_out
            .get_or_create(&TimeoutLabel {
                timeout: timeout.name(),
            })
            .inc();
    }

    /// A request was refused because the IP table could not hold its IP.
    pub fn untracked(&self) {
        self.untracked.inc();
    }

    /// An accept failed.
    pub fn accept_failed(&self) {
        self.accept_errors.inc();
    }

    /// The text exposition, after setting the gauges from `snapshot` and the Redis
    /// fallbacks' from `fallbacks`.
    pub fn render(&self, snapshot: Snapshot, fallbacks: &[FallbackStatus]) -> String {
        {
            let _sync = self
                .sync
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for f in fallbacks {
                let label = LimiterLabel { limiter: f.limiter };
                self.fallback
                    .get_or_create(&label)
                    .set(i64::from(f.falling_back));
                let answers = self.fallback_answers.get_or_create(&label);
                answers.inc_by(f.answers.saturating_sub(answers.get()));
                let entered = self.fallback_entered.get_or_create(&label);
                entered.inc_by(f.entered.saturating_sub(entered.get()));
            }
        }
        for (state, label) in STATES {
            self.breaker
                .get_or_create(&StateLabel { state: label })
                .set(i64::from(state == snapshot.breaker));
        }
        self.in_use.set(i64::from(snapshot.bulkhead_in_use));
        self.budget.set(i64::from(snapshot.budget_milli_tokens));
        self.failure_rate.set(i64::from(snapshot.failure_rate));
        self.latency
            .set(i64::try_from(snapshot.latency_ms).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Outside the pipeline's order: looked up in its family, not another's counter.
        m.rejected(Layer::Throttle);
        let fallback = FallbackStatus {
            limiter: "ip",
            falling_back: true,
            answers: 7,
            entered: 1,
        };
        let snapshot = Snapshot {
            breaker: State::Open,
            bulkhead_in_use: 3,
            budget_milli_tokens: 9500,
            failure_rate: 100,
            latency_ms: 20,
        };
        let _ = m.render(snapshot, &[fallback]);
        // A later scrape shows the limiter's newer counts, not their sum.
        let fallback = FallbackStatus {
            answers: 9,
            ..fallback
        };
        let text = m.render(snapshot, &[fallback]);
        for line in [
            "stanchion_admitted_total{layer=\"rate_limit\"} 1",
            "stanchion_admitted_total{layer=\"bulkhead\"} 0",
            "stanchion_rejected_total{layer=\"bulkhead\"} 2",
            "stanchion_rejected_total{layer=\"overall_timeout\"} 0",
            "stanchion_retries_total 1",
            "stanchion_api_responses_total{status=\"429\"} 1",
            "stanchion_api_responses_total{status=\"200\"} 2",
            "stanchion_rejected_total{layer=\"throttle\"} 1",
            "stanchion_breaker_state{state=\"open\"} 1",
            "stanchion_breaker_state{state=\"closed\"} 0",
            "stanchion_bulkhead_in_use 3",
            "stanchion_retry_budget_milli_tokens 9500",
            "stanchion_redis_fallback{limiter=\"ip\"} 1",
            "stanchion_redis_fallback_answers_total{limiter=\"ip\"} 9",
            "stanchion_redis_fallback_entered_total{limiter=\"ip\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
