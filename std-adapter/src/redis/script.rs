//! The Lua script that takes one decision inside Redis, its arguments, and the checks on
//! its reply.
//!
//! Redis runs Lua 5.1, whose numbers are doubles: exact integers only up to 2^53, which
//! nanoseconds since 1970 exceed (2^53 ns is 104 days). So every instant and span crosses
//! the wire, and is computed on in the script, as a pair `(seconds, nanoseconds)` with
//! `nanoseconds < 10^9`: seconds stay below 2^35, and every sum the script forms is exact.
//! The script compares and adds; everything else (the error's `retry_after`, `remaining`,
//! `reset`) is computed here by core's [`Gcra`] from the instants the script returns, and
//! the script's decision is checked against [`Gcra::decide_at`] on the same inputs.

use std::time::Duration;

use stanchion::Instant;
use stanchion::rate::{Gcra, Quota, RateLimitError};

use super::RedisLimiterError;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The decision for one key, atomically: read the server's clock (`TIME`) and the key's
/// theoretical arrival time (`"seconds nanoseconds"`, absent = a full bucket), decide as
/// GCRA does, and on a grant store the new arrival time with an expiry at the instant the
/// bucket is full again (rounded up to the millisecond, plus one: never before it), after
/// which the key is a fresh bucket and may be forgotten. A denial writes nothing.
///
/// A value under the key that is not such a state (another program's string, a hash, a
/// negative number) is read as a full bucket, as an expired state would be, and the first
/// grant replaces it (`SET` replaces a value of any type): a foreign value costs that one
/// key at most one burst, once, and nothing else, rather than failing that key forever
/// and sending its limiter to its fallback for every key.
///
/// `ARGV`: tolerance `tau`, `extra = (n - 1) * t` and `increment = n * t`, each as two
/// integers (seconds, nanoseconds); an increment of zero asks only to read (`n = 0`).
/// An optional seventh, the decision's id (hexadecimal), is stored after the state on a
/// grant (`"seconds nanoseconds id"`), for [`REFUND_SCRIPT`]; every form is read.
/// Reply: `{granted (0 or 1), now_s, now_ns, tat_s, tat_ns, new_s, new_ns}`.
pub(crate) const GCRA_SCRIPT: &str = r"
local B = 1000000000
local time = redis.call('TIME')
local now_s, now_n = tonumber(time[1]), tonumber(time[2]) * 1000
local tat_s, tat_n = 0, 0
-- pcall: a value of another type (a hash) answers GET with an error, read as absent.
local stored = redis.pcall('GET', KEYS[1])
if type(stored) == 'string' then
  local a, b = string.match(stored, '^(%d+) (%d+)$')
  if not a then
    -- A state written by a decision that may be refunded: its id follows.
    -- (`r` before it: refunded.)
    a, b = string.match(stored, '^(%d+) (%d+) r?%x+$')
  end
  -- Not a state of ours (nanoseconds of 10 digits, an instant past u64 nanoseconds):
  -- read as absent, a full bucket; a grant replaces it.
  if a and string.len(a) <= 11 and string.len(b) <= 9 and tonumber(a) < 18446744073 then
    tat_s, tat_n = tonumber(a), tonumber(b)
  end
end
local function before(as, an, bs, bn)
  return as < bs or (as == bs and an < bn)
end
local function add(as, an, bs, bn)
  local s, n = as + bs, an + bn
  if n >= B then return s + 1, n - B end
  return s, n
end
local tau_s, tau_n = tonumber(ARGV[1]), tonumber(ARGV[2])
local extra_s, extra_n = tonumber(ARGV[3]), tonumber(ARGV[4])
local inc_s, inc_n = tonumber(ARGV[5]), tonumber(ARGV[6])
if inc_s == 0 and inc_n == 0 then
  return {1, now_s, now_n, tat_s, tat_n, tat_s, tat_n}
end
-- Granted iff now >= tat + extra - tau, that is, unless now + tau < tat + extra.
local ls, ln = add(now_s, now_n, tau_s, tau_n)
local rs, rn = add(tat_s, tat_n, extra_s, extra_n)
if before(ls, ln, rs, rn) then
  return {0, now_s, now_n, tat_s, tat_n, tat_s, tat_n}
end
local start_s, start_n = now_s, now_n
if before(now_s, now_n, tat_s, tat_n) then start_s, start_n = tat_s, tat_n end
local next_s, next_n = add(start_s, start_n, inc_s, inc_n)
-- Past the end of u64 nanoseconds: never grantable, as in core.
if before(18446744073, 709551615, next_s, next_n) then
  return {0, now_s, now_n, tat_s, tat_n, tat_s, tat_n}
