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

use std::net::SocketAddr;

use reqwest::{Client, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdout, Command};

const SERVICE: &str = env!("CARGO_BIN_EXE_service");
const TOKEN: &str = "test-admin-token";
/// How long a test waits for a state before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running service, killed when dropped.
struct Service {
    child: Child,
    /// Holding stdout open: the service prints after its first line.
    _stdout: Lines<BufReader<ChildStdout>>,
    base: String,
    port: u16,
    http: Client,
}

/// The binary with no `STANCHION_*` variable from the environment of the test run.
fn command() -> Command {
    without_service_variables(Command::new(SERVICE))
}

fn without_service_variables(mut cmd: Command) -> Command {
    for (name, _) in std::env::vars() {
        if name.starts_with("STANCHION_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The arguments every test starts the service with (before its own).
const COMMON: [&str; 10] = [
    "--port",
    "0",
    "--admin-token",
    TOKEN,
    "--seed",
    "7",
    // Timeouts far above any scheduling delay, unless a test sets its own.
    "--attempt-timeout",
    "10s",
    "--request-timeout",
    "20s",
];

impl Service {
    /// Starts the service on port 0 with the admin token and `args`, and reads the
    /// address from its first line.
    async fn start(args: &[&str]) -> Service {
        Service::start_with_env(args, &[]).await
    }

    /// [`Service::start`] with the environment variables `env` set as well.
    async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut cmd = command();
        cmd.envs(env.iter().copied()).args(COMMON).args(args);
        Service::launch(cmd).await
    }

    /// [`Service::start`] with the open-file limit lowered to `files` (through the
    /// shell's `ulimit -n`).
    async fn start_with_open_file_limit(files: u32, args: &[&str]) -> Service {
        let mut cmd = without_service_variables(Command::new("sh"));
        cmd.arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(SERVICE)
            .args(COMMON)
            .args(args);
        Service::launch(cmd).await
    }

    async fn launch(mut cmd: Command) -> Service {
        let mut child = cmd
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
        let port = base
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("{base}"))
            .parse()
            .expect("a port");
        let http = Client::builder()
            .no_proxy()
            .timeout(PATIENCE)
            .build()
            .expect("a client");
        Service {
            child,
            _stdout: lines,
            base,
            port,
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
            content_type.starts_with("text/plain; version=0.0.4"),
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

/// A raw TCP connection to the service on `port` from the loopback address `from` (any
/// address of 127.0.0.0/8 is a client IP of its own).
async fn connect_from(port: u16, from: [u8; 4]) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// Reads until the peer closes (or resets) the connection; fails the test if that takes
/// longer than [`PATIENCE`], so that a regression fails rather than hangs.
async fn until_closed(reader: &mut (impl AsyncReadExt + Unpin)) {
    let mut buf = [0u8; 4096];
    let closed = async {
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            let _ = n;
        }
    };
    tokio::time::timeout(PATIENCE, closed)
        .await
        .expect("the service closes the connection");
}

/// Sends `bytes` one at a time, `every` apart, then nothing; stops at the first error.
async fn trickle(writer: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8], every: Duration) {
    for byte in bytes {
        if writer.write_all(std::slice::from_ref(byte)).await.is_err() {
            break;
        }
        tokio::time::sleep(every).await;
    }
    std::future::pending::<()>().await;
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", response.headers()))
        .to_str()
        .unwrap()
}

/// A parsed exposition: every sample, by its name and labels as written; and the
/// families, by the names of their `# TYPE` lines.
struct Metrics(HashMap<String, f64>, Vec<String>);

impl Metrics {
    /// Parses the Prometheus text format (0.0.4) strictly: `# HELP` and `# TYPE` comments,
    /// `name{labels} value` lines, each under its family's `# TYPE`, blank lines between
    /// families.
    fn parse(text: &str) -> Metrics {
        let mut samples = HashMap::new();
        let mut families = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.split(' ');
                let kind = words.next().unwrap();
                assert!(["HELP", "TYPE"].contains(&kind), "{line}");
                if kind == "TYPE" {
                    families.push(words.next().expect("a name").to_owned());
                }
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "metric name in {line}"
            );
            assert_eq!(
                families.last().map(String::as_str),
                Some(name),
                "# TYPE of {line}"
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
        Metrics(samples, families)
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

/// The metric names of the table in the docs of `examples/src/service/metrics.rs`, and
/// whether each is shown only with `--redis-url`.
fn documented_metrics() -> Vec<(&'static str, bool)> {
    include_str!("../src/service/metrics.rs")
        .lines()
        .filter_map(|l| {
            let row = l.strip_prefix("//! | `")?;
            let name = row.split('`').next()?;
            Some((name, row.contains("| with `--redis-url`")))
        })
        .collect()
}

#[tokio::test]
async fn a_scrape_lists_every_documented_metric() {
    let documented = documented_metrics();
    assert_eq!(documented.len(), 17, "{documented:?}");
    let s = Service::start(&[]).await;
    // A response counted: its family shows from then on.
    assert_eq!(s.api(None).await.status(), StatusCode::OK);
    let m = s.metrics().await;
    let mut families: Vec<&str> = m.1.iter().map(String::as_str).collect();
    families.sort_unstable();
    // Every documented family but Redis's (no `--redis-url`), and nothing else.
    let mut expected: Vec<&str> = documented
        .iter()
        .filter(|(_, redis)| !redis)
        .map(|(name, _)| *name)
        .collect();
    expected.sort_unstable();
    assert_eq!(expected.len(), 14);
    assert_eq!(families, expected);
    // Each with a sample.
    for name in expected {
        assert!(
            m.0.keys().any(|series| series
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))),
            "no sample of {name}"
        );
    }
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
        ("faults=maybe", "faults `maybe`: on or off"),
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
    assert_eq!(
        r.text().await.unwrap(),
        "failure_rate=0 latency=0s faults=on\n"
    );
    assert_eq!(s.api(None).await.status(), StatusCode::OK);
    s.set("failure_rate=100&latency=5ms").await;
    assert_eq!(s.api(None).await.status(), StatusCode::BAD_GATEWAY);
    // The fault injection switched off: the downstream answers, and keeps its settings
    // for when it is switched back on.
    let r = s.admin("faults=off", Some(TOKEN)).await;
    assert_eq!(
        r.text().await.unwrap(),
        "failure_rate=100 latency=5ms faults=off\n"
    );
    assert_eq!(s.api(None).await.status(), StatusCode::OK);
    s.set("faults=on").await;
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
async fn ten_thousand_ips_through_a_small_table_with_a_short_quota_are_all_served() {
    // 256 slots (32 sets of 8) and one request per IP per 2 ms: every slot a new IP finds
    // busy is free again (its bucket full) within 2 ms, and is reused without losing
    // anything, so 10,000 distinct IPs, one request each, are all served and none is
    // refused as untracked. (When every slot of a set does hold a refilling bucket, the
    // next IP gets the 503 of `an_ip_the_table_cannot_hold_gets_503_not_a_spent_quota`.)
    let s = Service::start(&[
        "--max-clients",
        "256",
        "--ip-quota",
        "1/2ms",
        "--latency",
        "0ms",
    ])
    .await;
    let mut statuses = HashMap::new();
    for i in 0..10_000u32 {
        // One connection per IP, from 127.2.0.0 on, a bare HTTP/1.1 request each.
        let ip = [127, 2, (i >> 8) as u8, i as u8];
        let mut c = connect_from(s.port, ip).await.unwrap();
        c.write_all(b"GET /api/data HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12]; // "HTTP/1.1 200"
        c.read_exact(&mut head).await.unwrap();
        let status: u16 = std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap();
        *statuses.entry(status).or_insert(0u32) += 1;
        // At most 8 new IPs a millisecond, whatever the machine's speed (requests go one
        // after another, and every 8th sleeps): a 2 ms window holds about 16 of them, so
        // that 9 in one set (1 in 32) is a chance of about 1 in 10^8 per window. (The
        // pace once was bounded only by the machine: a fast or a busy one failed.)
        if i % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(statuses, HashMap::from([(200, 10_000)]));
    let m = s.metrics().await;
    assert_eq!(m.get("stanchion_clients_untracked_total"), 0.0);
    assert_eq!(m.admitted("rate_limit"), 10_000.0);
}

#[tokio::test]
async fn an_ip_the_table_cannot_hold_gets_503_not_a_spent_quota() {
    // 256 slots, and a quota that refills slowly (1 an hour): each new IP's bucket stays
    // busy, so sets fill up, and the first IP whose set is full is refused.
    let s = Service::start(&["--max-clients", "256", "--ip-quota", "1/3600s"]).await;
    let from = |ip: [u8; 4]| {
        Client::builder()
            .no_proxy()
            .local_address(std::net::IpAddr::from(ip))
            .timeout(PATIENCE)
            .build()
            .unwrap()
    };
    let url = format!("{}/api/data", s.base);
    let mut untracked = None;
    for i in 0..2_000u32 {
        let ip = [127, 1, (i >> 8) as u8, i as u8];
        let r = from(ip).get(&url).send().await.unwrap();
        if r.status() != StatusCode::OK {
            untracked = Some((i, ip, r));
            break;
        }
    }
    let (i, ip, r) = untracked.expect("a set of the table filled up");
    assert!(i >= 8, "refused at the {i}th IP");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get("ratelimit").is_none(), "{r:?}");
    assert!(r.headers().get("ratelimit-policy").is_none(), "{r:?}");
    assert!(header(&r, "retry-after").parse::<u64>().unwrap() > 0);
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("too many clients: the table of client IPs is full"),
    );
    // An IP the table holds, past its quota, still gets the 429 of a spent quota.
    let spent = from([127, 1, 0, 0]).get(&url).send().await.unwrap();
    assert_eq!(spent.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&spent, "ratelimit-policy"), "\"ip\";q=1;w=3600");
    let m = s.metrics().await;
    assert_eq!(m.get("stanchion_clients_untracked_total"), 1.0);
    assert_eq!(m.rejected("rate_limit"), 2.0);
    let _ = ip;
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
        (&["--max-header-bytes", "100"], "--max-header-bytes"),
        (&["--header-read-timeout", "0s"], "must be above zero"),
        (
            &["--api-key", "a=one:1/1s", "--api-key", "a=two:1/1s"],
            "API key name `a` is given twice",
        ),
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

#[tokio::test]
async fn connections_beyond_the_caps_do_not_starve_another_client() {
    // 600 connections against an open-file limit of 128: with no caps, the service could
    // hold no more than about 120 of them, and another client's /health would wait in
    // the listen queue until they hung up.
    let s = Service::start_with_open_file_limit(
        128,
        &[
            "--max-connections",
            "64",
            "--max-connections-per-ip",
            "8",
            "--header-read-timeout",
            "60s",
            "--idle-timeout",
            "60s",
        ],
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            connect_from(s.port, [127, 0, 0, 2])
                .await
                .expect("connects"),
        );
    }
    let port = s.port;
    let trickling: Vec<_> = (0..300)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = connect_from(port, [127, 0, 0, 3]).await.expect("connects");
                let head = [&b"GET /health HTTP/1.1\r\nx-slow: "[..], &[b'a'; 100]].concat();
                trickle(&mut c, &head, Duration::from_secs(1)).await;
            })
        })
        .collect();
    // 8 of each client's 300 held, the rest closed at once.
    s.wait_for("the connections past the per-IP cap closed", |m| {
        m.get("stanchion_connections_refused_total{cap=\"per_ip\"}") == 584.0
    })
    .await;
    let fresh = Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..10 {
        let start = tokio::time::Instant::now();
        let r = fresh
            .get(format!("{}/health", s.base))
            .send()
            .await
            .expect("/health answers within 1 s");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "ok\n");
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    let m = s.metrics().await;
    assert_eq!(
        m.get("stanchion_connections_refused_total{cap=\"per_ip\"}"),
        584.0
    );
    assert_eq!(
        m.get("stanchion_connections_refused_total{cap=\"total\"}"),
        0.0
    );
    assert_eq!(m.get("stanchion_accept_errors_total"), 0.0);
    assert!(m.get("stanchion_connections_open") >= 16.0);
    for t in trickling {
        t.abort();
    }
}

