//! The `combined_patterns` example, on virtual time: see [`stanchion_examples::combined_patterns`].
//!
//! ```text
//! cargo run -p stanchion-examples --bin combined_patterns
//! ```

fn main() {
    stanchion_examples::combined_patterns::run();
}