end
local ttl_s, ttl_n = next_s - now_s, next_n - now_n
if ttl_n < 0 then ttl_s, ttl_n = ttl_s - 1, ttl_n + B end
-- Rounded up, plus 1 ms: Redis counts the expiry from its cached millisecond clock,
-- which may trail TIME by up to a millisecond; the key must never go before tat.
local ttl_ms = ttl_s * 1000 + math.ceil(ttl_n / 1000000) + 1
-- Lua prints numbers with 14 significant digits: seconds (at most 11 digits), nanoseconds
-- (9) and the milliseconds (at most 14) print exactly, without an exponent.
local state = next_s .. ' ' .. next_n
-- With an id (a decision that may be refunded), the state names the decision that wrote it.
if ARGV[7] then state = state .. ' ' .. ARGV[7] end
redis.call('SET', KEYS[1], state, 'PX', tostring(ttl_ms))
return {1, now_s, now_n, tat_s, tat_n, next_s, next_n}
";

/// The refund of a granted decision whose reply never reached its caller: if the key's
/// state is still the one that decision wrote (it carries the decision's id, `ARGV[1]`),
/// nothing was granted on the key since, and taking the decision's increment (`ARGV[2]`,
/// `ARGV[3]`: seconds, nanoseconds) off its arrival time gives back the state before it,
/// exactly (`max(tat, now)` at the decision, which decides every later request as `tat`
/// would). The state is then stored marked refunded (`"seconds nanoseconds r<id>"`, so
/// that the same refund sent again finds it done), with the expiry at its full-again
/// instant, or `ARGV[4]` ms from now if that is later (a copy sent until then finds it).
/// Any other state (another decision
/// wrote after it; the decision was a denial, or never ran) is left alone. Reply: 1
/// refunded (now or by an earlier copy of this refund), 0 not.
pub(crate) const REFUND_SCRIPT: &str = r"
local B = 1000000000
local stored = redis.pcall('GET', KEYS[1])
if type(stored) ~= 'string' then return 0 end
local a, b, done, id = string.match(stored, '^(%d+) (%d+) (r?)(%x+)$')
if not a or id ~= ARGV[1] or string.len(a) > 11 or string.len(b) > 9 then return 0 end
if done == 'r' then return 1 end
local s, n = tonumber(a) - tonumber(ARGV[2]), tonumber(b) - tonumber(ARGV[3])
if n < 0 then s, n = s - 1, n + B end
if s < 0 then return 0 end
local time = redis.call('TIME')
local now_s, now_n = tonumber(time[1]), tonumber(time[2]) * 1000
-- Kept at least ARGV[4] ms, for a copy of this refund to find it done; a state at or
-- before now is a full bucket, as an absent key is.
local ttl_ms = tonumber(ARGV[4])
if now_s < s or (now_s == s and now_n < n) then
  local ttl_s, ttl_n = s - now_s, n - now_n
  if ttl_n < 0 then ttl_s, ttl_n = ttl_s - 1, ttl_n + B end
  ttl_ms = math.max(ttl_ms, ttl_s * 1000 + math.ceil(ttl_n / 1000000) + 1)
end
redis.call('SET', KEYS[1], s .. ' ' .. n .. ' r' .. ARGV[1], 'PX', tostring(ttl_ms))
return 1
";
/// A span as the script's `(seconds, nanoseconds)` pair.
fn split(nanos: u128) -> (u64, u64) {
    let secs = nanos / u128::from(NANOS_PER_SEC);
    let sub = nanos % u128::from(NANOS_PER_SEC);
    // At most (2^65) / 10^9 seconds: fits.
    (
        u64::try_from(secs).unwrap_or(u64::MAX),
        u64::try_from(sub).unwrap_or(0),
    )
}

/// The script's six arguments for a request of `n` permits (`n <= max_acquire`).
pub(crate) fn arguments(quota: Quota, n: u32) -> [u64; 6] {
    let t = quota.period().as_nanos();
    let tau = t.saturating_mul(u128::from(quota.burst().saturating_sub(1)));
    let (extra, increment) = if n == 0 {
        (0, 0)
    } else {
        let extra = t.saturating_mul(u128::from(n - 1));
        (extra, extra.saturating_add(t))
    };
    let (tau_s, tau_n) = split(tau);
    let (extra_s, extra_n) = split(extra);
    let (inc_s, inc_n) = split(increment);
    [tau_s, tau_n, extra_s, extra_n, inc_s, inc_n]
}

/// What the script decided, checked against core's GCRA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The decision, as core's [`Gcra`] takes it on the same state and server time.
    pub(crate) result: Result<(), RateLimitError>,
    /// The server's clock at the decision, since the Unix epoch.
    pub(crate) now: Instant,
    /// The key's theoretical arrival time after the decision.
    pub(crate) tat: Instant,
}

fn malformed(what: &'static str) -> RedisLimiterError {
    RedisLimiterError::MalformedReply(what)
}

/// An instant from the script's pair, checked.
fn instant(secs: i64, nanos: i64) -> Result<Instant, RedisLimiterError> {
    let secs = u64::try_from(secs).map_err(|_| malformed("negative seconds"))?;
    let nanos = u64::try_from(nanos)
        .ok()
        .filter(|n| *n < NANOS_PER_SEC)
        .ok_or(malformed("nanoseconds out of 0..10^9"))?;
    secs.checked_mul(NANOS_PER_SEC)
        .and_then(|s| s.checked_add(nanos))
        .map(Instant::from_nanos)
        .ok_or(malformed("an instant past u64 nanoseconds"))
}

