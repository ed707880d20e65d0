use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use stanchion::rate::RateLimitError;
use tower_service::Service;

use super::{RateLimitHooks, TierId, refuse};
use crate::Admission;
use crate::http::RateLimitHeaders;
use crate::tower::{OnAdmission, RateLimitPolicy, RateLimited};

/// The admission of a limiter that must be awaited (a remote one), with the key it was
/// asked for, boxed because the limiter's future borrows both and has no name.
pub(super) type AdmitFuture<K> =
    Pin<Box<dyn Future<Output = (K, Result<Admission, RateLimitError>)> + Send>>;

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req, K, H, B> {
        Answered { response: Option<Response<B>> },
        Admitting {
            admit: AdmitFuture<K>,
            service: Option<S>,
            request: Option<Req>,
            tier: TierId,
            policy: RateLimitPolicy,
            hooks: Arc<H>,
        },
        Calling { #[pin] future: F, admission: Admission, policy: RateLimitPolicy },
    }
}

pin_project! {
    /// The response future of
    /// [`TieredRateLimitService`](super::TieredRateLimitService): the layer's own answer
    /// (a refusal, or the key function's), the inner service's future, or (remote
    /// limiters) the admission and then one of those.
    pub struct TieredResponseFuture<F, S, Req, K, H, B> {
        #[pin]
        state: State<F, S, Req, K, H, B>,
    }
}

impl<F, S, Req, K, H, B> TieredResponseFuture<F, S, Req, K, H, B> {
    pub(super) fn answered(response: Response<B>) -> Self {
        TieredResponseFuture {
            state: State::Answered {
                response: Some(response),
            },
        }
    }

    pub(super) fn calling(future: F, admission: Admission, policy: RateLimitPolicy) -> Self {
        TieredResponseFuture {
            state: State::Calling {
                future,
                admission,
                policy,
            },
        }
    }

    pub(super) fn admitting(
        admit: AdmitFuture<K>,
        service: S,
        request: Req,
        tier: TierId,
        policy: RateLimitPolicy,
        hooks: Arc<H>,
    ) -> Self {
        TieredResponseFuture {
            state: State::Admitting {
                admit,
                service: Some(service),
                request: Some(request),
                tier,
                policy,
                hooks,
            },
        }
    }
}

impl<S, Req, K, H, B> Future for TieredResponseFuture<S::Future, S, Req, K, H, B>
where
    S: Service<Req, Response = Response<B>>,
    H: RateLimitHooks<K, B>,
    B: From<String>,
{
    type Output = Result<Response<B>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Answered { response } => {
                    let response = response.take().expect("future polled after completion");
                    return Poll::Ready(Ok(response));
                }
                StateProj::Admitting {
                    admit,
                    service,
                    request,
                    tier,
                    policy,
                    hooks,
                } => {
                    let (key, decision) = ready!(admit.as_mut().poll(cx));
                    let (tier, policy) = (*tier, *policy);
                    match decision {
                        Ok(admission) => {
                            hooks.granted(tier, &key, admission);
                            let (Some(mut service), Some(request)) =
                                (service.take(), request.take())
                            else {
                                panic!("future polled after completion");
                            };
                            // `service` is the one that was made ready before `call`.
                            let future = service.call(request);
                            this.state.set(State::Calling {
                                future,
                                admission,
                                policy,
                            });
                        }
                        Err(error) => {
                            let answer =
                                refuse(&**hooks, tier, &key, RateLimited { error, policy });
                            this.state.set(State::Answered { response: None });
                            return Poll::Ready(Ok(answer));
                        }
                    }
                }
                StateProj::Calling {
                    future,
                    admission,
                    policy,
                } => {
                    let mut response = ready!(future.poll(cx))?;
                    RateLimitHeaders.on_admission(&mut response, *admission, policy);
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
