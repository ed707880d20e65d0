//! [`RedisLimiterError`]: why a Redis-backed decision could not be taken.

use std::fmt;
use std::time::Duration;

use stanchion::ConfigError;

/// Why [`RedisRateLimiter::decide`](super::RedisRateLimiter::decide) (the decision without
/// fallback) or a constructor failed. [`admit`](crate::AsyncKeyedRateLimiter::admit) never
/// returns it: it answers with the [`Fallback`](super::Fallback) instead.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisLimiterError {
    /// A configuration value out of range.
    Config(ConfigError),
    /// Redis failed: connection refused or lost, a script error, a client-side error.
    Redis(redis::RedisError),
    /// The call took longer than the configured call timeout.
    Timeout(Duration),
    /// Redis answered something other than the script's reply (what was wrong, in words).
    MalformedReply(&'static str),
    /// The limiter was built outside a tokio runtime (its connection manager spawns a
    /// task there).
    NoRuntime,
}

impl fmt::Display for RedisLimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisLimiterError::Config(e) => e.fmt(f),
            RedisLimiterError::Redis(e) => write!(f, "redis: {e}"),
            RedisLimiterError::Timeout(d) => write!(f, "redis call timed out after {d:?}"),
            RedisLimiterError::MalformedReply(what) => {
                write!(f, "malformed reply from the limiter script: {what}")
            }
            RedisLimiterError::NoRuntime => {
                f.write_str("the Redis limiter must be built inside a tokio runtime")
            }
        }
    }
}

impl std::error::Error for RedisLimiterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisLimiterError::Config(e) => Some(e),
            RedisLimiterError::Redis(e) => Some(e),
            RedisLimiterError::Timeout(_)
            | RedisLimiterError::MalformedReply(_)
            | RedisLimiterError::NoRuntime => None,
        }
    }
}

impl From<ConfigError> for RedisLimiterError {
    fn from(e: ConfigError) -> Self {
        RedisLimiterError::Config(e)
    }
}

impl From<redis::RedisError> for RedisLimiterError {
    fn from(e: redis::RedisError) -> Self {
        RedisLimiterError::Redis(e)
    }
}