/// Reads the script's reply for a request of `n` permits, and checks that its decision is
/// GCRA's: the same state and server time through [`Gcra::decide_at`] must give the same
/// grant or denial and the same new state. Anything else is a malformed reply.
pub(crate) fn parse(value: &redis::Value, gcra: &Gcra, n: u32) -> Result<Reply, RedisLimiterError> {
    let redis::Value::Array(items) = value else {
        return Err(malformed("not an array"));
    };
    let mut ints = [0i64; 7];
    if items.len() != ints.len() {
        return Err(malformed("not seven elements"));
    }
    for (slot, item) in ints.iter_mut().zip(items) {
        *slot = match item {
            redis::Value::Int(i) => *i,
            _ => return Err(malformed("an element is not an integer")),
        };
    }
    let [granted, now_s, now_n, tat_s, tat_n, new_s, new_n] = ints;
    let now = instant(now_s, now_n)?;
    let tat = instant(tat_s, tat_n)?;
    let new = instant(new_s, new_n)?;
    let expected = gcra.decide_at(tat, n, now);
    match (granted, expected) {
        (1, Ok(next)) if next == new => Ok(Reply {
            result: Ok(()),
            now,
            tat: new,
        }),
        (0, Err(e)) if new == tat => Ok(Reply {
            result: Err(e),
            now,
            tat,
        }),
        (0 | 1, _) => Err(malformed("the decision differs from GCRA's")),
        _ => Err(malformed("the grant flag is not 0 or 1")),
    }
}

/// The time from `now` until state `tat` is a full bucket again.
pub(crate) fn reset(gcra: &Gcra, reply: &Reply) -> Duration {
    gcra.time_to_full_at(reply.tat, reply.now)
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    fn ints(v: [i64; 7]) -> Value {
        Value::Array(v.iter().map(|i| Value::Int(*i)).collect())
    }

    fn gcra() -> Gcra {
        Gcra::new(Quota::per_second(10).unwrap().with_burst(3).unwrap())
    }

    #[test]
    fn arguments_split_spans_into_seconds_and_nanoseconds() {
        let q = Quota::per_second(10).unwrap().with_burst(3).unwrap();
        assert_eq!(arguments(q, 0), [0, 200_000_000, 0, 0, 0, 0]);
        assert_eq!(
            arguments(q, 3),
            [0, 200_000_000, 0, 200_000_000, 0, 300_000_000]
        );
        let slow = Quota::per_minute(1).unwrap().with_burst(2).unwrap();
        assert_eq!(arguments(slow, 2), [60, 0, 60, 0, 120, 0]);
        let huge = Quota::per_period(Duration::from_nanos(u64::MAX)).unwrap();
        assert_eq!(
            arguments(huge, 1),
            [0, 0, 0, 0, 18_446_744_073, 709_551_615]
        );
    }

    #[test]
    fn replies_that_agree_with_gcra_are_read() {
        let g = gcra();
        // A fresh key at t = 100.5 s, 3 permits: granted, new tat = now + 300 ms.
        let r = parse(&ints([1, 100, 500_000_000, 0, 0, 100, 800_000_000]), &g, 3).unwrap();
        assert_eq!(r.result, Ok(()));
        assert_eq!(r.now, Instant::from_millis(100_500));
        assert_eq!(r.tat, Instant::from_millis(100_800));
        assert_eq!(reset(&g, &r), Duration::from_millis(300));
        // Then 1 more at the same instant: denied for 100 ms, nothing changed.
        let r = parse(
            &ints([0, 100, 500_000_000, 100, 800_000_000, 100, 800_000_000]),
            &g,
            1,
        )
        .unwrap();
        assert_eq!(
            r.result.unwrap_err().retry_after(),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let g = gcra();
        let bad = [
            Value::Nil,
            Value::Int(1),
            Value::Array(vec![Value::Int(1); 6]),
            Value::Array(vec![Value::Nil; 7]),
            ints([2, 100, 0, 0, 0, 100, 100_000_000]),
            ints([1, -1, 0, 0, 0, 0, 100_000_000]),
            ints([1, 100, 1_000_000_000, 0, 0, 100, 100_000_000]),
            ints([1, i64::MAX, 0, 0, 0, 0, 0]),
            // Granted where GCRA denies, or with another new state.
            ints([1, 100, 0, 100, 300_000_000, 100, 400_000_000]),
            ints([1, 100, 0, 0, 0, 100, 200_000_000]),
            // Denied where GCRA grants, or a denial that moved the state.
            ints([0, 100, 0, 0, 0, 0, 0]),
            ints([0, 100, 0, 100, 300_000_000, 100, 400_000_000]),
        ];
        for value in &bad {
            assert!(
                matches!(
                    parse(value, &g, 1),
                    Err(RedisLimiterError::MalformedReply(_))
                ),
                "{value:?}"
            );
        }
    }
}
