//! The HTTP service: every stanchion pattern in front of a flaky downstream. See
//! [`stanchion_examples::service`] and the README's service section.
//!
//! ```text
//! cargo run -p stanchion-examples --bin service -- --admin-token s3cret --api-key alice=alice-key:100/60s
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    stanchion_examples::service::main()
}
