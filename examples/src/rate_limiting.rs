//! Five rate limiters with one quota (10 per second) on the same bursty traffic: which
//! requests each admits, the fixed window's boundary burst, and how long each tells a
//! denied caller to wait.

use std::time::Duration;

use stanchion::Instant;
use stanchion::rate::{
    FixedWindow, FullTablePolicy, KeyedTokenBucket, LeakyBucket, Quota, RateLimitError,
    SlidingWindowCounter, SlidingWindowLog, Spacing, TokenBucket, WindowQuota,
};

use crate::timeline::{Table, at, heading, note, secs};

/// The quota every limiter enforces: 10 per second.
pub const LIMIT: u32 = 10;

/// The arrivals: `(instant, requests)`. Two bursts of 15 straddling the window boundary
/// at t=1.000s, 50 ms apart, then one request every 100 ms until t=2.900s.
pub fn traffic() -> Vec<(Instant, u32)> {
    let mut arrivals = vec![
        (Instant::from_millis(950), 15),
        (Instant::from_millis(1_000), 15),
    ];
    arrivals.extend((11..=29).map(|tenth| (Instant::from_millis(tenth * 100), 1)));
    arrivals
}

/// One of the five limiters, behind one interface for the comparison.
#[derive(Debug)]
pub enum Limiter {
    /// GCRA: burst 10, one token every 100 ms.
    TokenBucket(TokenBucket),
    /// 10 per fixed second.
    FixedWindow(FixedWindow),
    /// 10 per second, the previous second weighted by overlap.
    SlidingWindowCounter(SlidingWindowCounter),
    /// 10 in any second, exactly.
    SlidingWindowLog(SlidingWindowLog<10>),
    /// One every 100 ms, queued at most 900 ms.
    LeakyBucket(LeakyBucket),
}

impl Limiter {
    /// The five limiters, configured for [`LIMIT`] per second.
    pub fn all() -> Vec<Limiter> {
        let quota = WindowQuota::per_second(LIMIT).expect("a valid window quota");
        vec![
            Limiter::TokenBucket(TokenBucket::new(
                Quota::per_second(LIMIT).expect("a valid quota"),
            )),
            Limiter::FixedWindow(FixedWindow::new(quota)),
            Limiter::SlidingWindowCounter(SlidingWindowCounter::new(quota)),
            Limiter::SlidingWindowLog(SlidingWindowLog::new(quota).expect("limit fits the log")),
            Limiter::LeakyBucket(LeakyBucket::new(
                Spacing::new(Duration::from_millis(100), Duration::from_millis(900))
                    .expect("a valid spacing"),
            )),
        ]
    }

    /// The limiter's name, as the tables print it.
    pub fn name(&self) -> &'static str {
        match self {
            Limiter::TokenBucket(_) => "token bucket",
            Limiter::FixedWindow(_) => "fixed window",
            Limiter::SlidingWindowCounter(_) => "sliding counter",
            Limiter::SlidingWindowLog(_) => "sliding log",
            Limiter::LeakyBucket(_) => "leaky bucket",
        }
    }

    /// One request at `now`: the instant at which it may go (later than `now` only for
    /// the leaky bucket, which queues), or the denial.
    pub fn request(&mut self, now: Instant) -> Result<Instant, RateLimitError> {
        match self {
            Limiter::TokenBucket(l) => l.acquire_at(1, now).map(|()| now),
            Limiter::FixedWindow(l) => l.acquire_at(1, now).map(|()| now),
            Limiter::SlidingWindowCounter(l) => l.acquire_at(1, now).map(|()| now),
            Limiter::SlidingWindowLog(l) => l.acquire_at(1, now).map(|()| now),
            Limiter::LeakyBucket(l) => l.reserve_at(now),
        }
    }
}

/// What one limiter did with the traffic.
#[derive(Clone, Debug)]
pub struct LimiterRun {
    /// The limiter's name.
    pub name: &'static str,
    /// Per arrival instant, one mark per request: `#` admitted, `.` denied.
    pub marks: Vec<String>,
    /// Requests offered.
    pub offered: u32,
    /// Requests admitted.
    pub admitted: u32,
    /// Of the 30 requests of the two bursts, how many were admitted.
    pub burst_admitted: u32,
    /// The instants at which the admitted requests go.
    pub goes: Vec<Instant>,
    /// The wait the first denial asked for.
    pub first_denial_wait: Option<Duration>,
    /// The longest an admitted request was queued (leaky bucket only).
    pub longest_queue_wait: Duration,
}

