//! What the Redis-backed limiter (features `redis` and `redis-cluster` of `stanchion-std`)
//! needs from the machine: a `redis-server` binary, and `redis-cli` (Debian's
//! `redis-tools`, which `redis-server` depends on) to join the cluster tests' nodes. Its
//! tests start their own servers and clusters on free loopback ports, so the system
//! service is not needed; `cargo xtask test` lints, documents and tests the features with
//! the std adapter's other features.

use super::{Result, ensure_debian_package};

/// Installs Debian's `redis-server` (and `redis-tools`) if missing and we are root;
/// otherwise a missing binary is an error that names the package.
pub(crate) fn install_redis_server() -> Result {
    ensure_debian_package("redis-server", "redis-server")?;
    ensure_debian_package("redis-cli", "redis-tools")
}
