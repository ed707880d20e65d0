//! The router: `/api/data` behind every pattern, `/health`, `/metrics` and the admin
//! route; and the refusals as HTTP answers.
//!
//! | refusal | status | fields |
//! |---|---|---|
//! | per-client rate limit | 429 Too Many Requests | `Retry-After`, `RateLimit`, `RateLimit-Policy` |
//! | bulkhead full | 503 Service Unavailable | none (no one knows when a slot frees) |
//! | circuit breaker open (also when it opens during the retries) | 503 Service Unavailable | `Retry-After` while open |
//! | attempts timed out, or the request timeout passed | 504 Gateway Timeout | none |
//! | the downstream failed on every attempt the retry policy allowed | 502 Bad Gateway | none |
//! | malformed `X-Api-Key` | 400 Bad Request | none |
//! | Redis out of reach with `--redis-fallback deny` | 503 Service Unavailable | `Retry-After` (the next try of Redis) |
//!
//! The per-client rate limit is `stanchion_std`'s `TieredRateLimitLayer`, which answers
//! its own refusals (a tier per API key, one for the IPs; the service's hooks count its
//! decisions and write its bodies). The patterns in front of the downstream are
//! `stanchion_std`'s tower layers, stacked in [`stanchion::pipeline`]'s order
//! ([`Downstream`]); their refusals are answered by `api_data`, with status and fields
//! from `stanchion_std::http` and a body that says what happened.
//! `Retry-After` and `t` are whole seconds, rounded up, never 0. `RateLimit` and
//! `RateLimit-Policy` follow draft-ietf-httpapi-ratelimit-headers-10:
//! `RateLimit-Policy: "ip";q=60;w=60` and `RateLimit: "ip";r=0;t=1` (granted responses
//! carry `r` without `t`).
//!
//! # Clock
//!
//! The per-client limits, the retry layer (each request's deadline, the waits' instants)
//! and the circuit breaker layer (its permits and each call's duration) read one shared
//! `stanchion_std::CoarseClock`, as stanchion-std recommends for servers: an instant a
//! tokio task refreshes every millisecond, read with one atomic load, where a read of
//! tokio's clock costs more than the rate limit's whole decision. Its readings are up to
//! a millisecond late, never early: a client's grant may come up to 1 ms later than on
//! an exact clock (never more than its quota), the breaker may stay open up to 1 ms
//! longer, and a call's measured duration is off by up to 1 ms (so a slow-call threshold
//! set in `--config` should be well above 1 ms). It shares `TokioClock::new()`'s epoch,
//! so the breaker's instants agree with those of anything else reading tokio's clock. The bulkhead's queue and the admin
//! route's guard keep `TokioClock`: the queue turns its deadlines into tokio timers, and
//! the admin route is not on the request path.
//!
//! With `--bypass-layers` the same downstream call is served with none of this in front
//! (no 429, 503 or 504; a failed call is a 502 after its one attempt): the baseline that
//! the load benchmark (`cargo xtask bench --load`) compares the layers against.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use stanchion::pipeline::Layer;
use stanchion::rate::RateLimitError;
use stanchion::{Clock, Deadline};
use stanchion_std::http::{circuit_open, gateway_timeout, service_unavailable, too_many_requests};
use stanchion_std::registry::NamedBreaker;
use stanchion_std::tower::{
    BoxError, BulkheadRejected, Charge, CircuitBreakerLayer, CircuitOpen, QueuedBulkheadLayer,
    RateLimitHooks, RateLimitPolicy, RateLimited, RefusalsArePermanent, RetryLayer, TierId,
    TierRefusal, TieredRateLimitLayer, TimeoutLayer, refusal,
};
use stanchion_std::{Admission, BulkheadQueue, CoarseClock, TokioClock};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use super::admin;
use super::clients::{Client, ClientLimits};
use super::config::{Config, DisplayDuration};
use super::downstream::{DownstreamError, FlakyDownstream};
use super::metrics::{Metrics, Snapshot};
use super::policies::Policies;

/// The API key field.
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The breaker in front of the downstream: `breaker.downstream` of the policies.
pub type Breaker = NamedBreaker;

