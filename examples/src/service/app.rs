//! The router: `/api/data` behind every pattern, `/health`, `/metrics` and the admin
//! route; and the small middleware that turns refusals into HTTP answers.
//!
//! | refusal | status | fields |
//! |---|---|---|
//! | per-client rate limit | 429 Too Many Requests | `Retry-After`, `RateLimit`, `RateLimit-Policy` |
//! | bulkhead full | 503 Service Unavailable | none (no one knows when a slot frees) |
//! | circuit breaker open (also when it opens during the retries) | 503 Service Unavailable | `Retry-After` while open |
//! | attempts timed out, or the request timeout passed | 504 Gateway Timeout | none |
//! | the downstream failed on every attempt the retry policy allowed | 502 Bad Gateway | none |
//! | malformed `X-Api-Key` | 400 Bad Request | none |
//!
//! `Retry-After` and `t` are whole seconds, rounded up, never 0. `RateLimit` and
//! `RateLimit-Policy` follow draft-ietf-httpapi-ratelimit-headers-10, as
//! `stanchion_std`'s HTTP helpers do: `RateLimit-Policy: "ip";q=60;w=60` and
//! `RateLimit: "ip";r=0;t=1` (granted responses carry `r` without `t`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use stanchion::Instant;
use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::bulkhead::NoBulkheadListener;
use stanchion::pipeline::{AttemptError, Layer, PipelineError};
use stanchion::rate::RateLimitError;
use stanchion::retry::{
    Exponential, Jitter, Ratio, RetryBudget, RetryPolicy, TokenBudget, TransientErrors,
};
use stanchion_std::{
    BulkheadQueue, ErrorsAreFailures, NoRateLimit, Pipeline, StdRawMutex, TokioClock,
};

use super::admin;
use super::clients::{ClientLimits, Policy};
use super::config::{Config, DisplayDuration};
use super::downstream::{DownstreamError, FlakyDownstream};
use super::metrics::{Metrics, Snapshot};

/// The `RateLimit` field.
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The `RateLimit-Policy` field.
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The API key field.
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The breaker in front of the downstream.
pub type Breaker = CircuitBreaker<ConsecutiveWindow, StdRawMutex>;

/// The pipeline in front of the downstream: request timeout, bulkhead, breaker, retry,
/// attempt timeout (the per-client rate limit runs before it, as middleware, because its
/// quota depends on who asks).
pub type DownstreamPipeline = Pipeline<
    NoRateLimit,
    NoBulkheadListener,
    Breaker,
    ErrorsAreFailures,
    Exponential,
    TransientErrors,
    SharedBudget,
>;

/// A retry budget that every call's copy of the retry policy shares.
#[derive(Clone, Debug)]
pub struct SharedBudget(pub Arc<TokenBudget>);

impl RetryBudget for SharedBudget {
    const USES_TIME: bool = <TokenBudget as RetryBudget>::USES_TIME;

    fn deposit_at(&self, now: Instant) {
        self.0.deposit_at(now);
    }

    fn record_success_at(&self, now: Instant) {
        self.0.record_success_at(now);
    }

    fn try_withdraw_at(&self, now: Instant) -> bool {
        self.0.try_withdraw_at(now)
    }
}

/// Everything the handlers share.
pub struct AppState {
    /// The per-client limits.
    pub limits: ClientLimits,
    /// The patterns in front of the downstream.
    pub pipeline: DownstreamPipeline,
    /// The retry budget (also inside the pipeline's policy), for the metrics.
    pub budget: SharedBudget,
    /// The flaky downstream.
    pub downstream: FlakyDownstream,
    /// The counters.
    pub metrics: Metrics,
    /// The admin token.
    pub admin_token: String,
    /// The per-request timeout, for messages.
    pub request_timeout: Duration,
    /// The per-attempt timeout, for messages.
    pub attempt_timeout: Duration,
}

