//! A real `redis-server` (Debian's package `redis-server`) for the Redis limiter's tests:
//! started on a free loopback port, with no persistence, in a directory of its own, and
//! stopped (killed and reaped) when dropped.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[cfg(feature = "redis-cluster")]
pub mod cluster;

/// How long a server may take to answer `PING` after it is started.
const START_BOUND: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Arguments after the harness's own (cluster mode, for a cluster's nodes).
    extra: Vec<String>,
}

impl RedisServer {
    /// A server on a free loopback port.
    pub fn start() -> RedisServer {
        RedisServer::start_with(|_| Vec::new())
    }

    /// A server on a free loopback port, with the arguments `extra` gives for that port
    /// after the harness's own.
    pub fn start_with(extra: impl Fn(u16) -> Vec<String>) -> RedisServer {
        // Another process may take the port between our probe and the server's bind: try
        // a few ports.
        for _ in 0..5 {
            let port = free_port();
            if let Some(server) = RedisServer::try_start_on(port, extra(port)) {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    fn try_start_on(port: u16, extra: Vec<String>) -> Option<RedisServer> {
        static DIRS: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stanchion-redis-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra,
        };
        server.spawn().then_some(server)
    }

    /// Starts the process on `self.port`; whether it answers `PING` within the bound.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is missing: install Debian's package redis-server \
                 (apt-get install redis-server), or run `cargo xtask test` as root"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return false; // exited: the port was taken
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a valid URL")
    }

    /// A plain synchronous connection, for inspecting and poking the server.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("a connection to the test server")
    }

    /// Kills the server (as a crash would) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty (no persistence).
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's directory (its working directory: logs, cluster state).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A URL on which nothing listens (connections are refused at once).
pub fn unreachable_url() -> String {
    format!("redis://127.0.0.1:{}/", free_port())
}

/// A small deterministic generator (xorshift64*), for request sizes and pauses.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
