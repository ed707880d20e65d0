use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use stanchion::rate::RateLimitError;
use tower_service::Service;

use super::{OnAdmission, RateLimitPolicy, RateLimited};
use crate::Admission;
use crate::tower::BoxError;

/// The admission of a limiter that must be awaited (a remote one), boxed because the
/// limiter's future borrows it and has no name.
pub(super) type AdmitFuture =
    Pin<Box<dyn Future<Output = Result<Admission, RateLimitError>> + Send>>;

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req> {
        Refused { error: Option<RateLimited> },
        Admitting { admit: AdmitFuture, service: Option<S>, request: Option<Req> },
        Calling { #[pin] future: F, admission: Admission },
    }
}

pin_project! {
    /// The response future of [`RateLimitService`](super::RateLimitService) and
    /// [`KeyedRateLimitService`](super::KeyedRateLimitService): refused at once, the inner
    /// service's future, or (remote limiters) the admission and then the inner future.
    pub struct ResponseFuture<F, S, Req, A> {
        #[pin]
        state: State<F, S, Req>,
        policy: RateLimitPolicy,
        on_admission: A,
    }
}

impl<F, S, Req, A> ResponseFuture<F, S, Req, A> {
    pub(super) fn refused(error: RateLimitError, policy: RateLimitPolicy, on_admission: A) -> Self {
        let error = Some(RateLimited { error, policy });
        ResponseFuture {
            state: State::Refused { error },
            policy,
            on_admission,
        }
    }

    pub(super) fn calling(
        future: F,
        admission: Admission,
        policy: RateLimitPolicy,
        on_admission: A,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future, admission },
            policy,
            on_admission,
        }
    }

    pub(super) fn admitting(
        admit: AdmitFuture,
        service: S,
        request: Req,
        policy: RateLimitPolicy,
        on_admission: A,
    ) -> Self {
        ResponseFuture {
            state: State::Admitting {
                admit,
                service: Some(service),
                request: Some(request),
            },
            policy,
            on_admission,
        }
    }
}

impl<S, Req, A> Future for ResponseFuture<S::Future, S, Req, A>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    A: OnAdmission<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Refused { error } => {
                    let error = error.take().expect("future polled after completion");
                    return Poll::Ready(Err(Box::new(error)));
                }
                StateProj::Admitting {
                    admit,
                    service,
                    request,
                } => match ready!(admit.as_mut().poll(cx)) {
                    Ok(admission) => {
                        let (Some(mut service), Some(request)) = (service.take(), request.take())
                        else {
                            panic!("future polled after completion");
                        };
                        // `service` is the one that was made ready before `call`.
                        let future = service.call(request);
                        this.state.set(State::Calling { future, admission });
                    }
                    Err(error) => {
                        let policy = *this.policy;
                        this.state.set(State::Refused { error: None });
                        return Poll::Ready(Err(Box::new(RateLimited { error, policy })));
                    }
                },
                StateProj::Calling { future, admission } => {
                    let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                    this.on_admission
                        .on_admission(&mut response, *admission, this.policy);
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
