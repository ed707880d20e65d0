//! The breaker's states, the errors its decisions return, and the packed state word.
//!
//! The word is one `u64`: the state in bits `0..4`, and four flags, set only in closed and
//! metrics-only: *streak* in bit 4 (the window's failure streak is kept in the word, where
//! calls that are not slow update it), *busy* in bit 5 (the critical section has taken the
//! batch or the streak out of the word and will set its flag again, or not, when it ends),
//! *batch* in bit 6 (a success that is not slow may be counted in the word and recorded in
//! the window later) and *quiet* in bit 7 (such a success would leave the window
//! unchanged, so it need not enter the critical section). Bits `8..24` hold the half-open
//! slots in use; in closed and metrics-only, the successes counted while the batch flag is
//! set, or the failure streak while the streak flag is set. Bits `24..64` hold the
//! *period*, which counts transitions (wrapping after 2^40 of them): a permit remembers
//! the period that issued it, so a late outcome or release from an earlier period is
//! recognised and changes nothing.

use core::fmt;
use core::time::Duration;

use crate::time::ShowDuration;

/// A circuit breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// Calls pass and their outcomes are recorded; the breaker opens when a threshold is
    /// exceeded.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A limited number of probe calls pass; their outcomes decide between closed and open.
    HalfOpen,
    /// Calls pass and nothing is recorded (set by hand).
    Disabled,
    /// Calls are rejected until a manual transition (set by hand).
    ForcedOpen,
    /// Calls pass and are recorded; thresholds are reported but never open the breaker (set
    /// by hand).
    MetricsOnly,
}

impl State {
    /// The state's code in the word: the states that let calls through without asking
    /// have bit 2 clear ([`passes`]), and of those, the two that record outcomes in the
    /// window are below 2 ([`records`]); one bit test each.
    pub(crate) const fn code(self) -> u64 {
        match self {
            State::Closed => 0,
            State::MetricsOnly => 1,
            State::Disabled => 2,
            State::Open => 4,
            State::HalfOpen => 5,
            State::ForcedOpen => 6,
        }
    }

    pub(crate) const fn from_code(code: u64) -> State {
        match code {
            0 => State::Closed,
            1 => State::MetricsOnly,
            2 | 3 => State::Disabled,
            4 => State::Open,
            5 => State::HalfOpen,
            _ => State::ForcedOpen,
        }
    }

    /// Whether a manual transition from `self` to `to` is allowed.
    ///
    /// resilience4j's transition table: every transition is legal except
    ///
    /// - into [`State::HalfOpen`] from a state that lets calls through
    ///   ([`State::Closed`], [`State::MetricsOnly`]): half-open probes a breaker that was
    ///   rejecting;
    /// - from [`State::MetricsOnly`] to [`State::Open`]: metrics-only never opens, by
    ///   hand either (go through closed or forced-open).
    ///
    /// A transition to the same state is legal and silent.
    pub const fn can_transition_to(self, to: State) -> bool {
        !matches!(
            (self, to),
            (State::Closed, State::HalfOpen) | (State::MetricsOnly, State::HalfOpen | State::Open)
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::Disabled => "disabled",
            State::ForcedOpen => "forced-open",
            State::MetricsOnly => "metrics-only",
        })
    }
}

/// A call the breaker did not let through.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rejected {
    /// How long until the breaker lets a call through, when that is known: in
    /// [`State::Open`], the time until the first instant strictly after the open duration
    /// (never zero). `None` in [`State::ForcedOpen`] (until a manual transition) and in
    /// [`State::HalfOpen`] with every probe slot taken (until a probe finishes).
    pub retry_after: Option<Duration>,
    /// The state that rejected the call.
    pub state: State,
}

