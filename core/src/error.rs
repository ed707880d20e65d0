//! [`ConfigError`]: how every constructor in stanchion rejects a bad configuration.
//!
//! Configuration is checked once, at construction. A rejected configuration names the
//! offending field and the range it must be in, so the message is enough to fix it:
//!
//! ```text
//! invalid configuration: `capacity` must be at least 1
//! ```
//!
//! Constructors return `Result<Self, ConfigError>`. Every constructor is a `const fn`, so
//! a constant or a `static` unwraps it with [`const_config!`](crate::const_config), and a
//! bad constant fails the build rather than the device. A value known only at run time
//! (read from flash, from a file) is checked at run time:
//!
//! ```
//! use stanchion::ConfigError;
//!
//! const fn checked_capacity(capacity: u32) -> Result<u32, ConfigError> {
//!     if capacity == 0 {
//!         return Err(ConfigError::new("capacity", "at least 1"));
//!     }
//!     Ok(capacity)
//! }
//!
//! let err = checked_capacity(0).unwrap_err();
//! assert_eq!(err.field(), "capacity");
//! assert_eq!(err.allowed(), "at least 1");
//! assert_eq!(err.to_string(), "invalid configuration: `capacity` must be at least 1");
//! ```

use core::fmt;

/// A configuration value outside its allowed range.
///
/// Small and `Copy`: two static strings, the field's name (as spelled in the builder or
/// constructor) and the allowed range in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigError {
    field: &'static str,
    allowed: &'static str,
}

impl ConfigError {
    /// An error for `field`, which must be `allowed` (a phrase that completes
    /// "`field` must be ...", such as `"at least 1"` or `"in 1..=100"`).
    pub const fn new(field: &'static str, allowed: &'static str) -> ConfigError {
        ConfigError { field, allowed }
    }

    /// The name of the offending field.
    pub const fn field(&self) -> &'static str {
        self.field
    }

    /// The allowed range, in words.
    pub const fn allowed(&self) -> &'static str {
        self.allowed
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: `{}` must be {}",
            self.field, self.allowed
        )
    }
}

impl core::error::Error for ConfigError {}

/// Unwraps a configuration constructor's `Result` for a constant or a `static`: the
/// expression is evaluated at compile time (in a `const` block), so a bad constant fails
/// the build, and the error names the offending field (`evaluation panicked: burst`); it
/// can never panic at run time. For values known only at run time, handle the `Result`.
///
/// ```
/// use core::time::Duration;
/// use stanchion::const_config;
/// use stanchion::rate::{Quota, TokenBucket};
/// use stanchion::retry::{Exponential, Jitter, Ratio, RetryPolicy};
///
/// /// Three at once, then one every 100 ms.
/// static BUCKET: TokenBucket = TokenBucket::new(const_config!(
///     const_config!(Quota::per_period(Duration::from_millis(100))).with_burst(3)
/// ));
///
/// /// Each operation starts from a copy of this constant, with a seed of its own.
/// const POLICY: RetryPolicy<Exponential> = const_config!(RetryPolicy::new(
///     const_config!(Exponential::new(
///         Duration::from_millis(10),
///         Ratio::TWO,
///         Duration::from_secs(1)
///     ))
///     .with_jitter(Jitter::FULL),
///     4,
///     fastrand::Rng::with_seed(7),
/// ));
///
/// # let (device_id, operations) = (0x5EED_u64, 1_u64);
/// let mut policy = POLICY;
/// policy.rng_mut().seed(device_id ^ operations);
/// assert_eq!(policy.max_attempts(), 4);
/// # let _ = (&BUCKET, &mut policy);
/// ```
///
/// A burst of zero does not build:
///
/// ```compile_fail,E0080
/// use stanchion::const_config;
/// use stanchion::rate::Quota;
///
/// static QUOTA: Quota = const_config!(const_config!(Quota::per_second(10)).with_burst(0));
/// ```
#[macro_export]
macro_rules! const_config {
    ($constructor:expr $(,)?) => {
        const {
            match $constructor {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(error) => {
                    let error: $crate::ConfigError = error;
                    ::core::panic!("{}", error.field())
                }
            }
        }
    };
}
