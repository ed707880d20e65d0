//! [`RegistryError`]: what went wrong in a configuration document, and where.

use std::fmt;

/// Where a value of a configuration document came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A place in the document: its name (a file name), and the line and column
    /// (counted from 1; the column in characters).
    File {
        /// The document's name, as given to [`Document::parse`](super::Document::parse).
        name: String,
        /// From 1.
        line: usize,
        /// From 1, in characters.
        column: usize,
    },
    /// The document as a whole (an instance that a new document leaves out).
    Document {
        /// The document's name.
        name: String,
    },
    /// An environment variable that set the value, or a table above it.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A value the program set over the document ([`Document::with_value`](super::Document::with_value)),
    /// such as a command-line flag.
    Override {
        /// What set it, as the program named it (`flag --max-attempts`).
        by: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { name, line, column } => write!(f, "{name}:{line}:{column}"),
            Origin::Document { name } => f.write_str(name),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Override { by } => f.write_str(by),
        }
    }
}

/// A configuration document refused: where (file, line and column, or the environment
/// variable), which instance (the section and the name), which field (its path inside the
/// instance), and why (for a value core refuses, core's words, which name the allowed
/// range).
///
/// Its `Display` puts them on one line:
///
/// ```text
/// policies.toml:7:26: breaker `downstream`, field `failure_rate_threshold`: invalid configuration: `failure_rate_threshold` must be in 1..=100
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError(Box<Inner>);

/// Boxed, so that a `Result` carrying it stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Inner {
    pub(super) origin: Option<Origin>,
    pub(super) instance: Option<(String, String)>,
    pub(super) field: Option<String>,
    pub(super) message: String,
}

impl RegistryError {
    pub(super) fn new(message: impl Into<String>) -> RegistryError {
        RegistryError(Box::new(Inner {
            origin: None,
            instance: None,
            field: None,
            message: message.into(),
        }))
    }

    pub(super) fn at(mut self, origin: Origin) -> RegistryError {
        self.0.origin = Some(origin);
        self
    }

    pub(super) fn instance(mut self, section: &str, name: &str) -> RegistryError {
        self.0.instance = Some((section.to_owned(), name.to_owned()));
        self
    }

    pub(super) fn field(mut self, field: impl Into<String>) -> RegistryError {
        let field = field.into();
        self.0.field = (!field.is_empty()).then_some(field);
        self
    }

    /// Where the refused value came from, if known.
    pub fn origin(&self) -> Option<&Origin> {
        self.0.origin.as_ref()
    }

    /// The line and column in the document (from 1), if the value came from it.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self.0.origin {
            Some(Origin::File { line, column, .. }) => Some((line, column)),
            _ => None,
        }
    }

    /// The section (`rate_limit`, `breaker`, `retry`, `bulkhead`, `retry_budget`, `hedge`,
    /// `fallback` or `pipeline`) and the name of the instance, if the error is about one.
    pub fn instance_name(&self) -> Option<(&str, &str)> {
        self.0
            .instance
            .as_ref()
            .map(|(section, name)| (section.as_str(), name.as_str()))
    }

    /// The field's path inside the instance (`window.count.size`), if the error is about
    /// one.
    pub fn field_path(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    pub(super) fn append(mut self, more: &str) -> RegistryError {
        self.0.message.push_str(more);
        self
    }

    /// Why, without the place.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Inner {
            origin,
            instance,
            field,
            message,
        } = &*self.0;
        if let Some(origin) = origin {
            write!(f, "{origin}: ")?;
        }
        match (instance, field) {
            (Some((section, name)), Some(field)) => {
                write!(f, "{section} `{name}`, field `{field}`: ")?
            }
            (Some((section, name)), None) => write!(f, "{section} `{name}`: ")?,
            (None, Some(field)) => write!(f, "`{field}`: ")?,
            (None, None) => {}
        }
        f.write_str(message)
    }
}

impl std::error::Error for RegistryError {}
