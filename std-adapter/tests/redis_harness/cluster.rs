//! A real Redis Cluster on loopback for the cluster tests: six `redis-server` processes in
//! cluster mode (three primaries, one replica each), joined by `redis-cli --cluster
//! create` (Debian's package `redis-tools`, which `redis-server` depends on), and stopped
//! (each node killed and reaped, its directory removed) when dropped.
//!
//! A short `cluster-node-timeout` (1000 ms) makes a killed primary's failover take a few
//! seconds rather than the default's half minute.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{RedisServer, free_port};

/// The cluster's node timeout: a primary silent this long is suspected failed.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long the cluster may take to agree on its slots after it is created, and a replica
/// to be promoted after its primary is killed.
const SETTLE_BOUND: Duration = Duration::from_secs(20);

pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Six nodes on free loopback ports (each with a free cluster bus port), joined as
    /// three primaries with one replica each, every slot served and every replica in sync.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_with(|_| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        &NODE_TIMEOUT.as_millis().to_string(),
                        "--cluster-port",
                        &free_port().to_string(),
                        // A replica's first sync starts at once, not after the default
                        // 5 s wait for other replicas.
                        "--repl-diskless-sync-delay",
                        "0",
                        "--loglevel",
                        "notice",
                        "--logfile",
                        "node.log",
                    ]
                    .map(String::from)
                    .to_vec()
                })
            })
            .collect();
        let cluster = RedisCluster { nodes };
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = match create
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-cli is missing: install Debian's package redis-tools \
                 (apt-get install redis-server brings it), or run `cargo xtask test` as root"
            ),
            Err(e) => panic!("cannot run redis-cli: {e}"),
        };
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_until_settled(None);
        cluster
    }

    /// Waits until every running node reports `cluster_state:ok` and every slot served,
    /// every node names the same three primaries (none on `dead`'s port), and every live
    /// replica is in sync with its primary, within the bound.
    fn wait_until_settled(&self, dead: Option<u16>) {
        let deadline = Instant::now() + SETTLE_BOUND;
        loop {
            if self.settled(dead) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle within {SETTLE_BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn settled(&self, dead: Option<u16>) -> bool {
        let mut views = Vec::new();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let Ok(mut con) = node
                .client()
                .get_connection_with_timeout(Duration::from_millis(500))
            else {
                return false;
            };
            let Ok(info) = redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut con) else {
                return false;
            };
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return false;
            }
            let Ok(primaries) = slot_primaries(&mut con) else {
                return false;
            };
            views.push(primaries);
        }
        // Every node sees the same three primaries, none of them the dead node.
        let Some(first) = views.first() else {
            return false;
        };
        if first.len() != 3 || views.iter().any(|v| v != first) {
            return false;
        }
        if first.iter().any(|(_, port, _)| Some(*port) == dead) {
            return false;
        }
        // Every live node but the three primaries is a replica in sync with its primary
        // (a node `--cluster create` has not yet made a replica says `role:master`; one
        // whose first sync is not done says `master_link_status:down`).
        let live = self.nodes.iter().filter(|n| n.is_running()).count();
        let in_sync = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .filter(|node| {
                let Ok(mut con) = node
                    .client()
                    .get_connection_with_timeout(Duration::from_millis(500))
                else {
                    return false;
                };
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut con)
                    .is_ok_and(|info| {
                        info.contains("role:slave") && info.contains("master_link_status:up")
                    })
            })
            .count();
        in_sync == live - 3
    }

    /// The URLs of every node, running or not (the cluster client's seed list).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// A cluster client on every node's URL, with `redis`'s default retries.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(self.urls()).expect("valid URLs")
    }

    /// A plain connection to a running node.
    fn any_connection(&self) -> redis::Connection {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node")
            .connection()
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.any_connection())
            .expect("CLUSTER KEYSLOT")
    }

    /// The port of the primary that serves `slot`.
    pub fn primary_of(&self, slot: u16) -> u16 {
        slot_primaries(&mut self.any_connection())
            .expect("CLUSTER SLOTS")
            .into_iter()
            .find(|(range, _, _)| range.contains(&slot))
            .map(|(_, port, _)| port)
            .expect("every slot is served")
    }

    /// A plain connection to the primary that serves `key`.
    pub fn connection_for(&self, key: &str) -> redis::Connection {
        let port = self.primary_of(self.slot(key));
        self.node(port).connection()
    }

    fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .expect("a node of the cluster")
    }

    /// Kills the node on `port` (as a crash would: no shutdown, no last replication).
    pub fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("a node of the cluster")
            .stop();
    }

    /// The log of every node (for a failed test's message).
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(n.dir().join("node.log")).unwrap_or_default();
                format!("--- node {}:\n{log}", n.port())
            })
            .collect()
    }

    /// Waits until the cluster serves every slot again without the killed node on `port`
    /// (its replica promoted by the cluster's own failover), within the bound.
    pub fn wait_for_failover(&self, dead: u16) {
        self.wait_until_settled(Some(dead));
    }
}

/// `CLUSTER SLOTS`, reduced to each range's primary: `(slots, port, id)`, sorted.
fn slot_primaries(
    con: &mut redis::Connection,
) -> redis::RedisResult<Vec<(std::ops::RangeInclusive<u16>, u16, String)>> {
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(con)?;
    let mut primaries = Vec::new();
    for range in ranges {
        let redis::Value::Array(fields) = range else {
            continue;
        };
        let (Some(start), Some(end), Some(primary)) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let (redis::Value::Int(start), redis::Value::Int(end)) = (start, end) else {
            continue;
        };
        let redis::Value::Array(primary) = primary else {
            continue;
        };
        let port = match primary.get(1) {
            Some(redis::Value::Int(port)) => u16::try_from(*port).unwrap_or(0),
            _ => 0,
        };
        let id = match primary.get(2) {
            Some(redis::Value::BulkString(id)) => String::from_utf8_lossy(id).into_owned(),
            _ => String::new(),
        };
        let (start, end) = (
            u16::try_from(*start).unwrap_or(0),
            u16::try_from(*end).unwrap_or(0),
        );
        primaries.push((start..=end, port, id));
    }
    primaries.sort_by_key(|(range, _, _)| *range.start());
    // A primary may serve several ranges: one entry per primary and range is fine, as
    // long as every node reports the same list.
    Ok(primaries)
}
