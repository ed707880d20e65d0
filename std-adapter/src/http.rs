//! HTTP answers to the tower layers' refusals (feature `http`; feature `axum` adds
//! `IntoResponse` and a handler for axum's `HandleErrorLayer`).
//!
//! | refusal | status | fields |
//! |---|---|---|
//! | [`RateLimited`] | 429 Too Many Requests | `Retry-After`, `RateLimit`, `RateLimit-Policy` |
//! | [`CircuitOpen`] | 503 Service Unavailable | `Retry-After` while the breaker is open ([`circuit_open`]) |
//! | [`BulkheadRejected`](crate::tower::BulkheadRejected) | 503 Service Unavailable | none (no one knows when a slot frees) |
//! | [`ThrottleRejected`](crate::tower::ThrottleRejected) | 503 Service Unavailable | none (the throttle refuses by a draw, not for a known time) |
//! | [`Elapsed`] | 504 Gateway Timeout | none |
//!
//! Each answer says in one line of plain text what happened and when to come back
//! ([`refusal_message`]): the body of the axum responses (`IntoResponse` for each
//! refusal, [`handle_refusal`] and, through a hook of yours, `handle_refusal_with`). The
//! functions generic over the body type leave it empty for a service to fill.
//!
//! `Retry-After` is in whole seconds, rounded up, and never 0 on a refusal
//! ([`retry_after_seconds`]): a client that waits what it is told does not come back too
//! early. For an open breaker, whose `retry_after` runs 1 ns past the last rejected
//! instant, the seconds are [`Rejected::retry_after_secs`](stanchion::breaker::Rejected::retry_after_secs)
//! (at least 1): an open duration of 30 s says 30, not 31. A request that can never be
//! granted (more permits than the burst) gets a 429 without `Retry-After`.
//!
//! The `RateLimit` and `RateLimit-Policy` fields follow
//! [draft-ietf-httpapi-ratelimit-headers-10](https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/)
//! (structured-field lists of one item each):
//!
//! ```text
//! RateLimit-Policy: "default";q=100;w=60
//! RateLimit: "default";r=0;t=3
//! ```
//!
//! `q` is the policy's quota ([`RateLimitPolicy`]; the limiter's burst by default), `w`
//! its window in seconds, when the policy gives one, `r` the permits left and `t` the
//! seconds until more are available. On granted responses ([`RateLimitHeaders`], through
//! [`RateLimitLayer::on_admission`](crate::tower::RateLimitLayer::on_admission)) `t` is
//! left out, as the draft allows: the limiter reports how many permits are left, not
//! when its quota refills.
//!
//! ```
//! use std::time::Duration;
//! use stanchion::rate::{Denied, RateLimitError};
//! use stanchion_std::http::refusal_response;
//! use stanchion_std::tower::{RateLimitPolicy, RateLimited};
//!
//! let refused = RateLimited {
//!     error: RateLimitError::Denied(Denied::new(Duration::from_millis(2_100))),
//!     policy: RateLimitPolicy::new("default").quota(100).window(Duration::from_secs(60)),
//! };
//! let response: http::Response<()> = refusal_response(&refused).unwrap();
//! assert_eq!(response.status(), 429);
//! assert_eq!(response.headers()["retry-after"], "3");
//! assert_eq!(response.headers()["ratelimit"], "\"default\";r=0;t=3");
//! assert_eq!(response.headers()["ratelimit-policy"], "\"default\";q=100;w=60");
//! ```

use std::error::Error;
use std::fmt::Write as _;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use stanchion::breaker::{Outcome, Rejected};
use stanchion::pipeline::Layer;

use crate::Admission;
use crate::ClassifyOutcome;
use crate::tower::{
    CircuitOpen, Elapsed, OnAdmission, RateLimitPolicy, RateLimited, RetryHint, refusal,
};

