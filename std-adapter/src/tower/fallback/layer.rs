use stanchion::fallback::FallbackOn;
use tower_layer::Layer;

use super::FallbackService;

/// Answers the failures `when` covers with `fallback(error)`; see the
/// [module docs](super).
#[derive(Clone, Copy, Debug)]
pub struct FallbackLayer<G> {
    when: FallbackOn,
    fallback: G,
}

impl<G> FallbackLayer<G> {
    /// A layer answering the failures `when` covers with `fallback(error)`, a
    /// `Fn(BoxError) -> Response` (cloned into each service).
    pub fn new(when: FallbackOn, fallback: G) -> Self {
        FallbackLayer { when, fallback }
    }
}

impl<S, G: Clone> Layer<S> for FallbackLayer<G> {
    type Service = FallbackService<S, G>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService::new(inner, self.when, self.fallback.clone())
    }
}