#[tokio::test]
async fn the_header_read_timeout_cuts_silent_and_trickling_clients_and_the_idle_timeout_idle_ones()
{
    let s = Service::start(&["--header-read-timeout", "1s", "--idle-timeout", "2s"]).await;
    let silent = async {
        let mut c = connect_from(s.port, [127, 0, 0, 1]).await.unwrap();
        let start = tokio::time::Instant::now();
        until_closed(&mut c).await;
        start.elapsed()
    };
    let trickling = async {
        let c = connect_from(s.port, [127, 0, 0, 1]).await.unwrap();
        let (mut r, mut w) = c.into_split();
        let start = tokio::time::Instant::now();
        let head = [&b"GET /health HTTP/1.1\r\nx-slow: "[..], &[b'a'; 100]].concat();
        tokio::select! {
            () = until_closed(&mut r) => {}
            () = trickle(&mut w, &head, Duration::from_millis(100)) => {}
        }
        start.elapsed()
    };
    let idle = async {
        let mut c = connect_from(s.port, [127, 0, 0, 1]).await.unwrap();
        c.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\nok\n") {
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the answer");
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
        let start = tokio::time::Instant::now();
        until_closed(&mut c).await;
        start.elapsed()
    };
    let (silent, trickling, idle) = tokio::join!(silent, trickling, idle);
    let ms = Duration::from_millis;
    assert!((ms(900)..ms(3000)).contains(&silent), "silent {silent:?}");
    assert!(
        (ms(900)..ms(3000)).contains(&trickling),
        "trickling {trickling:?}"
    );
    assert!((ms(1900)..ms(4000)).contains(&idle), "idle {idle:?}");
    let m = s.metrics().await;
    assert_eq!(
        m.get("stanchion_connections_timed_out_total{timeout=\"header_read\"}"),
        2.0
    );
    assert_eq!(
        m.get("stanchion_connections_timed_out_total{timeout=\"idle\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_connection_past_the_total_cap_is_closed_at_once() {
    let s = Service::start(&[
        "--max-connections",
        "4",
        "--max-connections-per-ip",
        "4",
        "--header-read-timeout",
        "2s",
    ])
    .await;
    let mut held = Vec::new();
    for ip in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        for _ in 0..2 {
            held.push(connect_from(s.port, ip).await.unwrap());
        }
    }
    // Accepted in order: the fifth finds the four places taken.
    let mut fifth = connect_from(s.port, [127, 0, 0, 4]).await.unwrap();
    let start = tokio::time::Instant::now();
    until_closed(&mut fifth).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // The four silent ones go at the header-read timeout; then /health answers.
    let start = tokio::time::Instant::now();
    loop {
        let r = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap()
            .get(format!("{}/health", s.base))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "/health never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The four are cut at about the same time, each by its own watchdog.
    let m = s
        .wait_for("the four silent connections cut", |m| {
            m.get("stanchion_connections_timed_out_total{timeout=\"header_read\"}") == 4.0
        })
        .await;
    assert!(m.get("stanchion_connections_refused_total{cap=\"total\"}") >= 1.0);
    assert_eq!(
        m.get("stanchion_connections_refused_total{cap=\"per_ip\"}"),
        0.0
    );
    assert_eq!(
        m.get("stanchion_connections_timed_out_total{timeout=\"idle\"}"),
        0.0
    );
}

/// The process's soft open-file limit, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn unfinished_large_heads_keep_memory_bounded() {
    // The default limits. 2,000 connections from 40 client IPs, each sending 400 KB of
    // a header field that never ends.
    let s = Service::start(&[]).await;
    let pid = s.child.id().expect("running");
    // The test holds every connection open: leave room under its own open-file limit.
    let connections = open_file_limit().map_or(2000, |l| l.saturating_sub(100).min(2000));
    assert!(connections >= 500, "open-file limit too low: {connections}");
    let port = s.port;
    let clients: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(async move {
                let from = [127, 0, 1, u8::try_from(i % 40).unwrap() + 1];
                let Ok(mut c) = connect_from(port, from).await else {
                    return None;
                };
                let head = [
                    &b"GET /health HTTP/1.1\r\nhost: x\r\nx-fill: "[..],
                    &vec![b'a'; 400 * 1024],
                ]
                .concat();
                let _ = c.write_all(&head).await;
                Some(c)
            })
        })
        .collect();
    let mut held = Vec::new();
    for c in clients {
        held.push(c.await.unwrap());
    }
    assert!(held.iter().filter(|c| c.is_some()).count() > connections as usize / 2);
    let peak = status_kib(pid, "VmHWM");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    assert_eq!(s.get("/health", None).await.status(), StatusCode::OK);
    // Each head was cut at 16 KiB (431), or its connection refused at once by a cap (how
    // many of each depends on how fast the cuts free places).
    let m = s.metrics().await;
    let refused = m.get("stanchion_connections_refused_total{cap=\"total\"}")
        + m.get("stanchion_connections_refused_total{cap=\"per_ip\"}");
    eprintln!("{connections} connections, {refused} refused by a cap: peak RSS {peak} KiB");
}