/// The `RateLimit` field's name.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The `RateLimit-Policy` field's name.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// `d` in whole seconds for `Retry-After` or `t`: rounded up, and at least 1 (a refusal
/// never says "now").
pub fn retry_after_seconds(d: Duration) -> u64 {
    ceil_seconds(d).max(1)
}

fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// The policy's name as a structured-field string: `"` and `\` escaped, characters that
/// a string cannot hold (controls, non-ASCII) left out.
fn push_sf_string(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
}

/// The `RateLimit-Policy` field value of `policy`: `"name";q=Q` and `;w=W` when it has a
/// window. A policy without a quota reports `q=0`; the layers always resolve it first.
pub fn policy_field(policy: &RateLimitPolicy) -> HeaderValue {
    let mut v = String::with_capacity(32);
    push_sf_string(&mut v, policy.name);
    let _ = write!(v, ";q={}", policy.quota.unwrap_or(0));
    if let Some(w) = policy.window {
        // The draft wants a non-zero integer of seconds.
        let _ = write!(v, ";w={}", ceil_seconds(w).max(1));
    }
    to_header_value(v)
}

/// The `RateLimit` field value: `"name";r=R`, and `;t=T` when a wait is known.
pub fn ratelimit_field(
    policy: &RateLimitPolicy,
    remaining: u32,
    reset: Option<Duration>,
) -> HeaderValue {
    let mut v = String::with_capacity(32);
    push_sf_string(&mut v, policy.name);
    let _ = write!(v, ";r={remaining}");
    if let Some(t) = reset {
        let _ = write!(v, ";t={}", retry_after_seconds(t));
    }
    to_header_value(v)
}

fn to_header_value(v: String) -> HeaderValue {
    // Only printable ASCII was written.
    HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static("\"\";r=0"))
}

fn retry_after_value(d: Duration) -> HeaderValue {
    HeaderValue::from(retry_after_seconds(d))
}

fn empty<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

/// 429 with `Retry-After` (unless the request can never be granted), `RateLimit` and
/// `RateLimit-Policy`, and an empty body.
pub fn too_many_requests<B: Default>(refused: &RateLimited) -> Response<B> {
    let mut response = empty(StatusCode::TOO_MANY_REQUESTS);
    let headers = response.headers_mut();
    let wait = refused.retry_after();
    if let Some(d) = wait {
        headers.insert(RETRY_AFTER, retry_after_value(d));
    }
    headers.insert(RATELIMIT, ratelimit_field(&refused.policy, 0, wait));
    headers.insert(RATELIMIT_POLICY, policy_field(&refused.policy));
    response
}

/// 503 with `Retry-After` when `retry_after` is known, and an empty body.
pub fn service_unavailable<B: Default>(retry_after: Option<Duration>) -> Response<B> {
    let mut response = empty(StatusCode::SERVICE_UNAVAILABLE);
    if let Some(d) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, retry_after_value(d));
    }
    response
}