impl AppState {
    /// The state for `config`, whose admin token was checked; `limits` built from it.
    ///
    /// # Errors
    ///
    /// A setting core refuses, with the field and the allowed range.
    pub fn new(
        config: &Config,
        admin_token: String,
        limits: ClientLimits,
    ) -> Result<AppState, String> {
        let err = |e: stanchion::ConfigError| e.to_string();
        let clock = TokioClock::new();
        let seed = config.seed.unwrap_or_else(|| {
            std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0x5eed_u64)
        });
        let budget = SharedBudget(Arc::new(
            TokenBudget::new(config.retry_budget, Ratio::new(1, 10).map_err(err)?).map_err(err)?,
        ));
        let cap = config.retry_base.saturating_mul(10);
        let backoff = Exponential::new(config.retry_base, Ratio::TWO, cap)
            .map_err(err)?
            .with_jitter(Jitter::FULL);
        let policy = RetryPolicy::new(backoff, config.max_attempts, fastrand::Rng::with_seed(seed))
            .map_err(err)?
            .with_budget(budget.clone());
        let probes = config.half_open_probes;
        let breaker_config = BreakerConfig::new()
            .open_duration(config.open_wait)
            .permitted_calls_in_half_open(probes)
            .minimum_calls(u32::from(probes));
        let breaker: Breaker = CircuitBreaker::new(
            breaker_config,
            ConsecutiveWindow::new(config.breaker_failures).map_err(err)?,
        )
        .map_err(err)?;
        let bulkhead =
            BulkheadQueue::new(config.max_concurrent, config.max_waiting, clock).map_err(err)?;
        let pipeline = Pipeline::new(clock)
            .overall_timeout(config.request_timeout)
            .bulkhead(bulkhead)
            .circuit_breaker(breaker)
            .retry(policy)
            .attempt_timeout(config.attempt_timeout);
        Ok(AppState {
            limits,
            pipeline,
            budget,
            downstream: FlakyDownstream::new(config.failure_rate, config.latency, seed ^ 0xd0),
            metrics: Metrics::new(),
            admin_token,
            request_timeout: config.request_timeout,
            attempt_timeout: config.attempt_timeout,
        })
    }
}

/// The service's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/api/data", get(api_data))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ));
    Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/downstream", get(admin::show).post(admin::change))
        .fallback(not_found)
        .with_state(state)
}

/// Whole seconds, rounded up, at least 1.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs()
        .saturating_add(u64::from(d.subsec_nanos() > 0))
        .max(1)
}

fn policy_field(policy: &Policy) -> HeaderValue {
    header_value(format!(
        "\"{}\";q={};w={}",
        policy.name,
        policy.quota,
        whole_seconds(policy.window)
    ))
}

fn ratelimit_field(policy: &Policy, remaining: u32, reset: Option<Duration>) -> HeaderValue {
    let mut v = format!("\"{}\";r={remaining}", policy.name);
    if let Some(t) = reset {
        v.push_str(&format!(";t={}", whole_seconds(t)));
    }
    header_value(v)
}

fn header_value(v: String) -> HeaderValue {
    // Policy names are checked to be letters, digits, `-` and `_` at start-up.
    HeaderValue::try_from(v).unwrap_or(HeaderValue::from_static("\"\";r=0"))
}

fn text(status: StatusCode, message: String) -> Response {
    (status, message + "\n").into_response()
}

/// Counts every `/api` response by status.
async fn count_responses(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    state.metrics.responded(response.status().as_u16());
    response
}

/// The per-client rate limit: 429 over quota, `RateLimit` fields on every answer.
async fn rate_limit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let key = request.headers().get(&API_KEY).map(HeaderValue::as_bytes);
    let client = match state.limits.identify(key, peer.ip()) {
        Ok(client) => client,
        Err(malformed) => return text(StatusCode::BAD_REQUEST, malformed.to_string()),
    };
    let policy = state.limits.policy(client);
    match state.limits.admit(client).await {
        Ok(admission) => {
            state.metrics.admitted(Layer::RateLimit);
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert(
                RATELIMIT,
                ratelimit_field(policy, admission.remaining, None),
            );
            headers.insert(RATELIMIT_POLICY, policy_field(policy));
            response
        }
        Err(refused) => {
            state.metrics.rejected(Layer::RateLimit);
            too_many_requests(policy, refused)
        }
    }
}

fn too_many_requests(policy: &Policy, refused: RateLimitError) -> Response {
    let wait = refused.retry_after();
    let message = match wait {
        Some(d) => format!(
            "rate limited: policy {} allows {} requests per {}; retry after {} s",
            policy.name,
            policy.quota,
            DisplayDuration(policy.window),
            whole_seconds(d)
        ),
        None => format!(
            "rate limited: policy {} can never grant this request",
            policy.name
        ),
    };
    let mut response = text(StatusCode::TOO_MANY_REQUESTS, message);
    let headers = response.headers_mut();
    if let Some(d) = wait {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(whole_seconds(d)));
    }
    headers.insert(RATELIMIT, ratelimit_field(policy, 0, wait));
    headers.insert(RATELIMIT_POLICY, policy_field(policy));
    response
}

