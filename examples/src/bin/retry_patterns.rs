//! The `retry_patterns` example, on virtual time: see [`stanchion_examples::retry_patterns`].
//!
//! ```text
//! cargo run -p stanchion-examples --bin retry_patterns
//! ```

fn main() {
    stanchion_examples::retry_patterns::run();
}
