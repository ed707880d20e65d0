use std::sync::Arc;

use tower_layer::Layer;

use super::FaultInjectionService;
use crate::fault::FaultInjection;

/// Injects faults into the requests to the inner service; see the [module docs](super).
///
/// ```
/// use std::sync::Arc;
/// use stanchion::fault::{Fault, FaultInjector, Share};
/// use stanchion_std::fault::FaultInjection;
/// use stanchion_std::tower::FaultInjectionLayer;
///
/// # fn main() -> Result<(), stanchion::ConfigError> {
/// // 5% of requests fail with "injected", switched off until an operator turns it on.
/// let faults: Arc<FaultInjection<String, &'static str>> = Arc::new(FaultInjection::new(
///     FaultInjector::starting_off(Share::percent(5)?),
///     Fault::Error("injected"),
///     fastrand::Rng::with_seed(7),
/// ));
/// let layer = FaultInjectionLayer::new(Arc::clone(&faults));
/// # let _ = layer;
/// faults.injector().set_enabled(true);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FaultInjectionLayer<T, E> {
    faults: Arc<FaultInjection<T, E>>,
}

impl<T, E> FaultInjectionLayer<T, E> {
    /// A layer injecting `faults`' fault into the requests its injector picks.
    pub fn new(faults: Arc<FaultInjection<T, E>>) -> Self {
        FaultInjectionLayer { faults }
    }

    /// The injection, shared with every service the layer makes.
    pub fn faults(&self) -> &Arc<FaultInjection<T, E>> {
        &self.faults
    }
}

impl<T, E> Clone for FaultInjectionLayer<T, E> {
    fn clone(&self) -> Self {
        FaultInjectionLayer {
            faults: Arc::clone(&self.faults),
        }
    }
}

impl<S, T, E> Layer<S> for FaultInjectionLayer<T, E> {
    type Service = FaultInjectionService<S, T, E>;

    fn layer(&self, inner: S) -> Self::Service {
        FaultInjectionService::new(inner, Arc::clone(&self.faults))
    }
}
