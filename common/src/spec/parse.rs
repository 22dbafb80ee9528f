//! From YAML text to a validated [`Pipeline`], with errors a person can act on.

use std::collections::BTreeMap;
use std::fmt;

use super::guard;
use super::message::elide;
use super::positions::{line_column, Kind, Positions};
use super::types::Pipeline;
use super::validate::validate;
use super::yaml_error::render;
use crate::limits::{check_bytes, LimitError, Limits};

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Key path such as `spec.source.http.pagination`.
    pub path: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// A validation problem before it is placed in the file.
pub(crate) struct Problem {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Parses and validates a pipeline. `file` names the source in messages; `env` is the
/// environment that `${VAR}` secrets must resolve in: apitapctl passes its environment, the
/// coordinator the secret values sent with the submit; `None` skips the check (re-reading
/// a stored spec). Checks the default [`Limits`].
pub fn load(
    file: &str,
    text: &str,
    env: Option<&BTreeMap<String, String>>,
) -> Result<Pipeline, SpecErrors> {
    load_with(file, text, env, &Limits::default())
}

/// The error for a document of `len` bytes when that is above `limits.max_document_bytes`.
/// [`load_with`] checks it first; apitapctl calls it for a file it did not read to the end.
pub fn check_document_size(file: &str, len: u64, limits: &Limits) -> Result<(), SpecErrors> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    check_bytes(
        "max_document_bytes",
        "the document",
        len,
        limits.max_document_bytes,
        "a pipeline is a few kilobytes of YAML; shorten long lists and strings, or split the pipeline",
    )
    .map_err(|e| limit_error(file, None, e))
}

/// A limit crossed by the text as a whole (no key path), at `pos` when known.
fn limit_error(file: &str, pos: Option<(usize, usize)>, e: LimitError) -> SpecErrors {
    SpecErrors(vec![SpecError {
        file: file.to_string(),
        line: pos.map(|p| p.0),
        column: pos.map(|p| p.1),
        path: None,
        message: e.message(),
        hint: Some(e.fix),
    }])
}

/// [`load`] with other [`Limits`] than the defaults.
pub fn load_with(
    file: &str,
    text: &str,
    env: Option<&BTreeMap<String, String>>,
    limits: &Limits,
) -> Result<Pipeline, SpecErrors> {
    parse_and_validate(file, text, env, limits).map_err(|SpecErrors(errors)| {
        SpecErrors(
            errors
                .into_iter()
                .map(|e| SpecError {
                    message: elide(e.message),
                    hint: e.hint.map(elide),
                    ..e
                })
                .collect(),
        )
    })
}

fn parse_and_validate(
    file: &str,
    text: &str,
    env: Option<&BTreeMap<String, String>>,
    limits: &Limits,
) -> Result<Pipeline, SpecErrors> {
    check_document_size(file, text.len() as u64, limits)?;
    // Editors on Windows save UTF-8 with a byte order mark. It is not content: it goes, and
    // lines and columns are those an editor shows.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let at = |line: Option<usize>, column: Option<usize>, message: String, hint: Option<&str>| {
        SpecErrors(vec![SpecError {
            file: file.to_string(),
            line,
            column,
            path: None,
            message,
            hint: hint.map(str::to_string),
        }])
    };
    if text.trim().is_empty() {
        return Err(at(
            None,
            None,
            "the file is empty".into(),
            Some("a pipeline starts with `apiVersion: apitap/v1` and `kind: Pipeline`; see examples/pipelines/demo.yaml"),
        ));
    }
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(at(
            None,
            None,
            "the file holds only comments, no pipeline".into(),
            Some("a pipeline starts with `apiVersion: apitap/v1` and `kind: Pipeline`; see examples/pipelines/demo.yaml"),
        ));
    }
    // Syntax, duplicate keys, a second document and the limits of the text first
    // (guard.rs), then types, then the checks on typed values; each placed in the text
    // through the parser's own positions.
    let positions = Positions::of(text);
    let yaml_error =
        |e: serde_saphyr::Error| SpecErrors(vec![render(file, text, &positions, limits, &e)]);
    guard::walk(text, limits).map_err(yaml_error)?;
    let kind = match positions.root().map(|n| &n.kind) {
        Some(Kind::Mapping) => None,
        Some(Kind::Sequence) => Some("a list"),
        Some(Kind::Scalar(s)) if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL") => {
            Some("empty")
        }
        _ => Some("a single value"),
    };
    if let Some(kind) = kind {
        let start = positions.root().map_or(0, |n| n.start);
        return Err(at(
            Some(line_column(text, start).0),
            Some(1),
            format!("the document is {kind}, not a mapping of keys to values"),
            Some("a pipeline has the top-level keys apiVersion, kind, metadata and spec"),
        ));
    }
    let pipeline: Pipeline =
        serde_saphyr::from_str_with_options(text, guard::options(limits)).map_err(yaml_error)?;
    let problems = validate(&pipeline, env, limits);
    if problems.is_empty() {
        return Ok(pipeline);
    }
    Err(SpecErrors(
        problems
            .into_iter()
            .map(|p| {
                let pos = positions.key_of(&p.path).map(|o| line_column(text, o));
                SpecError {
                    file: file.to_string(),
                    line: pos.map(|(l, _)| l),
                    column: pos.map(|(_, c)| c),
                    path: Some(p.path),
                    message: p.message,
                    hint: p.hint,
                }
            })
            .collect(),
    ))
}
