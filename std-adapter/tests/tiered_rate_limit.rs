//! The tiered rate limit layer in an axum app, with no `HandleErrorLayer`: each tier's
//! quota, its answers to refusals, its hooks; requests sent in-process with `oneshot`,
//! on tokio's paused clock.
#![cfg(feature = "http")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use stanchion::ConfigError;
use stanchion::rate::{
    FullTablePolicy, KeyedTokenBucket, Quota, RateLimitError, SharedLimiter, WithClock,
};
use stanchion_std::tower::{
    Charge, RateLimitHooks, RateLimitPolicy, TierId, TierRefusal, TieredRateLimitLayer, Tiers,
};
use stanchion_std::{Admission, AsyncKeyedRateLimiter, StdRawMutex, TokioClock};
use tower::ServiceExt;

type Table = WithClock<SharedLimiter<StdRawMutex, KeyedTokenBucket<64>>, TokioClock>;

const MINUTE: Duration = Duration::from_secs(60);

fn table(quota: Quota) -> Arc<Table> {
    let keys = KeyedTokenBucket::new(quota, FullTablePolicy::DenyNewKeys, (1, 2));
    Arc::new(WithClock::new(SharedLimiter::new(keys), TokioClock::new()))
}

/// Two tiers: "gold", 5 requests a minute per key, and "anonymous", 2 a minute per key.
fn two_tiers<L>(
    limiter: impl Fn(Quota) -> Arc<L>,
    gold_quota: Option<u32>,
) -> (Tiers<L>, TierId, TierId) {
    let mut tiers = Tiers::new();
    let mut gold_policy = RateLimitPolicy::new("gold").window(MINUTE);
    if let Some(q) = gold_quota {
        gold_policy = gold_policy.quota(q);
    }
    let gold = tiers
        .tier(gold_policy, limiter(Quota::per_minute(5).unwrap()))
        .unwrap();
    let anonymous = tiers
        .tier(
            RateLimitPolicy::new("anonymous").quota(2).window(MINUTE),
            limiter(Quota::per_minute(2).unwrap()),
        )
        .unwrap();
    (tiers, gold, anonymous)
}

/// The key function: the tier from `x-tier`, the key from `x-client`; a request with
/// another tier is answered 400 by the key function; `stray` names a tier of other tiers.
fn key_fn(
    gold: TierId,
    anonymous: TierId,
) -> impl Fn(&Request<Body>) -> Charge<String, Body> + Clone + Send + Sync + 'static {
    let mut others = Tiers::new();
    for name in ["a", "b", "c"] {
        others
            .tier(
                RateLimitPolicy::new(name),
                table(Quota::per_minute(1).unwrap()),
            )
            .unwrap();
    }
    let stray = others
        .tier(
            RateLimitPolicy::new("d"),
            table(Quota::per_minute(1).unwrap()),
        )
        .unwrap();
    move |request: &Request<Body>| {
        let field = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let tier = match field("x-tier") {
            "gold" => gold,
            "anonymous" => anonymous,
            "stray" => stray,
            _ => return Charge::Answer((StatusCode::BAD_REQUEST, "which tier?\n").into_response()),
        };
        Charge::To(tier, field("x-client").to_owned())
    }
}

fn handler(calls: Arc<AtomicU32>) -> Router {
    Router::new().route(
        "/",
        get(move || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { "hello\n" }
        }),
    )
}

