//! Starts the real `service` binary on a free loopback port and drives it over HTTP with
//! `reqwest`: every refusal the service documents, its metrics, its admin route.
//!
//! No test depends on timing luck: timing knobs (open wait, timeouts, latency) are set
//! small or large by flags so that the outcome is not a race, and where a test must wait
//! for a state (a breaker to close, a call to be in flight) it polls for it with a
//! generous bound instead of sleeping a fixed time. Request loops are bounded.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const SERVICE: &str = env!("CARGO_BIN_EXE_service");
const TOKEN: &str = "test-admin-token";
/// How long a test waits for a state before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running service, killed when dropped.
struct Service {
    _child: Child,
    /// Holding stdout open: the service prints after its first line.
    _stdout: Lines<BufReader<ChildStdout>>,
    base: String,
    http: Client,
}

/// The binary with no `STANCHION_*` variable from the environment of the test run.
fn command() -> Command {
    let mut cmd = Command::new(SERVICE);
    for (name, _) in std::env::vars() {
        if name.starts_with("STANCHION_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

impl Service {
    /// Starts the service on port 0 with the admin token and `args`, and reads the
    /// address from its first line.
    async fn start(args: &[&str]) -> Service {
        Service::start_with_env(args, &[]).await
    }

    /// [`Service::start`] with the environment variables `env` set as well.
    async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut child = command()
            .envs(env.iter().copied())
            .args(["--port", "0", "--admin-token", TOKEN, "--seed", "7"])
            // Timeouts far above any scheduling delay, unless a test sets its own.
            .args(["--attempt-timeout", "10s", "--request-timeout", "20s"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the service starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the service prints its address in time")
            .expect("stdout reads")
            .expect("a first line");
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?} says where it listens"))
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        let http = Client::builder()
            .no_proxy()
            .timeout(PATIENCE)
            .build()
            .expect("a client");
        Service {
            _child: child,
            _stdout: lines,
            base,
            http,
        }
    }

    async fn get(&self, path: &str, api_key: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        request.send().await.expect("the service answers")
    }

    async fn api(&self, api_key: Option<&str>) -> reqwest::Response {
        self.get("/api/data", api_key).await
    }

    async fn admin(&self, query: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/admin/downstream?{query}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.send().await.expect("the service answers")
    }

    /// Changes the downstream through the admin route (must succeed).
    async fn set(&self, query: &str) {
        let response = self.admin(query, Some(TOKEN)).await;
        assert_eq!(response.status(), StatusCode::OK, "admin {query}");
    }

    async fn metrics(&self) -> Metrics {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        Metrics::parse(&response.text().await.unwrap())
    }

    /// Polls `/metrics` until `condition` holds (or fails after [`PATIENCE`]).
    async fn wait_for(&self, what: &str, condition: impl Fn(&Metrics) -> bool) -> Metrics {
        let start = tokio::time::Instant::now();
        loop {
            let m = self.metrics().await;
            if condition(&m) {
                return m;
            }
            assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", response.headers()))
        .to_str()
        .unwrap()
}

/// A parsed exposition: every sample, by its name and labels as written.
struct Metrics(HashMap<String, f64>);

impl Metrics {
    /// Parses the text format strictly: comments, `name{labels} value` lines, `# EOF` last.
    fn parse(text: &str) -> Metrics {
        assert_eq!(
            text.lines().last(),
            Some("# EOF"),
            "ends with # EOF:\n{text}"
        );
        let mut samples = HashMap::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                let kind = comment.split(' ').next().unwrap();
                assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&kind), "{line}");
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "metric name in {line}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "labels closed in {line}");
            }
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "{line} twice"
            );
        }
        Metrics(samples)
    }

    /// The value of `series` (0 if absent: a counter never touched).
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn admitted(&self, layer: &str) -> f64 {
        self.get(&format!("stanchion_admitted_total{{layer=\"{layer}\"}}"))
    }

    fn rejected(&self, layer: &str) -> f64 {
        self.get(&format!("stanchion_rejected_total{{layer=\"{layer}\"}}"))
    }

    fn responses(&self, status: u16) -> f64 {
        self.get(&format!(
            "stanchion_api_responses_total{{status=\"{status}\"}}"
        ))
    }

    fn breaker(&self, state: &str) -> bool {
        self.get(&format!("stanchion_breaker_state{{state=\"{state}\"}}")) == 1.0
    }
}

