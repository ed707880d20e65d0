//! The admin route: read and change the downstream's failure rate and latency at runtime.
//!
//! `GET /admin/downstream` shows the settings; `POST /admin/downstream?failure_rate=50&latency=200ms`
//! changes the ones given. Both need `Authorization: Bearer TOKEN` with the token given at
//! start-up (401 otherwise); an unknown setting or a bad value is a 400 that says what is
//! allowed, and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::app::AppState;
use super::config::{DisplayDuration, parse_duration};

/// The settings the admin route knows, for the error message.
const KNOWN: &str = "failure_rate (a percentage, 0 to 100) and latency (a duration such as 200ms)";

/// Whether `headers` carry the admin token, compared in time independent of where the
/// first difference is.
fn authorised(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
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

fn settings(state: &AppState) -> String {
    format!(
        "failure_rate={} latency={}\n",
        state.downstream.failure_rate(),
        DisplayDuration(state.downstream.latency())
    )
}

/// `GET /admin/downstream`: the current settings.
pub async fn show(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorised(&headers, &state.admin_token) {
        return unauthorised();
    }
    settings(&state).into_response()
}

/// `POST /admin/downstream?setting=value&...`: changes the settings given, all or none.
pub async fn change(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if !authorised(&headers, &state.admin_token) {
        return unauthorised();
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
    settings(&state).into_response()
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
            ("Bearer s3cre", false),
            ("Bearer s3cretx", false),
            ("Bearer S3cret", false),
            ("s3cret", false),
            ("Basic s3cret", false),
        ] {
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(authorised(&h, "s3cret"), ok, "{value}");
        }
    }
}
