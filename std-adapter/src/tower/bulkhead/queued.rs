//! The bulkhead layer's wait mode: [`QueuedBulkheadLayer`] over the std adapter's
//! [`BulkheadQueue`] (FIFO, bounded line, bounded wait).

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use stanchion::bulkhead::{Bulkhead, BulkheadListener, BulkheadPermit, NoBulkheadListener};
use stanchion::{Clock, Deadline};
use tower_layer::Layer;
use tower_service::Service;

use super::BulkheadRejected;
use crate::tower::BoxError;
use crate::{BulkheadQueue, WakeOnRelease};

/// Caps the requests in flight at the shared [`BulkheadQueue`]'s maximum; a request that
/// finds it full waits in line (first come, first served) for at most `max_wait`, and is
/// refused with [`BulkheadRejected`] when the line is full or its wait runs out.
///
/// - A request that finds nobody waiting and a free slot takes it in `call` (one load and
///   one compare-and-swap, no allocation); its response future holds the slot until the
///   inner future completes or is dropped, as in [`BulkheadLayer`](super::BulkheadLayer).
/// - A request that must wait is a boxed future (the queue's wait borrows the queue), that
///   waits and then calls the inner service, which must be `Clone` (the service made ready
///   is taken, a clone left in its place). Dropping it leaves the line at once, taking
///   nothing.
/// - The queue's listener hears of a refusal once per request refused, when it is
///   refused: a request that waits and then gets in reports none.
/// - The wait is measured on the queue's [`TokioClock`](crate::TokioClock), so a paused
///   runtime drives it.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use stanchion_std::tower::QueuedBulkheadLayer;
/// use stanchion_std::{BulkheadQueue, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stanchion::ConfigError> {
/// // 16 at once, up to 64 more waiting, none for longer than 2 s.
/// let queue = Arc::new(BulkheadQueue::new(16, 64, TokioClock::new())?);
/// let layer = QueuedBulkheadLayer::new(queue, Some(Duration::from_secs(2)));
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct QueuedBulkheadLayer<L: BulkheadListener = NoBulkheadListener> {
    queue: Arc<BulkheadQueue<L>>,
    max_wait: Option<Duration>,
}

impl<L: BulkheadListener> QueuedBulkheadLayer<L> {
    /// A layer over `queue`, shared by every service it makes; a request waits at most
    /// `max_wait` (`None`: as long as it takes, bounded only by the line's length).
    pub const fn new(queue: Arc<BulkheadQueue<L>>, max_wait: Option<Duration>) -> Self {
        QueuedBulkheadLayer { queue, max_wait }
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<BulkheadQueue<L>> {
        &self.queue
    }
}

impl<L: BulkheadListener> Clone for QueuedBulkheadLayer<L> {
    fn clone(&self) -> Self {
        QueuedBulkheadLayer {
            queue: Arc::clone(&self.queue),
            max_wait: self.max_wait,
        }
    }
}

impl<S, L: BulkheadListener> Layer<S> for QueuedBulkheadLayer<L> {
    type Service = QueuedBulkheadService<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        QueuedBulkheadService {
            inner,
            queue: Arc::clone(&self.queue),
            max_wait: self.max_wait,
        }
    }
}

/// Runs a request in a slot of the shared queue's bulkhead, waiting in line for one if
/// need be; see [`QueuedBulkheadLayer`]. Clones share the queue.
#[derive(Debug)]
pub struct QueuedBulkheadService<S, L: BulkheadListener> {
    inner: S,
    queue: Arc<BulkheadQueue<L>>,
    max_wait: Option<Duration>,
}

impl<S, L: BulkheadListener> QueuedBulkheadService<S, L> {
    /// The queue, shared with every clone.
    pub fn queue(&self) -> &Arc<BulkheadQueue<L>> {
        &self.queue
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, L: BulkheadListener> Clone for QueuedBulkheadService<S, L> {
    fn clone(&self) -> Self {
        QueuedBulkheadService {
            inner: self.inner.clone(),
            queue: Arc::clone(&self.queue),
            max_wait: self.max_wait,
        }
    }
}

/// The queue's bulkhead, through the `Arc` a `'static` permit holds.
pub struct QueueSlot<L: BulkheadListener>(Arc<BulkheadQueue<L>>);

impl<L: BulkheadListener> Deref for QueueSlot<L> {
    type Target = Bulkhead<WakeOnRelease<L>>;

    fn deref(&self) -> &Self::Target {
        self.0.bulkhead()
    }
}

/// A slot taken on the fast path, held by the response future.
type OwnedSlot<L> = BulkheadPermit<QueueSlot<L>, WakeOnRelease<L>>;

/// The wait in line and the call after it.
type Waiting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, L, Req> Service<Req> for QueuedBulkheadService<S, L>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    Req: Send + 'static,
    L: BulkheadListener + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = QueuedResponseFuture<S::Future, S::Response, L>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // Nobody in line and a slot free: take it, as the queue's own fast path does.
        if self.queue.waiting() == 0 {
            let slot = Bulkhead::try_acquire_owned_unreported(QueueSlot(Arc::clone(&self.queue)));
            if let Ok(slot) = slot {
                return QueuedResponseFuture::called(self.inner.call(request), slot);
            }
        }
        let deadline = match self.max_wait {
            Some(wait) => Deadline::after(self.queue.clock.now(), wait),
            None => Deadline::NEVER,
        };
        let queue = Arc::clone(&self.queue);
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        QueuedResponseFuture::waiting(Box::pin(async move {
            match queue.acquire(deadline).await {
                Ok(slot) => {
                    let result = ready.call(request).await;
                    drop(slot);
                    result.map_err(Into::into)
                }
                Err(full) => Err(Box::new(BulkheadRejected { full }) as BoxError),
            }
        }))
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, T, L: BulkheadListener> {
        Called { #[pin] future: F, slot: Option<OwnedSlot<L>> },
        Waiting { future: Waiting<T> },
    }
}

pin_project! {
    /// The response future of [`QueuedBulkheadService`]: the inner future holding its
    /// slot, or the wait in line and then the inner future.
    pub struct QueuedResponseFuture<F, T, L: BulkheadListener> {
        #[pin]
        state: State<F, T, L>,
    }
}

impl<F, T, L: BulkheadListener> QueuedResponseFuture<F, T, L> {
    fn called(future: F, slot: OwnedSlot<L>) -> Self {
        QueuedResponseFuture {
            state: State::Called {
                future,
                slot: Some(slot),
            },
        }
    }

    fn waiting(future: Waiting<T>) -> Self {
        QueuedResponseFuture {
            state: State::Waiting { future },
        }
    }
}

impl<F, T, E, L> Future for QueuedResponseFuture<F, T, L>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    L: BulkheadListener,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future, slot } => {
                let output = ready!(future.poll(cx));
                drop(slot.take());
                Poll::Ready(output.map_err(Into::into))
            }
            StateProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}
