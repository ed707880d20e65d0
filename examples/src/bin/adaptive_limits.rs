//! Adaptive concurrency limits finding a server's capacity, on virtual time.
//!
//! ```text
//! cargo run -p stanchion-examples --bin adaptive_limits             # writes docs/adaptive-limits.svg
//! cargo run -p stanchion-examples --bin adaptive_limits -- out.svg  # or elsewhere
//! ```
//!
//! A simulated server has a capacity of C concurrent requests: a request admitted while
//! at most C are in flight takes the base latency (10 ms, +/-5% seeded jitter); beyond C
//! they queue, so latency grows in proportion (`10 ms * n / C`). C is 100, halves to 50
//! at 5 s and recovers to 100 at 10 s. 300 clients send requests back to back through an
//! [`AdaptiveBulkhead`], whose limit each algorithm sets from the requests' round-trip
//! times (AIMD counts a request slower than 12 ms as dropped). The run takes 15 s of
//! virtual time and well under a second of wall time; the limit is traced every 10 ms
//! and plotted against C.
//!
//! The same simulation is this binary's test: after 2 s in each phase, every algorithm
//! must hold its limit within +/-20% of C.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use stanchion::Instant;
use stanchion::adaptive::{
    AdaptiveBulkhead, Aimd, AimdConfig, LimitAlgorithm, Outcome, Vegas, VegasConfig,
};
use stanchion::sync::NoopRawMutex;

/// Latency of a request that does not queue.
const BASE_LATENCY: Duration = Duration::from_millis(10);
/// Latency jitter: uniform in +/- this many thousandths.
const JITTER_PER_1000: u64 = 50;
/// Clients sending back to back: the demand, well above any capacity.
const CLIENTS: u32 = 300;
/// The server's capacity from each instant on (seconds, requests).
const PHASES: [(u64, u32); 3] = [(0, 100), (5, 50), (10, 100)];
/// Virtual duration of a run.
const RUN: Duration = Duration::from_secs(15);
/// How often the limit is traced.
const TRACE_EVERY: Duration = Duration::from_millis(10);
/// Step limit: completions per run (a run has about 150 000), so a bug cannot loop forever.
const MAX_COMPLETIONS: u64 = 2_000_000;
/// Time allowed to settle after each change of capacity.
const SETTLE: Duration = Duration::from_secs(2);
/// The seed of the server's jitter.
const SEED: u64 = 0x5EED_0006;

/// One point of a trace: the limit and the capacity at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    at: Instant,
    limit: u32,
    capacity: u32,
}

fn capacity_at(t: Instant) -> u32 {
    PHASES
        .iter()
        .rev()
        .find(|(from, _)| t >= Instant::from_secs(*from))
        .map_or(PHASES[0].1, |(_, c)| *c)
}

/// The server: latency of a request admitted at `now` with `in_flight` requests running.
fn latency(now: Instant, in_flight: u32, rng: &mut fastrand::Rng) -> Duration {
    let capacity = u64::from(capacity_at(now));
    let base = BASE_LATENCY.as_nanos() as u64;
    let queued = base * u64::from(in_flight).max(capacity) / capacity;
    let jitter = rng.u64(1000 - JITTER_PER_1000..=1000 + JITTER_PER_1000);
    Duration::from_nanos(queued * jitter / 1000)
}

/// Runs the simulation with `algorithm` and returns the trace of its limit.
fn simulate<A: LimitAlgorithm>(algorithm: A, seed: u64) -> Vec<Point> {
    let bulkhead: AdaptiveBulkhead<NoopRawMutex, A> = AdaptiveBulkhead::new(algorithm);
    let mut rng = fastrand::Rng::with_seed(seed);
    let end = Instant::ZERO + RUN;
    let mut completions: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut running = HashMap::new();
    let mut next_id = 0u64;
    let mut now = Instant::ZERO;
    let mut next_trace = Instant::ZERO;
    let mut trace = Vec::new();
    for _ in 0..MAX_COMPLETIONS {
        // Every idle client sends a request; the bulkhead admits up to its limit.
        while (running.len() as u32) < CLIENTS {
            let Ok(permit) = bulkhead.try_acquire_at(now) else {
                break;
            };
            let done = now + latency(now, permit.in_flight(), &mut rng);
            completions.push(Reverse((done, next_id)));
            running.insert(next_id, permit);
            next_id += 1;
        }
        let Some(Reverse((done, id))) = completions.pop() else {
            panic!("nothing in flight: the limit fell to zero");
        };
        while next_trace <= done && next_trace < end {
            trace.push(Point {
                at: next_trace,
                limit: bulkhead.limit(),
                capacity: capacity_at(next_trace),
            });
            next_trace += TRACE_EVERY;
        }
        if done >= end {
            return trace;
        }
        now = done;
        let permit = running.remove(&id).expect("every completion has a permit");
        permit.record_at(now, Outcome::Success);
    }
    panic!("step limit reached: {MAX_COMPLETIONS} completions before {end}");
}

fn aimd() -> Aimd {
    Aimd::new(AimdConfig {
        initial_limit: 10,
        min_limit: 1,
        max_limit: 1000,
        backoff_per_1024: 922,
        timeout: Duration::from_millis(12),
    })
    .expect("valid AIMD configuration")
}

fn vegas() -> Vegas {
    Vegas::new(VegasConfig {
        initial_limit: 10,
        max_limit: 1000,
        ..VegasConfig::DEFAULT
    })
    .expect("valid Vegas configuration")
}

