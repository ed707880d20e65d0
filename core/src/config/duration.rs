//! Durations in a human form: `"250ms"`, `"5s"`, `"1m30s"`, read and written without
//! allocation or floating point.
//!
//! A duration is one or more whole numbers, each followed by a unit, added up:
//!
//! | unit | meaning |
//! |---|---|
//! | `ns` | nanosecond |
//! | `us` (or `µs`) | microsecond |
//! | `ms` | millisecond |
//! | `s` | second |
//! | `m` | minute |
//! | `h` | hour |
//! | `d` | day (86 400 s) |
//!
//! No sign, no fraction, no spaces, no bare number: `"1.5s"` is written `"1500ms"`, and
//! `"90"` is refused (90 what?). A sum past [`Duration::MAX`] is an error, never a
//! saturated value. [`HumanDuration`] writes a duration back in the largest unit that
//! holds it exactly (`"90s"`, `"1500ms"`, `"2h"`), which [`parse`] reads back to the same
//! value, to the nanosecond.
//!
//! ```
//! use core::time::Duration;
//! use stanchion::config::duration::{HumanDuration, parse};
//!
//! assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
//! assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
//! assert!(parse("1.5s").is_err());
//! assert_eq!(format!("{}", HumanDuration(Duration::from_secs(90))), "90s");
//! assert_eq!(format!("{}", HumanDuration(Duration::from_secs(7200))), "2h");
//! ```
//!
//! With the `serde` feature, `serde_human` reads and writes a `Duration` field of your
//! own types in this form (`#[serde(with = "stanchion::config::duration::serde_human")]`).

use core::fmt;
use core::time::Duration;

/// Why a duration string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DurationError {
    /// Not of the form `<number><unit>...` (empty, a sign, a fraction, a space, a bare
    /// number, or a unit without a number).
    Syntax,
    /// A unit other than `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, `d`.
    UnknownUnit,
    /// Longer than [`Duration::MAX`] (`u64::MAX` seconds and 999 999 999 ns).
    Overflow,
}

impl DurationError {
    /// The allowed form, in words: a phrase that completes "`field` must be ...", as a
    /// [`ConfigError`](crate::ConfigError)'s.
    pub const fn allowed(self) -> &'static str {
        match self {
            DurationError::Syntax => {
                "a duration such as \"250ms\" or \"1m30s\" (whole numbers, each with a unit)"
            }
            DurationError::UnknownUnit => {
                "a duration whose units are ns, us, ms, s, m, h or d (such as \"250ms\")"
            }
            DurationError::Overflow => {
                "a duration below 18446744073709551616s (about 584 billion years)"
            }
        }
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not {}", self.allowed())
    }
}

impl core::error::Error for DurationError {}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The units, largest first, in nanoseconds.
const UNITS: [(&str, u128); 7] = [
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// The length of one `unit`, in nanoseconds.
fn unit_nanos(unit: &str) -> Option<u128> {
    if unit == "µs" {
        return Some(1_000);
    }
    UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, n)| *n)
}

/// The largest duration, in nanoseconds.
const MAX_NANOS: u128 = (u64::MAX as u128) * NANOS_PER_SEC + (NANOS_PER_SEC - 1);

/// Reads a duration such as `"250ms"`, `"5s"` or `"1m30s"` (see the [module docs](self)).
///
/// # Errors
///
/// [`DurationError::Syntax`] for anything not of the form `<number><unit>...`,
/// [`DurationError::UnknownUnit`], and [`DurationError::Overflow`] past
/// [`Duration::MAX`].
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Syntax);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if number.is_empty() || unit.is_empty() {
            return Err(DurationError::Syntax);
        }
        if !unit.chars().all(|c| c.is_alphabetic()) {
            return Err(DurationError::Syntax);
        }
        let per_unit = unit_nanos(unit).ok_or(DurationError::UnknownUnit)?;
        let mut value: u128 = 0;
        for b in number.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(b.wrapping_sub(b'0'))))
                .ok_or(DurationError::Overflow)?;
        }
        total = value
            .checked_mul(per_unit)
            .and_then(|n| total.checked_add(n))
            .filter(|&n| n <= MAX_NANOS)
            .ok_or(DurationError::Overflow)?;
        rest = next;
    }
    // At most MAX_NANOS: the seconds fit a u64 and the rest is below one second.
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| DurationError::Overflow)?;
    let nanos = u32::try_from(total % NANOS_PER_SEC).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::new(secs, nanos))
}

