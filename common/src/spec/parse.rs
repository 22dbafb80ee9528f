//! From YAML text to a validated [`Pipeline`], with errors a person can act on.

use std::collections::BTreeMap;
use std::fmt;

use super::locate::locate;
use super::types::Pipeline;
use super::validate::validate;

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
/// environment that `${VAR}` secrets must resolve in (pass `None` to skip that check, as
/// the coordinator does: it never sees the submitter's environment).
pub fn load(
    file: &str,
    text: &str,
    env: Option<&BTreeMap<String, String>>,
) -> Result<Pipeline, SpecErrors> {
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
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(at(
            None,
            None,
            "the file is empty".into(),
            Some("a pipeline starts with `apiVersion: apitap/v1` and `kind: Pipeline`; see examples/pipelines/demo.yaml"),
        ));
    }
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location();
        at(
            loc.as_ref().map(|l| l.line()),
            loc.as_ref().map(|l| l.column()),
            format!("not valid YAML: {}", without_position(&e.to_string())),
            Some("check indentation and quoting around this position"),
        )
    })?;
    if value.as_mapping().is_none() {
        return Err(at(
            Some(1),
            Some(1),
            "the document is not a mapping of keys to values".into(),
            Some("a pipeline has the top-level keys apiVersion, kind, metadata and spec"),
        ));
    }
    let pipeline: Pipeline = serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location();
        let message = without_position(&e.to_string());
        let hint = if message.contains("unknown field") {
            Some("remove the key or fix its spelling; docs/pipeline-reference.md lists every key")
        } else if message.contains("missing field") {
            Some("add the key; docs/pipeline-reference.md shows each section")
        } else {
            Some("docs/pipeline-reference.md lists the type of every key")
        };
        at(
            loc.as_ref().map(|l| l.line()),
            loc.as_ref().map(|l| l.column()),
            message,
            hint,
        )
    })?;
    let problems = validate(&pipeline, env);
    if problems.is_empty() {
        return Ok(pipeline);
    }
    Err(SpecErrors(
        problems
            .into_iter()
            .map(|p| {
                let segments: Vec<&str> = p.path.split('.').collect();
                let pos = locate(text, &segments);
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

/// serde_yaml appends "at line L column C"; the position is already in front of the message.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