/// One request to the downstream: the attempts it made so far (shared by its retries).
#[derive(Clone, Debug, Default)]
pub struct Attempts(Arc<AtomicU32>);

impl Attempts {
    /// Attempts made.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The downstream behind the patterns, as one tower service (clones share every layer's
/// state): overall timeout, bulkhead, retry, circuit breaker, per-attempt timeout, the
/// order of [`stanchion::pipeline`] (in tower the breaker sits inside the retry, so that
/// each attempt takes a breaker permit). The per-client rate limit runs before it, as a
/// layer of the route, because its quota depends on who asks.
pub type Downstream = BoxCloneSyncService<Attempts, String, BoxError>;

/// Everything the handlers share.
pub struct AppState {
    /// The per-client limits.
    pub limits: ClientLimits,
    /// The patterns in front of the downstream.
    pub stack: Downstream,
    /// The breaker inside `stack`, for the metrics.
    pub breaker: Arc<Breaker>,
    /// The bulkhead inside `stack`, for the metrics and messages.
    pub bulkhead: Arc<BulkheadQueue>,
    /// The named policies (`--config`), reloadable.
    pub policies: Policies,
    /// The flaky downstream.
    pub downstream: Arc<FlakyDownstream>,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The admin token.
    pub admin_token: String,
    /// The admin route's failed attempts per client IP.
    pub admin_guard: admin::AdminGuard,
    /// The per-request timeout, for messages.
    pub request_timeout: Duration,
    /// The per-attempt timeout, for messages.
    pub attempt_timeout: Duration,
    /// `--bypass-layers`: `/api/data` calls the downstream with no pattern in front.
    pub bypass_layers: bool,
}

impl AppState {
    /// The state for `config`, whose admin token was checked; `limits` and `policies`
    /// built from it, `limits` on `clock`, which the retry and breaker layers read too
    /// (see the [module docs](self#clock)).
    ///
    /// # Errors
    ///
    /// A setting core refuses, with the field and the allowed range.
    pub fn new(
        config: &Config,
        admin_token: String,
        limits: ClientLimits,
        policies: Policies,
        clock: CoarseClock,
    ) -> Result<AppState, String> {
        let err = |e: stanchion::ConfigError| e.to_string();
        // The bulkhead's queue and the admin guard are typed on tokio's clock (the queue
        // makes tokio timers of its deadlines, and reads a clock only for a request that
        // must wait), and the admin route is off the request path.
        let tokio_clock = TokioClock::new();
        let seed = config.seed.unwrap_or_else(|| {
            std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0x5eed_u64)
        });
        let missing = |what: &str| format!("the policies have no `{what}.downstream`");
        let retry = policies
            .registry
            .retry("downstream")
            .ok_or_else(|| missing("retry"))?;
        let breaker: Arc<Breaker> = policies
            .registry
            .breaker("downstream")
            .ok_or_else(|| missing("breaker"))?;
        let max_concurrent = policies
            .registry
            .bulkhead("downstream")
            .ok_or_else(|| missing("bulkhead"))?
            .max_concurrent();
        let bulkhead = Arc::new(
            BulkheadQueue::new(max_concurrent, config.max_waiting, tokio_clock).map_err(err)?,
        );
        let downstream = Arc::new(FlakyDownstream::new(
            config.failure_rate,
            config.latency,
            seed ^ 0xd0,
        ));
        let metrics = Arc::new(Metrics::new());

