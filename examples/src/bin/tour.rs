//! The guided tour of stanchion: the README's first command.
//!
//! ```text
//! cargo run -p stanchion-examples --bin tour
//! ```
//!
//! Everything runs on virtual time, so the tour finishes at once however many simulated
//! hours it covers. It shows core's time model and tokio's paused clock, then the
//! highlights of each family's example (the same code, from `stanchion_examples`): five
//! rate limiters on one bursty traffic, jitter against a thundering herd and a budget
//! against a retry storm, a circuit breaker's windows and transitions, and every layer in
//! front of one flaky downstream, adaptive client-side throttling on an overloaded
//! backend, fault injection rehearsing a flaky dependency, and a fallback answering what
//! the pipeline refuses; it ends with a summary table.

use std::time::Duration;

use stanchion::pipeline::Layer;
use stanchion::retry::Jitter;
use stanchion::{Clock, Instant, ManualClock};
use stanchion_examples::timeline::{Align, Table, at, heading, note, secs};
use stanchion_examples::{
    circuit_breaker, combined_patterns, fallback, fault_injection, hedging, rate_limiting,
    retry_patterns, say, throttling,
};
use stanchion_std::TokioClock;

fn main() {
    let wall = std::time::Instant::now();
    say!("stanchion tour: resilience patterns on virtual time");
    say!("(every instant below is simulated; the whole tour takes well under a second)");
    let mut summary = Table::new(&["pattern", "what it did", "numbers"])
        .align(1, Align::Left)
        .align(2, Align::Left);
    time_model();
    let day = tokio_virtual_time();
    summary.row([
        "virtual time".to_string(),
        "a day of sleeps on tokio's paused clock".to_string(),
        format!(
            "{} h of virtual time, no wall time",
            day.as_nanos() / 3_600_000_000_000
        ),
    ]);
    rate_limiting(&mut summary);
    retry(&mut summary);
    breaker(&mut summary);
    combined(&mut summary);
    throttling(&mut summary);
    faults(&mut summary);
    fallbacks(&mut summary);
    hedged(&mut summary);

    heading("Summary");
    say!();
    summary.print();
    say!();
    say!(
        "  The tour took {} ms of wall time.",
        wall.elapsed().as_millis()
    );
    say!("\nEach family in full:");
    for bin in [
        "rate_limiting",
        "retry_patterns",
        "circuit_breaker",
        "combined_patterns",
    ] {
        say!("  cargo run -p stanchion-examples --bin {bin}");
    }
}

/// Five limiters on the same bursts.
fn rate_limiting(summary: &mut Table) {
    heading("3. Rate limiting: five limiters, 10 per second, the same bursty traffic");
    note(
        "15 requests at t=0.950s, 15 at t=1.000s (either side of a window boundary), then one \
         every 100 ms until t=2.900s.",
    );
    say!();
    let runs = rate_limiting::run_all();
    rate_limiting::print_summary(&runs);
    let fixed = runs.iter().find(|r| r.name == "fixed window").expect("ran");
    let log = runs.iter().find(|r| r.name == "sliding log").expect("ran");
    let burst = fixed.most_within(Duration::from_millis(100));
    say!();
    note(&format!(
        "The fixed window's boundary burst: {burst} admitted within 100 ms, because its count \
         starts again at t=1.000s. The sliding log never admits more than {} in any second.",
        log.most_within(Duration::from_secs(1))
    ));
    summary.row([
        "rate limiting".to_string(),
        "5 limiters, 10/s, 49 bursty requests".to_string(),
        format!(
            "fixed window: {burst} in 100 ms; sliding log: {} in any 1 s",
            log.most_within(Duration::from_secs(1))
        ),
    ]);
}

/// Jitter against the thundering herd, and a budget against a retry storm.
fn retry(summary: &mut Table) {
    heading("4. Retry: jitter spreads a herd, a budget stops a storm");
    let none = retry_patterns::herd_peak(Jitter::NONE);
    let full = retry_patterns::herd_peak(Jitter::FULL);
    note(&format!(
        "100 clients fail at the same instant and retry with exponential backoff: without \
         jitter {none} of them retry in the same 100 ms, every time; with full jitter at most \
         {full}."
    ));
    note(
        "200 operations, 4 attempts each, against a downstream that is down for 5 s, then \
         fails one call in ten:",
    );
    say!();
    let storms = retry_patterns::storms();
    retry_patterns::print_storms(&storms);
    summary.row([
        "retry + jitter".to_string(),
        "100 clients fail together".to_string(),
        format!("peak retries in 100 ms: {none} without jitter, {full} with full jitter"),
    ]);
    let load = |i: usize| f64::from(storms[i].1.outage_calls.0) / 100.0;
    summary.row([
        "retry budget".to_string(),
        "200 operations against a dead downstream".to_string(),
        format!(
            "load {:.2}x without a budget, {:.2}x with a token budget",
            load(0),
            load(1)
        ),
    ]);
}