/// How a trace did in the settled part of each phase.
#[derive(Debug)]
struct PhaseStats {
    capacity: u32,
    min: u32,
    max: u32,
    mean: u32,
    /// Points within +/-20% of the capacity, per thousand.
    within_per_1000: u32,
}

fn settled_stats(trace: &[Point]) -> Vec<PhaseStats> {
    let end = Instant::ZERO + RUN;
    PHASES
        .iter()
        .enumerate()
        .map(|(i, &(from, capacity))| {
            let start = Instant::from_secs(from) + SETTLE;
            let stop = PHASES
                .get(i + 1)
                .map_or(end, |(next, _)| Instant::from_secs(*next));
            let points: Vec<u32> = trace
                .iter()
                .filter(|p| p.at >= start && p.at < stop)
                .map(|p| p.limit)
                .collect();
            let n = points.len() as u64;
            let within = points
                .iter()
                .filter(|&&l| l * 10 >= capacity * 8 && l * 10 <= capacity * 12)
                .count() as u64;
            PhaseStats {
                capacity,
                min: points.iter().copied().min().unwrap_or(0),
                max: points.iter().copied().max().unwrap_or(0),
                mean: (points.iter().map(|&l| u64::from(l)).sum::<u64>() / n.max(1)) as u32,
                within_per_1000: (within * 1000 / n.max(1)) as u32,
            }
        })
        .collect()
}

fn plot(path: &str, series: &[(&str, &[Point], plotters::style::RGBColor)]) -> Result<(), String> {
    use plotters::prelude::*;

    let root = SVGBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let capacity_max = PHASES.iter().map(|p| p.1).max().unwrap_or(100);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Adaptive concurrency limit vs. server capacity (virtual time)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..RUN.as_secs_f64(), 0u32..capacity_max * 3 / 2)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("concurrent requests")
        .draw()
        .map_err(|e| e.to_string())?;
    let secs = |t: Instant| t.as_nanos() as f64 / 1e9;
    if let Some((_, first, _)) = series.first() {
        chart
            .draw_series(LineSeries::new(
                first.iter().map(|p| (secs(p.at), p.capacity)),
                BLACK.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("server capacity C")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    }
    for &(name, trace, color) in series {
        chart
            .draw_series(LineSeries::new(
                trace.iter().map(|p| (secs(p.at), p.limit)),
                color.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docs/adaptive-limits.svg".to_owned());
    let aimd_trace = simulate(aimd(), SEED);
    let vegas_trace = simulate(vegas(), SEED);
    for (name, trace) in [("AIMD", &aimd_trace), ("Vegas", &vegas_trace)] {
        println!(
            "{name}: limit after {} s of settling in each phase",
            SETTLE.as_secs()
        );
        for s in settled_stats(trace) {
            println!(
                "  C = {:3}: min {:3}, mean {:3}, max {:3}, {:5.1}% of the time within +/-20%",
                s.capacity,
                s.min,
                s.mean,
                s.max,
                f64::from(s.within_per_1000) / 10.0
            );
        }
    }
    if let Some(dir) = std::path::Path::new(&path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    plot(
        &path,
        &[
            (
                "AIMD (timeout 12 ms)",
                &aimd_trace,
                plotters::style::RGBColor(214, 39, 40),
            ),
            (
                "Vegas",
                &vegas_trace,
                plotters::style::RGBColor(31, 119, 180),
            ),
        ],
    )?;
    println!("wrote {path}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_settles(name: &str, trace: &[Point], min_within_per_1000: u32) {
        assert_eq!(trace.len(), 1500, "{name}: one point per 10 ms");
        for s in settled_stats(trace) {
            let (lo, hi) = (s.capacity * 8 / 10, s.capacity * 12 / 10);
            assert!(
                (lo..=hi).contains(&s.mean),
                "{name}: mean limit {} outside {lo}..={hi}: {s:?}",
                s.mean
            );
            assert!(
                s.within_per_1000 >= min_within_per_1000,
                "{name}: limit within {lo}..={hi} only {}/1000 of the time: {s:?}",
                s.within_per_1000
            );
        }
    }

    #[test]
    fn aimd_settles_within_20_percent_of_capacity_and_follows_it() {
        let trace = simulate(aimd(), SEED);
        // AIMD never leaves the band once settled.
        assert_settles("AIMD", &trace, 1000);
    }

    #[test]
    fn vegas_settles_within_20_percent_of_capacity_and_follows_it() {
        let trace = simulate(vegas(), SEED);
        // Vegas leaves the band only while it probes (the limit halves for ~2 round
        // trips about once a second).
        assert_settles("Vegas", &trace, 950);
    }

    #[test]
    fn the_simulation_is_deterministic() {
        assert_eq!(simulate(vegas(), 7), simulate(vegas(), 7));
        assert_ne!(simulate(vegas(), 7), simulate(vegas(), 8));
    }

    #[test]
    fn the_server_model_is_as_documented() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            let l = latency(Instant::ZERO, 100, &mut rng);
            assert!((Duration::from_micros(9_500)..=Duration::from_micros(10_500)).contains(&l));
            let l = latency(Instant::from_secs(5), 100, &mut rng); // C = 50: twice as slow
            assert!((Duration::from_micros(19_000)..=Duration::from_micros(21_000)).contains(&l));
        }
        assert_eq!(capacity_at(Instant::from_nanos(4_999_999_999)), 100);
        assert_eq!(capacity_at(Instant::from_secs(5)), 50);
        assert_eq!(capacity_at(Instant::from_secs(10)), 100);
    }
}