impl Rejected {
    /// [`retry_after`](Self::retry_after) in whole seconds, for a `Retry-After` header: the
    /// fewest whole seconds after which (strictly) a call is let through. Never early, and
    /// never a whole second late.
    ///
    /// `retry_after` runs to the first instant let through, the last one rejected plus
    /// 1 ns; a client that waits N seconds calls strictly after them, so N need only cover
    /// the time up to the last rejected instant: `retry_after` less 1 ns, rounded up.
    /// Rounding `retry_after` itself up would add a whole second at exact boundaries (an
    /// open duration of 30 s would say 31). `Some(0)` when the last rejected instant is
    /// now (a header that must not say 0 takes at least 1); `None` with `retry_after`.
    ///
    /// ```
    /// use core::time::Duration;
    /// use stanchion::breaker::{Rejected, State};
    ///
    /// let after = |nanos| Rejected { retry_after: Some(Duration::from_nanos(nanos)), state: State::Open };
    /// assert_eq!(after(30_000_000_001).retry_after_secs(), Some(30)); // open for 30 s from now
    /// assert_eq!(after(30_000_000_002).retry_after_secs(), Some(31));
    /// assert_eq!(after(1).retry_after_secs(), Some(0));
    /// ```
    pub const fn retry_after_secs(&self) -> Option<u64> {
        let Some(wait) = self.retry_after else {
            return None;
        };
        // Up to the last rejected instant (`retry_after` is never zero from a breaker; a
        // zero one built by hand is taken as "now").
        let Some(left) = wait.checked_sub(Duration::new(0, 1)) else {
            return Some(0);
        };
        let whole = left.as_secs();
        Some(if left.subsec_nanos() > 0 {
            whole.saturating_add(1)
        } else {
            whole
        })
    }
}

impl fmt::Display for Rejected {
    /// `circuit breaker open: retry after 30s`: the wait up to the last rejected instant,
    /// after which (strictly) a call is let through, as
    /// [`retry_after_secs`](Rejected::retry_after_secs) counts it; `retry_after` itself
    /// runs 1 ns further, to the first instant let through, which would print as
    /// `30.000000001s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(d) => write!(
                f,
                "circuit breaker {}: retry after {}",
                self.state,
                ShowDuration(d.saturating_sub(Duration::from_nanos(1)))
            ),
            None => write!(f, "circuit breaker {}: call not permitted", self.state),
        }
    }
}

impl fmt::Debug for Rejected {
    /// As derived, with the wait printed by core's small duration printer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("retry_after", &self.retry_after.map(ShowDuration))
            .field("state", &self.state)
            .finish()
    }
}

impl core::error::Error for Rejected {}

/// A breaker's state at an instant and when time alone moves it on, from
/// [`CircuitBreaker::state_at`](super::CircuitBreaker::state_at): a query that counts no
/// rejection, reports no event and moves nothing.
///
/// Transitions in time are lazy: `state` is the state the breaker is in, and `until`
/// at or before the instant asked about means the next acquire (or outcome) moves it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StateAt {
    /// The state the breaker is in.
    pub state: State,
    /// When time alone moves the breaker on: in [`State::Open`], the first instant at
    /// which an acquire is let through (as the first half-open probe), the instant
    /// strictly after the open duration (saturating at [`Instant::MAX`](crate::Instant::MAX));
    /// in [`State::HalfOpen`] with a maximum wait, the instant at which it runs out.
    /// `None` otherwise: calls or a manual transition move the breaker on.
    pub until: Option<crate::Instant>,
    /// In [`State::Open`], while an acquire at the instant asked about would be rejected:
    /// the `retry_after` that rejection would carry (`until` minus that instant, never
    /// zero). `None` otherwise.
    pub retry_after: Option<Duration>,
}

impl fmt::Debug for StateAt {
    /// As derived, with the wait printed by core's small duration printer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateAt")
            .field("state", &self.state)
            .field("until", &self.until)
            .field("retry_after", &self.retry_after.map(ShowDuration))
            .finish()
    }
}

/// A manual transition that the state machine does not allow (see
/// [`State::can_transition_to`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct IllegalTransition {
    /// The state the breaker was in (and stays in).
    pub from: State,
    /// The state that was asked for.
    pub to: State,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "illegal circuit breaker transition from {} to {}",
            self.from, self.to
        )
    }
}

impl core::error::Error for IllegalTransition {}

const STATE_MASK: u64 = 0x0F;
/// The streak flag (see the module docs).
pub(crate) const STREAK: u64 = 0x10;
/// The busy flag (see the module docs).
pub(crate) const BUSY: u64 = 0x20;
/// The batch flag (see the module docs).
pub(crate) const BATCH: u64 = 0x40;
/// The quiet flag (see the module docs).
pub(crate) const QUIET: u64 = 0x80;
const SLOT_SHIFT: u32 = 8;
const SLOT_MASK: u64 = 0xFFFF;
/// The slots field in place: the half-open slots, or the batched successes.
pub(crate) const SLOT_FIELD: u64 = SLOT_MASK << SLOT_SHIFT;
const PERIOD_SHIFT: u32 = 24;
const PERIOD_MASK: u64 = (1 << 40) - 1;