/// `GET /api/data`: one call to the downstream through the pipeline.
async fn api_data(State(state): State<Arc<AppState>>) -> Response {
    let attempts = AtomicU32::new(0);
    let result = state
        .pipeline
        .call(|attempt| {
            attempts.fetch_add(1, Ordering::Relaxed);
            state.metrics.admitted(Layer::CircuitBreaker);
            if attempt > 1 {
                state.metrics.retried();
            }
            state.downstream.call()
        })
        .await;
    let ran = attempts.load(Ordering::Relaxed) > 0;
    if ran || matches!(result, Err(PipelineError::CircuitOpen(_))) {
        state.metrics.admitted(Layer::Bulkhead);
    }
    match result {
        Ok(body) => (StatusCode::OK, body).into_response(),
        Err(error) => {
            let (status, layer, message) = refusal(&state, &error);
            state.metrics.rejected(layer);
            let mut response = text(status, message);
            if let (StatusCode::SERVICE_UNAVAILABLE, Some(d)) = (status, error.retry_after()) {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(whole_seconds(d)));
            }
            response
        }
    }
}

/// The status, the layer to count the refusal against, and the message.
fn refusal(
    state: &AppState,
    error: &PipelineError<DownstreamError>,
) -> (StatusCode, Layer, String) {
    match *error {
        PipelineError::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            Layer::OverallTimeout,
            format!(
                "no answer from the downstream within the request timeout of {}",
                DisplayDuration(state.request_timeout)
            ),
        ),
        PipelineError::RateLimited(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            Layer::RateLimit,
            "rate limited".to_owned(),
        ),
        PipelineError::BulkheadFull(full) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Layer::Bulkhead,
            format!(
                "bulkhead full: {} of {} downstream calls in flight; try again shortly",
                full.in_use(),
                full.max_concurrent()
            ),
        ),
        PipelineError::CircuitOpen(rejected)
        | PipelineError::GaveUp {
            last: AttemptError::CircuitOpen(rejected),
            ..
        } => (
            StatusCode::SERVICE_UNAVAILABLE,
            Layer::CircuitBreaker,
            match rejected.retry_after {
                Some(d) => format!(
                    "circuit breaker open: the downstream is failing; retry after {} s",
                    whole_seconds(d)
                ),
                None => format!(
                    "circuit breaker refused the call ({:?}): the downstream is failing or being probed",
                    rejected.state
                ),
            },
        ),
        PipelineError::GaveUp {
            last: AttemptError::Timeout,
            attempts,
            reason,
        } => (
            StatusCode::GATEWAY_TIMEOUT,
            Layer::AttemptTimeout,
            format!(
                "the downstream did not answer within {} on any of {attempts} attempt(s) ({reason})",
                DisplayDuration(state.attempt_timeout)
            ),
        ),
        PipelineError::GaveUp {
            last: AttemptError::Operation(e),
            attempts,
            reason,
        } => (
            StatusCode::BAD_GATEWAY,
            Layer::Retry,
            format!("{e} on every attempt: gave up after {attempts} attempt(s) ({reason})"),
        ),
    }
}

/// `GET /health`: the process serves.
async fn health() -> &'static str {
    "ok\n"
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = Snapshot {
        breaker: state
            .pipeline
            .breaker()
            .map_or(stanchion::breaker::State::Disabled, |b| b.state()),
        bulkhead_in_use: state
            .pipeline
            .bulkhead_queue()
            .map_or(0, |q| q.bulkhead().in_use()),
        budget_milli_tokens: state.budget.0.milli_tokens(),
        failure_rate: state.downstream.failure_rate(),
        latency_ms: u64::try_from(state.downstream.latency().as_millis()).unwrap_or(u64::MAX),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(snapshot),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    text(
        StatusCode::NOT_FOUND,
        format!(
            "no route {method} {path}; routes: GET /api/data, GET /health, GET /metrics, GET|POST /admin/downstream"
        ),
    )
}
