//! An axum app behind the tower layers answers each refusal with the right status and
//! fields; requests are sent in-process with `oneshot`, on tokio's paused clock.
#![cfg(feature = "axum")]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use stanchion::breaker::window::ConsecutiveWindow;
use stanchion::breaker::{BreakerConfig, CircuitBreaker};
use stanchion::bulkhead::Bulkhead;
use stanchion::rate::{FixedWindow, Quota, SharedLimiter, TokenBucket, WindowQuota, WithClock};
use stanchion_std::http::{RateLimitHeaders, ServerErrorsAreFailures, handle_refusal};
use stanchion_std::tower::{
    BulkheadLayer, CircuitBreakerLayer, RateLimitLayer, RateLimitPolicy, TimeoutLayer,
};
use stanchion_std::{StdRawMutex, TokioClock};
use tower::{ServiceBuilder, ServiceExt};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn app() -> Router {
    // The fixed window's minutes start when the app is built.
    let clock = TokioClock::starting_now();
    // 429: a window of 2 requests a minute on /limited, its fields on every answer.
    let window =
        SharedLimiter::<StdRawMutex, _>::new(FixedWindow::new(WindowQuota::per_minute(2).unwrap()));
    let limited = RateLimitLayer::new(Arc::new(WithClock::new(window, clock)))
        .policy(RateLimitPolicy::new("default").window(SECS(60)))
        .on_admission(RateLimitHeaders);
    // 503: one request at a time on /bulkhead.
    let bulkhead = BulkheadLayer::new(Arc::new(Bulkhead::new(1).unwrap()));
    // 503 with Retry-After: a breaker that opens on one 5xx, for 30 s.
    let breaker: CircuitBreaker<ConsecutiveWindow, StdRawMutex> = CircuitBreaker::new(
        BreakerConfig::new()
            .minimum_calls(1)
            .open_duration(SECS(30)),
        ConsecutiveWindow::new(1).unwrap(),
    )
    .unwrap();
    let breaker = CircuitBreakerLayer::with_clock(Arc::new(breaker), clock)
        .classifier(ServerErrorsAreFailures);
    // 504: a handler slower than its 2 s timeout.
    let timeout = TimeoutLayer::new(SECS(2));

    Router::new()
        .route(
            "/limited",
            get(|| async { "fine" }).layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(handle_refusal))
                    .layer(limited),
            ),
        )
        .route(
            "/bulkhead",
            get(|| async {
                tokio::time::sleep(SECS(1)).await;
                "done"
            })
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(handle_refusal))
                    .layer(bulkhead),
            ),
        )
        .route(
            "/breaker",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }).layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(handle_refusal))
                    .layer(breaker),
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(SECS(60)).await;
                "late"
            })
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(handle_refusal))
                    .layer(timeout),
            ),
        )
}

async fn get_path(app: &Router, path: &str) -> Response {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    app.clone().oneshot(request).await.unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(start_paused = true)]
async fn rate_limited_requests_get_429_with_retry_after_and_ratelimit_fields() {
    let app = app();
    let first = get_path(&app, "/limited").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "ratelimit"), Some("\"default\";r=1"));
    assert_eq!(
        header(&first, "ratelimit-policy"),
        Some("\"default\";q=2;w=60")
    );
    let second = get_path(&app, "/limited").await;
    assert_eq!(header(&second, "ratelimit"), Some("\"default\";r=0"));

    tokio::time::advance(Duration::from_millis(20_500)).await;
    let refused = get_path(&app, "/limited").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // 39.5 s left in the minute: rounded up.
    assert_eq!(header(&refused, "retry-after"), Some("40"));
    assert_eq!(header(&refused, "ratelimit"), Some("\"default\";r=0;t=40"));
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        Some("\"default\";q=2;w=60")
    );

    tokio::time::advance(Duration::from_millis(39_500)).await;
    assert_eq!(get_path(&app, "/limited").await.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_answers_503_without_retry_after() {
    let app = app();
    let busy = tokio::spawn({
        let app = app.clone();
        async move { get_path(&app, "/bulkhead").await.status() }
    });
    tokio::task::yield_now().await; // the first request takes the only slot
    let refused = get_path(&app, "/bulkhead").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&refused, "retry-after"), None);
    assert_eq!(busy.await.unwrap(), StatusCode::OK);
    assert_eq!(get_path(&app, "/bulkhead").await.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_answers_503_with_the_time_left() {
    let app = app();
    // The handler's 500 is a failure: the breaker opens for 30 s.
    let failed = get_path(&app, "/breaker").await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    tokio::time::advance(SECS(10)).await;
    let refused = get_path(&app, "/breaker").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    // 20 s left: a call strictly after them goes through (retry_after is 20 s and 1 ns);
    // rounding that up to 21 would be a whole second late (issue 19).
    assert_eq!(header(&refused, "retry-after"), Some("20"));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_request_answers_504() {
    let app = app();
    let started = tokio::time::Instant::now();
    let response = get_path(&app, "/slow").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), SECS(2));
}

