//! `cargo xtask bench --load`: the `service` example under load on loopback (issue 11).
//!
//! Builds the service in release mode once, then:
//!
//! - **Throughput and latency, with and without the layers.** [`ROUNDS`] rounds, each
//!   starting the service twice (with `--bypass-layers`, then with every layer), on
//!   127.0.0.1 with a downstream of no latency and no failures and a quota that never
//!   refuses, so that the only difference between the two is what the layers cost. Each
//!   start gets a [`WARM_UP`] run of `wrk` (discarded), then a measured run of
//!   [`MEASURE`]; the table shows each measure's median over the rounds (the order of
//!   the two sides alternates between rounds). Also measured: the server's CPU time per
//!   request (from `/proc`), which is less sensitive than requests per second to `wrk`
//!   competing with the server for the same cores.
//! - **Accuracy of the rate limit under load.** The service with every layer and a
//!   per-IP quota of [`QUOTA_PER_SECOND`] per second (burst the same), driven by `wrk`
//!   as fast as it goes for [`ACCURACY_RUN`]; the responses counted by the service's
//!   `/metrics` (200 admitted, 429 refused) against the most the quota allows, burst +
//!   rate × run time. Admitting more than that fails the command: it would be a bug.
//!
//! `wrk` (Debian's package `wrk`, installed with apt when missing and root) runs with
//! [`THREADS`] thread and [`CONNECTIONS`] connections, and every run is bounded in time:
//! `wrk` stops itself after its duration and is killed [`WRK_GRACE`] later if it has not.
//! `load.lua` beside this file makes `wrk` print its numbers in one parseable line.
//! Services are killed when dropped, on error too.
//!
//! The tables go to `target/bench-tables/load.md` (throughput and latency) and
//! `target/bench-tables/load-rate-limit.md` (accuracy), for `BENCHMARKS.md`'s "Service
//! under load" section, and are printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Result, cargo, ensure_debian_package, run_with_time_bound, step};

/// `wrk` threads: one, so that the server keeps most of the second core.
const THREADS: u32 = 1;
/// Connections kept open by `wrk`, each with one request in flight.
const CONNECTIONS: u32 = 32;
/// Discarded run after each start: connections opened, allocator and caches warm.
const WARM_UP: Duration = Duration::from_secs(1);
/// Measured run per side and round.
const MEASURE: Duration = Duration::from_secs(2);
/// Rounds of (bare, layers); each measure's median over the rounds is kept.
const ROUNDS: u32 = 5;
/// The run that measures the rate limit's accuracy.
const ACCURACY_RUN: Duration = Duration::from_secs(5);
/// The per-IP quota of the accuracy run, per second (and its burst).
const QUOTA_PER_SECOND: u32 = 1000;
/// The per-IP quota of the throughput runs: never refuses within a run.
const OPEN_QUOTA: &str = "1000000000/1s";
/// How long past its duration `wrk` may take before it is killed.
const WRK_GRACE: Duration = Duration::from_secs(15);
/// How long the service may take to start and answer `/health`.
const PATIENCE: Duration = Duration::from_secs(30);
/// The report script given to `wrk`.
const SCRIPT: &str = include_str!("load.lua");
/// Clock ticks per second of `/proc/PID/stat`'s CPU times (Linux's `USER_HZ`).
const USER_HZ: u64 = 100;

