//! The service with `--redis-url`: two instances against one real `redis-server` share
//! every per-client quota, as a fleet behind a load balancer would; when Redis dies, each
//! answers from the chosen fallback, says so, and shares again when Redis is back. Needs
//! feature `redis` and Debian's package `redis-server` (`cargo xtask test` installs it).

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const SERVICE: &str = env!("CARGO_BIN_EXE_service");
const PATIENCE: Duration = Duration::from_secs(20);

/// A `redis-server` on a free loopback port, with no persistence, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

/// A loopback port nobody listens on (it was free a moment ago).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Redis {
    async fn start() -> Redis {
        Redis::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> Redis {
        let dir =
            std::env::temp_dir().join(format!("stanchion-service-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (Debian's package redis-server)");
        let start = tokio::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(start.elapsed() < PATIENCE, "redis-server never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Redis { child, port }
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    async fn kill(mut self) -> u16 {
        self.child.kill().await.expect("redis-server killed");
        self.port
    }
}

/// A service instance, killed when dropped.
struct Service {
    _child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
    /// The lines it printed on stderr so far.
    log: Arc<Mutex<Vec<String>>>,
    /// Its second line: where the per-client limits are.
    limits_line: String,
    base: String,
    http: Client,
}

impl Service {
    async fn start(redis_url: &str, args: &[&str]) -> Service {
        let mut child = Command::new(SERVICE)
            .env_clear()
            .args([
                "--port",
                "0",
                "--admin-token",
                "redis-test-admin-token",
                "--latency",
                "0ms",
            ])
            .args(["--redis-url", redis_url, "--ip-quota", "5/1h"])
            .args(["--api-key", "alice=alice-key:2/1h"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the service starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok(Some(line)) = stderr.next_line().await {
                    eprintln!("{line}");
                    log.lock().unwrap().push(line);
                }
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the address in time")
            .unwrap()
            .expect("a first line");
        let base = first
            .strip_prefix("listening on ")
            .expect("the address")
            .to_owned();
        let limits_line = lines.next_line().await.unwrap().unwrap();
        Service {
            _child: child,
            _stdout: lines,
            log,
            limits_line,
            base,
            http: Client::builder()
                .no_proxy()
                .timeout(PATIENCE)
                .build()
                .unwrap(),
        }
    }

    async fn api(&self, api_key: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}/api/data", self.base));
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        request.send().await.expect("the service answers")
    }

    /// The value of `series` in `/metrics` (it must be there).
    async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.parse().unwrap()
    }

    /// Whether a line of its log starts with `prefix` (waiting for it a while: the log
    /// is read by another task).
    async fn logged(&self, prefix: &str) -> bool {
        let start = tokio::time::Instant::now();
        while start.elapsed() < PATIENCE {
            if self
                .log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with(prefix))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// Clients sending one API key's requests to one instance without pause, until told to
/// stop; every answer must be a 200 or a 429.
struct Load {
    tasks: Vec<tokio::task::JoinHandle<u32>>,
    answers: Arc<AtomicU32>,
}

impl Load {
    fn start(s: &Service, api_key: &'static str, clients: usize, stop: &Arc<AtomicBool>) -> Load {
        let answers = Arc::new(AtomicU32::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let (http, url) = (s.http.clone(), format!("{}/api/data", s.base));
                let (answers, stop) = (answers.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut granted = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let r = http.get(&url).header("x-api-key", api_key).send().await;
                        match r.expect("an answer").status() {
                            StatusCode::OK => granted += 1,
                            StatusCode::TOO_MANY_REQUESTS => {}
                            other => panic!("{other}"),
                        }
                        answers.fetch_add(1, Ordering::Relaxed);
                    }
                    granted
                })
            })
            .collect();
        Load { tasks, answers }
    }

    fn answers(&self) -> u32 {
        self.answers.load(Ordering::Relaxed)
    }

    async fn wait_for_answers(&self, n: u32) {
        let start = tokio::time::Instant::now();
        while self.answers() < n {
            assert!(
                start.elapsed() < PATIENCE,
                "only {} answers",
                self.answers()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The requests granted, once every client stopped.
    async fn finish(self) -> u32 {
        let mut granted = 0;
        for task in self.tasks {
            granted += task.await.expect("a client");
        }
        granted
    }
}

#[tokio::test]
async fn two_instances_share_each_client_quota_through_redis() {
    let redis = Redis::start().await;
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let args = ["--instances", "2"];
    let (a, b) = (
        Service::start(&url, &args).await,
        Service::start(&url, &args).await,
    );
    for s in [&a, &b] {
        assert!(
            s.limits_line.starts_with("per-client limits in redis"),
            "{}",
            s.limits_line
        );
    }
    let http = Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let mut granted = 0;
    // Alternating between the instances: one IP quota of 5 between them.
    for i in 0..12 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let r = http.get(format!("{base}/api/data")).send().await.unwrap();
        match r.status() {
            StatusCode::OK => granted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(r.headers()["ratelimit-policy"], "\"ip\";q=5;w=3600");
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(granted, 5);
    // An API key's own quota is shared too.
    let mut granted = 0;
    for i in 0..6 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let r = http
            .get(format!("{base}/api/data"))
            .header("x-api-key", "alice-key")
            .send()
            .await
            .unwrap();
        granted += u32::from(r.status() == StatusCode::OK);
    }
    assert_eq!(granted, 2);
}

#[tokio::test]
async fn redis_killed_under_load_grants_a_spent_key_only_each_instance_share_and_shows_in_metrics()
{
    let redis = Redis::start().await;
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    // Two instances; bob's quota of 10 an hour is each one's 5 while Redis is out.
    let args = [
        "--instances",
        "2",
        "--redis-fallback",
        "share",
        "--api-key",
        "bob=bob-key:10/1h",
    ];
    let (a, b) = (
        Service::start(&url, &args).await,
        Service::start(&url, &args).await,
    );
    assert!(
        a.limits_line.ends_with(
            "while Redis is out of reach, --redis-fallback share: this instance admits 1/2 of each quota on its own"
        ),
        "{}",
        a.limits_line
    );
    // Bob spends his quota through Redis, across both instances.
    let mut granted = 0;
    for i in 0..12 {
        let s = if i % 2 == 0 { &a } else { &b };
        granted += u32::from(s.api(Some("bob-key")).await.status() == StatusCode::OK);
    }
    assert_eq!(granted, 10);
    // Load: four clients per instance send bob's requests without pause; Redis is
    // killed while they run. Before the kill every answer is Redis's 429 (bob is spent).
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<Load> = [&a, &b]
        .into_iter()
        .map(|s| Load::start(s, "bob-key", 4, &stop))
        .collect();
    for load in &loads {
        load.wait_for_answers(20).await;
    }
    let port = redis.kill().await;
    let at_kill: Vec<u32> = loads.iter().map(Load::answers).collect();
    for (load, n) in loads.iter().zip(&at_kill) {
        load.wait_for_answers(n + 40).await;
    }
    stop.store(true, Ordering::Relaxed);

    // Each instance granted the spent key its share, 5, and no more.
    for (s, load) in [&a, &b].into_iter().zip(loads) {
        assert_eq!(load.finish().await, 5);
        assert_eq!(
            s.metric("stanchion_redis_fallback{limiter=\"key-bob\"}")
                .await,
            1.0
        );
        // At least the 40 after the kill (some in flight at the kill may be too).
        assert!(
            s.metric("stanchion_redis_fallback_answers_total{limiter=\"key-bob\"}")
                .await
                >= 40.0
        );
        assert_eq!(
            s.metric("stanchion_redis_fallback_entered_total{limiter=\"key-bob\"}")
                .await,
            1.0
        );
        // The IP limiter was not asked while Redis was out: it does not know yet.
        assert_eq!(
            s.metric("stanchion_redis_fallback{limiter=\"ip\"}").await,
            0.0
        );
        assert!(
            s.logged(
                "service: redis is out of reach: limiter key-bob answers from the fallback (--redis-fallback share: this instance admits 1/2 of each quota on its own)"
            )
            .await
        );
    }

    // Redis is back: the next request after the probe interval finds it, and the
    // fallback ends.
    let _redis = Redis::start_on(port).await;
    let start = tokio::time::Instant::now();
    while a
        .metric("stanchion_redis_fallback{limiter=\"key-bob\"}")
        .await
        == 1.0
    {
        assert!(start.elapsed() < PATIENCE, "the fallback never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = a.api(Some("bob-key")).await;
    }
    assert!(
        a.logged("service: redis answers again: limiter key-bob is shared again")
            .await
    );
    let answers = a
        .metric("stanchion_redis_fallback_answers_total{limiter=\"key-bob\"}")
        .await;
    // Answered by Redis now (a fresh server: a fresh quota), not by the fallback.
    let r = a.api(Some("bob-key")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        a.metric("stanchion_redis_fallback_answers_total{limiter=\"key-bob\"}")
            .await,
        answers
    );
}

#[tokio::test]
async fn with_redis_out_of_reach_from_the_start_deny_answers_503_and_says_so() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let s = Service::start(&url, &["--redis-fallback", "deny"]).await;
    assert_eq!(
        s.limits_line,
        "per-client limits in this process until Redis answers (Redis is out of reach; --redis-fallback deny: every limited request refused with 503): 1 API key(s), everyone else 5/3600s per IP"
    );
    assert!(
        s.logged("service: redis is out of reach: limiter ip answers from the fallback")
            .await
    );
    assert_eq!(
        s.metric("stanchion_redis_fallback{limiter=\"ip\"}").await,
        1.0
    );
    // The start-up probe is not counted as an answer.
    assert_eq!(
        s.metric("stanchion_redis_fallback_answers_total{limiter=\"ip\"}")
            .await,
        0.0
    );
    for _ in 0..3 {
        let r = s.api(None).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get("retry-after").is_some());
        assert!(r.headers().get("ratelimit").is_none(), "no quota is known");
        let body = r.text().await.unwrap();
        assert!(
            body.starts_with("per-client limits unavailable: Redis is out of reach"),
            "{body}"
        );
    }
    assert_eq!(
        s.metric("stanchion_redis_fallback_answers_total{limiter=\"ip\"}")
            .await,
        3.0
    );
}

#[tokio::test]
async fn a_share_fallback_needs_the_number_of_instances_and_quotas_it_can_divide() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    for (args, message) in [
        (
            &[][..],
            "--redis-fallback share (the default) needs --instances N",
        ),
        (
            &["--instances", "10"],
            "--redis-fallback share with --instances 10: API key `alice`'s quota 2/3600s is smaller than 10",
        ),
    ] {
        let out = Command::new(SERVICE)
            .env_clear()
            .args([
                "--port",
                "0",
                "--admin-token",
                "redis-test-admin-token",
                "--redis-url",
                &url,
            ])
            .args(["--api-key", "alice=alice-key:2/1h"])
            .args(args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}
