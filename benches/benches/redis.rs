//! The Redis-backed limiter: one decision's round trip, against the float GCRA Lua script
//! that services commonly hand-write (in the style of `redis-gcra`), and against a bare
//! `PING` (the floor: a round trip that does nothing), in the same run, on the same
//! `redis-server`, each through its own `redis` connection manager, one request at a time
//! on a current-thread tokio runtime.
//!
//! Rows: `{stanchion,float_script}/{grant,deny}` and `ping`. stanchion's row includes
//! everything `admit` does (breaker permit, script, reply parsing, the check against core's
//! GCRA, `remaining`); the peer's includes its script and a typed reply. And
//! `cluster/grant`: the same grant through `RedisRateLimiter::cluster` on a local Redis
//! Cluster (three primaries with one replica each, six `redis-server`s joined by
//! `redis-cli --cluster create`), beside the single server's.
//!
//! Writes the table `redis` of `BENCHMARKS.md` (see `stanchion_benches::report`).
//!
//! Needs Debian's `redis-server` and `redis-tools`; started on free loopback ports and
//! stopped after. Run:
//! `cargo bench -p stanchion-benches --features redis --bench redis -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use redis::aio::ConnectionManager;
use stanchion::rate::Quota;
use stanchion_benches::report::{self, Table};
use stanchion_std::AsyncKeyedRateLimiter;
use stanchion_std::redis::{Fallback, RedisLimiterConfig, RedisRateLimiter};

/// The usual hand-written GCRA: float seconds since 2017 (to stay within a double's
/// precision), one `TIME`, `GET`, `SET ... EX`.
const FLOAT_GCRA: &str = r"
local key, burst, rate, period, cost = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4])
local emission_interval = period / rate
local increment = emission_interval * cost
local burst_offset = emission_interval * burst
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tat = redis.call('GET', key)
if not tat then tat = now else tat = tonumber(tat) end
tat = math.max(tat, now)
local new_tat = tat + increment
local allow_at = new_tat - burst_offset
local diff = now - allow_at
local remaining = diff / emission_interval
if remaining < 0 then
  return {0, 0, tostring(-diff), tostring(tat - now)}
end
local reset_after = new_tat - now
if reset_after > 0 then
  redis.call('SET', key, new_tat, 'EX', math.ceil(reset_after))
end
return {cost, math.floor(remaining), '-1', tostring(reset_after)}
";

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(server_dir(self.1));
    }
}

/// The working directory of the server on `port` (the cluster's `nodes.conf`).
fn server_dir(port: u16) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("stanchion-bench-redis-{port}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn start_server() -> Server {
    start_server_with(&[])
}

