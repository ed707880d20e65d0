//! The HTTP service: every stanchion pattern in front of a flaky downstream. See
//! [`stanchion_examples::service`] and the README's service section.
//!
//! ```text
//! openssl rand -hex 16 > admin-token
//! STANCHION_API_KEYS=alice=alice-key:100/60s \
//!     cargo run -p stanchion-examples --bin service -- --admin-token-file admin-token
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    stanchion_examples::service::main()
}