        let request_timeout = config.request_timeout;
        // Each request's policy from the retry settings in force when it starts (a reload
        // changes the next requests'), drawing on their retry budget, never sleeping past
        // the request's deadline. (The layer gives each request a random stream of its
        // own, derived from `seed`.)
        let make_policy = move |clock: &CoarseClock| {
            let now = clock.now();
            retry
                .policy(fastrand::Rng::with_seed(seed), now)
                .with_classifier(RefusalsArePermanent)
                .with_deadline(Deadline::after(now, request_timeout))
        };
        let (calls_downstream, calls_metrics) = (downstream.clone(), metrics.clone());
        let stack = ServiceBuilder::new()
            .layer(TimeoutLayer::overall(config.request_timeout))
            .layer(QueuedBulkheadLayer::new(
                bulkhead.clone(),
                Some(config.request_timeout),
            ))
            .layer(RetryLayer::with_clock(make_policy, clock).seed(seed))
            .layer(CircuitBreakerLayer::with_clock(breaker.clone(), clock))
            .layer(TimeoutLayer::new(config.attempt_timeout))
            .service_fn(move |attempts: Attempts| {
                let attempt = attempts.0.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                calls_metrics.admitted(Layer::CircuitBreaker);
                if attempt > 1 {
                    calls_metrics.retried();
                }
                let downstream = calls_downstream.clone();
                async move { downstream.call().await.map_err(BoxError::from) }
            });
        Ok(AppState {
            limits,
            stack: BoxCloneSyncService::new(stack),
            breaker,
            bulkhead,
            policies,
            downstream,
            metrics,
            admin_token,
            admin_guard: admin::AdminGuard::new(tokio_clock).map_err(err)?,
            request_timeout: config.request_timeout,
            attempt_timeout: config.attempt_timeout,
            bypass_layers: config.bypass_layers,
        })
    }
}

impl AppState {
    /// The tokens left (in thousandths) in the retry budget `retry.downstream` draws on
    /// (0 with none).
    pub fn retry_budget_milli_tokens(&self) -> u32 {
        let registry = &self.policies.registry;
        registry
            .retry("downstream")
            .and_then(|retry| retry.budget_name())
            .and_then(|name| registry.retry_budget(&name))
            .map_or(0, |budget| budget.milli_tokens())
    }

    /// Reads the `--config` file again and applies it (see [`Policies::reload`]); the
    /// bulkhead's maximum follows `bulkhead.downstream`.
    ///
    /// # Errors
    ///
    /// No `--config` file, or the document refused, with the reason.
    pub fn reload_policies(&self) -> Result<String, String> {
        let line = self.policies.reload()?;
        if let Some(named) = self.policies.registry.bulkhead("downstream") {
            // Checked at least 1 by the registry.
            let _ = self
                .bulkhead
                .bulkhead()
                .set_max_concurrent(named.max_concurrent());
        }
        Ok(line)
    }
}

/// The service's routes over `state`.
///
/// With [`AppState::bypass_layers`], `/api/data` calls the downstream directly: no
/// per-client rate limit and no pattern, only the response counter that both forms share.
///
/// # Errors
///
/// The per-client limits do not make a rate limit layer (see `rate_limited`).
pub fn router(state: Arc<AppState>) -> Result<Router, String> {
    let api = if state.bypass_layers {
        Router::new().route("/api/data", get(api_data_bare))
    } else {
        rate_limited(&state, Router::new().route("/api/data", get(api_data)))?
    };
    let api = api.layer(middleware::from_fn_with_state(
        state.clone(),
        count_responses,
    ));
    Ok(Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/downstream", get(admin::show).post(admin::change))
        .route("/admin/reload", post(admin::reload))
        .fallback(not_found)
        .with_state(state))
}

/// Whole seconds, rounded up, at least 1 (as `Retry-After` says it).
fn whole_seconds(d: Duration) -> u64 {
    stanchion_std::http::retry_after_seconds(d)
}

fn text(status: StatusCode, message: String) -> Response {
    (status, message + "\n").into_response()
}