/// Packs a state word.
#[inline]
pub(crate) const fn pack(state: State, slots: u16, period: u64) -> u64 {
    ((period & PERIOD_MASK) << PERIOD_SHIFT) | ((slots as u64) << SLOT_SHIFT) | state.code()
}

#[inline]
pub(crate) const fn state_of(word: u64) -> State {
    State::from_code(word & STATE_MASK)
}

/// Whether `word`'s state lets calls through without asking: closed, disabled,
/// metrics-only. Used by the lock-free acquire only (see `WORD_RECORDS`).
#[cfg_attr(
    any(not(target_has_atomic = "64"), stanchion_breaker_locked),
    allow(dead_code)
)]
#[inline]
pub(crate) const fn passes(word: u64) -> bool {
    word & 0x4 == 0
}

/// Whether `word`'s state records outcomes in the window: closed, metrics-only.
#[inline]
pub(crate) const fn records(word: u64) -> bool {
    word & 0x6 == 0
}

/// Whether `word`'s state is `state`.
#[inline]
pub(crate) const fn is(word: u64, state: State) -> bool {
    word & STATE_MASK == state.code()
}

#[inline]
pub(crate) const fn slots_of(word: u64) -> u16 {
    ((word >> SLOT_SHIFT) & SLOT_MASK) as u16
}

#[inline]
pub(crate) const fn period_of(word: u64) -> u64 {
    word >> PERIOD_SHIFT
}

/// `word` with its slots field set to `slots`.
#[inline]
pub(crate) const fn with_slots(word: u64, slots: u16) -> u64 {
    (word & !SLOT_FIELD) | ((slots as u64) << SLOT_SHIFT)
}

/// The period after `word`'s, wrapping after 2^40 transitions (wrap is the intent: only
/// equality of periods matters).
#[inline]
pub(crate) const fn next_period(word: u64) -> u64 {
    period_of(word).wrapping_add(1) & PERIOD_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_round_trips() {
        for state in [
            State::Closed,
            State::Open,
            State::HalfOpen,
            State::Disabled,
            State::ForcedOpen,
            State::MetricsOnly,
        ] {
            let w = pack(state, 65_535, PERIOD_MASK);
            assert_eq!(state_of(w), state);
            assert_eq!(slots_of(w), 65_535);
            assert_eq!(period_of(w), PERIOD_MASK);
            assert_eq!(next_period(w), 0);
            let flagged = w | BATCH | QUIET | BUSY | STREAK;
            assert_eq!(state_of(flagged), state);
            assert!(is(flagged, state));
            assert_eq!(
                passes(flagged),
                matches!(state, State::Closed | State::Disabled | State::MetricsOnly)
            );
            assert_eq!(
                records(flagged),
                matches!(state, State::Closed | State::MetricsOnly)
            );
            assert_eq!(slots_of(with_slots(flagged, 7)), 7);
            assert_eq!(with_slots(flagged, 7) & !SLOT_FIELD, flagged & !SLOT_FIELD);
        }
        assert_eq!(next_period(pack(State::Open, 3, 7)), 8);
    }

    #[test]
    fn legal_transitions() {
        assert!(!State::Closed.can_transition_to(State::HalfOpen));
        assert!(!State::MetricsOnly.can_transition_to(State::HalfOpen));
        assert!(!State::MetricsOnly.can_transition_to(State::Open));
        assert!(State::MetricsOnly.can_transition_to(State::ForcedOpen));
        assert!(State::Open.can_transition_to(State::MetricsOnly));
        assert!(State::Open.can_transition_to(State::HalfOpen));
        assert!(State::ForcedOpen.can_transition_to(State::HalfOpen));
        assert!(State::Disabled.can_transition_to(State::HalfOpen));
        assert!(State::Closed.can_transition_to(State::Closed));
        assert!(State::HalfOpen.can_transition_to(State::Closed));
    }
}