fn start_server_with(extra: &[&str]) -> Server {
    let port = free_port();
    let dir = server_dir(port);
    std::fs::create_dir_all(&dir).expect("a directory for redis-server");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .arg("--dir")
        .arg(&dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian's package redis-server)");
    let server = Server(child, port);
    let client = redis::Client::open(url(&server)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .get_connection_with_timeout(Duration::from_millis(200))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_err()
    {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    server
}

fn url(server: &Server) -> String {
    format!("redis://127.0.0.1:{}/", server.1)
}

/// Six cluster-mode servers joined as three primaries with one replica each; every node
/// says `cluster_state:ok`, and every replica has finished its first sync (which would
/// otherwise take the machine from the first rows measured), before this returns.
fn start_cluster() -> Vec<Server> {
    let nodes: Vec<Server> = (0..6)
        .map(|_| {
            let bus = free_port().to_string();
            start_server_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus,
                "--repl-diskless-sync-delay",
                "0",
            ])
        })
        .collect();
    let mut create = Command::new("redis-cli");
    create.args(["--cluster", "create"]);
    for node in &nodes {
        create.arg(format!("127.0.0.1:{}", node.1));
    }
    let status = create
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("redis-cli (Debian's package redis-tools)");
    assert!(status.success(), "redis-cli --cluster create failed");
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in &nodes {
        let client = redis::Client::open(url(node)).unwrap();
        while !client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
            .is_ok_and(|info| info.contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster did not settle");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let replicas_in_sync = || {
        nodes
            .iter()
            .filter(|node| {
                redis::Client::open(url(node))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                    .and_then(|mut c| {
                        redis::cmd("INFO")
                            .arg("replication")
                            .query::<String>(&mut c)
                    })
                    .is_ok_and(|info| {
                        info.contains("role:slave") && info.contains("master_link_status:up")
                    })
            })
            .count()
    };
    while replicas_in_sync() < 3 {
        assert!(Instant::now() < deadline, "the replicas did not sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    nodes
}

fn bench_redis(c: &mut Criterion) {
    let server = start_server();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(url(&server)).unwrap();
    // Grants: 1000 per second with a burst of a million, which no run exhausts (and whose
    // 1 ms period the float script can still represent next to "now": with a 1 ns period
    // its new state rounds to "now" and it skips the write). Denials: a burst of 1 per
    // hour, spent first.
    let plenty = Quota::per_second(1000)
        .unwrap()
        .with_burst(1_000_000)
        .unwrap();
    let scarce = Quota::per_hour(1).unwrap();
    let (limiter, mut manager) = runtime.block_on(async {
        let config = RedisLimiterConfig::new("bench:", plenty, Fallback::Deny)
            .unwrap()
            .with_call_timeout(Duration::from_secs(1));
        let limiter = RedisRateLimiter::new(client.clone(), config).unwrap();
        let manager = ConnectionManager::new(client.clone()).await.unwrap();
        (limiter, manager)
    });
    let scarce_limiter = runtime.block_on(async {
        let config = RedisLimiterConfig::new("bench-scarce:", scarce, Fallback::Deny)
            .unwrap()
            .with_call_timeout(Duration::from_secs(1));
        let limiter = RedisRateLimiter::new(client.clone(), config).unwrap();
        assert!(limiter.admit("k", 1).await.is_ok());
        assert!(limiter.admit("k", 1).await.is_err());
        limiter
    });
    let cluster = start_cluster();
    let cluster_limiter = runtime.block_on(async {
        let nodes: Vec<String> = cluster.iter().map(url).collect();
        let client = redis::cluster::ClusterClient::new(nodes).unwrap();
        let config = RedisLimiterConfig::new("bench:", plenty, Fallback::Deny)
            .unwrap()
            .with_call_timeout(Duration::from_secs(1));
        let limiter = RedisRateLimiter::cluster(&client, config).unwrap();
        // Connected, slots known, the script loaded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while limiter.decide("k", 1).await.is_err() {
            assert!(Instant::now() < deadline, "the cluster did not answer");
        }
        limiter
    });
    let script = redis::Script::new(FLOAT_GCRA);
    const PLENTY: (u32, u32, u32) = (1_000_000, 1000, 1);
    const SCARCE: (u32, u32, u32) = (1, 1, 3600);
    type Reply = (i64, i64, String, String);
    // (burst, rate per period, period in seconds), as the float script takes them.
    let peer = |manager: &mut ConnectionManager, key: &'static str, (burst, rate, period)| {
        let mut invocation = script.key(key);
        invocation
            .arg::<u32>(burst)
            .arg::<u32>(rate)
            .arg::<u32>(period)
            .arg(1);
        let mut manager = manager.clone();
        async move {
            invocation
                .invoke_async::<Reply>(&mut manager)
                .await
                .unwrap()
        }
    };
    runtime.block_on(async {
        assert_eq!(peer(&mut manager, "peer-scarce", SCARCE).await.0, 1);
        assert_eq!(peer(&mut manager, "peer-scarce", SCARCE).await.0, 0);
        assert_eq!(peer(&mut manager, "peer", PLENTY).await.0, 1);
        assert!(limiter.admit("k", 1).await.is_ok());
    });

    let mut group = c.benchmark_group("redis");
    group.bench_function("ping", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let pong: String = redis::cmd("PING").query_async(&mut manager).await.unwrap();
                black_box(pong)
            })
        })
    });
    group.bench_function("stanchion/grant", |b| {
        b.iter(|| runtime.block_on(async { black_box(limiter.admit("k", 1).await.is_ok()) }))
    });
    group.bench_function("cluster/grant", |b| {
        b.iter(|| {
            runtime.block_on(async { black_box(cluster_limiter.admit("k", 1).await.is_ok()) })
        })
    });
    group.bench_function("float_script/grant", |b| {
        b.iter(|| runtime.block_on(async { black_box(peer(&mut manager, "peer", PLENTY).await) }))
    });
    group.bench_function("stanchion/deny", |b| {
        b.iter(|| {
            runtime.block_on(async { black_box(scarce_limiter.admit("k", 1).await.is_err()) })
        })
    });
    group.bench_function("float_script/deny", |b| {
        b.iter(|| {
            runtime.block_on(async { black_box(peer(&mut manager, "peer-scarce", SCARCE).await) })
        })
    });
    group.finish();

    // The server's own time per script call (from `INFO commandstats`, which counts
    // EVALSHA's execution only): the part of the cost that does not depend on the
    // network or the client's scheduling, which dominate the rows above on a loaded
    // machine.
    let mut admin = client.get_connection().unwrap();
    let mut server_usec = |name: &str, run: &mut dyn FnMut()| {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut admin)
            .unwrap();
        run();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut admin)
            .unwrap();
        let line = info
            .lines()
            .find(|l| l.starts_with("cmdstat_evalsha:"))
            .unwrap_or_default()
            .to_string();
        println!("server time per call, {name}: {line}");
        let usec = line
            .split(',')
            .find_map(|kv| kv.strip_prefix("usec_per_call="))
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(usec) = usec {
            SERVER_USEC.lock().unwrap().push((name.to_string(), usec));
        }
    };
    const CALLS: u32 = 20_000;
    server_usec("stanchion/grant", &mut || {
        runtime.block_on(async {
            for _ in 0..CALLS {
                black_box(limiter.admit("k", 1).await.is_ok());
            }
        })
    });
    server_usec("float_script/grant", &mut || {
        runtime.block_on(async {
            for _ in 0..CALLS {
                black_box(peer(&mut manager, "peer", PLENTY).await);
            }
        })
    });
    server_usec("stanchion/deny", &mut || {
        runtime.block_on(async {
            for _ in 0..CALLS {
                black_box(scarce_limiter.admit("k", 1).await.is_err());
            }
        })
    });
    server_usec("float_script/deny", &mut || {
        runtime.block_on(async {
            for _ in 0..CALLS {
                black_box(peer(&mut manager, "peer-scarce", SCARCE).await);
            }
        })
    });
    assert_eq!(limiter.fallback_answers(), 0, "Redis answered every call");
    assert_eq!(scarce_limiter.fallback_answers(), 0);
    assert_eq!(cluster_limiter.fallback_answers(), 0);
    drop(cluster);
}