/// Runs the load benchmark and writes its two tables.
pub(crate) fn load() -> Result {
    let started = Instant::now();
    ensure_debian_package("wrk", "wrk")?;
    step(
        "build the service (release)",
        cargo(&[
            "build",
            "--release",
            "--locked",
            "-p",
            "stanchion-examples",
            "--bin",
            "service",
        ]),
    )?;
    let target = crate::tables::target_directory()?;
    let binary = target.join("release").join("service");
    let script_dir = target.join("tmp");
    std::fs::create_dir_all(&script_dir)
        .map_err(|e| format!("cannot create {}: {e}", script_dir.display()))?;
    let script = script_dir.join("stanchion-load-report.lua");
    std::fs::write(&script, SCRIPT)
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;

    let mut bare = Vec::new();
    let mut layers = Vec::new();
    for round in 1..=ROUNDS {
        // Alternate which side goes first, so that a drift in the machine's load over
        // the run does not favour one side.
        let sides = if round % 2 == 1 {
            [Side::Bare, Side::Layers]
        } else {
            [Side::Layers, Side::Bare]
        };
        for side in sides {
            let m = throughput_run(&binary, &script, side)
                .map_err(|e| format!("round {round}, {}: {e}", side.name()))?;
            println!(
                "xtask: round {round}/{ROUNDS}, {}: {:.0} requests/s, p50 {}, p99 {}",
                side.name(),
                m.requests_per_second,
                millis(m.p50_us),
                millis(m.p99_us)
            );
            match side {
                Side::Bare => bare.push(m),
                Side::Layers => layers.push(m),
            }
        }
    }
    let (bare, layers) = (Measured::median(&bare), Measured::median(&layers));
    let accuracy = accuracy_run(&binary, &script)?;

    let throughput_table = throughput_table(&bare, &layers);
    let rps = layers.requests_per_second / bare.requests_per_second.max(1.0);
    crate::tables::write(
        "headline-load",
        &format!(
            "| HTTP requests per second of the `service` example with every layer (higher is better) | the same service with `--bypass-layers` | {rps:.2}x (what the layers cost) |\n"
        ),
    )?;
    let accuracy_table = accuracy.table();
    for (name, table) in [
        ("load", &throughput_table),
        ("load-rate-limit", &accuracy_table),
    ] {
        crate::tables::write(name, table)?;
        println!("xtask: table {name}:\n{table}");
    }
    accuracy.check()?;
    println!("xtask: load benchmark done in {:.0?}", started.elapsed());
    Ok(())
}

/// Which form of `/api/data` a run measures.
#[derive(Clone, Copy)]
enum Side {
    /// `--bypass-layers`: the downstream call alone.
    Bare,
    /// Every stanchion layer in front of it.
    Layers,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Bare => "bare (--bypass-layers)",
            Side::Layers => "stanchion layers",
        }
    }
}

/// One measured throughput run, or the median of several.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Measured {
    requests_per_second: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    /// The server's CPU time per request, in microseconds (None where `/proc` is absent).
    cpu_us_per_request: Option<f64>,
}

impl Measured {
    /// Each measure's median over `runs` (of the two middle values for an even count),
    /// taken measure by measure.
    fn median(runs: &[Measured]) -> Measured {
        fn median(mut values: Vec<f64>) -> f64 {
            values.sort_by(f64::total_cmp);
            let n = values.len();
            match n {
                0 => 0.0,
                _ if n % 2 == 1 => values[n / 2],
                _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
            }
        }
        let of = |f: fn(&Measured) -> f64| median(runs.iter().map(f).collect());
        let cpu: Option<Vec<f64>> = runs.iter().map(|m| m.cpu_us_per_request).collect();
        Measured {
            requests_per_second: of(|m| m.requests_per_second),
            p50_us: of(|m| m.p50_us),
            p90_us: of(|m| m.p90_us),
            p99_us: of(|m| m.p99_us),
            cpu_us_per_request: cpu.filter(|c| !c.is_empty()).map(median),
        }
    }
}

/// Starts the service for `side` (no downstream latency, no failures, a quota that never
/// refuses), warms it up, and measures one run.
fn throughput_run(binary: &Path, script: &Path, side: Side) -> Result<Measured> {
    let max_concurrent = (CONNECTIONS * 2).to_string();
    let mut args = vec![
        "--latency",
        "0s",
        "--failure-rate",
        "0",
        "--ip-quota",
        OPEN_QUOTA,
        // More slots than connections: the bulkhead never refuses.
        "--max-concurrent",
        &max_concurrent,
    ];
    if let Side::Bare = side {
        args.push("--bypass-layers");
    }
    let service = Service::start(binary, &args)?;
    let url = service.url("/api/data");
    wrk(script, &url, WARM_UP)?;
    let before = cpu_ticks(service.pid());
    let report = wrk(script, &url, MEASURE)?;
    let after = cpu_ticks(service.pid());
    if report.non_2xx != 0 || report.socket_errors() != 0 {
        return Err(format!(
            "{} non-2xx responses and {} socket errors: every request must be answered \
             for the comparison to mean anything",
            report.non_2xx,
            report.socket_errors()
        ));
    }
    let cpu_us_per_request = match (before, after) {
        (Some(b), Some(a)) if report.requests > 0 => {
            let ticks = a.saturating_sub(b) as f64;
            Some(ticks * 1e6 / USER_HZ as f64 / report.requests as f64)
        }
        _ => None,
    };
    Ok(Measured {
        requests_per_second: report.requests_per_second(),
        p50_us: report.p50_us as f64,
        p90_us: report.p90_us as f64,
        p99_us: report.p99_us as f64,
        cpu_us_per_request,
    })
}

