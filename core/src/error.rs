//! [`ConfigError`]: how every constructor in stanchion rejects a bad configuration.
//!
//! Configuration is checked once, at construction. A rejected configuration names the
//! offending field and the range it must be in, so the message is enough to fix it:
//!
//! ```text
//! invalid configuration: `capacity` must be at least 1
//! ```
//!
//! Constructors return `Result<Self, ConfigError>`. Where a constructor is a `const fn`,
//! a bad configuration in a `static` fails the build rather than the device:
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