#[tokio::test(start_paused = true)]
async fn other_errors_are_500_and_fields_are_well_formed() {
    let response = handle_refusal("a database error".into()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // A token bucket's quota defaults to its burst; a name is escaped as an sf-string.
    let bucket = WithClock::new(
        TokenBucket::new(Quota::per_second(5).unwrap()),
        TokioClock::new(),
    );
    let app = Router::new().route(
        "/",
        get(|| async { "ok" }).layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_refusal))
                .layer(
                    RateLimitLayer::new(Arc::new(bucket))
                        .policy(RateLimitPolicy::new("per \"ip\""))
                        .on_admission(RateLimitHeaders),
                ),
        ),
    );
    let ok = get_path(&app, "/").await;
    assert_eq!(header(&ok, "ratelimit"), Some(r#""per \"ip\"";r=4"#));
    assert_eq!(header(&ok, "ratelimit-policy"), Some(r#""per \"ip\"";q=5"#));
}

#[tokio::test(start_paused = true)]
async fn retry_waits_what_the_server_says_in_retry_after() {
    use stanchion::retry::{Constant, RetryPolicy, Verdict};
    use stanchion_std::http::RetryAfterHeader;
    use stanchion_std::tower::RetryLayer;
    use std::sync::Mutex;

    let start = tokio::time::Instant::now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&times);
    let server = tower::service_fn(move |_: ()| {
        let mut log = log.lock().unwrap();
        log.push(start.elapsed());
        let busy = log.len() < 3;
        async move {
            let mut r = Response::new(Body::empty());
            if busy {
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r.headers_mut().insert("retry-after", "2".parse().unwrap());
            }
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let five_xx_is_transient = |r: &Result<Response, std::convert::Infallible>| match r {
        Ok(r) if r.status().is_server_error() => Verdict::Transient,
        _ => Verdict::Success,
    };
    let client = ServiceBuilder::new()
        .layer(
            RetryLayer::new(move |_clock| {
                // The backoff says 100 ms; the server's hint replaces it.
                RetryPolicy::new(
                    Constant::new(Duration::from_millis(100)),
                    5,
                    fastrand::Rng::with_seed(3),
                )
                .unwrap()
                .with_classifier(five_xx_is_transient)
            })
            .hint(RetryAfterHeader),
        )
        .service(server);
    let response = client.oneshot(()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(*times.lock().unwrap(), [SECS(0), SECS(2), SECS(4)]);
}

/// An inner service's own error that wraps a refusal it met further downstream.
#[derive(Debug)]
struct DownstreamFailed(stanchion_std::tower::CircuitOpen);

impl std::fmt::Display for DownstreamFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the downstream's breaker is open")
    }
}

impl std::error::Error for DownstreamFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_wrapped_by_the_service_is_its_own_error() {
    use stanchion_std::tower::{BoxError, CircuitOpen, refusal};

    let open = CircuitOpen {
        rejected: stanchion::breaker::Rejected {
            state: stanchion::breaker::State::Open,
            retry_after: Some(SECS(30)),
        },
    };
    // This stack's refusal: 503 with Retry-After.
    let ours: BoxError = Box::new(open);
    assert!(refusal(&*ours).is_some());
    let response = handle_refusal(ours).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), Some("30"));
    // The service's error that wraps a downstream's refusal: not this stack's breaker.
    let theirs: BoxError = Box::new(DownstreamFailed(open));
    assert_eq!(refusal(&*theirs), None);
    let response = handle_refusal(theirs).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(header(&response, "retry-after"), None);
}

/// The body of `response`, as text.
async fn body_text(response: Response) -> String {
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn refusals_answer_with_a_short_text_body() {
    let app = app();
    assert_eq!(get_path(&app, "/limited").await.status(), StatusCode::OK);
    assert_eq!(get_path(&app, "/limited").await.status(), StatusCode::OK);
    let refused = get_path(&app, "/limited").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&refused, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        body_text(refused).await,
        "too many requests: try again in 60 s\n"
    );
    let timed_out = get_path(&app, "/slow").await;
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body_text(timed_out).await, "no answer within 2 s\n");
    // Any other error: 500, a generic message, never the error's own.
    let other = handle_refusal("password=hunter2".into()).await;
    assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_text(other).await, "internal server error\n");
}

#[tokio::test(start_paused = true)]
async fn a_hook_changes_the_answer_to_a_refusal() {
    use axum::response::IntoResponse;
    use stanchion_std::http::handle_refusal_with;
    use stanchion_std::tower::{BoxError, CircuitOpen, refusal};

    let handler = handle_refusal_with(
        |error: &(dyn std::error::Error + 'static), answer: Response| match refusal(error) {
            Some(refused) => {
                let body = format!("{{\"refused_by\":\"{}\"}}", refused.layer);
                (answer.status(), answer.headers().clone(), body).into_response()
            }
            None => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
        },
    );
    let open: BoxError = Box::new(CircuitOpen {
        rejected: stanchion::breaker::Rejected {
            state: stanchion::breaker::State::Open,
            retry_after: Some(Duration::from_millis(1_500)),
        },
    });
    let response = handler(open).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), Some("2"));
    assert_eq!(
        body_text(response).await,
        "{\"refused_by\":\"circuit_breaker\"}"
    );
    let response = handler("the database is down".into()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(body_text(response).await, "the database is down");
}