/// The throughput and latency table: one row per measure, both sides and their ratio.
fn throughput_table(b: &Measured, l: &Measured) -> String {
    let mut out = String::from(
        "| measure | bare (`--bypass-layers`) | stanchion layers | ratio (layers / bare) |\n\
         |---|---|---|---|\n",
    );
    let mut row = |name: &str, b_text: String, l_text: String, ratio: Option<f64>| {
        let ratio = ratio.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
        out.push_str(&format!("| {name} | {b_text} | {l_text} | {ratio} |\n"));
    };
    let div = |l: f64, b: f64| (b > 0.0).then(|| l / b);
    let (b_rps, l_rps) = (b.requests_per_second, l.requests_per_second);
    row(
        "requests per second",
        format!("{b_rps:.0}"),
        format!("{l_rps:.0}"),
        div(l_rps, b_rps),
    );
    for (name, bv, lv) in [
        ("latency p50", b.p50_us, l.p50_us),
        ("latency p90", b.p90_us, l.p90_us),
        ("latency p99", b.p99_us, l.p99_us),
    ] {
        row(name, millis(bv), millis(lv), div(lv, bv));
    }
    let cpu = |c: Option<f64>| c.map_or_else(|| "n/a".to_owned(), |c| format!("{c:.1} µs"));
    row(
        "server CPU time per request",
        cpu(b.cpu_us_per_request),
        cpu(l.cpu_us_per_request),
        b.cpu_us_per_request
            .zip(l.cpu_us_per_request)
            .and_then(|(b, l)| div(l, b)),
    );
    out
}

/// Microseconds as milliseconds with two decimals.
fn millis(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// The rate limit's accuracy run.
struct Accuracy {
    report: WrkReport,
    admitted: u64,
    refused: u64,
    /// From just before `wrk` started to just after it exited, as timed here: every
    /// request was sent within it.
    outer: Duration,
}

/// Starts the service with every layer and a per-IP quota of [`QUOTA_PER_SECOND`] a
/// second, drives it far above that, and counts what it admitted.
fn accuracy_run(binary: &Path, script: &Path) -> Result<Accuracy> {
    let quota = format!("{QUOTA_PER_SECOND}/1s");
    let service = Service::start(
        binary,
        &[
            "--latency",
            "0s",
            "--failure-rate",
            "0",
            "--ip-quota",
            &quota,
        ],
    )?;
    let before = service.responses()?;
    let started = Instant::now();
    let report = wrk(script, &service.url("/api/data"), ACCURACY_RUN)?;
    let outer = started.elapsed();
    let after = service.responses()?;
    let delta = |status: u16| {
        let count = |r: &[(u16, u64)]| r.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
        count(&after).saturating_sub(count(&before))
    };
    let others: Vec<String> = after
        .iter()
        .filter(|(s, _)| *s != 200 && *s != 429)
        .map(|(s, _)| format!("{s}: {}", delta(*s)))
        .filter(|d| !d.ends_with(": 0"))
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "the accuracy run got answers other than 200 and 429 ({}): the downstream must \
             not fail for the count to mean anything",
            others.join(", ")
        ));
    }
    Ok(Accuracy {
        admitted: delta(200),
        refused: delta(429),
        report,
        outer,
    })
}

impl Accuracy {
    /// The most the quota allows over `run`: the burst, plus the rate times the run.
    fn allowed(run: Duration) -> f64 {
        f64::from(QUOTA_PER_SECOND) + f64::from(QUOTA_PER_SECOND) * run.as_secs_f64()
    }

    fn table(&self) -> String {
        let run = Duration::from_micros(self.report.duration_us);
        let expected = Accuracy::allowed(run);
        let after_burst = (self.admitted as f64 - f64::from(QUOTA_PER_SECOND)) / run.as_secs_f64();
        format!(
            "| quota (per IP) | burst | offered load | run | admitted (200) | refused (429) | \
             at most allowed (burst + rate × run) | admitted / allowed | admitted per second after the burst |\n\
             |---|---|---|---|---|---|---|---|---|\n\
             | {q}/s | {q} | {offered:.0} requests/s ({times:.0}x the rate) | {secs:.2} s | {admitted} | {refused} | \
             {expected:.0} | {ratio:.4} | {after_burst:.1} ({rate_ratio:.4} of {q}) |\n",
            q = QUOTA_PER_SECOND,
            offered = self.report.requests_per_second(),
            times = self.report.requests_per_second() / f64::from(QUOTA_PER_SECOND),
            secs = run.as_secs_f64(),
            admitted = self.admitted,
            refused = self.refused,
            ratio = self.admitted as f64 / expected,
            rate_ratio = after_burst / f64::from(QUOTA_PER_SECOND),
        )
    }