/// `response` (a refusal from `stanchion_std::http`, status and fields) with `message`
/// as its body.
fn with_message(response: axum::http::Response<()>, message: String) -> Response {
    let (parts, ()) = response.into_parts();
    Response::from_parts(parts, Body::from(message + "\n"))
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

/// `routes` behind the per-client rate limit: stanchion-std's `TieredRateLimitLayer`,
/// one tier per configured API key and one for the IPs ([`ClientLimits::tiers`]), so that
/// each answer names its client's policy; 429 over quota (the layer's answer, with the
/// body of [`ClientAnswers`]), `RateLimit` fields on every granted answer; a malformed
/// `X-Api-Key` is answered 400 by the key function, unlimited.
///
/// # Errors
///
/// None in practice: the limits always have the IPs' tier.
fn rate_limited(
    state: &Arc<AppState>,
    routes: Router<Arc<AppState>>,
) -> Result<Router<Arc<AppState>>, String> {
    let for_key = state.clone();
    let key = move |request: &Request| {
        // The server puts the peer's address on every request.
        let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
            return Charge::Answer(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: no client address".to_owned(),
            ));
        };
        let api_key = request.headers().get(&API_KEY).map(HeaderValue::as_bytes);
        match for_key.limits.identify(api_key, peer.ip()) {
            Ok(client) => Charge::To(for_key.limits.tier(client), client),
            Err(malformed) => Charge::Answer(text(StatusCode::BAD_REQUEST, malformed.to_string())),
        }
    };
    let layer = TieredRateLimitLayer::new(state.limits.tiers(), key).map_err(|e| e.to_string())?;
    Ok(routes.layer(layer.hooks(ClientAnswers(state.clone()))))
}

/// The per-client limit's decisions, counted in the metrics; and its refusals, answered:
/// a refusal that is not a spent quota (Redis out of reach with `--redis-fallback deny`;
/// an IP the table cannot hold) gets a 503 that says so, a spent quota the layer's 429
/// with a body that names the policy.
struct ClientAnswers(Arc<AppState>);

impl RateLimitHooks<Client, Body> for ClientAnswers {
    fn granted(&self, _: TierId, _: &Client, _: Admission) {
        self.0.metrics.admitted(Layer::RateLimit);
    }

    fn refused(&self, refusal: &TierRefusal<'_, Client>, answer: Response) -> Response {
        let (state, client, error) = (&self.0, *refusal.key, &refusal.refused.error);
        state.metrics.rejected(Layer::RateLimit);
        if state.limits.denies_in_fallback(client) {
            // Not a spent quota: nobody's quota is known while Redis is out of reach.
            return limits_unavailable(
                error,
                "per-client limits unavailable: Redis is out of reach and --redis-fallback deny refuses every limited request",
            );
        }
        if state.limits.untracked(client) {
            // Not a spent quota: the table holds as many clients as it can.
            state.metrics.untracked();
            return limits_unavailable(
                error,
                "too many clients: the table of client IPs is full of clients still within their window, so this one cannot be tracked",
            );
        }
        // The layer's status and fields, with the service's message.
        let (parts, _) = answer.into_parts();
        Response::from_parts(parts, Body::from(too_many_message(&refusal.refused) + "\n"))
    }
}

/// 503 for a per-client limit that refused without a spent quota (`why`): `Retry-After`
/// and the body's wait from the limiter's answer, no `RateLimit` fields.
fn limits_unavailable(error: &RateLimitError, why: &str) -> Response {
    let retry_after = error.retry_after();
    with_message(
        service_unavailable(retry_after),
        format!(
            "{why}; retry after {} s",
            whole_seconds(retry_after.unwrap_or(Duration::from_secs(1)))
        ),
    )
}

fn too_many(refused: RateLimited) -> Response {
    let message = too_many_message(&refused);
    with_message(too_many_requests(&refused), message)
}

/// What a 429 says: the policy, and when to come back.
fn too_many_message(refused: &RateLimited) -> String {
    let policy = refused.policy;
    match refused.retry_after() {
        Some(d) => format!(
            "rate limited: policy {} allows {} requests per {}; retry after {} s",
            policy.name,
            policy.quota.unwrap_or(0),
            DisplayDuration(policy.window.unwrap_or_default()),
            whole_seconds(d)
        ),
        None => format!(
            "rate limited: policy {} can never grant this request",
            policy.name
        ),
    }
}

/// The first error of type `T` in `error`'s source chain.
fn find<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    for _ in 0..16 {
        let e = current?;
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        current = e.source();
    }
    None
}