impl Service {
    /// Sends `signal` (`TERM`, `INT`) to the service.
    async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits for the process to exit (at most `bound`), and returns how long it took and
    /// its exit code.
    async fn exited_within(&mut self, bound: Duration) -> (Duration, Option<i32>) {
        let start = tokio::time::Instant::now();
        let status = tokio::time::timeout(bound, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running after {bound:?}"))
            .expect("wait");
        (start.elapsed(), status.code())
    }
}

#[tokio::test]
async fn sigterm_lets_every_request_in_flight_finish_then_exits() {
    // Slow enough that all 20 are in flight at once, even on a busy machine.
    let mut s = Service::start(&["--latency", "4s", "--ip-quota", "1000/1s"]).await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (http, url) = (s.http.clone(), format!("{}/api/data", s.base));
            tokio::spawn(async move { http.get(url).send().await })
        })
        .collect();
    s.wait_for("20 calls in flight", |m| {
        m.get("stanchion_bulkhead_in_use") == 20.0
    })
    .await;
    s.signal("TERM").await;
    // It stops accepting at once, while the 20 are still in flight.
    let start = tokio::time::Instant::now();
    while connect_from(s.port, [127, 0, 0, 1]).await.is_ok() {
        assert!(start.elapsed() < PATIENCE, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for call in calls {
        let r = call
            .await
            .unwrap()
            .expect("a response, not a dropped connection");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "connection"), "close");
        assert!(r.text().await.unwrap().starts_with("downstream answer #"));
    }
    let (_, code) = s.exited_within(PATIENCE).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_half_sent_request_cannot_hold_shutdown_past_its_timeout() {
    for signal in ["TERM", "INT"] {
        let mut s = Service::start(&[
            "--shutdown-timeout",
            "1s",
            "--header-read-timeout",
            "60s",
            "--latency",
            "30s",
        ])
        .await;
        // One request whose head never ends, and one whose downstream takes 30 s.
        let mut half = connect_from(s.port, [127, 0, 0, 1]).await.unwrap();
        half.write_all(b"GET /api/data HTTP/1.1\r\nhost: x\r\nx-more: ")
            .await
            .unwrap();
        let slow = {
            let (http, url) = (s.http.clone(), format!("{}/api/data", s.base));
            tokio::spawn(async move { http.get(url).send().await })
        };
        s.wait_for("the slow call in flight", |m| {
            m.get("stanchion_bulkhead_in_use") == 1.0
        })
        .await;
        s.signal(signal).await;
        let (took, code) = s.exited_within(Duration::from_secs(5)).await;
        // It waited for the slow call up to the shutdown timeout, and no longer.
        assert!(
            (Duration::from_millis(900)..Duration::from_secs(3)).contains(&took),
            "SIG{signal}: exit after {took:?}"
        );
        assert_eq!(code, Some(0), "SIG{signal}");
        assert!(slow.await.unwrap().is_err(), "cut at the shutdown timeout");
        until_closed(&mut half).await;
    }
}

