//! Shared pieces of the fuzz targets: an arbitrary clock that moves forwards by small and
//! large steps, jumps to the extremes, and steps backwards.

use arbitrary::Arbitrary;
use core::time::Duration;
use stanchion::Instant;

/// One move of the fuzzed clock.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Tick {
    /// Stay.
    Same,
    /// Forwards by a few nanoseconds to a few milliseconds.
    Small(u16),
    /// Forwards by up to about 4 s, in microseconds.
    Large(u32),
    /// Backwards by up to about 4 s, in microseconds (a clock that steps back).
    Back(u32),
    /// To an arbitrary instant (may be in the past).
    To(u64),
    /// To the last instants before `Instant::MAX`.
    NearMax(u16),
    /// Back to the epoch.
    Zero,
}

/// The fuzzed clock: `now` is what the code under test is told next; `high` the latest
/// instant at which it changed its state (a grant: [`FuzzClock::granted`]; a denial
/// writes nothing, so the code cannot remember its instant), and `elapsed` the sum of the
/// forward steps between the instants it has been told ([`FuzzClock::observe`]).
///
/// A clock that steps back is "no time passed". Two readings of that are checked: the
/// window limiters promise to stay in the latest window seen, so their bounds are checked
/// against `high`; the sliding log must never grant more than the time that really
/// passed allows, `elapsed`, where a step back counts as zero and the forward steps after
/// it count in full (a wall clock set back by a minute that then runs for a minute has
/// let a minute pass).
#[derive(Debug, Clone, Copy)]
pub struct FuzzClock {
    pub now: Instant,
    pub high: Instant,
    pub elapsed: u128,
    last: Option<Instant>,
    granted: bool,
}

impl FuzzClock {
    pub fn new(start: u64) -> FuzzClock {
        let now = Instant::from_nanos(start);
        FuzzClock {
            now,
            high: now,
            elapsed: 0,
            last: None,
            granted: false,
        }
    }

    pub fn tick(&mut self, tick: Tick) {
        let n = self.now.as_nanos();
        let next = match tick {
            Tick::Same => n,
            Tick::Small(d) => n.saturating_add(u64::from(d)),
            Tick::Large(us) => n.saturating_add(u64::from(us).saturating_mul(1_000)),
            Tick::Back(us) => n.saturating_sub(u64::from(us).saturating_mul(1_000)),
            Tick::To(t) => t,
            Tick::NearMax(k) => u64::MAX - u64::from(k),
            Tick::Zero => 0,
        };
        self.now = Instant::from_nanos(next);
    }

    /// Records that the code under test is told `now`; returns it.
    pub fn observe(&mut self) -> Instant {
        if let Some(last) = self.last {
            self.elapsed = self.elapsed.saturating_add(u128::from(
                self.now.as_nanos().saturating_sub(last.as_nanos()),
            ));
        }
        self.last = Some(self.now);
        self.now
    }

    /// Records a grant at `now` (after [`observe`](FuzzClock::observe)).
    pub fn granted(&mut self) {
        if !self.granted || self.now > self.high {
            self.high = self.now;
        }
        self.granted = true;
    }

    /// Forgets the instants told so far (the code under test was reset).
    pub fn forget(&mut self) {
        self.last = None;
        self.granted = false;
    }

    /// Whether `now` is at or after every grant (the clock has not stepped back since).
    pub fn is_monotonic(&self) -> bool {
        !self.granted || self.now >= self.high
    }
}

/// A duration from fuzz input: mostly small, sometimes huge or zero.
pub fn duration(raw: u64, scale: u8) -> Duration {
    match scale % 6 {
        0 => Duration::ZERO,
        1 => Duration::from_nanos(raw % 1_000 + 1),
        2 => Duration::from_micros(raw % 1_000_000 + 1),
        3 => Duration::from_millis(raw % 100_000 + 1),
        4 => Duration::from_nanos(raw),
        _ => Duration::MAX,
    }
}