async fn send(app: &Router, tier: &str, client: &str) -> (Response, String) {
    let request = Request::builder()
        .uri("/")
        .header("x-tier", tier)
        .header("x-client", client)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn field<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

fn plain_app(calls: Arc<AtomicU32>) -> Router {
    let (tiers, gold, anonymous) = two_tiers(table, Some(5));
    handler(calls).layer(TieredRateLimitLayer::new(tiers, key_fn(gold, anonymous)).unwrap())
}

#[tokio::test(start_paused = true)]
async fn the_layer_answers_a_refusal_itself() {
    let calls = Arc::new(AtomicU32::new(0));
    let app = plain_app(calls.clone());
    for left in [1, 0] {
        let (r, body) = send(&app, "anonymous", "ann").await;
        assert_eq!((r.status(), body.as_str()), (StatusCode::OK, "hello\n"));
        let expected = format!("\"anonymous\";r={left}");
        assert_eq!(field(&r, "ratelimit"), Some(expected.as_str()));
        assert_eq!(
            field(&r, "ratelimit-policy"),
            Some("\"anonymous\";q=2;w=60")
        );
        assert_eq!(field(&r, "retry-after"), None);
    }
    // One request every 30 s: the third waits 30 s.
    let (r, body) = send(&app, "anonymous", "ann").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(field(&r, "retry-after"), Some("30"));
    assert_eq!(field(&r, "ratelimit"), Some("\"anonymous\";r=0;t=30"));
    assert_eq!(
        field(&r, "ratelimit-policy"),
        Some("\"anonymous\";q=2;w=60")
    );
    assert_eq!(field(&r, "content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(body, "too many requests: try again in 30 s\n");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "a refusal never reaches the handler"
    );

    tokio::time::advance(Duration::from_millis(29_500)).await;
    let (r, _) = send(&app, "anonymous", "ann").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(field(&r, "retry-after"), Some("1"), "0.5 s, rounded up");
    tokio::time::advance(Duration::from_millis(500)).await;
    let (r, _) = send(&app, "anonymous", "ann").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(field(&r, "ratelimit"), Some("\"anonymous\";r=0"));
    assert_eq!(calls.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn each_tier_admits_exactly_its_burst() {
    let app = plain_app(Arc::new(AtomicU32::new(0)));
    for (tier, burst) in [("gold", 5), ("anonymous", 2)] {
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(send(&app, tier, "ann").await.0.status().as_u16());
        }
        let mut expected = vec![200; burst];
        expected.resize(8, 429);
        assert_eq!(statuses, expected, "{tier}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_over_one_tier_leaves_every_other_tier_and_key_alone() {
    let app = plain_app(Arc::new(AtomicU32::new(0)));
    for _ in 0..2 {
        assert_eq!(send(&app, "anonymous", "ann").await.0.status(), 200);
    }
    assert_eq!(send(&app, "anonymous", "ann").await.0.status(), 429);
    // The same key in the gold tier has the gold quota, untouched.
    for left in (0..5).rev() {
        let (r, _) = send(&app, "gold", "ann").await;
        assert_eq!(r.status(), 200);
        let expected = format!("\"gold\";r={left}");
        assert_eq!(field(&r, "ratelimit"), Some(expected.as_str()));
        assert_eq!(field(&r, "ratelimit-policy"), Some("\"gold\";q=5;w=60"));
    }
    let (r, _) = send(&app, "gold", "ann").await;
    assert_eq!(r.status(), 429);
    assert_eq!(field(&r, "retry-after"), Some("12"));
    // Another key of the spent tier has its own quota.
    let (r, _) = send(&app, "anonymous", "bob").await;
    assert_eq!(field(&r, "ratelimit"), Some("\"anonymous\";r=1"));
}

#[tokio::test(start_paused = true)]
async fn the_key_function_answers_for_itself_and_a_stray_tier_is_a_500() {
    let calls = Arc::new(AtomicU32::new(0));
    let app = plain_app(calls.clone());
    let (r, body) = send(&app, "platinum", "ann").await;
    assert_eq!(
        (r.status(), body.as_str()),
        (StatusCode::BAD_REQUEST, "which tier?\n")
    );
    assert_eq!(field(&r, "ratelimit"), None);
    let (r, body) = send(&app, "stray", "ann").await;
    assert_eq!(
        (r.status(), body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

/// Counts decisions, and answers the refusals of the key `full` with a 503.
#[derive(Default)]
struct Counting {
    granted: AtomicU32,
    refused: AtomicU32,
}

impl RateLimitHooks<String, Body> for Counting {
    fn granted(&self, _: TierId, _: &String, admission: Admission) {
        assert!(admission.remaining < 5);
        self.granted.fetch_add(1, Ordering::Relaxed);
    }

    fn refused(&self, refusal: &TierRefusal<'_, String>, answer: Response) -> Response {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if refusal.key == "full" {
            return (StatusCode::SERVICE_UNAVAILABLE, "no room\n").into_response();
        }
        answer
    }
}

#[tokio::test(start_paused = true)]
async fn hooks_count_each_decision_and_can_change_the_answer() {
    let hooks = Arc::new(Counting::default());
    let (tiers, gold, anonymous) = two_tiers(table, Some(5));
    let layer = TieredRateLimitLayer::new(tiers, key_fn(gold, anonymous)).unwrap();
    let app = handler(Arc::default()).layer(layer.hooks(hooks.clone()));
    for client in ["ann", "ann", "ann", "full", "full", "full"] {
        send(&app, "anonymous", client).await;
    }
    let (r, body) = send(&app, "anonymous", "full").await;
    assert_eq!(
        (r.status(), body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "no room\n")
    );
    let (r, _) = send(&app, "anonymous", "ann").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    send(&app, "nobody", "ann").await; // the key function's 400: no decision
    assert_eq!(hooks.granted.load(Ordering::Relaxed), 4);
    assert_eq!(hooks.refused.load(Ordering::Relaxed), 4);

    // The closure form: a JSON body, the status and fields kept.
    let (tiers, gold, anonymous) = two_tiers(table, Some(5));
    let layer = TieredRateLimitLayer::new(tiers, key_fn(gold, anonymous))
        .unwrap()
        .on_refusal(|refusal: &TierRefusal<'_, String>, answer: Response| {
            let body = format!(
                "{{\"policy\":\"{}\",\"key\":\"{}\"}}",
                refusal.refused.policy.name, refusal.key
            );
            let (parts, _) = answer.into_parts();
            Response::from_parts(parts, Body::from(body))
        });
    let app = handler(Arc::default()).layer(layer);
    for _ in 0..2 {
        send(&app, "anonymous", "ann").await;
    }
    let (r, body) = send(&app, "anonymous", "ann").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(field(&r, "retry-after"), Some("30"));
    assert_eq!(body, "{\"policy\":\"anonymous\",\"key\":\"ann\"}");
}

/// A limiter that must be awaited, as a remote one is: the table's decision, after 10 ms.
struct Remote(Arc<Table>);

impl AsyncKeyedRateLimiter<String> for Remote {
    async fn admit(&self, key: &String, n: u32) -> Result<Admission, RateLimitError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.0.admit(key, n).await
    }

    fn max_acquire(&self) -> u32 {
        AsyncKeyedRateLimiter::<String>::max_acquire(&*self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_limiter_that_must_be_awaited_answers_the_same() {
    let hooks = Arc::new(Counting::default());
    let calls = Arc::new(AtomicU32::new(0));
    // No quota in the gold policy: the limiter's burst stands in.
    let (tiers, gold, anonymous) = two_tiers(|q| Arc::new(Remote(table(q))), None);
    let layer = TieredRateLimitLayer::new(tiers, key_fn(gold, anonymous)).unwrap();
    let app = handler(calls.clone()).layer(layer.hooks(hooks.clone()));
    for left in (0..5).rev() {
        let (r, _) = send(&app, "gold", "ann").await;
        assert_eq!(r.status(), StatusCode::OK);
        let expected = format!("\"gold\";r={left}");
        assert_eq!(field(&r, "ratelimit"), Some(expected.as_str()));
        assert_eq!(field(&r, "ratelimit-policy"), Some("\"gold\";q=5;w=60"));
    }
    // 50 ms of the next 12 s went on the five decisions.
    let (r, body) = send(&app, "gold", "ann").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(field(&r, "retry-after"), Some("12"));
    assert_eq!(field(&r, "ratelimit"), Some("\"gold\";r=0;t=12"));
    assert_eq!(body, "too many requests: try again in 12 s\n");
    let (r, body) = send(&app, "gold", "full").await;
    assert_eq!((r.status(), body.as_str()), (StatusCode::OK, "hello\n"));
    assert_eq!(calls.load(Ordering::Relaxed), 6);
    assert_eq!(hooks.granted.load(Ordering::Relaxed), 6);
    assert_eq!(hooks.refused.load(Ordering::Relaxed), 1);
}

#[test]
fn bad_tiers_are_refused_naming_the_field() {
    let limiter = table(Quota::per_minute(1).unwrap());
    let mut tiers = Tiers::new();
    let mut add = |policy| tiers.tier(policy, limiter.clone());
    let name = ConfigError::new("policy.name", "1 to 256 visible ASCII characters or spaces");
    assert_eq!(add(RateLimitPolicy::new("")), Err(name));
    assert_eq!(add(RateLimitPolicy::new("g\u{f6}ld")), Err(name));
    assert_eq!(add(RateLimitPolicy::new("new\nline")), Err(name));
    let long: &'static str = Box::leak("n".repeat(257).into_boxed_str());
    assert_eq!(add(RateLimitPolicy::new(long)), Err(name));
    assert!(add(RateLimitPolicy::new(&long[..256])).is_ok());
    assert!(add(RateLimitPolicy::new("gold")).is_ok());
    assert_eq!(
        add(RateLimitPolicy::new("gold")),
        Err(ConfigError::new("policy.name", "unique among the tiers"))
    );
    assert_eq!(
        add(RateLimitPolicy::new("zero").quota(0)),
        Err(ConfigError::new("policy.quota", "at least 1"))
    );
    assert_eq!(
        add(RateLimitPolicy::new("instant").window(Duration::ZERO)),
        Err(ConfigError::new("policy.window", "not zero"))
    );
    let third = add(RateLimitPolicy::new("silver").quota(1).window(MINUTE)).unwrap();
    assert_eq!(third.index(), 2);
    assert_eq!(tiers.len(), 3);
    assert_eq!(tiers.policy(third).map(|p| p.name), Some("silver"));
    let none = TieredRateLimitLayer::new(Tiers::<Table>::new(), |_: &Request<Body>| {
        Charge::<String, Body>::Answer(StatusCode::OK.into_response())
    });
    assert_eq!(
        none.unwrap_err(),
        ConfigError::new("tiers", "at least one tier")
    );
}