/// 503 for a breaker's refusal, with `Retry-After` while it is open: the whole seconds of
/// [`Rejected::retry_after_secs`] (at least 1), never early and never a whole second late
/// (rounding its `retry_after` up, as [`service_unavailable`] does, would add a second at
/// exact boundaries); an empty body.
pub fn circuit_open<B: Default>(rejected: &Rejected) -> Response<B> {
    let mut response = empty(StatusCode::SERVICE_UNAVAILABLE);
    if let Some(secs) = rejected.retry_after_secs() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

/// 504 with an empty body.
pub fn gateway_timeout<B: Default>() -> Response<B> {
    empty(StatusCode::GATEWAY_TIMEOUT)
}

/// The response for `error` if it is the refusal of one of the [`tower`](crate::tower)
/// layers (see the [module docs](self)); `None` for any other error, which the service
/// answers as it sees fit. As [`refusal`] does, it looks at `error` itself, not its
/// sources: an error that wraps a refusal met further downstream is the service's own.
pub fn refusal_response<B: Default>(error: &(dyn Error + 'static)) -> Option<Response<B>> {
    // The rate limit refusal carries its policy, the breaker's its exact retry_after:
    // take them for the fields.
    if let Some(r) = error.downcast_ref::<RateLimited>() {
        return Some(too_many_requests(r));
    }
    if let Some(c) = error.downcast_ref::<CircuitOpen>() {
        return Some(circuit_open(&c.rejected));
    }
    let refused = refusal(error)?;
    Some(match refused.layer {
        Layer::OverallTimeout | Layer::AttemptTimeout => gateway_timeout(),
        Layer::RateLimit
        | Layer::Bulkhead
        | Layer::CircuitBreaker
        | Layer::Retry
        | Layer::Throttle
        // No refusal names it (an injected error is the operation's own): for
        // completeness.
        | Layer::FaultInjection => service_unavailable(refused.retry_after),
    })
}

/// A short plain-text explanation for the client of `error`, if it is the refusal of one
/// of the [`tower`](crate::tower) layers (as [`refusal`] finds it); `None` for any other
/// error. One line, ending in a newline; it names no internals (no counts, no policy):
///
/// | refusal | message |
/// |---|---|
/// | rate limited | `too many requests: try again in 3 s` (`Retry-After`), or `too many requests: this request is larger than the rate limit allows` |
/// | bulkhead full | `too many requests in progress: try again shortly` |
/// | circuit open | `temporarily unavailable: try again in 30 s`, or `... try again later` |
/// | throttled | `temporarily unavailable: try again later` |
/// | timeout | `no answer within 2 s` (or `within 250 ms`) |
///
/// The axum responses of this module (`IntoResponse`, `handle_refusal`) carry it as their
/// `text/plain` body; the functions above, generic over the body, leave the body empty
/// for a service to fill (with this message, or its own).
///
/// ```
/// use std::time::Duration;
/// use stanchion::pipeline::Layer;
/// use stanchion_std::http::refusal_message;
/// use stanchion_std::tower::Elapsed;
///
/// let timeout = Elapsed { after: Duration::from_secs(2), layer: Layer::OverallTimeout };
/// assert_eq!(refusal_message(&timeout).as_deref(), Some("no answer within 2 s\n"));
/// assert_eq!(refusal_message(&std::fmt::Error), None);
/// ```
pub fn refusal_message(error: &(dyn Error + 'static)) -> Option<String> {
    if let Some(r) = error.downcast_ref::<RateLimited>() {
        return Some(match r.retry_after() {
            Some(d) => format!(
                "too many requests: try again in {} s\n",
                retry_after_seconds(d)
            ),
            None => "too many requests: this request is larger than the rate limit allows\n".into(),
        });
    }
    if let Some(e) = error.downcast_ref::<Elapsed>() {
        return Some(format!("no answer within {}\n", TextDuration(e.after)));
    }
    if let Some(c) = error.downcast_ref::<CircuitOpen>() {
        // The seconds of its `Retry-After` (see [`circuit_open`]).
        return Some(match c.rejected.retry_after_secs() {
            Some(secs) => format!("temporarily unavailable: try again in {} s\n", secs.max(1)),
            None => "temporarily unavailable: try again later\n".into(),
        });
    }
    let refused = refusal(error)?;
    Some(match (refused.layer, refused.retry_after) {
        (Layer::Bulkhead, _) => "too many requests in progress: try again shortly\n".into(),
        (_, Some(d)) => format!(
            "temporarily unavailable: try again in {} s\n",
            retry_after_seconds(d)
        ),
        (_, None) => "temporarily unavailable: try again later\n".into(),
    })
}

/// A timeout for a person: whole seconds as `2 s`, anything else in milliseconds,
/// rounded up (`250 ms`).
struct TextDuration(Duration);

impl std::fmt::Display for TextDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{} s", d.as_secs())
        } else {
            let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
            write!(f, "{ms} ms")
        }
    }
}

