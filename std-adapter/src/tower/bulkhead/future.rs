use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use stanchion::bulkhead::{Bulkhead, BulkheadFull, BulkheadListener, BulkheadPermit};

use super::BulkheadRejected;
use crate::tower::BoxError;

pin_project! {
    #[project = StateProj]
    enum State<F, L: BulkheadListener> {
        Refused { full: Option<BulkheadFull> },
        Called { #[pin] future: F, permit: Option<BulkheadPermit<Arc<Bulkhead<L>>, L>> },
    }
}

pin_project! {
    /// The response future of [`BulkheadService`](super::BulkheadService): it holds the
    /// slot until the inner future completes, or until it is dropped.
    pub struct ResponseFuture<F, L: BulkheadListener> {
        #[pin]
        state: State<F, L>,
    }
}

impl<F, L: BulkheadListener> ResponseFuture<F, L> {
    pub(super) fn called(future: F, permit: BulkheadPermit<Arc<Bulkhead<L>>, L>) -> Self {
        ResponseFuture {
            state: State::Called {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(super) fn refused(full: BulkheadFull) -> Self {
        ResponseFuture {
            state: State::Refused { full: Some(full) },
        }
    }
}

impl<F, T, E, L> Future for ResponseFuture<F, L>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    L: BulkheadListener,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { full } => {
                let full = full.take().expect("future polled after completion");
                Poll::Ready(Err(Box::new(BulkheadRejected { full })))
            }
            StateProj::Called { future, permit } => {
                let output = ready!(future.poll(cx));
                // The call is over: its slot is free as soon as it returns.
                drop(permit.take());
                Poll::Ready(output.map_err(Into::into))
            }
        }
    }
}