#[tokio::test]
async fn the_admin_token_comes_from_a_file_or_the_environment_and_is_long_enough() {
    let start = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = command();
        cmd.envs(env.iter().copied())
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    };
    for (args, env, message) in [
        (
            &["--admin-token", "short"][..],
            &[][..],
            "the admin token must be 16 to 256 visible ASCII characters (it has 5)",
        ),
        (
            &[],
            &[("STANCHION_ADMIN_TOKEN", "has a space in it, see")],
            "visible ASCII",
        ),
        (
            &["--admin-token-file", "/nonexistent/token"],
            &[],
            "--admin-token-file /nonexistent/token",
        ),
        (
            &["--admin-token", TOKEN, "--admin-token-file", "/tmp/x"],
            &[],
            "cannot be used with",
        ),
    ] {
        let out = start(args, env).output().await.unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // From a file, with its trailing newline.
    let path = std::env::temp_dir().join(format!("stanchion-admin-token-{}", std::process::id()));
    std::fs::write(&path, "from-a-file-0123456789\n").unwrap();
    let mut cmd = command();
    cmd.args(["--port", "0", "--admin-token-file"]).arg(&path);
    let s = Service::launch(cmd).await;
    let r = s
        .http
        .get(format!("{}/admin/downstream", s.base))
        .bearer_auth("from-a-file-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_eleventh_bad_token_in_a_minute_from_one_ip_gets_429() {
    let s = Service::start(&[]).await;
    let from = |ip: [u8; 4]| {
        Client::builder()
            .no_proxy()
            .local_address(std::net::IpAddr::from(ip))
            .timeout(PATIENCE)
            .build()
            .unwrap()
    };
    let (guesser, operator) = (from([127, 0, 0, 2]), from([127, 0, 0, 3]));
    let url = format!("{}/admin/downstream", s.base);
    for i in 0..10 {
        let r = guesser
            .get(&url)
            .bearer_auth(format!("guess-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let r = guesser
        .get(&url)
        .bearer_auth("guess-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // One failure's worth comes back every 6 s.
    assert!(
        (5..=6).contains(&header(&r, "retry-after").parse::<u64>().unwrap()),
        "{r:?}"
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("too many failed admin attempts from this address")
    );
    // Even the right token, from that address; another address is not affected, and the
    // scheme may be written in any case.
    let r = guesser.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = operator
            .get(&url)
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn a_second_signal_stops_the_wait_for_a_drain() {
    let mut s =
        Service::start(&["--shutdown-timeout", "60s", "--header-read-timeout", "60s"]).await;
    let mut half = connect_from(s.port, [127, 0, 0, 1]).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-more: ")
        .await
        .unwrap();
    s.signal("TERM").await;
    // The first signal is in once the listener is closed; the half-sent head could hold
    // the drain for 60 s.
    let start = tokio::time::Instant::now();
    while connect_from(s.port, [127, 0, 0, 1]).await.is_ok() {
        assert!(start.elapsed() < PATIENCE, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.signal("INT").await;
    let (took, code) = s.exited_within(Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "exit after {took:?}");
    assert_eq!(code, Some(0));
    until_closed(&mut half).await;
}

impl Service {
    /// The next line the service prints that starts with `prefix` (the lines before it
    /// skipped).
    async fn line_starting(&mut self, prefix: &str) -> String {
        loop {
            let line = tokio::time::timeout(PATIENCE, self._stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("a line starting with {prefix:?} in time"))
                .expect("stdout reads")
                .unwrap_or_else(|| panic!("a line starting with {prefix:?} before the end"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    async fn reload(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(format!("{}/admin/reload", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.send().await.expect("the service answers")
    }
}

#[tokio::test]
async fn policies_come_from_a_config_file_under_the_flags_and_reload_on_sighup_or_the_admin_route()
{
    let dir = std::env::temp_dir().join(format!("stanchion-policies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policies.toml");
    let file = path.to_str().unwrap().to_owned();
    let policies = |attempts: u32, open: &str| {
        format!(
            "[retry.downstream]\nmax_attempts = {attempts}\nbackoff = \"immediate\"\n\n\
             [breaker.downstream]\nwindow = {{ consecutive = {{ length = 20 }} }}\nopen_duration = \"{open}\"\n\n\
             [bulkhead.downstream]\nmax_concurrent = 6\n"
        )
    };
    std::fs::write(&path, policies(2, "7s")).unwrap();
    // The file's retry and breaker; the flag given wins for the bulkhead; the fields the
    // file leaves out (the half-open probes) take the flags' defaults.
    let mut s = Service::start(&[
        "--config",
        &file,
        "--max-concurrent",
        "5",
        "--failure-rate",
        "100",
        "--ip-quota",
        "1000/1s",
        // A budget that every failed call draws from: large enough never to stop a retry.
        "--retry-budget",
        "1000",
    ])
    .await;
    let downstream = s.line_starting("downstream:").await;
    assert!(
        downstream.ends_with("2 attempts, breaker opens after 20 failures for 7s, bulkhead 5"),
        "{downstream}"
    );
    let line = s.line_starting("policies from").await;
    assert_eq!(
        line,
        format!(
            "policies from {file} (the flags given win over it; SIGHUP or POST /admin/reload \
             reads it again): breaker.downstream, retry.downstream, bulkhead.downstream, \
             retry_budget.downstream"
        )
    );
    // Every call fails: 2 attempts each, so 1 retry per request.
    assert_eq!(s.api(None).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(s.metrics().await.get("stanchion_retries_total"), 1.0);

    // The admin route: the token is needed; a retry change is applied to the next
    // requests.
    assert_eq!(s.reload(None).await.status(), StatusCode::UNAUTHORIZED);
    std::fs::write(&path, policies(4, "7s")).unwrap();
    let r = s.reload(Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.text().await.unwrap(),
        format!("reloaded {file}: changed retry.downstream; added nothing\n")
    );
    assert_eq!(s.api(None).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(s.metrics().await.get("stanchion_retries_total"), 4.0);

    // A change to a breaker's open duration is refused, with the place, and nothing is
    // applied.
    std::fs::write(&path, policies(3, "8s")).unwrap();
    let r = s.reload(Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        r.text().await.unwrap(),
        format!(
            "reload refused: {file}:7:17: breaker `downstream`, field `open_duration`: cannot \
             change this field of a live circuit breaker: core's CircuitBreaker changes only \
             failure_rate_threshold, slow_call_rate_threshold, minimum_calls, \
             max_wait_in_half_open and after_max_wait in place, and rebuilding it would lose \
             its window and state (restart to apply it)\n"
        )
    );
    assert_eq!(s.api(None).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(s.metrics().await.get("stanchion_retries_total"), 7.0);

    // SIGHUP: the same, its outcome on stdout.
    std::fs::write(&path, policies(1, "7s")).unwrap();
    s.signal("HUP").await;
    assert_eq!(
        s.line_starting("reload").await,
        format!("reloaded {file}: changed retry.downstream; added nothing")
    );
    assert_eq!(s.api(None).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(s.metrics().await.get("stanchion_retries_total"), 7.0);
    std::fs::write(&path, "[retry.downstream]\nmax_attempts = 0\n").unwrap();
    s.signal("HUP").await;
    assert_eq!(
        s.line_starting("reload").await,
        format!(
            "reload refused: {file}:2:16: retry `downstream`, field `max_attempts`: invalid \
             configuration: `max_attempts` must be at least 1"
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
