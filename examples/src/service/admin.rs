//! The admin route: read and change the downstream's failure rate and latency at runtime,
//! and switch its fault injection on and off.
//!
//! `GET /admin/downstream` shows the settings; `POST /admin/downstream?failure_rate=50&latency=200ms`
//! changes the ones given; `POST /admin/downstream?faults=off` switches the injected
//! failures and latency off (the downstream answers at once, every time) and `faults=on`
//! back on, with the settings they had. Both need `Authorization: Bearer TOKEN` with the token given at
//! start-up (the scheme in any case, as RFC 9110 says; 401 otherwise); an unknown setting
//! or a bad value is a 400 that says what is allowed, and changes nothing.
//!
//! `POST /admin/reload` reads the `--config` file again and applies it to the live
//! policies (see [`policies`](super::policies)): 200 with what changed, 409 with why
//! nothing did.
//!
//! Failed attempts are limited per client IP ([`FAILED_ATTEMPTS`] a minute, in a table of
//! [`FAILURE_TABLE_IPS`] addresses that forgets the least recently used): past them, every
//! request of that IP to the route is a 429, the right token included, until the quota
//! refills, so that guessing the token costs a minute per ten guesses per address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stanchion::Clock;
use stanchion::rate::{FullTablePolicy, KeyedRateLimiter, Quota};
use stanchion_std::{ShardedKeyedLimiter, TokioClock};

use super::app::AppState;
use super::config::{DisplayDuration, parse_duration};

/// The settings the admin route knows, for the error message.
const KNOWN: &str = "failure_rate (a percentage, 0 to 100), latency (a duration such as 200ms) and faults (on or off)";

/// Failed attempts one client IP may make in a minute.
pub const FAILED_ATTEMPTS: u32 = 10;

/// Slots per shard of the failed-attempts table.
const SLOTS: usize = 256;

/// Client IPs the failed-attempts table remembers at once.
pub const FAILURE_TABLE_IPS: usize = 4 * SLOTS;

/// The failed attempts of each client IP, and the clock they are counted on.
pub struct AdminGuard {
    failures: ShardedKeyedLimiter<SLOTS>,
    clock: TokioClock,
}

impl AdminGuard {
    /// [`FAILED_ATTEMPTS`] a minute per IP, on `clock`.
    ///
    /// # Errors
    ///
    /// None in practice: the quota and the table are constants core accepts.
    pub fn new(clock: TokioClock) -> Result<AdminGuard, stanchion::ConfigError> {
        let quota = Quota::per_interval(FAILED_ATTEMPTS, Duration::from_secs(60))?;
        // Forgetting the least recently used IP gives it a fresh quota, which an attacker
        // with that many addresses has anyway; refusing new IPs instead would let a flood
        // of them lock the operator out.
        let failures = ShardedKeyedLimiter::new(
            quota,
            FullTablePolicy::EvictLeastRecentlyUsed,
            FAILURE_TABLE_IPS / SLOTS,
        )?;
        Ok(AdminGuard { failures, clock })
    }

    /// Whether a request from `ip` with `headers` may use the route: `Ok`, or why not.
    fn check(&self, headers: &HeaderMap, ip: IpAddr, token: &str) -> Result<(), Refused> {
        let now = self.clock.now();
        if let Err(e) = self.failures.peek_at(&ip, 1, now) {
            return Err(Refused::TooManyFailures(e.retry_after()));
        }
        if authorised(headers, token) {
            return Ok(());
        }
        match self.failures.acquire_at(&ip, 1, now) {
            Ok(()) => Err(Refused::Unauthorised),
            Err(e) => Err(Refused::TooManyFailures(e.retry_after())),
        }
    }
}

/// Why the admin route refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    /// No token, or a wrong one: 401.
    Unauthorised,
    /// Past the failed attempts of its IP: 429, retry after this long.
    TooManyFailures(Option<Duration>),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Unauthorised => unauthorised(),
            Refused::TooManyFailures(retry_after) => too_many_failures(retry_after),
        }
    }
}

/// Whether `headers` carry the admin token, compared in time independent of where the
/// first difference is. The scheme `Bearer` is matched in any case.
fn authorised(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .and_then(|v| {
            let (scheme, rest) = v.split_at_checked(6)?;
            let credentials = rest.strip_prefix(b" ")?;
            scheme
                .eq_ignore_ascii_case(b"bearer")
                .then(|| credentials.trim_ascii_start())
        })
    else {
        return false;
    };
    let want = token.as_bytes();
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "the admin route needs `Authorization: Bearer TOKEN` with the admin token\n",
    )
        .into_response()
}

fn too_many_failures(retry_after: Option<Duration>) -> Response {
    let seconds = stanchion_std::http::retry_after_seconds(retry_after.unwrap_or(Duration::ZERO));
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        format!(
            "too many failed admin attempts from this address ({FAILED_ATTEMPTS} a minute); retry after {seconds} s\n"
        ),
    )
        .into_response()
}

