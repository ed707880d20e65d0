//! Named checks, one line each over semihosting, and the closing summary.
//!
//! A check is an `async fn() -> Outcome`; it returns early with a [`Failure`] through
//! [`ensure!`](crate::ensure) or [`ensure_eq!`](crate::ensure_eq), which name the quantity
//! that was wrong and, for `ensure_eq!`, the expected and actual values.

use core::fmt;

use crate::arch::hprintln;

/// What a check found wrong.
pub struct Failure {
    /// The quantity or property that was wrong, in words.
    pub what: &'static str,
    /// `(expected, got)`, when the failure is a mismatch of two numbers.
    pub values: Option<(u64, u64)>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.values {
            Some((expected, got)) => write!(f, "{}: expected {expected}, got {got}", self.what),
            None => f.write_str(self.what),
        }
    }
}

/// The result of one check.
pub type Outcome = Result<(), Failure>;

/// Returns a [`Failure`] naming `what` unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $what:expr) => {
        if !$cond {
            return Err($crate::report::Failure {
                what: $what,
                values: None,
            });
        }
    };
}

/// Returns a [`Failure`] naming `what`, with both values, unless `got == expected`.
#[macro_export]
macro_rules! ensure_eq {
    ($got:expr, $expected:expr, $what:expr) => {{
        let (got, expected): (u64, u64) = ($got, $expected);
        if got != expected {
            return Err($crate::report::Failure {
                what: $what,
                values: Some((expected, got)),
            });
        }
    }};
}

/// Tallies the checks as they run.
#[derive(Default)]
pub struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    /// Prints `check <name>: ok` or `check <name>: FAIL (<what>)` and counts it.
    pub fn record(&mut self, name: &str, outcome: Outcome) {
        match outcome {
            Ok(()) => {
                self.passed = self.passed.saturating_add(1);
                hprintln!("check {}: ok", name);
            }
            Err(failure) => {
                self.failed = self.failed.saturating_add(1);
                hprintln!("check {}: FAIL ({})", name, failure);
            }
        }
    }

    /// Prints the summary line (`firmware: N passed, N failed`) and returns whether every
    /// check passed (and at least one ran).
    pub fn finish(&self) -> bool {
        hprintln!("firmware: {} passed, {} failed", self.passed, self.failed);
        self.failed == 0 && self.passed > 0
    }
}
