//! The `circuit_breaker` example, on virtual time: see [`stanchion_examples::circuit_breaker`].
//!
//! ```text
//! cargo run -p stanchion-examples --bin circuit_breaker
//! ```

fn main() {
    stanchion_examples::circuit_breaker::run();
}