/// A duration written in the largest unit that holds it exactly: `"90s"`, `"1500ms"`,
/// `"2h"`, `"0s"` (what [`parse`] reads back to the same value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        let (unit, per_unit) = UNITS
            .iter()
            .find(|(_, per)| nanos.checked_rem(*per) == Some(0))
            .copied()
            .unwrap_or(("ns", 1));
        write!(f, "{}{unit}", nanos.checked_div(per_unit).unwrap_or(nanos))
    }
}

/// `Serialize` and `Deserialize` for a [`Duration`] field of your own types, in the
/// human form: `#[serde(with = "stanchion::config::duration::serde_human")]`.
///
/// The error on a bad value says what a duration looks like; serde's error path (or
/// `serde_path_to_error`) names the field.
///
/// ```
/// use core::time::Duration;
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Probe {
///     #[serde(with = "stanchion::config::duration::serde_human")]
///     every: Duration,
/// }
///
/// let probe: Probe = serde_json::from_str(r#"{ "every": "1m30s" }"#).unwrap();
/// assert_eq!(probe.every, Duration::from_secs(90));
/// assert_eq!(serde_json::to_string(&probe).unwrap(), r#"{"every":"90s"}"#);
/// ```
#[cfg(feature = "serde")]
pub mod serde_human {
    use core::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Writes `duration` as a string in the largest exact unit.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        super::super::serde_support::serialize_duration(*duration, serializer)
    }

    /// Reads a duration string such as `"250ms"` or `"1m30s"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        super::super::serde_support::deserialize_duration(deserializer)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn reads_each_unit() {
        assert_eq!(parse("10ns"), Ok(Duration::from_nanos(10)));
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("100µs"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("0ns"), Ok(Duration::ZERO));
        assert_eq!(parse("007ms"), Ok(Duration::from_millis(7)));
    }

    #[test]
    fn adds_up_compound_durations() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h1m1s1ms1us1ns"), Ok(Duration::new(3661, 1_001_001)));
        // Any order, and a unit may repeat: the parts are added.
        assert_eq!(parse("30s1m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1s1s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for text in [
            "", "5", "s", "ms5", "1.5s", "-1s", "+1s", " 1s", "1s ", "1 s", "1s,2s", "1_000ms",
            "5s!",
        ] {
            assert_eq!(parse(text), Err(DurationError::Syntax), "{text:?}");
        }
        for text in ["5x", "5sec", "5S", "5MS", "1w", "5mss", "3y", "1e3s"] {
            assert_eq!(parse(text), Err(DurationError::UnknownUnit), "{text:?}");
        }
    }

    #[test]
    fn refuses_overflow_rather_than_saturate() {
        // The largest duration, exactly, and one nanosecond more.
        let max = "18446744073709551615s999999999ns";
        assert_eq!(parse(max), Ok(Duration::MAX));
        assert_eq!(
            parse("18446744073709551615s1000000000ns"),
            Err(DurationError::Overflow)
        );
        assert_eq!(parse("18446744073709551616s"), Err(DurationError::Overflow));
        assert_eq!(parse("213503982334602d"), Err(DurationError::Overflow));
        assert_eq!(
            parse("213503982334601d"),
            Ok(Duration::from_secs(213_503_982_334_601 * 86_400))
        );
        // More digits than a u128 holds.
        assert_eq!(
            parse("999999999999999999999999999999999999999999ns"),
            Err(DurationError::Overflow)
        );
        // A sum past the end.
        assert_eq!(
            parse("18446744073709551615s1s"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn writes_the_largest_exact_unit() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_500), "1500ns"),
            (Duration::from_micros(7), "7us"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(86_400 * 3), "3d"),
            (Duration::MAX, "18446744073709551615999999999ns"),
            (Duration::from_secs(u64::MAX), "18446744073709551615s"),
        ];
        for (duration, text) in cases {
            assert_eq!(HumanDuration(duration).to_string(), text);
            assert_eq!(parse(text), Ok(duration));
        }
    }

    #[test]
    fn error_words() {
        assert_eq!(
            DurationError::UnknownUnit.to_string(),
            "not a duration whose units are ns, us, ms, s, m, h or d (such as \"250ms\")"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::proptest_cases(2000)))]
        #[test]
        fn writes_what_it_reads(secs: u64, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            let text = HumanDuration(d).to_string();
            proptest::prop_assert_eq!(parse(&text), Ok(d));
        }
    }
}