fn settings(state: &AppState) -> String {
    format!(
        "failure_rate={} latency={} faults={}\n",
        state.downstream.failure_rate(),
        DisplayDuration(state.downstream.latency()),
        if state.downstream.faults_enabled() {
            "on"
        } else {
            "off"
        }
    )
}

/// `GET /admin/downstream`: the current settings.
pub async fn show(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = state
        .admin_guard
        .check(&headers, peer.ip(), &state.admin_token)
    {
        return refused.into_response();
    }
    settings(&state).into_response()
}

/// `POST /admin/downstream?setting=value&...`: changes the settings given, all or none.
pub async fn change(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(refused) = state
        .admin_guard
        .check(&headers, peer.ip(), &state.admin_token)
    {
        return refused.into_response();
    }
    let bad = |msg: String| (StatusCode::BAD_REQUEST, msg + "\n").into_response();
    let Ok(Query(pairs)) = query else {
        return bad(format!(
            "the query string does not parse; known settings: {KNOWN}"
        ));
    };
    if pairs.is_empty() {
        return bad(format!("nothing to change; known settings: {KNOWN}"));
    }
    let mut failure_rate: Option<u32> = None;
    let mut latency: Option<Duration> = None;
    let mut faults: Option<bool> = None;
    for (name, value) in &pairs {
        match name.as_str() {
            "failure_rate" => match value.parse::<u32>() {
                Ok(p) if p <= 100 => failure_rate = Some(p),
                _ => {
                    return bad(format!(
                        "failure_rate `{value}`: a whole percentage from 0 to 100"
                    ));
                }
            },
            "latency" => match parse_duration(value) {
                Ok(d) if d <= Duration::from_secs(3600) => latency = Some(d),
                Ok(_) => return bad(format!("latency `{value}`: at most 1h")),
                Err(e) => return bad(format!("latency: {e}")),
            },
            "faults" => match value.as_str() {
                "on" => faults = Some(true),
                "off" => faults = Some(false),
                _ => return bad(format!("faults `{value}`: on or off")),
            },
            other => {
                let other: String = other.chars().filter(|c| !c.is_control()).take(64).collect();
                return bad(format!(
                    "unknown setting `{other}`; known settings: {KNOWN}"
                ));
            }
        }
    }
    if let Some(p) = failure_rate {
        state.downstream.set_failure_rate(p);
    }
    if let Some(d) = latency {
        state.downstream.set_latency(d);
    }
    if let Some(on) = faults {
        state.downstream.set_faults_enabled(on);
    }
    settings(&state).into_response()
}

/// `POST /admin/reload`: reads the `--config` file again and applies it; 200 with what
/// changed, or 409 with why nothing did (a change that cannot be applied live, an error
/// in the document, or no file).
pub async fn reload(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = state
        .admin_guard
        .check(&headers, peer.ip(), &state.admin_token)
    {
        return refused.into_response();
    }
    match state.reload_policies() {
        Ok(line) => (line + "\n").into_response(),
        Err(why) => (StatusCode::CONFLICT, format!("reload refused: {why}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_authorised() {
        let mut h = HeaderMap::new();
        assert!(!authorised(&h, "s3cret"));
        for (value, ok) in [
            ("Bearer s3cret", true),
            ("bearer s3cret", true),
            ("BEARER s3cret", true),
            ("Bearer   s3cret", true),
            ("Bearer s3cre", false),
            ("Bearer s3cretx", false),
            ("Bearer S3cret", false),
            ("Bearers3cret", false),
            ("Bearer", false),
            ("s3cret", false),
            ("Basic s3cret", false),
        ] {
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(authorised(&h, "s3cret"), ok, "{value}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_eleventh_failure_in_a_minute_is_refused_even_with_the_right_token() {
        let guard = AdminGuard::new(TokioClock::new()).unwrap();
        let (ip, other): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let mut wrong = HeaderMap::new();
        wrong.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        let mut right = HeaderMap::new();
        right.insert(header::AUTHORIZATION, "bearer s3cret".parse().unwrap());
        let status = |r: Result<(), Refused>| r.err().map(|r| r.into_response().status());
        for _ in 0..FAILED_ATTEMPTS {
            assert_eq!(
                status(guard.check(&wrong, ip, "s3cret")),
                Some(StatusCode::UNAUTHORIZED)
            );
        }
        assert_eq!(
            status(guard.check(&wrong, ip, "s3cret")),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(
            status(guard.check(&right, ip, "s3cret")),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(status(guard.check(&right, other, "s3cret")), None);
        // One failure's worth back after 6 s.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(status(guard.check(&right, ip, "s3cret")), None);
    }
}
