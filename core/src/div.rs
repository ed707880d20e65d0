//! 64-bit division without the library routine on 32-bit targets.
//!
//! A 32-bit processor has no instruction that divides 64-bit integers, so `a / b` on `u64`
//! calls compiler-builtins' division routine: about 930 bytes of flash on Cortex-M, more
//! than most of this crate's patterns. Core divides rarely: once per configuration (a
//! ratio to fixed point), on cold paths (the largest request an error names, a biased
//! random draw), and to turn nanoseconds into seconds or a clock's ticks. On 32-bit targets
//! those go through [`checked_div_rem`] below, binary long division in a few dozen bytes:
//! one compare and subtract per bit of the quotient, so it is quick for what core divides
//! (nanoseconds into seconds: as many steps as the seconds have bits). Hosts use the
//! hardware's division.

/// `Some((a / b, a % b))`, or `None` if `b` is zero.
#[cfg(target_pointer_width = "64")]
#[inline]
pub(crate) const fn checked_div_rem(a: u64, b: u64) -> Option<(u64, u64)> {
    match (a.checked_div(b), a.checked_rem(b)) {
        (Some(q), Some(r)) => Some((q, r)),
        _ => None,
    }
}

#[cfg(not(target_pointer_width = "64"))]
pub(crate) use long_div_rem as checked_div_rem;

/// [`checked_div_rem`] by binary long division (see [`div_rem_nonzero`]). Compiled on
/// 64-bit targets too, for its test.
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
#[inline]
pub(crate) const fn long_div_rem(a: u64, b: u64) -> Option<(u64, u64)> {
    if b == 0 {
        None
    } else {
        Some(div_rem_nonzero(a, b))
    }
}

/// `(a / b, a % b)` for `b` above zero: the divisor is shifted up under the dividend's
/// highest bit, then each step subtracts it where it fits and halves it, giving one bit
/// of the quotient. Out of line: one copy serves every caller.
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
#[inline(never)]
pub(crate) const fn div_rem_nonzero(a: u64, b: u64) -> (u64, u64) {
    // When `b <= a`, `b` has at least as many leading zeros, and shifting it by the
    // difference puts its highest bit under `a`'s without overflow; when `b > a`, one
    // step finds the quotient zero. (`& 63` only keeps the shift in range for `b = 0`,
    // which callers exclude.)
    let shift = b.leading_zeros().saturating_sub(a.leading_zeros()) & 63;
    let mut d = b << shift;
    let mut q = 0u64;
    let mut r = a;
    let mut steps = shift.wrapping_add(1);
    while steps > 0 {
        q <<= 1;
        if r >= d {
            r = r.wrapping_sub(d);
            q |= 1;
        }
        d >>= 1;
        steps = steps.wrapping_sub(1);
    }
    (q, r)
}

/// `Some(a / b)`, or `None` if `b` is zero.
#[inline]
pub(crate) const fn checked_div(a: u64, b: u64) -> Option<u64> {
    match checked_div_rem(a, b) {
        Some((q, _)) => Some(q),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_division_is_division() {
        let edges = [
            0,
            1,
            2,
            3,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            1 << 32,
            (1 << 32) + 1,
            u64::MAX / 3,
            u64::MAX - 1,
            u64::MAX,
        ];
        for a in edges {
            for b in edges {
                let want = a.checked_div(b).zip(a.checked_rem(b));
                assert_eq!(long_div_rem(a, b), want, "{a} / {b}");
                assert_eq!(checked_div_rem(a, b), want, "{a} / {b}");
            }
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 64)
        };
        // Fewer under Miri, which interprets every step.
        for _ in 0..if cfg!(miri) { 500 } else { 100_000 } {
            let (a, b) = (next(), next());
            let want = a.checked_div(b).zip(a.checked_rem(b));
            assert_eq!(long_div_rem(a, b), want, "{a} / {b}");
        }
    }
}