/// Adds `RateLimit` (`r` = permits left, no `t`) and `RateLimit-Policy` to granted
/// responses: give it to
/// [`RateLimitLayer::on_admission`](crate::tower::RateLimitLayer::on_admission).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RateLimitHeaders;

impl<B> OnAdmission<Response<B>> for RateLimitHeaders {
    fn on_admission(
        &self,
        response: &mut Response<B>,
        admission: Admission,
        policy: &RateLimitPolicy,
    ) {
        insert_ratelimit(response.headers_mut(), admission, policy);
    }
}

fn insert_ratelimit(headers: &mut HeaderMap, admission: Admission, policy: &RateLimitPolicy) {
    headers.insert(
        RATELIMIT,
        ratelimit_field(policy, admission.remaining, None),
    );
    headers.insert(RATELIMIT_POLICY, policy_field(policy));
}

/// A breaker classifier for HTTP: a 5xx response or an error is a failure, any other
/// response a success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServerErrorsAreFailures;

impl<B, E> ClassifyOutcome<Result<Response<B>, E>> for ServerErrorsAreFailures {
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        match result {
            Ok(r) if !r.status().is_server_error() => Outcome::Success,
            _ => Outcome::Failure,
        }
    }
}

/// A retry hint read from a response's `Retry-After` field, in delay-seconds (an HTTP
/// date is ignored: it needs a wall clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RetryAfterHeader;

impl<B, E> RetryHint<Response<B>, E> for RetryAfterHeader {
    fn retry_after(&self, result: &Result<Response<B>, E>) -> Option<Duration> {
        let value = result.as_ref().ok()?.headers().get(RETRY_AFTER)?;
        let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
        Some(Duration::from_secs(seconds))
    }
}

#[cfg(feature = "axum")]
mod axum_responses {
    use std::error::Error;
    use std::future::{Ready, ready};

    use axum_core::body::Body;
    use axum_core::response::{IntoResponse, Response};
    use http::StatusCode;
    use http::header::{CONTENT_TYPE, HeaderValue};

    use super::*;
    use crate::tower::{BoxError, BulkheadRejected, CircuitOpen, Elapsed, ThrottleRejected};

    /// `response` (status and fields, empty body) with `message` as its `text/plain` body.
    fn with_text(response: Response<()>, message: String) -> Response {
        let (mut parts, ()) = response.into_parts();
        parts.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Response::from_parts(parts, Body::from(message))
    }

