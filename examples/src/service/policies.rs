//! The downstream's policies, by name, from `--config FILE` (a TOML document of
//! `stanchion_std::registry`) and the flags, reloadable at run time.
//!
//! The service uses three instances of the document, each also settable by flags:
//!
//! | instance | fields the service's flags set |
//! |---|---|
//! | `[retry.downstream]` | `max_attempts` (`--max-attempts`), `backoff` (`--retry-base`: exponential from it, doubling, capped at 10x, full jitter), `budget = "downstream"` |
//! | `[retry_budget.downstream]` | `max_tokens` (`--retry-budget`), `token_ratio = "0.1"` |
//! | `[breaker.downstream]` | `window = { consecutive = { length } }` (`--breaker-failures`), `open_duration` (`--open-wait`), `permitted_calls_in_half_open` and `minimum_calls` (`--half-open-probes`) |
//! | `[bulkhead.downstream]` | `max_concurrent` (`--max-concurrent`) |
//!
//! A flag given (on the command line or by its `STANCHION_...` variable) wins over the
//! file; a field the file leaves out takes the flag's default. Variables
//! `STANCHION__SECTION__NAME__FIELD` (two underscores) set single fields of the file, as
//! `stanchion_std::registry::Document::with_env` says. Every request's retry policy is
//! also bounded by `--request-timeout`, and its retries by the retry budget.
//!
//! `kill -HUP PID` or `POST /admin/reload` reads the file again and applies it to the
//! live instances: retry settings, the retry budget, the bulkhead's maximum and the
//! breaker's thresholds (`minimum_calls`, the rate thresholds) change in place; a change
//! to the breaker's window, open wait or half-open probes, or a document with an error,
//! is refused with the reason (and the file, line and column), and then nothing changes.

use std::path::PathBuf;

use stanchion_std::registry::{Document, Registry, RegistryError};

use super::config::{Config, DisplayDuration};

/// A field the service's flags set: the flag, where the value goes, the value (a TOML
/// value), and whether the flag was given.
#[derive(Clone, Debug)]
struct Flag {
    name: &'static str,
    path: [&'static str; 3],
    value: String,
    given: bool,
}

/// The document's file, the flags over it, and the instances built from them.
///
/// The retry settings `retry.downstream` draw on the retry budget they name
/// (`retry_budget.downstream` unless the file says otherwise).
pub struct Policies {
    file: Option<PathBuf>,
    flags: Vec<Flag>,
    /// The named instances.
    pub registry: Registry,
}

impl Policies {
    /// The policies of `config`: its `--config` file, if any, under the flags (those
    /// `given` says were given win over the file).
    ///
    /// # Errors
    ///
    /// The file cannot be read, or a value is refused: the message says where (file, line
    /// and column, variable or flag), which instance and field, and why.
    pub fn new(config: &Config, given: impl Fn(&str) -> bool) -> Result<Policies, String> {
        let quoted = |d: std::time::Duration| format!("\"{}\"", DisplayDuration(d));
        let base = config.retry_base;
        let backoff = format!(
            "{{ exponential = {{ base = {}, factor = 2, cap = {}, jitter = \"full\" }} }}",
            quoted(base),
            quoted(base.saturating_mul(10))
        );
        let flag = |name: &'static str, id: &str, path: [&'static str; 3], value: String| Flag {
            name,
            path,
            value,
            given: given(id),
        };
        let probes = config.half_open_probes.to_string();
        // Fields no flag sets, filled in when the file leaves them out.
        let default = |path: [&'static str; 3], value: &str| Flag {
            name: "(default)",
            path,
            value: value.to_owned(),
            given: false,
        };
        let flags = vec![
            flag(
                "--max-attempts",
                "max_attempts",
                ["retry", "downstream", "max_attempts"],
                config.max_attempts.to_string(),
            ),
            flag(
                "--retry-base",
                "retry_base",
                ["retry", "downstream", "backoff"],
                backoff,
            ),
            flag(
                "--breaker-failures",
                "breaker_failures",
                ["breaker", "downstream", "window"],
                format!(
                    "{{ consecutive = {{ length = {} }} }}",
                    config.breaker_failures
                ),
            ),
            flag(
                "--open-wait",
                "open_wait",
                ["breaker", "downstream", "open_duration"],
                quoted(config.open_wait),
            ),
            flag(
                "--half-open-probes",
                "half_open_probes",
                ["breaker", "downstream", "permitted_calls_in_half_open"],
                probes.clone(),
            ),
            flag(
                "--half-open-probes",
                "half_open_probes",
                ["breaker", "downstream", "minimum_calls"],
                probes,
            ),
            default(["retry", "downstream", "budget"], "\"downstream\""),
            flag(
                "--retry-budget",
                "retry_budget",
                ["retry_budget", "downstream", "max_tokens"],
                config.retry_budget.to_string(),
            ),
            default(["retry_budget", "downstream", "token_ratio"], "\"0.1\""),
            flag(
                "--max-concurrent",
                "max_concurrent",
                ["bulkhead", "downstream", "max_concurrent"],
                config.max_concurrent.to_string(),
            ),
        ];
        let document = document(config.config.as_ref(), &flags).map_err(|e| e.to_string())?;
        let registry = Registry::new(&document).map_err(|e| e.to_string())?;
        Ok(Policies {
            file: config.config.clone(),
            flags,
            registry,
        })
    }

    /// Reads the file again, under the same flags, and applies it to the live
    /// instances: a line that says what changed, or why nothing did.
    ///
    /// # Errors
    ///
    /// No `--config` file, or the document refused (see [`Registry::reload`]).
    pub fn reload(&self) -> Result<String, String> {
        let Some(file) = &self.file else {
            return Err("no --config file to reload".to_owned());
        };
        let document = document(Some(file), &self.flags).map_err(|e| e.to_string())?;
        let reloaded = self.registry.reload(&document).map_err(|e| e.to_string())?;
        let list = |names: &[String]| match names {
            [] => "nothing".to_owned(),
            names => names.join(", "),
        };
        Ok(format!(
            "reloaded {}: changed {}; added {}",
            file.display(),
            list(&reloaded.changed),
            list(&reloaded.added)
        ))
    }
}

/// The document of `file` (or an empty one), with the `STANCHION__` variables and then
/// the flags over it.
fn document(file: Option<&PathBuf>, flags: &[Flag]) -> Result<Document, RegistryError> {
    let mut document = match file {
        Some(path) => Document::read_file(path)?,
        None => Document::parse("(flags)", "")?,
    }
    .with_process_env("STANCHION")?;
    for flag in flags {
        if flag.given || document.get(&flag.path).is_none() {
            document =
                document.with_value(&flag.path, &flag.value, format!("flag {}", flag.name))?;
        }
    }
    Ok(document)
}