impl LimiterRun {
    /// The most admitted requests that go within any span of `span` (half-open).
    pub fn most_within(&self, span: Duration) -> usize {
        let mut goes = self.goes.clone();
        goes.sort();
        (0..goes.len())
            .map(|i| {
                goes[i..]
                    .iter()
                    .take_while(|g| **g < goes[i] + span)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// Runs `limiter` over [`traffic`].
pub fn run_limiter(mut limiter: Limiter) -> LimiterRun {
    let mut run = LimiterRun {
        name: limiter.name(),
        marks: Vec::new(),
        offered: 0,
        admitted: 0,
        burst_admitted: 0,
        goes: Vec::new(),
        first_denial_wait: None,
        longest_queue_wait: Duration::ZERO,
    };
    for (now, n) in traffic() {
        let mut marks = String::new();
        for _ in 0..n {
            run.offered += 1;
            match limiter.request(now) {
                Ok(go) => {
                    marks.push('#');
                    run.admitted += 1;
                    if n > 1 {
                        run.burst_admitted += 1;
                    }
                    run.goes.push(go);
                    run.longest_queue_wait = run.longest_queue_wait.max(go - now);
                }
                Err(e) => {
                    marks.push('.');
                    if run.first_denial_wait.is_none() {
                        run.first_denial_wait = e.retry_after();
                    }
                }
            }
        }
        run.marks.push(marks);
    }
    run
}

/// Runs all five limiters over the traffic.
pub fn run_all() -> Vec<LimiterRun> {
    Limiter::all().into_iter().map(run_limiter).collect()
}

/// Prints the comparison table of `runs` (the tour prints this alone).
pub fn print_summary(runs: &[LimiterRun]) {
    let mut table = Table::new(&[
        "limiter",
        "admitted",
        "of the bursts",
        "most in 100 ms",
        "most in 1 s",
        "first denial: wait",
        "longest queued",
    ]);
    for r in runs {
        table.row([
            r.name.to_string(),
            format!("{} of {}", r.admitted, r.offered),
            format!("{} of 30", r.burst_admitted),
            r.most_within(Duration::from_millis(100)).to_string(),
            r.most_within(Duration::from_secs(1)).to_string(),
            r.first_denial_wait.map_or("-".into(), secs),
            if r.longest_queue_wait.is_zero() {
                "-".to_string()
            } else {
                secs(r.longest_queue_wait)
            },
        ]);
    }
    table.print();
}

/// Slots in the per-client table of [`per_client`].
pub const CLIENT_SLOTS: usize = 64;

/// What the per-client limiter did for one client: `(name, admitted, offered)`.
pub type ClientCount = (String, u32, u32);

/// One quota per client in a fixed table of [`CLIENT_SLOTS`] slots, 5 per second each:
/// alice and bob send 2 a second and mallory 20 a second for 3 s; then, in the fourth
/// second, while alice goes on, a flood of 10,000 invented keys arrives (10 per ms).
pub fn per_client() -> Vec<ClientCount> {
    let mut table: KeyedTokenBucket<CLIENT_SLOTS> = KeyedTokenBucket::new(
        Quota::per_second(5).expect("a valid quota"),
        FullTablePolicy::DenyNewKeys,
        (0x5eed, 0xfeed),
    );
    let mut counts: Vec<ClientCount> = ["alice", "bob", "mallory", "10,000 invented keys"]
        .iter()
        .map(|n| (n.to_string(), 0, 0))
        .collect();
    let mut ask = |table: &mut KeyedTokenBucket<CLIENT_SLOTS>, who: usize, key: &str, t| {
        counts[who].2 += 1;
        if table.acquire_at(key, 1, t).is_ok() {
            counts[who].1 += 1;
        }
    };
    // One tick per millisecond for 4 s.
    for ms in 0..4_000u64 {
        let t = Instant::from_millis(ms);
        if ms % 500 == 0 {
            ask(&mut table, 0, "alice", t);
            if ms < 3_000 {
                ask(&mut table, 1, "bob", t);
            }
        }
        if ms < 3_000 && ms % 50 == 0 {
            ask(&mut table, 2, "mallory", t);
        }
        if ms >= 3_000 {
            for k in 0..10 {
                ask(&mut table, 3, &format!("invented-{ms}-{k}"), t);
            }
        }
    }
    counts
}

/// The whole example.
pub fn run() {
    crate::say!("Rate limiting: five limiters, one quota of {LIMIT} per second, the same traffic");
    crate::say!("(virtual time: every instant below is simulated, the run takes no wall time)");

    heading("1. The traffic, request by request");
    note(
        "15 requests at t=0.950s and 15 more at t=1.000s (two bursts, 50 ms apart, on either \
         side of a window boundary), then one request every 100 ms until t=2.900s: 49 in all. \
         # = admitted, . = denied. The leaky bucket admits by queueing: its # go later, \
         spaced 100 ms apart.",
    );
    let runs = run_all();
    let mut names = vec!["arrival"];
    names.extend(runs.iter().map(|r| r.name));
    crate::say!();
    let mut table = Table::new(&names).left_aligned();
    for (i, (t, _)) in traffic().iter().enumerate() {
        let mut row = vec![at(*t)];
        row.extend(runs.iter().map(|r| r.marks[i].clone()));
        table.row(row);
    }
    table.print();

    heading("2. Side by side");
    crate::say!();
    print_summary(&runs);
    crate::say!();
    note(
        "'most in 100 ms' is the sharpest spike the downstream sees; 'most in 1 s' is the \
         most admitted in any one-second span; 'first denial: wait' is the retry_after the \
         first refused caller was given (always exact, never zero).",
    );

    heading("3. Why they differ");
    let by_name = |name: &str| runs.iter().find(|r| r.name == name).expect("ran");
    let fixed = by_name("fixed window");
    note(&format!(
        "Fixed window: admitted {} requests within 100 ms (t=0.950s and t=1.000s), {}x its \
         limit: its count starts again at the window boundary t=1.000s. This boundary burst \
         is its documented trade-off.",
        fixed.most_within(Duration::from_millis(100)),
        fixed.most_within(Duration::from_millis(100)) as u32 / LIMIT
    ));
    let token = by_name("token bucket");
    note(&format!(
        "Token bucket: the full bucket's burst of {LIMIT}, then one request per 100 ms as \
         tokens refill; {} in the second from t=0.950s is the burst plus the refill.",
        token.most_within(Duration::from_secs(1))
    ));
    let counter = by_name("sliding counter");
    note(&format!(
        "Sliding counter: the previous second still weighs 100% at t=1.000s, so the second \
         burst gets nothing. It is an estimate: it assumes the previous second's requests \
         were spread evenly, so as the window slides it lets the steady requests in ({} in \
         the second from t=0.950s), never more than {LIMIT} per fixed window.",
        counter.most_within(Duration::from_secs(1))
    ));
    let log = by_name("sliding log");
    note(&format!(
        "Sliding log: exact; at most {} in any second, each denial waits until the oldest \
         grant leaves the window.",
        log.most_within(Duration::from_secs(1))
    ));
    let leaky = by_name("leaky bucket");
    note(&format!(
        "Leaky bucket: a queue, not a counter; admitted {} and released them one per 100 ms \
         (at most {} within 100 ms), each waiting at most {}.",
        leaky.admitted,
        leaky.most_within(Duration::from_millis(100)),
        secs(leaky.longest_queue_wait)
    ));

    heading("4. One quota per client, in bounded memory");
    note(&format!(
        "A KeyedTokenBucket keeps one token bucket per client in a fixed table of \
         {CLIENT_SLOTS} slots ({} bytes, however many keys it sees), 5 per second each. \
         alice and bob send 2 a second and mallory 20 a second for 3 s; in the fourth \
         second, while alice goes on, 10,000 invented keys arrive.",
        std::mem::size_of::<KeyedTokenBucket<CLIENT_SLOTS>>()
    ));
    crate::say!();
    let mut table = Table::new(&["client", "admitted"]);
    for (name, admitted, offered) in per_client() {
        table.row([name, format!("{admitted} of {offered}")]);
    }
    table.print();
    crate::say!();
    note(
        "Each client gets its own quota: mallory's flood costs alice and bob nothing. A key \
         whose bucket has filled up again frees its slot (forgetting it changes no decision), \
         so the table holds only the keys active within a second; when every slot is busy, \
         new keys are refused (FullTablePolicy::DenyNewKeys) rather than evicting a client \
         that is still limited. Inventing keys buys a flood some of the table, never memory.",
    );
    note(
        "The price shows in alice's row: between her requests her bucket filled up, so her \
         slot went to an invented key and she came back to a full table once. Size the \
         table for the keys active within one refill time, and do not let callers choose \
         keys freely (a service should limit unknown API keys by client address).",
    );
}
