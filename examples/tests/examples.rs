//! Runs every example binary and checks the key lines of its output: the numbers each
//! example exists to show. The examples run on virtual time with seeded generators, so
//! their output is exact; lines are compared with runs of spaces collapsed, so that a
//! change of column width alone does not fail a test, but every value does.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the binary at `path` and returns its standard output (it must succeed).
fn run(path: &str) -> String {
    let out = Command::new(path).output().expect("the example runs");
    assert!(
        out.status.success(),
        "{path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Asserts that some line of `out` is `expected`, spaces collapsed.
#[track_caller]
fn has_line(out: &str, expected: &str) {
    let expected = squeeze(expected);
    assert!(
        out.lines().any(|l| squeeze(l) == expected),
        "no line {expected:?} in:\n{out}"
    );
}

/// Asserts that the text of `out` (wrapped notes included) contains `expected`, spaces
/// and line breaks collapsed.
#[track_caller]
fn has_text(out: &str, expected: &str) {
    let expected = squeeze(expected);
    assert!(
        squeeze(out).contains(&expected),
        "no text {expected:?} in:\n{out}"
    );
}

const RATE: &str = env!("CARGO_BIN_EXE_rate_limiting");
const RETRY: &str = env!("CARGO_BIN_EXE_retry_patterns");
const BREAKER: &str = env!("CARGO_BIN_EXE_circuit_breaker");
const COMBINED: &str = env!("CARGO_BIN_EXE_combined_patterns");
const TOUR: &str = env!("CARGO_BIN_EXE_tour");

#[test]
fn rate_limiting_shows_each_limiter_on_the_same_bursts() {
    let out = run(RATE);
    // The two bursts, request by request: only the fixed window admits the second one.
    has_line(
        &out,
        "t=0.950s ##########..... ##########..... ##########..... ##########..... ##########.....",
    );
    has_line(
        &out,
        "t=1.000s ............... ##########..... ............... ............... ...............",
    );
    has_line(&out, "t=1.100s # . # . #");
    has_line(&out, "t=2.100s # # . # #");
    // Side by side: admitted, of the bursts, most in 100 ms, most in 1 s, first wait, queued.
    has_line(&out, "token bucket 29 of 49 10 of 30 10 19 0.100s -");
    has_line(&out, "fixed window 30 of 49 20 of 30 20 20 0.050s -");
    has_line(&out, "sliding counter 28 of 49 10 of 30 10 19 0.150s -");
    has_line(&out, "sliding log 20 of 49 10 of 30 10 10 1.000s -");
    has_line(&out, "leaky bucket 29 of 49 10 of 30 1 10 0.100s 0.900s");
    has_text(
        &out,
        "Fixed window: admitted 20 requests within 100 ms (t=0.950s and t=1.000s), 2x its limit",
    );
    // Per client, in a fixed table: mallory's excess costs the others nothing, a flood of
    // invented keys gets some of the table and no memory.
    has_text(
        &out,
        "a fixed table of 64 slots (1576 bytes, however many keys it sees)",
    );
    has_line(&out, "alice 7 of 8");
    has_line(&out, "bob 6 of 6");
    has_line(&out, "mallory 19 of 60");
    has_line(&out, "10,000 invented keys 315 of 10000");
}

#[test]
fn retry_patterns_shows_delays_stops_and_budgets() {
    let out = run(RETRY);
    // Delays before retries 1 to 6, and their total (seed 42).
    has_line(
        &out,
        "exponential 0.5s x 2^n, cap 8s 0.500s 1.000s 2.000s 4.000s 8.000s 8.000s 23.500s",
    );
    has_line(
        &out,
        "exp + full jitter U(0, 0.5s x 2^n) 0.395s 0.493s 1.608s 0.159s 4.336s 3.646s 10.640s",
    );
    has_line(
        &out,
        "linear 0.5s, +0.5s per retry, cap 3s 0.500s 1.000s 1.500s 2.000s 2.500s 3.000s 10.500s",
    );
    // One client through the outage, each retry's delay and why.
    has_line(
        &out,
        "attempt 3 t=0.888s failed -> retry in 1.608s (full jitter drew it from 0..2.000s)",
    );
    has_line(&out, "attempt 6 t=6.993s succeeded");
    has_line(&out, "immediate 10 - - gave up: attempts exhausted");
    has_line(&out, "exponential 5 t=7.500s 2.500s recovered");
    // The herd.
    has_line(&out, "none 100 of 100");
    has_line(&out, "full 34 of 100");
    // The stops.
    has_line(
        &out,
        "-> give up: permanent failure (the classifier says 404 will not go away)",
    );
    has_line(
        &out,
        "-> attempt 2 in 2.000s: the server's hint replaces the backoff's 0.500s",
    );
    has_line(
        &out,
        "-> attempt 3 in 10.000s: the server's hint, cut to the 10s bound (the backoff said 1.000s)",
    );
    has_line(
        &out,
        "-> give up: deadline would be passed (the next wait, 2.000s, would end at t=3.500s, past the deadline)",
    );
    has_line(
        &out,
        "-> give up: attempts exhausted (attempt 3 was the last of 3)",
    );
    // The storm: calls while down, retries, load, calls after, retries, succeeded, refused.
    has_line(&out, "no budget 392 292 3.92x 116 16 105 of 200 0");
    has_line(&out, "token budget (gRPC) 104 4 1.04x 100 0 90 of 200 110");
    has_line(
        &out,
        "ratio budget (Finagle) 112 12 1.12x 111 11 100 of 200 100",
    );
}

#[test]
fn circuit_breaker_reports_every_transition_of_each_window() {
    let out = run(BREAKER);
    has_line(
        &out,
        "count (last 10 calls) .................x.x.x.x.x--------!!--------!!--------++........................",
    );
    has_line(
        &out,
        "consecutive (5 in a row) .................x.x.x.x.x.x.x.xxxxx--------!!--------++........................",
    );
    // The count window trips in the flaky phase, the others only once it is down.
    has_line(
        &out,
        "t=6.300s Closed -> Open failure rate 50.00% reached the 50% threshold",
    );
    has_line(
        &out,
        "t=8.800s Closed -> Open failure threshold reached (100%)",
    );
    has_line(
        &out,
        "t=8.300s Closed -> Open failure rate 50.00% reached the 50% threshold",
    );
    has_line(
        &out,
        "t=8.500s Open -> HalfOpen open 2.200s (past its open duration): 2 probes allowed",
    );
    has_line(&out, "t=8.800s HalfOpen -> Open a probe failed: open again");
    // The growing open duration: 2 s, then 4 s.
    has_line(
        &out,
        "t=13.000s Open -> HalfOpen open 4.200s (past its open duration): 2 probes allowed",
    );
    has_line(&out, "t=13.800s HalfOpen -> Closed both probes succeeded");
    // Side by side.
    has_line(
        &out,
        "consecutive (5 in a row) t=8.800s 2x 14 16 6 t=13.800s",
    );
    has_line(&out, "count (last 10 calls) t=6.300s 3x 9 24 9 t=13.800s");
    has_line(&out, "time (last 5 s) t=8.300s 2x 12 16 4 t=13.300s");
    has_line(&out, "count, open 2s x 2^n t=6.300s 2x 7 24 7 t=13.300s");
}

#[test]
fn combined_patterns_counts_refusals_per_layer_in_pipeline_order() {
    let out = run(COMBINED);
    has_line(&out, "0-1 healthy 25 25 0 0 0 0 0");
    has_line(&out, "7-8 slow 25 0 5 1 19 0 0 Closed -> Open at t=7.000s");
    has_line(
        &out,
        "16-17 degraded 25 9 5 1 6 1 3 HalfOpen -> Closed at t=16.350s",
    );
    let layers = [
        "1 overall_timeout 13 the caller's 0.600s ran out",
        "2 rate_limit 111 over 20 per second (burst 10)",
        "3 bulkhead 8 8 calls already in flight",
        "4 circuit_breaker 174 open: failed fast, downstream not called",
        "5 retry 19 gave up: 0 attempts exhausted, 15 budget, 0 deadline, 4 breaker opened",
        "6 attempt_timeout - refuses no call: 19 attempts timed out after 0.400s and counted as failures",
        "succeeded 275 12 of them after a retry",
    ];
    for line in layers {
        has_line(&out, line);
    }
    // The layers appear in core's order, and every request is accounted for once.
    let positions: Vec<usize> = layers[..6]
        .iter()
        .map(|l| squeeze(&out).find(&squeeze(l)).expect("present"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let count = |row: &str, column: usize| -> u32 {
        let line = out
            .lines()
            .map(squeeze)
            .find(|l| l.starts_with(row))
            .expect("the row is printed");
        line.split(' ')
            .nth(column)
            .expect("the column")
            .parse()
            .expect("a count")
    };
    let refused: u32 = [
        "1 overall_timeout",
        "2 rate_limit",
        "3 bulkhead",
        "4 circuit_breaker",
        "5 retry",
    ]
    .iter()
    .map(|row| count(row, 2))
    .sum();
    assert_eq!(
        refused + count("succeeded", 1),
        600,
        "every request is counted once"
    );
    has_text(&out, "600 requests made 332 calls to the downstream");
}

#[test]
fn tour_runs_the_highlights_quickly_and_ends_with_a_summary() {
    let started = Instant::now();
    let out = run(TOUR);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the tour must take under a minute"
    );
    has_line(
        &out,
        "the same clock stepped back to t=10s 0.000s elapsed since t=3600s: never negative",
    );
    has_line(&out, "slept 24 h: the clock reads t=86400.000s");
    has_line(&out, "fixed window 30 of 49 20 of 30 20 20 0.050s -");
    // Section 7: the throttle halves what is sent; the backend accepts as much.
    has_line(&out, "no protection 6000 1800 3.33");
    has_line(&out, "retry budget (3 attempts, 10%) 6642 1800 3.69");
    has_line(&out, "adaptive throttle (K = 2) 3546 1800 1.97");
    // Section 8: injected faults met by the retry and the attempt timeout, then none.
    has_line(&out, "20% errors, no retry 797 1000 797 7.970s");
    has_line(&out, "20% errors, 3 attempts 994 1288 994 24.340s");
    has_line(&out, "20% +300 ms, 100 ms timeout 992 1263 992 50.170s");
    has_line(&out, "switched off 1000 1000 1000 10.000s");
    // Section 9: the same decisions, every failure answered by the last good price.
    has_line(&out, "no fallback 30 0 0 8 62 39");
    has_line(&out, "fallback 30 8 62 0 0 39");
    // Section 10: hedging at the learned p90 cuts p99 9x for 5.7% more calls; too early,
    // the budget caps the extra calls and the p99 barely moves.
    has_line(&out, "no hedging 11 ms 282 ms 0 (0.0%)");
    has_line(
        &out,
        "hedged at the learned p90, 10% budget 11 ms 30 ms 574 (5.7%)",
    );
    has_line(
        &out,
        "hedged after 2 ms, 10% budget 11 ms 279 ms 1012 (10.1%)",
    );
    has_line(
        &out,
        "t=6.300s Closed -> Open failure rate 50.00% reached the 50% threshold",
    );
    has_line(
        &out,
        "4 circuit_breaker 174 open: failed fast, downstream not called",
    );
    // The summary table, last.
    let summary = &out[out.find("\nSummary\n").expect("a summary")..];
    has_line(
        summary,
        "rate limiting 5 limiters, 10/s, 49 bursty requests fixed window: 20 in 100 ms; sliding log: 10 in any 1 s",
    );
    has_line(
        summary,
        "retry + jitter 100 clients fail together peak retries in 100 ms: 100 without jitter, 34 with full jitter",
    );
    has_line(
        summary,
        "retry budget 200 operations against a dead downstream load 3.92x without a budget, 1.04x with a token budget",
    );
    has_line(
        summary,
        "circuit breaker last-10-calls window, 50% threshold opened at t=6.300s, 24 calls failed fast, closed at t=13.800s",
    );
    has_line(
        summary,
        "all layers 600 requests, flaky downstream 275 ok; refused: overall timeout 13, rate limit 111, bulkhead 8, circuit breaker 174, retry 19",
    );
    has_line(
        summary,
        "fallback the dependency down from call 30 of 100 answered: 30 without a fallback, 100 with one (30 fresh, 70 stand-ins)",
    );
    has_line(
        summary,
        "hedging 10,000 calls, p99 25x the median p99: 282 ms plain, 30 ms hedged at the learned p90 for 5.7% more calls; 10.1% when hedging after 2 ms",
    );
    has_line(
        summary,
        "cargo run -p stanchion-examples --bin combined_patterns",
    );
}

#[test]
fn every_example_prints_the_same_output_on_every_run() {
    for bin in [RATE, RETRY, BREAKER, COMBINED] {
        assert_eq!(run(bin), run(bin), "{bin} is not deterministic");
    }
}
