//! [`Document`]: a TOML configuration document, with the place of every value, and
//! environment variables laid over single fields.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{Origin, RegistryError};

/// A configuration document read from TOML, with environment variables laid over it:
/// what [`Registry::new`](super::Registry::new) and
/// [`Registry::reload`](super::Registry::reload) take.
///
/// The document keeps the place of every value, so that an error names the line and the
/// column, and which values an environment variable set, so that an error about one of
/// them names the variable instead.
///
/// ```
/// use stanchion_std::registry::Document;
///
/// let document = Document::parse("policies.toml", "[rate_limit.api]\nburst = 10\nperiod = \"100ms\"\n")?
///     .with_env("STANCHION", [("STANCHION__RATE_LIMIT__API__BURST", "20")])?;
/// assert_eq!(document.name(), "policies.toml");
/// # Ok::<(), stanchion_std::registry::RegistryError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Document {
    name: String,
    text: String,
    table: toml::Table,
    places: Node,
    overrides: Vec<(Vec<String>, Origin)>,
}

/// A table's keys and where each value sits in the text (byte ranges).
#[derive(Clone, Debug, Default)]
struct Node {
    span: Range<usize>,
    children: BTreeMap<String, Node>,
}

/// Reads the places of a TOML value and of everything inside it (through toml's
/// `Spanned`), ignoring the values themselves.
struct Children(BTreeMap<String, Node>);

impl<'de> Deserialize<'de> for Children {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChildrenVisitor;

