use std::sync::Arc;

use stanchion::bulkhead::{Bulkhead, NoBulkheadListener};
use tower_layer::Layer;

use super::BulkheadService;

/// Caps the requests in flight at the shared bulkhead's maximum; refuses the others.
///
/// ```
/// use std::sync::Arc;
/// use stanchion::bulkhead::Bulkhead;
/// use stanchion_std::tower::BulkheadLayer;
///
/// let layer = BulkheadLayer::new(Arc::new(Bulkhead::new(64).unwrap()));
/// # let _ = layer;
/// ```
#[derive(Debug)]
pub struct BulkheadLayer<L: stanchion::bulkhead::BulkheadListener = NoBulkheadListener> {
    bulkhead: Arc<Bulkhead<L>>,
}

impl<L: stanchion::bulkhead::BulkheadListener> BulkheadLayer<L> {
    /// A layer over `bulkhead`, shared by every service it makes.
    pub const fn new(bulkhead: Arc<Bulkhead<L>>) -> Self {
        BulkheadLayer { bulkhead }
    }

    /// The bulkhead.
    pub fn bulkhead(&self) -> &Arc<Bulkhead<L>> {
        &self.bulkhead
    }
}

impl<L: stanchion::bulkhead::BulkheadListener> Clone for BulkheadLayer<L> {
    fn clone(&self) -> Self {
        BulkheadLayer {
            bulkhead: Arc::clone(&self.bulkhead),
        }
    }
}

impl<S, L: stanchion::bulkhead::BulkheadListener> Layer<S> for BulkheadLayer<L> {
    type Service = BulkheadService<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService::new(inner, Arc::clone(&self.bulkhead))
    }
}