    /// Fails if the service admitted more than the quota allows over the outer window
    /// (one request of slack for rounding).
    fn check(&self) -> Result {
        let bound = Accuracy::allowed(self.outer) + 1.0;
        if self.admitted as f64 > bound {
            return Err(format!(
                "the rate limit admitted {} requests in {:.3?}, more than the {bound:.0} its \
                 quota of {QUOTA_PER_SECOND}/s with burst {QUOTA_PER_SECOND} allows",
                self.admitted, self.outer
            ));
        }
        Ok(())
    }
}

/// What `load.lua` prints after a `wrk` run.
#[derive(Debug, Default)]
struct WrkReport {
    requests: u64,
    duration_us: u64,
    non_2xx: u64,
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
}

impl WrkReport {
    fn requests_per_second(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        self.requests as f64 * 1e6 / self.duration_us as f64
    }

    fn socket_errors(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }

    /// Parses the `stanchion-load: key=value ...` line.
    fn parse(line: &str) -> Result<WrkReport> {
        let pairs = line
            .strip_prefix("stanchion-load: ")
            .ok_or_else(|| format!("not a report line: {line}"))?;
        let mut r = WrkReport::default();
        let mut seen = 0;
        for pair in pairs.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` in the report is not key=value"))?;
            let value: u64 = value
                .parse()
                .map_err(|_| format!("`{pair}` in the report is not a whole number"))?;
            let field = match key {
                "requests" => &mut r.requests,
                "duration_us" => &mut r.duration_us,
                "non_2xx" => &mut r.non_2xx,
                "connect" => &mut r.connect,
                "read" => &mut r.read,
                "write" => &mut r.write,
                "timeout" => &mut r.timeout,
                "p50_us" => &mut r.p50_us,
                "p90_us" => &mut r.p90_us,
                "p99_us" => &mut r.p99_us,
                _ => continue,
            };
            *field = value;
            seen += 1;
        }
        if seen < 10 {
            return Err(format!("the report lacks fields: {line}"));
        }
        Ok(r)
    }
}

/// Runs `wrk` against `url` for `duration` with the report script, bounded in time.
fn wrk(script: &Path, url: &str, duration: Duration) -> Result<WrkReport> {
    let mut command = Command::new("wrk");
    command
        .args(["-t", &THREADS.to_string()])
        .args(["-c", &CONNECTIONS.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs())])
        .args(["--timeout", "5s", "-s"])
        .arg(script)
        .arg(url);
    println!("xtask: ==> wrk -t {THREADS} -c {CONNECTIONS} -d {duration:?} {url}");
    let (status, output) =
        run_with_time_bound(command, duration + WRK_GRACE).map_err(|e| format!("wrk: {e}"))?;
    if !status.success() {
        return Err(format!("wrk failed ({status})"));
    }
    let line = output
        .iter()
        .find(|l| l.starts_with("stanchion-load: "))
        .ok_or("wrk printed no report line (is load.lua's done() running?)")?;
    WrkReport::parse(line)
}

/// A running service, killed when dropped.
struct Service {
    child: Child,
    address: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a child that has not become a [`Service`] yet.
struct Starting(Option<Child>);

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Service {
    /// Starts `binary` on a free loopback port with `args`, reads its address from its
    /// first line, and waits until `/health` answers.
    fn start(binary: &Path, args: &[&str]) -> Result<Service> {
        let mut command = Command::new(binary);
        // Only the flags below: nothing from a `STANCHION_*` variable of this shell.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STANCHION_") {
                command.env_remove(name);
            }
        }
        command
            .args(["--port", "0", "--admin-token", "load-bench-admin-token"])
            .args(["--seed", "1"])
            // Every wrk connection comes from 127.0.0.1: room for all of them and the
            // health checks under the per-IP connection cap.
            .args(["--max-connections-per-ip", &(CONNECTIONS * 4).to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        println!("xtask: ==> service {}", args.join(" "));
        let mut starting =
            Starting(Some(command.spawn().map_err(|e| {
                format!("cannot start {}: {e}", binary.display())
            })?));
        let stdout = starting
            .0
            .as_mut()
            .and_then(|c| c.stdout.take())
            .ok_or("the service has no standard output")?;
        // Reads every line until the service exits (it prints after its first line, and a
        // closed pipe would make that fail); the first comes back through the channel.
        let (first_tx, first_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout)
                .lines()
                .map_while(std::io::Result::ok);
            if let Some(first) = lines.next() {
                let _ = first_tx.send(first);
            }
            for line in lines {
                println!("    service: {line}");
            }
        });
        let first = first_rx
            .recv_timeout(PATIENCE)
            .map_err(|_| "the service printed no address in time".to_owned())?;
        let address: SocketAddr = first
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the service's first line does not say where: {first}"))?;
        if !address.ip().is_loopback() {
            return Err(format!("the service listens on {address}, not on loopback"));
        }
        let child = starting.0.take().ok_or("the service vanished")?;
        let service = Service { child, address };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok((200, body)) = http_get(address, "/health")
                && body == "ok\n"
            {
                return Ok(service);
            }
            if Instant::now() > deadline {
                return Err(format!("{address}/health never answered ok"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `/api` responses so far by status, from `/metrics`.
    fn responses(&self) -> Result<Vec<(u16, u64)>> {
        let (status, body) = http_get(self.address, "/metrics")?;
        if status != 200 {
            return Err(format!("/metrics answered {status}"));
        }
        let mut out = Vec::new();
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("stanchion_api_responses_total{status=\"") else {
                continue;
            };
            let parsed = rest.split_once("\"} ").and_then(|(s, n)| {
                Some((s.parse::<u16>().ok()?, n.trim().parse::<f64>().ok()? as u64))
            });
            out.push(parsed.ok_or_else(|| format!("unreadable metric line: {line}"))?);
        }
        Ok(out)
    }
}

/// One `GET` over a fresh connection (`Connection: close`): the status and the body.
fn http_get(address: SocketAddr, path: &str) -> Result<(u16, String)> {
    let io = |e: std::io::Error| format!("GET {path} on {address}: {e}");
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status line in the answer"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok((status, body))
}

/// The CPU time (user + system) of process `pid` so far, in clock ticks; `None` where
/// `/proc` is not there.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: field 3 (state) onwards; utime and stime
    // are fields 14 and 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_line_parses_and_a_short_one_is_refused() {
        let r = WrkReport::parse(
            "stanchion-load: requests=60000 duration_us=3000000 non_2xx=2 connect=0 read=1 \
             write=0 timeout=0 p50_us=850 p90_us=1200 p99_us=2500 max_us=9000",
        )
        .unwrap();
        assert_eq!((r.requests, r.non_2xx, r.socket_errors()), (60000, 2, 1));
        assert_eq!((r.p50_us, r.p90_us, r.p99_us), (850, 1200, 2500));
        assert_eq!(r.requests_per_second(), 20000.0);
        assert!(WrkReport::parse("stanchion-load: requests=1").is_err());
        assert!(WrkReport::parse("Requests/sec: 1").is_err());
    }

    #[test]
    fn medians_are_taken_measure_by_measure() {
        let run = |rps, p99, cpu| Measured {
            requests_per_second: rps,
            p50_us: 100.0,
            p90_us: 200.0,
            p99_us: p99,
            cpu_us_per_request: cpu,
        };
        let m = Measured::median(&[
            run(10.0, 900.0, Some(3.0)),
            run(30.0, 500.0, Some(1.0)),
            run(20.0, 700.0, Some(2.0)),
        ]);
        assert_eq!(m, run(20.0, 700.0, Some(2.0)));
        let even = Measured::median(&[run(10.0, 400.0, None), run(20.0, 600.0, Some(1.0))]);
        assert_eq!(even, run(15.0, 500.0, None));
    }

    #[test]
    fn the_accuracy_check_allows_the_burst_plus_the_rate() {
        let run = |admitted, outer_ms| Accuracy {
            report: WrkReport::default(),
            admitted,
            refused: 0,
            outer: Duration::from_millis(outer_ms),
        };
        // 1000 + 1000/s × 5 s.
        assert!(run(6000, 5000).check().is_ok());
        assert!(run(6001, 5000).check().is_ok());
        assert!(run(6002, 5000).check().is_err());
    }
}