        impl<'de> Visitor<'de> for ChildrenVisitor {
            type Value = Children;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any TOML value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Children, A::Error> {
                let mut children = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: toml::Spanned<Children> = map.next_value()?;
                    let span = value.span();
                    children.insert(
                        key,
                        Node {
                            span,
                            children: value.into_inner().0,
                        },
                    );
                }
                Ok(Children(children))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Children, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Children(BTreeMap::new()))
            }

            fn visit_bool<E>(self, _: bool) -> Result<Children, E> {
                Ok(Children(BTreeMap::new()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Children, E> {
                Ok(Children(BTreeMap::new()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Children, E> {
                Ok(Children(BTreeMap::new()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Children, E> {
                Ok(Children(BTreeMap::new()))
            }
            fn visit_str<E>(self, _: &str) -> Result<Children, E> {
                Ok(Children(BTreeMap::new()))
            }
        }

        deserializer.deserialize_any(ChildrenVisitor)
    }
}

/// Line and column (from 1; the column in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The environment variable's form of a key: upper case, `-` as `_`.
fn env_form(key: &str) -> String {
    key.to_ascii_uppercase().replace('-', "_")
}

/// A value given in an environment variable: a TOML value if it reads as one (`60`,
/// `true`, `"5s"`, `{ count = { size = 50 } }`), otherwise the text as a string (`5s`).
fn env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

impl Document {
    /// Reads `text` as TOML; `name` (a file name) is how errors refer to it. A syntax
    /// error names the line and the column.
    ///
    /// ```
    /// use stanchion_std::registry::Document;
    ///
    /// let err = Document::parse("policies.toml", "[breaker.downstream]\nminimum_calls = = 5\n").unwrap_err();
    /// assert_eq!(err.line_column(), Some((2, 17)));
    /// ```
    pub fn parse(
        name: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Document, RegistryError> {
        let name = name.into();
        let text = text.into();
        let table = text.parse::<toml::Table>().map_err(|e| {
            let error = RegistryError::new(e.message().trim_end().to_owned());
            match e.span() {
                Some(span) => {
                    let (line, column) = line_column(&text, span.start);
                    error.at(Origin::File {
                        name: name.clone(),
                        line,
                        column,
                    })
                }
                None => error.at(Origin::Document { name: name.clone() }),
            }
        })?;
        // The text parsed as a table, so reading the places of its values succeeds too;
        // if it did not, errors would name the document without a line.
        let places = toml::from_str::<Children>(&text)
            .map(|c| Node {
                span: 0..0,
                children: c.0,
            })
            .unwrap_or_default();
        Ok(Document {
            name,
            text,
            table,
            places,
            overrides: Vec::new(),
        })
    }

    /// The document's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The document with the environment variables of `vars` whose names start with
    /// `prefix` followed by `__` laid over it, one field each: `PREFIX__SECTION__NAME__FIELD`
    /// (more `__`-separated keys for a field inside a table, as in
    /// `STANCHION__BREAKER__DOWNSTREAM__WINDOW__COUNT__SIZE`).
    ///
    /// Keys are matched without regard to case, and `_` in a variable's name matches `-`
    /// in the document's key (an instance named `user-api` is `USER_API`); a key the
    /// document does not have is added in lower case. The value is read as a TOML value
    /// when it is one (`60`, `true`, `"5s"`, `{ count = { size = 50 } }`) and otherwise
    /// as a string (`5s`). Variables are applied in the order of their names, so that the
    /// result does not depend on the order of the environment.
    ///
    /// An error names the variable: a name with no key after the prefix, or a key below a
    /// value that is not a table.
    pub fn with_env<K, V>(
        mut self,
        prefix: &str,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Document, RegistryError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let start = format!("{prefix}__");
        let mut chosen: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.as_ref().starts_with(&start))
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        chosen.sort();
        for (var, raw) in chosen {
            let keys: Vec<&str> = var[start.len()..].split("__").collect();
            if keys.iter().any(|k| k.is_empty()) {
                return Err(RegistryError::new(
                    "expected PREFIX__SECTION__NAME__FIELD, with no empty key",
                )
                .at(Origin::Env { var }));
            }
            let mut table = &mut self.table;
            let mut path = Vec::with_capacity(keys.len());
            let (last, parents) = match keys.split_last() {
                Some(split) => split,
                None => continue,
            };
            for key in parents {
                let found = table
                    .keys()
                    .find(|k| env_form(k) == env_form(key))
                    .cloned()
                    .unwrap_or_else(|| key.to_ascii_lowercase());
                path.push(found.clone());
                let entry = table
                    .entry(found)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                table = match entry {
                    toml::Value::Table(t) => t,
                    _ => {
                        return Err(RegistryError::new(format!(
                            "`{}` is not a table, so it has no field `{}`",
                            path.join("."),
                            last.to_ascii_lowercase()
                        ))
                        .at(Origin::Env { var }));
                    }
                };
            }
            let found = table
                .keys()
                .find(|k| env_form(k) == env_form(last))
                .cloned()
                .unwrap_or_else(|| last.to_ascii_lowercase());
            path.push(found.clone());
            table.insert(found, env_value(&raw));
            self.overrides.push((path, Origin::Env { var }));
        }
        Ok(self)
    }

    /// Reads the file at `path` as a document named by the path.
    ///
    /// # Errors
    ///
    /// The file cannot be read (the error names it), or is not TOML (as
    /// [`parse`](Self::parse)).
    pub fn read_file(path: impl AsRef<std::path::Path>) -> Result<Document, RegistryError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Document::parse(name, text),
            Err(e) => Err(RegistryError::new(format!("cannot read the file: {e}"))
                .at(Origin::Document { name })),
        }
    }

    /// The value at `path` (`["retry", "downstream", "max_attempts"]`), environment
    /// variables included, if the document has one.
    pub fn get(&self, path: &[&str]) -> Option<&toml::Value> {
        let (first, rest) = path.split_first()?;
        let mut value = self.table.get(*first)?;
        for key in rest {
            value = value.get(*key)?;
        }
        Some(value)
    }

    /// The document with the value at `path` set to `raw`, read as an environment
    /// variable's value is ([`with_env`](Self::with_env)): a program's own override, such
    /// as a command-line flag, which errors then name as `by` (`"flag --max-attempts"`).
    /// The tables on the way are made if the document has none.
    ///
    /// ```
    /// use stanchion_std::registry::{Document, Registry};
    ///
    /// let document = Document::parse("policies.toml", "[retry.downstream]\nmax_attempts = 3\nbackoff = \"immediate\"\n")?
    ///     .with_value(&["retry", "downstream", "max_attempts"], "0", "flag --max-attempts")?;
    /// assert_eq!(
    ///     Registry::new(&document).unwrap_err().to_string(),
    ///     "flag --max-attempts: retry `downstream`, field `max_attempts`: invalid configuration: `max_attempts` must be at least 1"
    /// );
    /// # Ok::<(), stanchion_std::registry::RegistryError>(())
    /// ```
    pub fn with_value(
        mut self,
        path: &[&str],
        raw: &str,
        by: impl Into<String>,
    ) -> Result<Document, RegistryError> {
        let by = by.into();
        let Some((last, parents)) = path.split_last() else {
            return Ok(self);
        };
        let mut table = &mut self.table;
        for (i, key) in parents.iter().enumerate() {
            let entry = table
                .entry((*key).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(RegistryError::new(format!(
                        "`{}` is not a table, so it has no field `{last}`",
                        path.get(..=i).unwrap_or(path).join(".")
                    ))
                    .at(Origin::Override { by }));
                }
            };
        }
        table.insert((*last).to_owned(), env_value(raw));
        self.overrides.push((
            path.iter().map(|k| (*k).to_owned()).collect(),
            Origin::Override { by },
        ));
        Ok(self)
    }

    /// [`with_env`](Self::with_env) with the process's environment.
    pub fn with_process_env(self, prefix: &str) -> Result<Document, RegistryError> {
        self.with_env(prefix, std::env::vars())
    }

    /// The top-level table, environment included.
    pub(super) fn table(&self) -> &toml::Table {
        &self.table
    }

    /// Where the value at `path` came from: the variable or override that set it or a
    /// table above it, otherwise the place in the text of the deepest key of `path` the
    /// text has.
    pub(super) fn origin(&self, path: &[String]) -> Origin {
        // The last override applied wins, as its value does.
        if let Some((_, origin)) = self
            .overrides
            .iter()
            .rev()
            .find(|(set, _)| path.starts_with(set))
        {
            return origin.clone();
        }
        let mut node = &self.places;
        let mut found = false;
        for key in path {
            match node.children.get(key) {
                Some(child) => {
                    node = child;
                    found = true;
                }
                None => break,
            }
        }
        if !found {
            return Origin::Document {
                name: self.name.clone(),
            };
        }
        let (line, column) = line_column(&self.text, node.span.start);
        Origin::File {
            name: self.name.clone(),
            line,
            column,
        }
    }
}
