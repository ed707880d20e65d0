//! The service with `--redis-url`: two instances against one real `redis-server` share
//! every per-client quota, as a fleet behind a load balancer would. Needs feature
//! `redis` and Debian's package `redis-server` (`cargo xtask test` installs it).

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const SERVICE: &str = env!("CARGO_BIN_EXE_service");
const PATIENCE: Duration = Duration::from_secs(20);

/// A `redis-server` on a free loopback port, with no persistence, killed when dropped.
struct Redis {
    _child: Child,
    _dir: std::path::PathBuf,
    port: u16,
}

impl Redis {
    async fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
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
        Redis {
            _child: child,
            _dir: dir,
            port,
        }
    }
}

/// A service instance, killed when dropped.
struct Service {
    _child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
    base: String,
}

impl Service {
    async fn start(redis_url: &str) -> Service {
        let mut child = Command::new(SERVICE)
            .env_clear()
            .args(["--port", "0", "--admin-token", "t", "--latency", "0ms"])
            .args(["--redis-url", redis_url, "--ip-quota", "5/1h"])
            .args(["--api-key", "alice=alice-key:2/1h"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the service starts");
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
        let second = lines.next_line().await.unwrap().unwrap();
        assert!(second.starts_with("per-client limits in redis"), "{second}");
        Service {
            _child: child,
            _stdout: lines,
            base,
        }
    }
}

#[tokio::test]
async fn two_instances_share_each_client_quota_through_redis() {
    let redis = Redis::start().await;
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let (a, b) = (Service::start(&url).await, Service::start(&url).await);
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
