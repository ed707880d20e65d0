//! The `rate_limiting` example, on virtual time: see [`stanchion_examples::rate_limiting`].
//!
//! ```text
//! cargo run -p stanchion-examples --bin rate_limiting
//! ```

fn main() {
    stanchion_examples::rate_limiting::run();
}
