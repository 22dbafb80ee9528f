//! From YAML text to a validated [`Pipeline`], with errors a person can act on.

use std::collections::BTreeMap;
use std::fmt;

use super::guard;
use super::locate::{locate, yaml_position};
use super::message::elide;
use super::types::Pipeline;
use super::validate::validate;
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
    // Editors on Windows save UTF-8 with a byte order mark, and serde_yaml 0.9 reads a
    // mapping after one as several documents. It is not content: it goes, and lines and
    // columns are those an editor shows.
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
    guard::check(text, limits).map_err(|c| limit_error(file, c.position, c.error))?;
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let (line, column, message, hint) = yaml_problem(text, &e);
        at(line, column, message, Some(hint))
    })?;
    if value.as_mapping().is_none() {
        let kind = match value {
            serde_yaml::Value::Sequence(_) => "a list",
            serde_yaml::Value::Null => "empty",
            _ => "a single value",
        };
        let first = text
            .lines()
            .position(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with('#') && t != "---"
            })
            .map_or(1, |i| i + 1);
        return Err(at(
            Some(first),
            Some(1),
            format!("the document is {kind}, not a mapping of keys to values"),
            Some("a pipeline has the top-level keys apiVersion, kind, metadata and spec"),
        ));
    }
    let pipeline: Pipeline = serde_yaml::from_str(text).map_err(|e| {
        let mut loc = yaml_position(text, &e);
        let (path, message) = split_path(&strip_position(&e));
        let message = plain_types(&message);
        let hint = if message.contains("unknown field") {
            "remove the key or fix its spelling; docs/pipeline-reference.md lists every key"
        } else if message.contains("missing field") {
            // serde_yaml points at the first key inside the mapping; the mapping's own key
            // is where the missing one belongs.
            if let Some(path) = path.as_ref().filter(|p| !p.contains('[')) {
                let segments: Vec<&str> = path.split('.').collect();
                loc = locate(text, &segments).or(loc);
            }
            "add the key; docs/pipeline-reference.md shows each section"
        } else {
            "docs/pipeline-reference.md lists the type of every key"
        };
        SpecErrors(vec![SpecError {
            file: file.to_string(),
            line: loc.map(|l| l.0),
            column: loc.map(|l| l.1),
            path,
            message,
            hint: Some(hint.to_string()),
        }])
    })?;
    let problems = validate(&pipeline, env, limits);
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

/// The message of a serde_yaml error without the "at line L column C" of its own position
/// (it is printed in front of the message). A second position, such as where the flow
/// sequence that is never closed starts, is kept.
fn strip_position(e: &serde_yaml::Error) -> String {
    let message = e.to_string();
    let Some(loc) = e.location() else {
        return message;
    };
    let own = if loc.line() == 1 && loc.column() == 1 {
        format!(" at position {}", loc.index())
    } else {
        format!(" at line {} column {}", loc.line(), loc.column())
    };
    let message = message.replacen(&own, "", 1);
    message.replace(" at line ", " that starts at line ")
}

/// serde_yaml prefixes a key path (`spec.source.http: unknown field ...`); returns it apart.
fn split_path(message: &str) -> (Option<String>, String) {
    if let Some((path, rest)) = message.split_once(": ") {
        let is_path = !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]".contains(c));
        if is_path {
            return (Some(path.to_string()), rest.to_string());
        }
    }
    (None, message.to_string())
}

/// Replaces Rust type names in serde messages (`expected struct HttpSource`, `expected u32`)
/// with what they mean in YAML.
fn plain_types(message: &str) -> String {
    let mut out = message.replacen("unknown variant", "unknown value", 1);
    if let Some(i) = out.find("expected struct ") {
        let end = out[i + 16..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(out.len(), |j| i + 16 + j);
        out.replace_range(i..end, "expected a mapping of keys to values");
    }
    for (rust, yaml) in [
        ("expected u8", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a map", "expected a mapping of keys to values"),
    ] {
        if out.ends_with(rust) {
            out.truncate(out.len() - rust.len());
            out.push_str(yaml);
        }
    }
    out
}

/// Position, message and hint for text that is not YAML (or not one YAML document).
fn yaml_problem(
    text: &str,
    e: &serde_yaml::Error,
) -> (Option<usize>, Option<usize>, String, &'static str) {
    let loc = yaml_position(text, e);
    let raw = e.to_string();
    if raw.contains("more than one document") {
        // The second document starts at the second `---` if the file opens with one.
        let mut starts = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_end() == "---" || l.starts_with("--- "));
        let opens_with_marker = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .is_some_and(|l| l.starts_with("---"));
        if opens_with_marker {
            starts.next();
        }
        let line = starts.next().map(|(i, _)| i + 1);
        return (
            line,
            line.map(|_| 1),
            "the file holds more than one YAML document (`---` starts another)".into(),
            "put each pipeline in a file of its own",
        );
    }
    let (path, message) = split_path(&strip_position(e));
    if let Some(key) = message
        .strip_prefix("duplicate entry with key ")
        .map(|k| k.trim_matches('"'))
    {
        let (line, column) = loc
            .and_then(|(l, c)| second_key(text, l, c, key))
            .or(loc)
            .unzip();
        let within = path.map(|p| format!(" in {p}")).unwrap_or_default();
        return (
            line,
            column,
            format!("the key `{key}` appears twice{within}"),
            "remove one of them; each key may appear once in a mapping",
        );
    }
    if let Some((l, _)) = loc {
        let line = text.lines().nth(l.saturating_sub(1)).unwrap_or("");
        let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
        if indent.contains('\t') {
            return (
                Some(l),
                Some(1),
                "not valid YAML: the line is indented with a tab".into(),
                "YAML indents with spaces only; replace the tab with spaces",
            );
        }
    }
    let message = match path {
        Some(p) => format!("{p}: {message}"),
        None => message,
    };
    (
        loc.map(|l| l.0),
        loc.map(|l| l.1),
        format!("not valid YAML: {message}"),
        "check indentation, quoting and brackets around this position",
    )
}

/// Where `key` appears for the second time in the block mapping whose first key is at
/// `line`:`column`.
fn second_key(text: &str, line: usize, column: usize, key: &str) -> Option<(usize, usize)> {
    let mut seen = 0;
    for (i, l) in text.lines().enumerate().skip(line - 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = l.len() - trimmed.len();
        if indent + 1 < column && i + 1 > line {
            break;
        }
        let this = trimmed
            .split_once(':')
            .map(|(k, _)| k.trim().trim_matches('"').trim_matches('\''));
        if indent + 1 == column && this == Some(key) {
            seen += 1;
            if seen == 2 {
                return Some((i + 1, column));
            }
        }
    }
    None
}