    /// The refusal's response with its message, for an error known to be one.
    fn refused(error: &(dyn Error + 'static)) -> Option<Response> {
        let response = refusal_response::<()>(error)?;
        Some(with_text(
            response,
            refusal_message(error).unwrap_or_default(),
        ))
    }

    /// The answer to `error`: the refusal's response with its message, or 500 Internal
    /// Server Error with a generic message (the error's own is not sent: it may hold
    /// internals).
    fn answer(error: &(dyn Error + 'static)) -> Response {
        refused(error).unwrap_or_else(|| {
            with_text(
                empty(StatusCode::INTERNAL_SERVER_ERROR),
                "internal server error\n".into(),
            )
        })
    }

    impl IntoResponse for RateLimited {
        fn into_response(self) -> Response {
            answer(&self)
        }
    }

    impl IntoResponse for CircuitOpen {
        fn into_response(self) -> Response {
            answer(&self)
        }
    }

    impl IntoResponse for BulkheadRejected {
        fn into_response(self) -> Response {
            answer(&self)
        }
    }

    impl IntoResponse for Elapsed {
        fn into_response(self) -> Response {
            answer(&self)
        }
    }

    impl IntoResponse for ThrottleRejected {
        fn into_response(self) -> Response {
            answer(&self)
        }
    }

    /// The handler for axum's `HandleErrorLayer` in front of these layers: each refusal
    /// as [`refusal_response`] says, with [`refusal_message`] as a `text/plain` body; any
    /// other error as 500 Internal Server Error, with a generic message (its own is not
    /// sent: it may hold internals). [`handle_refusal_with`] lets a hook change the
    /// answer.
    ///
    /// ```
    /// use axum::error_handling::HandleErrorLayer;
    /// use std::time::Duration;
    /// use stanchion_std::http::handle_refusal;
    /// use stanchion_std::tower::TimeoutLayer;
    /// use tower::ServiceBuilder;
    ///
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "hello" }))
    ///     .layer(
    ///         ServiceBuilder::new()
    ///             .layer(HandleErrorLayer::new(handle_refusal))
    ///             .layer(TimeoutLayer::new(Duration::from_secs(5))),
    ///     );
    /// # let _ = app;
    /// ```
    pub async fn handle_refusal(error: BoxError) -> Response {
        answer(&*error)
    }

    /// A handler for axum's `HandleErrorLayer` that answers as [`handle_refusal`] and
    /// then passes the error and that answer to `hook`, which returns the response to
    /// send: to change the body (JSON, a problem document, a language), add fields, log,
    /// or answer the service's own errors. [`refusal`](crate::tower::refusal) tells the
    /// hook which layer refused, if one did.
    ///
    /// ```
    /// use axum::error_handling::HandleErrorLayer;
    /// use axum::response::{IntoResponse, Response};
    /// use std::time::Duration;
    /// use stanchion_std::http::handle_refusal_with;
    /// use stanchion_std::tower::{TimeoutLayer, refusal};
    /// use tower::ServiceBuilder;
    ///
    /// let hook = |error: &(dyn std::error::Error + 'static), answer: Response| {
    ///     match refusal(error) {
    ///         // Keep the status and fields; a JSON body instead of the text.
    ///         Some(refused) => {
    ///             let body = format!("{{\"refused_by\":\"{}\"}}", refused.layer);
    ///             (answer.status(), answer.headers().clone(), body).into_response()
    ///         }
    ///         None => answer,
    ///     }
    /// };
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "hello" }))
    ///     .layer(
    ///         ServiceBuilder::new()
    ///             .layer(HandleErrorLayer::new(handle_refusal_with(hook)))
    ///             .layer(TimeoutLayer::new(Duration::from_secs(5))),
    ///     );
    /// # let _ = app;
    /// ```
    pub fn handle_refusal_with<F>(
        hook: F,
    ) -> impl Fn(BoxError) -> Ready<Response> + Clone + Send + Sync + 'static
    where
        F: Fn(&(dyn Error + 'static), Response) -> Response + Clone + Send + Sync + 'static,
    {
        move |error: BoxError| ready(hook(&*error, answer(&*error)))
    }
}

#[cfg(feature = "axum")]
pub use axum_responses::{handle_refusal, handle_refusal_with};

#[cfg(test)]
mod tests {
    use stanchion::rate::{InsufficientCapacity, RateLimitError};

    use super::*;
    use crate::tower::{BulkheadRejected, Elapsed};

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_nanos(1_000_000_001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2_999)), 3);
        assert_eq!(retry_after_seconds(Duration::MAX), u64::MAX);
    }

    #[test]
    fn fields_follow_the_draft_syntax() {
        let p = RateLimitPolicy::new("burst")
            .quota(100)
            .window(Duration::from_millis(1));
        assert_eq!(policy_field(&p), "\"burst\";q=100;w=1");
        assert_eq!(
            ratelimit_field(&p, 7, Some(Duration::from_millis(1_500))),
            "\"burst\";r=7;t=2"
        );
        assert_eq!(ratelimit_field(&p, 7, None), "\"burst\";r=7");
        let odd = RateLimitPolicy::new("a\\b\u{e9}\n").quota(1);
        assert_eq!(policy_field(&odd), "\"a\\\\b\";q=1");
    }

    #[test]
    fn a_request_that_can_never_pass_gets_no_retry_after() {
        let refused = RateLimited {
            error: RateLimitError::InsufficientCapacity(InsufficientCapacity::new(5)),
            policy: RateLimitPolicy::new("default").quota(5),
        };
        let r: Response<()> = too_many_requests(&refused);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().get(RETRY_AFTER).is_none());
        assert_eq!(r.headers()[RATELIMIT], "\"default\";r=0");
    }

    #[test]
    fn refusals_map_to_their_status() {
        use stanchion::breaker::{Rejected, State};
        use stanchion::bulkhead::Bulkhead;

        let open = CircuitOpen {
            rejected: Rejected {
                retry_after: Some(Duration::from_millis(4_001)),
                state: State::Open,
            },
        };
        let r: Response<()> = refusal_response(&open).unwrap();
        assert_eq!(
            (r.status(), &r.headers()[RETRY_AFTER]),
            (StatusCode::SERVICE_UNAVAILABLE, &HeaderValue::from(5u64))
        );
        // Issue 19: open for exactly 4 s more (retry_after runs 1 ns past the last
        // rejected instant) says 4, not 5; the last rejected instant says 1, not 0.
        for (nanos, secs) in [(4_000_000_001, 4u64), (4_000_000_002, 5), (1, 1)] {
            let open = CircuitOpen {
                rejected: Rejected {
                    retry_after: Some(Duration::from_nanos(nanos)),
                    state: State::Open,
                },
            };
            let r: Response<()> = refusal_response(&open).unwrap();
            assert_eq!(
                r.headers()[RETRY_AFTER],
                HeaderValue::from(secs),
                "{nanos} ns"
            );
        }
        let b = Bulkhead::new(1).unwrap();
        let _held = b.try_acquire().unwrap();
        let full = BulkheadRejected {
            full: b.try_acquire().unwrap_err(),
        };
        let r: Response<()> = refusal_response(&full).unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get(RETRY_AFTER).is_none());
        let late = Elapsed {
            after: Duration::from_secs(1),
            layer: Layer::OverallTimeout,
        };
        let r: Response<()> = refusal_response(&late).unwrap();
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        let throttled = crate::tower::ThrottleRejected {
            throttled: stanchion::throttle::Throttled {
                requests: 40,
                accepts: 10,
            },
        };
        let r: Response<()> = refusal_response(&throttled).unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get(RETRY_AFTER).is_none());
        assert_eq!(
            refusal_message(&throttled).as_deref(),
            Some("temporarily unavailable: try again later\n")
        );
        let other = std::io::Error::other("disk");
        assert!(refusal_response::<()>(&other).is_none());
    }

    #[test]
    fn server_errors_are_failures_and_retry_after_is_a_hint() {
        let with = |status: u16| -> Result<Response<()>, ()> {
            let mut r = Response::new(());
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok(r)
        };
        let k = ServerErrorsAreFailures;
        assert_eq!(k.classify(&with(200)), Outcome::Success);
        assert_eq!(k.classify(&with(404)), Outcome::Success);
        assert_eq!(k.classify(&with(500)), Outcome::Failure);
        assert_eq!(k.classify(&with(503)), Outcome::Failure);
        assert_eq!(k.classify(&Err::<Response<()>, ()>(())), Outcome::Failure);

        let mut busy = with(503);
        if let Ok(r) = &mut busy {
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(" 12 "));
        }
        assert_eq!(
            RetryAfterHeader.retry_after(&busy),
            Some(Duration::from_secs(12))
        );
        let mut dated = with(503);
        if let Ok(r) = &mut dated {
            r.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from_static("Fri, 31 Dec 1999 23:59:59 GMT"),
            );
        }
        assert_eq!(RetryAfterHeader.retry_after(&dated), None);
        assert_eq!(RetryAfterHeader.retry_after(&with(200)), None);
    }
}