/// `GET /api/data`: one call to the downstream through the patterns.
async fn api_data(State(state): State<Arc<AppState>>) -> Response {
    let attempts = Attempts::default();
    let result = state.stack.clone().oneshot(attempts.clone()).await;
    let error = match result {
        Ok(body) => {
            state.metrics.admitted(Layer::Bulkhead);
            return (StatusCode::OK, body).into_response();
        }
        Err(error) => error,
    };
    let refused = refusal(&*error);
    let layer = refused.map_or(Layer::Retry, |r| r.layer);
    if attempts.count() > 0 || layer == Layer::CircuitBreaker {
        state.metrics.admitted(Layer::Bulkhead);
    }
    state.metrics.rejected(layer);
    let n = attempts.count();
    match layer {
        Layer::OverallTimeout => with_message(
            gateway_timeout(),
            format!(
                "no answer from the downstream within the request timeout of {}",
                DisplayDuration(state.request_timeout)
            ),
        ),
        Layer::AttemptTimeout => with_message(
            gateway_timeout(),
            format!(
                "the downstream did not answer within {} on any of {n} attempt(s)",
                DisplayDuration(state.attempt_timeout)
            ),
        ),
        Layer::Bulkhead => {
            let full = find::<BulkheadRejected>(&*error).map(|r| r.full);
            let (in_use, max) = full.map_or((0, 0), |f| (f.in_use(), f.max_concurrent()));
            with_message(
                service_unavailable(None),
                format!(
                    "bulkhead full: {in_use} of {max} downstream calls in flight; try again shortly"
                ),
            )
        }
        Layer::CircuitBreaker => {
            let Some(rejected) = find::<CircuitOpen>(&*error).map(|c| c.rejected) else {
                return with_message(
                    service_unavailable(None),
                    "circuit breaker refused the call".to_owned(),
                );
            };
            // The breaker's own seconds: never early, never a whole second late.
            let message = match rejected.retry_after_secs() {
                Some(secs) => format!(
                    "circuit breaker open: the downstream is failing; retry after {} s",
                    secs.max(1)
                ),
                None => format!(
                    "circuit breaker refused the call ({:?}): the downstream is failing or being probed",
                    rejected.state
                ),
            };
            with_message(circuit_open(&rejected), message)
        }
        Layer::RateLimit => {
            let error = find::<RateLimited>(&*error).map_or(
                RateLimitError::InsufficientCapacity(stanchion::rate::InsufficientCapacity::new(0)),
                |r| r.error,
            );
            too_many(RateLimited {
                error,
                policy: RateLimitPolicy::new("downstream"),
            })
        }
        Layer::Retry if find::<DownstreamError>(&*error).is_some() => text(
            StatusCode::BAD_GATEWAY,
            format!("the downstream failed on every attempt: gave up after {n} attempt(s)"),
        ),
        // The service's stack has no throttle, and no refusal names fault injection (an
        // injected failure is the downstream's own): an error of its own, as below.
        Layer::Retry | Layer::Throttle | Layer::FaultInjection => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".to_owned(),
        ),
    }
}

/// `GET /api/data` with `--bypass-layers`: the same downstream call as [`api_data`] with
/// no pattern in front, answered the same way (200 with the body, or 502 after its one
/// attempt). The load benchmark's baseline.
async fn api_data_bare(State(state): State<Arc<AppState>>) -> Response {
    match state.downstream.call().await {
        Ok(body) => (StatusCode::OK, body).into_response(),
        Err(_) => text(
            StatusCode::BAD_GATEWAY,
            "the downstream failed on every attempt: gave up after 1 attempt(s) (layers bypassed)"
                .to_owned(),
        ),
    }
}

/// `GET /health`: the process serves.
async fn health() -> &'static str {
    "ok\n"
}

/// `GET /metrics`: Prometheus text (format 0.0.4, what `metrics-exporter-prometheus` writes).
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = Snapshot {
        breaker: state.breaker.state(),
        bulkhead_in_use: state.bulkhead.bulkhead().in_use(),
        budget_milli_tokens: state.retry_budget_milli_tokens(),
        failure_rate: state.downstream.failure_rate(),
        latency_ms: u64::try_from(state.downstream.latency().as_millis()).unwrap_or(u64::MAX),
    };
    let fallbacks = state.limits.fallback_status();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(snapshot, &fallbacks),
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