/// Redis's own time per script call (`INFO commandstats`), by row name.
static SERVER_USEC: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

criterion_group!(benches, bench_redis);

fn main() {
    report::main(&[benches], |e| {
        let mut t = Table::new(
            "redis",
            &[
                "operation",
                "stanchion `RedisRateLimiter::admit`",
                "float Lua script",
                "ratio (stanchion / peer)",
            ],
        );
        for kind in ["grant", "deny"] {
            let (ours, theirs) = (
                format!("redis/stanchion/{kind}"),
                format!("redis/float_script/{kind}"),
            );
            t.row(vec![
                format!("round trip, {kind}"),
                e.time(&ours),
                e.time(&theirs),
                e.ratio(&ours, &theirs),
            ]);
        }
        t.row(vec![
            "round trip, grant, on a Redis Cluster (3 primaries, 1 replica each; `RedisRateLimiter::cluster`)".into(),
            e.time("redis/cluster/grant"),
            "—".into(),
            "—".into(),
        ]);
        t.row(vec![
            "`PING` (the floor: a round trip doing nothing)".into(),
            e.time("redis/ping"),
            "—".into(),
            "—".into(),
        ]);
        let server = SERVER_USEC.lock().unwrap().clone();
        let usec = |name: &str| server.iter().find(|(n, _)| n == name).map(|(_, u)| *u);
        for kind in ["grant", "deny"] {
            let (ours, theirs) = (
                usec(&format!("stanchion/{kind}")),
                usec(&format!("float_script/{kind}")),
            );
            let show = |u: Option<f64>| u.map_or("—".into(), |u| format!("{u:.2} µs"));
            let ratio = match (ours, theirs) {
                (Some(a), Some(b)) => report::format_ratio(a / b),
                _ => "—".into(),
            };
            t.row(vec![
                format!("server time per call, {kind} (`INFO commandstats`, 20,000 calls)"),
                show(ours),
                show(theirs),
                ratio,
            ]);
        }
        t.write(e);
        report::headline(
            e,
            "redis",
            &[(
                "distributed rate limit (Redis), one granted decision's round trip",
                "hand-written float GCRA script",
                "redis/stanchion/grant",
                "redis/float_script/grant",
            )],
        );
    });
}
