use std::sync::Arc;

use stanchion::hedge::DEFAULT_BUCKETS;
use tower_layer::Layer;

use super::HedgeService;
use crate::hedge::Hedging;

/// Hedges the requests to the inner service; see the [module docs](super).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use stanchion::hedge::{Hedge, HedgeConfig};
/// use stanchion::retry::{Ratio, RatioBudget};
/// use stanchion_std::hedge::Hedging;
/// use stanchion_std::tower::HedgeLayer;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stanchion_std::tower::BoxError> {
/// // At the learned p95, at most 2 attempts, hedges at most 5% of requests (plus 1 per 10 s).
/// let budget = RatioBudget::<10>::new(Duration::from_secs(10), Ratio::percent(5), 1)?;
/// let hedge: Hedge<_> = Hedge::new(HedgeConfig::learned(950, 2)?, budget)?;
/// let service = ServiceBuilder::new()
///     .layer(HedgeLayer::new(Arc::new(Hedging::new(hedge))))
///     .service(service_fn(|key: u32| async move { Ok::<_, std::io::Error>(key * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct HedgeLayer<Bu, const B: usize = DEFAULT_BUCKETS> {
    hedging: Arc<Hedging<Bu, B>>,
}

impl<Bu, const B: usize> HedgeLayer<Bu, B> {
    /// A layer running `hedging` (its delay, attempts and budget) over the inner service.
    pub fn new(hedging: Arc<Hedging<Bu, B>>) -> Self {
        HedgeLayer { hedging }
    }

    /// The hedging, shared with every service the layer makes.
    pub fn hedging(&self) -> &Arc<Hedging<Bu, B>> {
        &self.hedging
    }
}

impl<Bu, const B: usize> Clone for HedgeLayer<Bu, B> {
    fn clone(&self) -> Self {
        HedgeLayer {
            hedging: Arc::clone(&self.hedging),
        }
    }
}

impl<S, Bu, const B: usize> Layer<S> for HedgeLayer<Bu, B> {
    type Service = HedgeService<S, Bu, B>;

    fn layer(&self, inner: S) -> Self::Service {
        HedgeService::new(inner, Arc::clone(&self.hedging))
    }
}
