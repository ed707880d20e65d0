//! What the Redis-backed limiter (feature `redis` of `stanchion-std`) needs from the
//! machine: a `redis-server` binary. Its tests start their own servers on free loopback
//! ports, so the system service is not needed; `cargo xtask test` lints, documents and
//! tests the feature with the std adapter's other features.

use super::{Result, ensure_debian_package};

/// Installs Debian's `redis-server` if it is missing and we are root; otherwise a missing
/// server is an error that names the package.
pub(crate) fn install_redis_server() -> Result {
    ensure_debian_package("redis-server", "redis-server")
}