/// Three breaker windows on one failure pattern.
fn breaker(summary: &mut Table) {
    heading("5. Circuit breaker: healthy, flaky, down, healthy again");
    note(
        ". = ok, x = failed, - = rejected without calling, + = probe ok, ! = probe failed; \
         one call every 250 ms.",
    );
    say!();
    let runs = circuit_breaker::run_all();
    circuit_breaker::print_strips(&runs);
    let count = &runs[1];
    circuit_breaker::print_transitions(count);
    say!();
    circuit_breaker::print_summary(&runs);
    let transitions = count.transitions();
    let opened = transitions
        .iter()
        .find(|(_, to, _)| *to == stanchion::breaker::State::Open);
    let closed = transitions.last();
    summary.row([
        "circuit breaker".to_string(),
        "last-10-calls window, 50% threshold".to_string(),
        format!(
            "opened at {}, {} calls failed fast, closed at {}",
            opened.map_or("-".into(), |(_, _, t)| at(*t)),
            count.rejected,
            closed.map_or("-".into(), |(_, _, t)| at(*t)),
        ),
    ]);
}

/// Every layer in front of one flaky downstream.
fn combined(summary: &mut Table) {
    heading("6. Everything together, in pipeline order, on tokio's paused clock");
    note(
        "600 requests over 24 s against a downstream that is healthy, slow (t=6-10s), down \
         (t=10-14s), degraded (t=14-18s), then healthy; each layer counts the calls it refused:",
    );
    say!();
    let run = combined_patterns::simulate();
    combined_patterns::print_layers(&run);
    let refused: Vec<String> = Layer::ORDER
        .iter()
        .filter(|l| !matches!(l, Layer::AttemptTimeout | Layer::FaultInjection))
        .map(|l| format!("{} {}", l.name().replace('_', " "), run.count(Some(*l))))
        .collect();
    summary.row([
        "all layers".to_string(),
        "600 requests, flaky downstream".to_string(),
        format!("{} ok; refused: {}", run.count(None), refused.join(", ")),
    ]);
}

/// Client-side throttling against a retry budget on an overloaded backend.
fn throttling(summary: &mut Table) {
    heading("7. Adaptive throttling: the client sheds what the backend would reject");
    note(
        "The client wants 100 calls/s; the backend serves 30/s and rejects the rest at once. \
         Calls in the second minute of two:",
    );
    say!();
    let runs = throttling::run_all();
    let mut table =
        Table::new(&["client", "sent", "accepted", "sent per accepted"]).align(0, Align::Left);
    for r in &runs {
        table.row([
            r.name.to_string(),
            r.sent.to_string(),
            r.accepted.to_string(),
            format!("{:.2}", f64::from(r.sent) / f64::from(r.accepted)),
        ]);
    }
    table.print();
    let [plain, budget, throttle] = runs;
    say!();
    note(&format!(
        "A retry budget caps only the retries: every first attempt still goes out. The throttle \
         refuses locally with probability (requests - 2 x accepts) / (requests + 1), so what \
         it sends falls towards twice what is accepted, and the backend accepts as much as before \
         ({} of {} calls).",
        throttle.accepted, throttle.sent
    ));
    summary.row([
        "adaptive throttle".to_string(),
        "100/s demand, backend serves 30/s".to_string(),
        format!(
            "calls sent: {} with no protection, {} with a retry budget, {} throttled; {} accepted each",
            plain.sent, budget.sent, throttle.sent, throttle.accepted
        ),
    ]);
}

/// Fault injection in front of a healthy downstream, through the pipeline.
fn faults(summary: &mut Table) {
    heading("8. Fault injection: rehearsing a flaky dependency");
    note(
        "A healthy downstream (10 ms) behind the pipeline, with a seeded fault injection \
         innermost; 1,000 calls per phase, the injection reconfigured between phases and then \
         switched off:",
    );
    say!();
    let phases = fault_injection::run_all();
    let mut table =
        Table::new(&["phase", "ok", "attempts", "downstream calls", "took"]).align(0, Align::Left);
    for p in &phases {
        table.row([
            p.name.to_string(),
            p.ok.to_string(),
            p.attempts.to_string(),
            p.downstream_calls.to_string(),
            secs(p.took),
        ]);
    }
    table.print();
    say!();
    note(
        "Every layer above meets an injected fault as the downstream's own: the retry hides \
         the errors, the attempt timeout cuts the latency. The same seed picks the same calls \
         every run; one atomic store switches it off.",
    );
    let [once, retried, slow, off] = phases;
    summary.row([
        "fault injection".to_string(),
        "20% of calls faulted, then off".to_string(),
        format!(
            "ok of 1000: {} without retry, {} with 3 attempts, {} with +300 ms; {} switched off",
            once.ok, retried.ok, slow.ok, off.ok
        ),
    ]);
}