#[tokio::test]
async fn a_burst_past_the_limit_gets_429_with_rate_limit_fields() {
    let s = Service::start(&[
        "--ip-quota",
        "5/60s",
        "--api-key",
        "alice=alice-key:3/30s",
        "--latency",
        "0ms",
    ])
    .await;
    for left in (0..5).rev() {
        let r = s.api(None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "ratelimit"), format!("\"ip\";r={left}"));
        assert_eq!(header(&r, "ratelimit-policy"), "\"ip\";q=5;w=60");
        assert!(r.headers().get("retry-after").is_none());
    }
    let r = s.api(None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // One request every 12 s: the next is 12 s after the first, less the few
    // milliseconds the burst took, rounded up to whole seconds.
    let wait: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((11..=12).contains(&wait), "Retry-After {wait}");
    assert_eq!(header(&r, "ratelimit"), format!("\"ip\";r=0;t={wait}"));
    assert_eq!(header(&r, "ratelimit-policy"), "\"ip\";q=5;w=60");
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("rate limited: policy ip allows 5 requests per 60s"),
        "{body}"
    );

    // A configured key has its own quota, untouched by the IP's.
    for left in (0..3).rev() {
        let r = s.api(Some("alice-key")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "ratelimit"), format!("\"key-alice\";r={left}"));
        assert_eq!(header(&r, "ratelimit-policy"), "\"key-alice\";q=3;w=30");
    }
    let r = s.api(Some("alice-key")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((9..=10).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn a_failing_downstream_opens_the_breaker_and_healing_closes_it() {
    let s = Service::start(&[
        "--ip-quota",
        "100000/1s",
        "--latency",
        "0ms",
        "--retry-base",
        "1ms",
        "--breaker-failures",
        "3",
        "--open-wait",
        "300ms",
        "--half-open-probes",
        "2",
    ])
    .await;
    assert_eq!(s.api(None).await.status(), StatusCode::OK);
    s.set("failure_rate=100").await;
    // The breaker opens after this instant, and closes at least the open wait later.
    let before_open = tokio::time::Instant::now();
    // The first call fails its 3 attempts (502), which opens the breaker: 503 from then on.
    let mut statuses = Vec::new();
    let open = loop {
        let r = s.api(None).await;
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            break r;
        }
        assert!(
            statuses.len() < 10,
            "the breaker never opened: {statuses:?}"
        );
    };
    assert_eq!(statuses, [502, 503]);
    assert_eq!(header(&open, "retry-after"), "1", "300 ms, rounded up");
    let body = open.text().await.unwrap();
    assert_eq!(
        body,
        "circuit breaker open: the downstream is failing; retry after 1 s\n"
    );
    let m = s.metrics().await;
    assert!(m.breaker("open"));
    assert_eq!(m.rejected("circuit_breaker"), 1.0);

    // Healed: after the open wait, the probes succeed and the breaker closes.
    s.set("failure_rate=0").await;
    let start = tokio::time::Instant::now();
    let mut first_ok = None;
    let mut ok = 0;
    while ok < 2 {
        let r = s.api(None).await;
        if r.status() == StatusCode::OK {
            ok += 1;
            first_ok.get_or_insert_with(|| before_open.elapsed());
        } else {
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                start.elapsed() < PATIENCE,
                "the breaker never let a probe through"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    let m = s.metrics().await;
    assert!(m.breaker("closed"), "closed after 2 good probes");
}

#[tokio::test]
async fn a_slow_downstream_gets_504() {
    let s = Service::start(&[
        "--attempt-timeout",
        "100ms",
        "--request-timeout",
        "400ms",
        "--max-attempts",
        "2",
        "--retry-base",
        "1ms",
    ])
    .await;
    s.set("latency=10s").await;
    let start = tokio::time::Instant::now();
    let r = s.api(None).await;
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "answered before the downstream"
    );
    assert!(r.headers().get("retry-after").is_none());
    let m = s.metrics().await;
    assert_eq!(
        m.rejected("attempt_timeout") + m.rejected("overall_timeout"),
        1.0
    );
    assert_eq!(m.responses(504), 1.0);
}

#[tokio::test]
async fn metrics_parse_and_count_what_was_sent() {
    let s = Service::start(&[
        "--ip-quota",
        "4/1h",
        "--api-key",
        "bob=bob-key:100/1h",
        "--latency",
        "0ms",
        "--retry-base",
        "1ms",
        "--breaker-failures",
        "100",
    ])
    .await;
    let m = s.metrics().await;
    assert_eq!(m.admitted("rate_limit"), 0.0);
    assert!(m.breaker("closed"));
    let mut sent = HashMap::<u16, u32>::new();
    for _ in 0..6 {
        *sent.entry(s.api(None).await.status().as_u16()).or_default() += 1;
    }
    assert_eq!(sent, HashMap::from([(200, 4), (429, 2)]));
    s.set("failure_rate=100").await;
    assert_eq!(
        s.api(Some("bob-key")).await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        s.api(Some("bad key")).await.status(),
        StatusCode::BAD_REQUEST
    );

    let m = s.metrics().await;
    assert_eq!(m.responses(200), 4.0);
    assert_eq!(m.responses(429), 2.0);
    assert_eq!(m.responses(502), 1.0);
    assert_eq!(m.responses(400), 1.0);
    assert_eq!(m.admitted("rate_limit"), 5.0);
    assert_eq!(m.rejected("rate_limit"), 2.0);
    assert_eq!(m.admitted("bulkhead"), 5.0);
    assert_eq!(m.rejected("bulkhead"), 0.0);
    // 4 good calls of one attempt, and bob's 3 failed attempts.
    assert_eq!(m.admitted("circuit_breaker"), 7.0);
    assert_eq!(m.get("stanchion_retries_total"), 2.0);
    assert_eq!(m.rejected("retry"), 1.0);
    assert_eq!(m.get("stanchion_downstream_failure_rate_percent"), 100.0);
    assert_eq!(m.get("stanchion_bulkhead_in_use"), 0.0);
    assert!(m.breaker("closed"));
    // 10 retries in the budget, 2 spent, none earned back (no success since).
    assert_eq!(m.get("stanchion_retry_budget_milli_tokens"), 8000.0);
}

#[tokio::test]
async fn the_admin_route_refuses_a_missing_or_wrong_token_and_unknown_settings() {
    let s = Service::start(&["--latency", "0ms"]).await;
    for token in [
        None,
        Some("wrong"),
        Some("test-admin-token-and-more"),
        Some(""),
    ] {
        let r = s.admin("failure_rate=100", token).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
        assert_eq!(header(&r, "www-authenticate"), "Bearer");
    }
    let r = s
        .http
        .get(format!("{}/admin/downstream", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    for (query, message) in [
        (
            "colour=red",
            "unknown setting `colour`; known settings: failure_rate",
        ),
        ("failure_rate=0&colour=red", "unknown setting `colour`"),
        (
            "failure_rate=150",
            "failure_rate `150`: a whole percentage from 0 to 100",
        ),
        ("failure_rate=-1", "failure_rate `-1`"),
        ("latency=fast", "latency: `fast` is not a duration"),
        ("latency=5", "latency: `5` has no known unit"),
        ("", "nothing to change"),
    ] {
        let r = s.admin(query, Some(TOKEN)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let body = r.text().await.unwrap();
        assert!(body.starts_with(message), "{query}: {body}");
    }
    // Nothing changed, and the downstream still answers.
    let r = s
        .http
        .get(format!("{}/admin/downstream", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "failure_rate=0 latency=0s\n");
    assert_eq!(s.api(None).await.status(), StatusCode::OK);
    s.set("failure_rate=100&latency=5ms").await;
    assert_eq!(s.api(None).await.status(), StatusCode::BAD_GATEWAY);

    // Other bad input: a 4xx that says why.
    let r = s.api(Some(&"k".repeat(129))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().starts_with("malformed X-Api-Key"));
    let r = s.get("/no/such/route", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("no route GET /no/such/route")
    );
    let r = s.get("/health", None).await;
    assert_eq!(
        (r.status(), r.text().await.unwrap().as_str()),
        (StatusCode::OK, "ok\n")
    );
}

#[tokio::test]
async fn ten_thousand_invented_keys_get_no_more_than_the_ip_quota() {
    // 20 an hour: nothing refills while the test runs.
    let s = Service::start(&["--ip-quota", "20/1h", "--latency", "0ms"]).await;
    let mut granted = 0;
    for i in 0..10_000 {
        let r = s.api(Some(&format!("invented-{i}"))).await;
        match r.status() {
            StatusCode::OK => granted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("request {i}: {other}"),
        }
        assert_eq!(header(&r, "ratelimit-policy"), "\"ip\";q=20;w=3600");
    }
    assert_eq!(granted, 20);
    assert_eq!(s.api(None).await.status(), StatusCode::TOO_MANY_REQUESTS);
    let m = s.metrics().await;
    assert_eq!(m.admitted("rate_limit"), 20.0);
    assert_eq!(m.rejected("rate_limit"), 9_981.0);
}

#[tokio::test]
async fn a_full_bulkhead_gets_503() {
    let s = Service::start(&[
        "--max-concurrent",
        "1",
        "--attempt-timeout",
        "30s",
        "--request-timeout",
        "30s",
        "--latency",
        "1s",
    ])
    .await;
    let first = {
        let (http, url) = (s.http.clone(), format!("{}/api/data", s.base));
        tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
    };
    s.wait_for("the first call in flight", |m| {
        m.get("stanchion_bulkhead_in_use") == 1.0
    })
    .await;
    let r = s.api(None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get("retry-after").is_none());
    let body = r.text().await.unwrap();
    assert!(body.starts_with("bulkhead full: 1 of 1"), "{body}");
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    let m = s.metrics().await;
    assert_eq!(m.rejected("bulkhead"), 1.0);
    assert_eq!(m.admitted("bulkhead"), 1.0);
}

#[tokio::test]
async fn it_refuses_to_start_without_an_admin_token_or_with_bad_flags() {
    let out = command().output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("an admin token is required"), "{err}");

    for (args, message) in [
        (&["--api-key", "alice"][..], "an API key needs a name"),
        (&["--ip-quota", "10"], "is not a quota"),
        (&["--open-wait", "soon"], "is not a duration"),
        (&["--max-clients", "0"], "--max-clients 0"),
    ] {
        let out = command()
            .args(["--admin-token", TOKEN, "--port", "0"])
            .args(args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn bypass_layers_serves_the_downstream_with_no_pattern_in_front() {
    // Every pattern set to refuse at once if it were on: a quota of 1, one slot, a
    // breaker that opens on the first failure, timeouts far below the latency.
    let s = Service::start(&[
        "--bypass-layers",
        "--ip-quota",
        "1/1h",
        "--max-concurrent",
        "1",
        "--breaker-failures",
        "1",
        "--max-attempts",
        "3",
        "--attempt-timeout",
        "50ms",
        "--request-timeout",
        "100ms",
        "--latency",
        "300ms",
    ])
    .await;
    // Two at once, each slower than both timeouts: no bulkhead, no timeout.
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (http, url) = (s.http.clone(), format!("{}/api/data", s.base));
            tokio::spawn(async move { http.get(url).send().await.unwrap() })
        })
        .collect();
    for call in calls {
        let r = call.await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers().get("ratelimit").is_none(),
            "no rate limit fields"
        );
        let body = r.text().await.unwrap();
        assert!(body.starts_with("downstream answer #"), "{body}");
    }
    s.set("latency=0ms").await;
    // Past the quota of 1: still answered.
    for _ in 0..3 {
        assert_eq!(s.api(None).await.status(), StatusCode::OK);
    }
    // Failures: one attempt each, no retry, and no breaker to open (no 503).
    s.set("failure_rate=100").await;
    for _ in 0..3 {
        let r = s.api(None).await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            r.text().await.unwrap(),
            "the downstream failed on every attempt: gave up after 1 attempt(s) (layers bypassed)\n"
        );
    }
    let m = s.metrics().await;
    assert_eq!((m.responses(200), m.responses(502)), (5.0, 3.0));
    for layer in ["rate_limit", "bulkhead", "circuit_breaker"] {
        assert_eq!(m.admitted(layer), 0.0, "{layer}");
    }
    for layer in ["rate_limit", "bulkhead", "circuit_breaker", "retry"] {
        assert_eq!(m.rejected(layer), 0.0, "{layer}");
    }
    assert_eq!(m.get("stanchion_retries_total"), 0.0);
    assert!(m.breaker("closed"));
}

#[tokio::test]
async fn bypass_layers_is_also_set_by_its_environment_variable() {
    let s = Service::start_with_env(
        &["--ip-quota", "1/1h", "--latency", "0ms"],
        &[("STANCHION_BYPASS_LAYERS", "yes")],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(s.api(None).await.status(), StatusCode::OK);
    }
    // Off by the variable: the quota of 1 applies.
    let s = Service::start_with_env(
        &["--ip-quota", "1/1h", "--latency", "0ms"],
        &[("STANCHION_BYPASS_LAYERS", "false")],
    )
    .await;
    assert_eq!(s.api(None).await.status(), StatusCode::OK);
    assert_eq!(s.api(None).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // A value that is not a yes or a no is refused at start-up.
    let out = command()
        .env("STANCHION_BYPASS_LAYERS", "maybe")
        .args(["--admin-token", TOKEN, "--port", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maybe"), "{err}");
}
