//! The pieces every configuration type's serde form is made of: durations and ratios that
//! keep a bad value until the type's constructor names its field, and their writers.
//!
//! A document is first read into a plain "raw" form of each type, whose duration and
//! ratio fields ([`Dur`], [`Frac`]) accept any value and remember what was wrong with it;
//! the type is then built from the raw form through its own constructor. So every refusal,
//! a bad duration as much as a burst of zero, is a [`ConfigError`] naming the field and
//! the allowed range, in the constructor's words.

use core::fmt::{self, Write};
use core::time::Duration;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Error as _, Serializer};
use serde::{Deserialize, Serialize};

use super::duration::{DurationError, HumanDuration, parse};
use crate::ConfigError;

/// A small stack buffer for [`fmt::Write`], so that a duration is written out without
/// allocating.
pub(crate) struct Buffer<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Buffer<N> {
    pub(crate) const fn new() -> Self {
        Buffer {
            bytes: [0; N],
            len: 0,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so the bytes up to `len` are UTF-8.
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl<const N: usize> fmt::Write for Buffer<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Long enough for any duration (31 bytes) and any ratio (`"4294967295/4294967295"`,
/// a 32.32 decimal of 21 bytes).
type Text = Buffer<48>;

/// Writes `duration` in the largest exact unit.
pub(crate) fn serialize_duration<S: Serializer>(
    duration: Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut text = Text::new();
    write!(text, "{}", HumanDuration(duration)).map_err(S::Error::custom)?;
    serializer.serialize_str(text.as_str())
}

/// Reads a duration string; the error says what a duration looks like.
pub(crate) fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    Dur::deserialize(deserializer)?
        .0
        .map_err(|e| de::Error::custom(Expected(e.allowed())))
}

/// The error of a value read on its own, outside a configuration type, which cannot name
/// its field (serde's error path, or `serde_path_to_error`, does).
pub(crate) struct Expected(pub(crate) &'static str);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid value: expected {}", self.0)
    }
}

/// A duration as read, or what was wrong with it (named with its field later, by
/// [`Dur::get`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dur(pub(crate) Result<Duration, DurationError>);

impl Dur {
    pub(crate) const fn of(duration: Duration) -> Dur {
        Dur(Ok(duration))
    }

    pub(crate) const fn nanos(nanos: u64) -> Dur {
        Dur(Ok(Duration::from_nanos(nanos)))
    }

    /// The duration, or the error naming `field`.
    pub(crate) fn get(self, field: &'static str) -> Result<Duration, ConfigError> {
        self.0.map_err(|e| ConfigError::new(field, e.allowed()))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Ok(d) => serialize_duration(d, serializer),
            Err(e) => Err(S::Error::custom(e)),
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Capture;
        impl<'de> Visitor<'de> for Capture {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DurationError::Syntax.allowed())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Ok(Dur(parse(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Dur, E> {
                Ok(Dur(Err(DurationError::Syntax)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Dur, E> {
                Ok(Dur(Err(DurationError::Syntax)))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Dur, E> {
                Ok(Dur(Err(DurationError::Syntax)))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Dur, E> {
                Ok(Dur(Err(DurationError::Syntax)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Dur, E> {
                Ok(Dur(Err(DurationError::Syntax)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dur, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Dur(Err(DurationError::Syntax)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dur, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Dur(Err(DurationError::Syntax)))
            }
        }
        // Self-describing formats (JSON, TOML) hand over whatever the document holds, so
        // a number where a duration belongs is named with its field; compact binary
        // formats can only be asked for the string that was written.
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Capture)
        } else {
            deserializer.deserialize_str(Capture)
        }
    }
}

/// What the text of a ratio may look like, in words.
pub(crate) const RATIO_FORM: &str =
    "a ratio such as 2, \"1.5\", \"3/2\" or \"10%\" (no floating-point numbers)";

/// A ratio as read: `num / den` with `den >= 1`, exactly (no floating point), or its
/// form was wrong. Integers and the strings `"N"`, `"N/D"`, `"N.F"`, `"N%"` and `"N.F%"`
/// are read; `"1.5"` is `15/10`, `"10%"` is `10/100`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frac(pub(crate) Option<(u128, u128)>);

impl Frac {
    /// Reads the text of a ratio.
    pub(crate) fn parse(text: &str) -> Frac {
        Frac(parse_fraction(text))
    }

    /// The exact pair, or the error naming `field`.
    pub(crate) fn pair(self, field: &'static str) -> Result<(u128, u128), ConfigError> {
        self.0.ok_or(ConfigError::new(field, RATIO_FORM))
    }

    /// As a [`Ratio`](crate::retry::Ratio) of two `u32`, unreduced.
    pub(crate) fn ratio(self, field: &'static str) -> Result<crate::retry::Ratio, ConfigError> {
        let (num, den) = self.pair(field)?;
        match (u32::try_from(num), u32::try_from(den)) {
            (Ok(num), Ok(den)) => crate::retry::Ratio::new(num, den),
            _ => Err(ConfigError::new(
                field,
                "a ratio whose numerator and denominator are at most 4294967295",
            )),
        }
    }

    /// The value as 32.32 fixed point, rounded down (as
    /// [`Ratio`](crate::retry::Ratio)'s own conversion rounds), or `None` from 2^32 up.
    pub(crate) fn q32(self, field: &'static str) -> Result<Option<u64>, ConfigError> {
        let (num, den) = self.pair(field)?;
        Ok(q32(num, den))
    }
}

/// `floor(num / den * 2^32)`, if below 2^64.
fn q32(num: u128, den: u128) -> Option<u64> {
    let whole = num.checked_div(den)?;
    let rest = num.checked_rem(den)?;
    // rest < den <= 10^20 < 2^67, so the shift cannot overflow.
    let fraction = (rest << 32).checked_div(den)?;
    let whole = u64::try_from(whole).ok().filter(|w| *w < 1 << 32)?;
    Some((whole << 32) | u64::try_from(fraction).ok()?)
}

/// Digits of a decimal, at most 19 (so that the value fits a `u64`).
fn digits(text: &str) -> Option<(u128, u32)> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: u128 = 0;
    for b in text.bytes() {
        value = value
            .checked_mul(10)?
            .checked_add(u128::from(b.wrapping_sub(b'0')))?;
    }
    Some((value, u32::try_from(text.len()).ok()?))
}

fn parse_fraction(text: &str) -> Option<(u128, u128)> {
    let (text, percent) = match text.strip_suffix('%') {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (num, den) = if let Some((n, d)) = text.split_once('/') {
        if percent {
            return None;
        }
        let (num, _) = digits(n)?;
        let (den, _) = digits(d)?;
        (num, den)
    } else if let Some((whole, fraction)) = text.split_once('.') {
        let (whole, _) = digits(whole)?;
        let (fraction, places) = digits(fraction)?;
        let scale = 10u128.checked_pow(places)?;
        (whole.checked_mul(scale)?.checked_add(fraction)?, scale)
    } else {
        (digits(text)?.0, 1)
    };
    let den = if percent { den.checked_mul(100)? } else { den };
    if den == 0 {
        return None;
    }
    Some((num, den))
}

impl Serialize for Frac {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some((num, 1)) => serialize_whole(num, serializer),
            Some((num, den)) => {
                let mut text = Text::new();
                if den == 100 {
                    write!(text, "{num}%")
                } else {
                    write!(text, "{num}/{den}")
                }
                .map_err(S::Error::custom)?;
                serializer.serialize_str(text.as_str())
            }
            None => Err(S::Error::custom(RATIO_FORM)),
        }
    }
}

impl<'de> Deserialize<'de> for Frac {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Capture;
        impl<'de> Visitor<'de> for Capture {
            type Value = Frac;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(RATIO_FORM)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Frac, E> {
                Ok(Frac::parse(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Frac, E> {
                Ok(Frac(Some((u128::from(v), 1))))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Frac, E> {
                Ok(Frac(u64::try_from(v).ok().map(|v| (u128::from(v), 1))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Frac, E> {
                Ok(Frac(u64::try_from(v).ok().map(|v| (u128::from(v), 1))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Frac, E> {
                Ok(Frac(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Frac, E> {
                Ok(Frac(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Frac, E> {
                Ok(Frac(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Frac, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Frac(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Frac, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Frac(None))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Capture)
        } else {
            deserializer.deserialize_str(Capture)
        }
    }
}

/// The shortest decimal (at most 10 places) whose 32.32 fixed-point value, rounded down
/// as [`Frac::q32`] rounds, is exactly `q`: what a factor or a spread kept as 32.32 is
/// written as, so that it reads back to the same bits. Ten places always suffice: they
/// step by 10^-10, finer than 2^-32.
pub(crate) fn q32_decimal(q: u64) -> Frac {
    let q = u128::from(q);
    let mut scale: u128 = 1;
    for _ in 0..=10 {
        // The smallest n with n / scale >= q / 2^32; it rounds down to q when below
        // (q + 1) / 2^32.
        let n = (q.saturating_mul(scale)).div_ceil(1 << 32);
        if n.saturating_mul(1 << 32) < q.saturating_add(1).saturating_mul(scale) {
            return Frac(Some((n, scale)));
        }
        scale = scale.saturating_mul(10);
    }
    // Unreachable (see above); the exact binary fraction is never wrong.
    Frac(Some((q, 1 << 32)))
}

/// Writes a value kept as 32.32 fixed point: a whole number as a number, otherwise the
/// shortest decimal string that reads back to the same bits (`"1.5"`, `"0.1"`).
pub(crate) fn serialize_q32<S: Serializer>(q: u64, serializer: S) -> Result<S::Ok, S::Error> {
    match q32_decimal(q).0 {
        Some((n, 1)) => serialize_whole(n, serializer),
        Some((n, scale)) => {
            let mut text = Text::new();
            let places = scale.ilog10() as usize;
            let whole = n.checked_div(scale).unwrap_or(0);
            let fraction = n.checked_rem(scale).unwrap_or(0);
            write!(text, "{whole}.{fraction:0places$}").map_err(S::Error::custom)?;
            serializer.serialize_str(text.as_str())
        }
        None => Err(S::Error::custom(RATIO_FORM)),
    }
}

/// A whole number as a number (a `u64`, which every format holds; the callers' never
/// exceed it), or a string past that.
fn serialize_whole<S: Serializer>(n: u128, serializer: S) -> Result<S::Ok, S::Error> {
    match u64::try_from(n) {
        Ok(n) => serializer.serialize_u64(n),
        Err(_) => {
            let mut text = Text::new();
            write!(text, "{n}").map_err(S::Error::custom)?;
            serializer.serialize_str(text.as_str())
        }
    }
}

/// A 32.32 fixed-point value, for a raw form's field: written by [`serialize_q32`], read as
/// any [`Frac`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Q32 {
    /// Being written: the bits.
    Bits(u64),
    /// As read.
    Read(Frac),
}

impl Q32 {
    /// The bits, or the error naming `field` (`range` when at or above 2^32).
    pub(crate) fn get(self, field: &'static str, range: &'static str) -> Result<u64, ConfigError> {
        match self {
            Q32::Bits(q) => Ok(q),
            Q32::Read(frac) => frac.q32(field)?.ok_or(ConfigError::new(field, range)),
        }
    }
}

impl Serialize for Q32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Q32::Bits(q) => serialize_q32(q, serializer),
            Q32::Read(frac) => frac.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Q32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Frac::deserialize(deserializer).map(Q32::Read)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn buffer_holds_the_longest_duration() {
        use core::fmt::Write;
        let mut b = Buffer::<40>::new();
        write!(b, "{}", HumanDuration(Duration::MAX)).unwrap();
        assert_eq!(b.as_str(), "18446744073709551615999999999ns");
        let mut small = Buffer::<2>::new();
        assert!(write!(small, "abc").is_err());
    }

    #[test]
    fn reads_ratios_exactly() {
        assert_eq!(parse_fraction("2"), Some((2, 1)));
        assert_eq!(parse_fraction("3/2"), Some((3, 2)));
        assert_eq!(parse_fraction("1.5"), Some((15, 10)));
        assert_eq!(parse_fraction("0.125"), Some((125, 1000)));
        assert_eq!(parse_fraction("10%"), Some((10, 100)));
        assert_eq!(parse_fraction("12.5%"), Some((125, 1000)));
        for bad in [
            "",
            "1/0",
            "0/0",
            "-1",
            "1.",
            ".5",
            "1/2%",
            "1e3",
            " 1",
            "1 ",
            "a",
            "1//2",
            "1.5.5",
            "12345678901234567890",
        ] {
            assert_eq!(parse_fraction(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fixed_point_rounds_down_as_ratio_does() {
        use crate::retry::Ratio;
        for (num, den) in [(1u32, 10u32), (3, 2), (4, 3), (1, 3), (2, 1), (999, 1000)] {
            let ratio = Ratio::new(num, den).unwrap();
            assert_eq!(
                q32(u128::from(num), u128::from(den)),
                Some(ratio.to_q32()),
                "{num}/{den}"
            );
        }
        assert_eq!(q32(1 << 32, 1), None);
        assert_eq!(
            q32(u128::from(u32::MAX), 1),
            Some(u64::from(u32::MAX) << 32)
        );
    }

    #[test]
    fn shortest_decimal_of_a_fixed_point_value() {
        let tenth = q32(1, 10).unwrap();
        assert_eq!(q32_decimal(tenth), Frac(Some((1, 10))));
        assert_eq!(q32_decimal(3 << 31), Frac(Some((15, 10))));
        assert_eq!(q32_decimal(2 << 32), Frac(Some((2, 1))));
        assert_eq!(q32_decimal(0), Frac(Some((0, 1))));
        let third = q32(1, 3).unwrap();
        let Frac(Some((n, d))) = q32_decimal(third) else {
            panic!()
        };
        assert_eq!(q32(n, d), Some(third));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::proptest_cases(4000)))]
        #[test]
        fn every_fixed_point_value_reads_back(q: u64) {
            let Frac(Some((n, d))) = q32_decimal(q) else { panic!() };
            proptest::prop_assert!(d <= 10_000_000_000);
            proptest::prop_assert_eq!(q32(n, d), Some(q));
        }
    }
}