/// A fallback answering what the pipeline refuses.
fn fallbacks(summary: &mut Table) {
    heading("9. Fallback: the last good answer when the dependency is down");
    note(
        "A price service goes down for good at its 30th call; 100 calls, 100 ms apart, \
         through a breaker (3 failures in a row, open 1 s) and 2 attempts, without and with \
         a fallback covering every failure:",
    );
    say!();
    let [plain, covered] = fallback::run_both();
    let mut table = Table::new(&[
        "run",
        "fresh",
        "stand-in: gave up",
        "stand-in: breaker open",
        "failed: gave up",
        "failed: breaker open",
        "service calls",
    ])
    .align(0, Align::Left);
    for (name, run) in [("no fallback", plain), ("fallback", covered)] {
        table.row([
            name.to_string(),
            run.fresh.to_string(),
            run.stand_in_gave_up.to_string(),
            run.stand_in_refused.to_string(),
            run.failed_gave_up.to_string(),
            run.failed_refused.to_string(),
            run.service_calls.to_string(),
        ]);
    }
    table.print();
    say!();
    note(
        "The fallback changes no decision: the same calls reach the service, the breaker \
         opens as often; each failure becomes the last good price instead, and the fallback \
         gets the original error, so it can count which layer it answered for.",
    );
    summary.row([
        "fallback".to_string(),
        "the dependency down from call 30 of 100".to_string(),
        format!(
            "answered: {} without a fallback, {} with one ({} fresh, {} stand-ins)",
            plain.fresh,
            covered.fresh + covered.stand_in_gave_up + covered.stand_in_refused,
            covered.fresh,
            covered.stand_in_gave_up + covered.stand_in_refused
        ),
    ]);
}

/// Hedging on a downstream with a long tail, at a learned p90, within a budget.
fn hedged(summary: &mut Table) {
    heading("10. Hedging: a second attempt when the first is slow");
    note(
        "A downstream answers 94% of calls in 5-15 ms and 6% in 200-300 ms. 10,000 idempotent \
         calls, one after another; a hedge is a second attempt started when the first has not \
         answered after the delay, the first answer wins and the other is dropped:",
    );
    say!();
    let runs = hedging::run_all();
    let mut table = Table::new(&["client", "p50", "p99", "extra calls"]).align(0, Align::Left);
    for r in &runs {
        table.row([
            r.name.to_string(),
            ms(r.p50),
            ms(r.p99),
            format!(
                "{} ({:.1}%)",
                r.extra_calls,
                f64::from(r.extra_calls) * 100.0 / f64::from(hedging::CALLS)
            ),
        ]);
    }
    table.print();
    let [plain, learned, early] = runs;
    say!();
    note(
        "At the learned p90 only the slow first attempts are hedged, and a slow one is \
         rarely slow twice. Hedging after 2 ms would hedge nearly every call: the budget \
         stops it at 10% more calls, spent on calls that were fast anyway, so the p99 \
         barely moves. Whatever the delay, a slow dependency never gets multiplied load.",
    );
    summary.row([
        "hedging".to_string(),
        "10,000 calls, p99 25x the median".to_string(),
        format!(
            "p99: {} plain, {} hedged at the learned p90 for {:.1}% more calls; {:.1}% when hedging after 2 ms",
            ms(plain.p99),
            ms(learned.p99),
            f64::from(learned.extra_calls) * 100.0 / f64::from(hedging::CALLS),
            f64::from(early.extra_calls) * 100.0 / f64::from(hedging::CALLS),
        ),
    ]);
}

/// A duration in whole milliseconds.
fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Core's time model: saturating instants and a manual clock.
fn time_model() {
    heading("1. Time in core: u64 nanoseconds, saturating, never panicking");
    let clock = ManualClock::new();
    let start = clock.now();
    clock.advance(Duration::from_secs(3600));
    let mut table = Table::new(&["what", "reads", "why"]).align(2, Align::Left);
    table.row([
        "a ManualClock advanced by one hour".to_string(),
        at(clock.now()),
        format!("elapsed {}", secs(clock.now() - start)),
    ]);
    clock.set(Instant::from_secs(10));
    table.row([
        "the same clock stepped back to t=10s".to_string(),
        secs(clock.now() - Instant::from_secs(3600)),
        "elapsed since t=3600s: never negative".to_string(),
    ]);
    table.row([
        "Instant::MAX + 1 s".to_string(),
        at(Instant::MAX + Duration::from_secs(1)),
        "saturates: 584 years of range".to_string(),
    ]);
    say!();
    table.print();
}

/// The tokio clock honours paused time, so async code is testable in zero wall time.
fn tokio_virtual_time() -> Instant {
    heading("2. Tokio's paused clock drives TokioClock");
    say!();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let wall = std::time::Instant::now();
    let virtual_elapsed = rt.block_on(async {
        let clock = TokioClock::starting_now();
        for hour in 1..=24 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            if hour % 8 == 0 {
                say!("  slept {hour:>2} h: the clock reads {}", at(clock.now()));
            }
        }
        clock.now()
    });
    note(&format!(
        "A virtual day took {} ms of wall time: tokio skips ahead to the next timer when \
         every task is waiting.",
        wall.elapsed().as_millis()
    ));
    virtual_elapsed
}
