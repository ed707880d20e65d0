use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::hedge::{Attempts, Hedged, Hedging, IsOk};
use crate::tower::BoxError;

/// The response future of [`HedgeService`](super::HedgeService): a [`Hedged`] call whose
/// attempts are requests to the inner service, the first `Ok` winning.
pub type ResponseFuture<S, Req, Bu, const B: usize> = Hedged<
    Arc<Hedging<Bu, B>>,
    NewAttempt<S, Req>,
    Attempt<S, Req>,
    IsOk<<S as Service<Req>>::Response, BoxError>,
>;

/// Makes the attempts of one request: the first on the service `poll_ready` readied, each
/// hedge on a clone of it with a clone of the request.
#[derive(Debug)]
pub struct NewAttempt<S, Req> {
    ready: Option<S>,
    service: S,
    request: Req,
}

impl<S, Req> NewAttempt<S, Req> {
    pub(super) fn new(ready: S, service: S, request: Req) -> Self {
        NewAttempt {
            ready: Some(ready),
            service,
            request,
        }
    }
}

impl<S, Req> Attempts for NewAttempt<S, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
{
    type Future = Attempt<S, Req>;

    fn start(&mut self) -> Attempt<S, Req> {
        match self.ready.take() {
            Some(mut ready) => {
                let future = ready.call(self.request.clone());
                Attempt {
                    service: ready,
                    request: None,
                    future: Some(future),
                }
            }
            None => Attempt {
                service: self.service.clone(),
                request: Some(self.request.clone()),
                future: None,
            },
        }
    }
}

pin_project! {
    /// One attempt of a hedged request: waits for its service to be ready (a hedge's
    /// clone), calls it, and answers with its response or its error, boxed.
    pub struct Attempt<S, Req>
    where
        S: Service<Req>,
    {
        service: S,
        request: Option<Req>,
        #[pin]
        future: Option<S::Future>,
    }
}

impl<S, Req> Future for Attempt<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.future.is_none() {
            ready!(this.service.poll_ready(cx)).map_err(Into::into)?;
            let Some(request) = this.request.take() else {
                // Unreachable: a request is kept until the service is called.
                return Poll::Ready(Err("hedge: attempt without a request".into()));
            };
            this.future.set(Some(this.service.call(request)));
        }
        match this.future.as_pin_mut() {
            Some(future) => future.poll(cx).map_err(Into::into),
            None => Poll::Ready(Err("hedge: attempt without a request".into())),
        }
    }
}
