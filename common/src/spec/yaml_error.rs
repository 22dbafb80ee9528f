//! From an error of the YAML parser (serde-saphyr) to a [`SpecError`]: what is wrong, at the
//! line and column the parser reported, under the key path of the node there
//! ([`Positions`]), with a hint. The one place that words YAML and type errors.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::granit_parser::ErrorKind;
use serde_saphyr::{Error, ExternalMessageSource, MessageFormatter, UserMessageFormatter};

use super::parse::SpecError;
use super::positions::{line_column, Kind, Positions};
use crate::limits::{LimitError, Limits};

const KEYS: &str = "remove the key or fix its spelling; docs/pipeline-reference.md lists every key";
const TYPES: &str = "docs/pipeline-reference.md lists the type of every key";
const SYNTAX: &str = "check indentation, quoting and brackets around this position";
const ALIASES: &str = "write the values out instead of repeating anchors (&name) through aliases (*name), and keep the spec small";

/// What the loader prints for `e`, an error of any pass over `text`.
pub(crate) fn render(
    file: &str,
    text: &str,
    positions: &Positions,
    limits: &Limits,
    e: &Error,
) -> SpecError {
    let offset = e
        .location()
        .map(|l| usize::try_from(l.span().offset()).unwrap_or(usize::MAX));
    let at_node = offset.and_then(|o| positions.node_at(o));
    // What the node is (for an alias, what its anchor is on).
    let kind = at_node.and_then(|i| positions.kind(i));
    // The key path of the node the error points into (the mapping, for a key).
    let path = at_node.map(|i| positions.path(i)).filter(|p| !p.is_empty());
    let mut at = offset;
    let (path, message, hint) = match original(e) {
        Error::Budget { breach, .. } => {
            let l = budget(breach, limits);
            (None, l.message(), l.fix)
        }
        Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. }
        | Error::AliasReplayCounterOverflow { .. } => {
            let l = too_many_nodes(limits);
            (None, l.message(), l.fix)
        }
        Error::MultipleDocuments { .. } => {
            at = positions.documents.get(1).copied().or(at);
            (
                None,
                "the file holds more than one YAML document (`---` starts another)".into(),
                "put each pipeline in a file of its own".into(),
            )
        }
        Error::DuplicateMappingKey { key, .. } => {
            let key = key.as_deref().unwrap_or("?");
            let within = path.map(|p| format!(" in {p}")).unwrap_or_default();
            (
                None,
                format!("the key `{key}` appears twice{within}"),
                "remove one of them; each key may appear once in a mapping".into(),
            )
        }
        Error::UnknownAnchor { .. } => unknown_anchor(text, offset),
        Error::ExternalMessage { source, .. } if matches!(parser_error(source), Some(ErrorKind::UnknownAnchor)) => {
            unknown_anchor(text, offset)
        }
        Error::ExternalMessage {
            source, msg: raw, ..
        } => {
            let info = match source.as_ref() {
                ExternalMessageSource::Parser(scan) => scan.info().to_string(),
                _ => raw.clone(),
            };
            let line = offset.map(|o| line_column(text, o).0);
            let tab = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| {
                    let indent = l.len() - l.trim_start().len();
                    l.get(..indent)?.find('\t')
                });
            match (line, tab) {
                (Some(l), Some(column)) => {
                    return SpecError {
                        file: file.to_string(),
                        line: Some(l),
                        column: Some(column + 1),
                        path: None,
                        message: "not valid YAML: the line is indented with a tab".into(),
                        hint: Some(
                            "YAML indents with spaces only; replace the tab with spaces".into(),
                        ),
                    };
                }
                _ => syntax(text, positions, offset, &info),
            }
        }
        Error::SerdeUnknownField {
            field, expected, ..
        } => (
            path,
            format!("unknown field `{field}`, {}", one_of(expected)),
            KEYS.into(),
        ),
        Error::SerdeMissingField { field, .. } => {
            // The error points into the mapping; its key is where the missing one belongs.
            if let Some(p) = &path {
                at = positions.key_of(p).or(at);
            }
            (
                path,
                format!("missing field `{field}`"),
                "add the key; docs/pipeline-reference.md shows each section".into(),
            )
        }
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            path,
            format!("unknown value `{variant}`, {}", one_of(expected)),
            TYPES.into(),
        ),
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => (
            path,
            format!("invalid type: {unexpected}, expected {}", plain(expected)),
            TYPES.into(),
        ),
        Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => (
            path,
            format!("invalid value: {unexpected}, expected {}", plain(expected)),
            TYPES.into(),
        ),
        Error::Unexpected { expected, .. } => (
            path,
            format!(
                "invalid type: {}, expected {}",
                found(kind),
                plain(expected)
            ),
            TYPES.into(),
        ),
        Error::InvalidScalar { ty, .. } => {
            let (what, expected) = match kind {
                // A whole number out of the type's range: say the range.
                Some(Kind::Scalar(s)) if number(s) == Some("integer") => (
                    "invalid value",
                    range(ty).unwrap_or_else(|| plain(ty)),
                ),
                Some(Kind::Scalar(s)) if number(s).is_some() => ("invalid value", plain(ty)),
                _ => ("invalid type", plain(ty)),
            };
            (
                path,
                format!("{what}: {}, expected {expected}", found(kind)),
                TYPES.into(),
            )
        }
        Error::InvalidBooleanStrict { .. } => (
            path,
            format!("invalid type: {}, expected true or false", found(kind)),
            TYPES.into(),
        ),
        Error::ExternallyTaggedEnumExpectedScalarOrMapping { .. } => (
            path,
            format!(
                "invalid type: {}, expected one name, such as those docs/pipeline-reference.md lists for this key",
                found(kind)
            ),
            TYPES.into(),
        ),
        Error::TaggedScalarCannotDeserializeIntoString { .. } | Error::UnsupportedTag { .. } => (
            path,
            "a YAML tag (`!name` or `!!type`) is not allowed here".into(),
            "remove the tag; a pipeline needs no tags, and a value in quotes is a string".into(),
        ),
        Error::NullIntoString { .. } => (
            path,
            "invalid type: null (no value), expected a string".into(),
            "write the value, or \"\" for an empty string".into(),
        ),
        // Errors of the spec's own types (durations), already worded for people.
        Error::Message { msg, .. } => (path, msg.clone(), TYPES.into()),
        // Anything else the parser words itself; with a key path it is about a value.
        other => {
            let message = UserMessageFormatter.format_message(other).into_owned();
            match path {
                Some(_) => (path, message, TYPES.into()),
                None => (None, format!("not valid YAML: {message}"), SYNTAX.into()),
            }
        }
    };
    let position = at.map(|o| line_column(text, o));
    SpecError {
        file: file.to_string(),
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
        path,
        message,
        hint: Some(hint),
    }
}

/// Text the parser cannot read, with the mapping or sequence it was in when that one is
/// probably at fault: brackets never closed, or a block the parser was reading.
fn syntax(
    text: &str,
    positions: &Positions,
    offset: Option<usize>,
    info: &str,
) -> (Option<String>, String, String) {
    let open = positions
        .open_at_error
        .filter(|o| offset.is_none_or(|e| o.start <= e))
        .filter(|o| o.flow || info.contains("block"));
    let Some(open) = open else {
        return (None, format!("not valid YAML: {info}"), SYNTAX.into());
    };
    let (l, c) = line_column(text, open.start);
    let what = match (open.flow, open.mapping) {
        (true, true) => "flow mapping",
        (true, false) => "flow sequence",
        (false, true) => "block mapping",
        (false, false) => "block sequence",
    };
    let hint = match (open.flow, open.mapping) {
        (true, true) => {
            "close the flow mapping with `}`, or check the commas and quoting inside it".into()
        }
        (true, false) => {
            "close the flow sequence with `]`, or check the commas and quoting inside it".into()
        }
        _ => format!("check the indentation of this line against the {what}'s keys"),
    };
    let message = if offset == Some(open.start) {
        format!("not valid YAML: {info}")
    } else {
        format!("not valid YAML: {info}, inside the {what} that starts at line {l} column {c}")
    };
    (None, message, hint)
}

/// The kind of a syntax error of the parser.
fn parser_error(source: &ExternalMessageSource) -> Option<&ErrorKind> {
    match source {
        ExternalMessageSource::Parser(scan) => Some(scan.kind()),
        _ => None,
    }
}

/// An alias (`*name`) with no anchor (`&name`) before it.
fn unknown_anchor(text: &str, offset: Option<usize>) -> (Option<String>, String, String) {
    let alias: String = offset
        .map(|o| {
            text.chars()
                .skip(o)
                .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                .take(80)
                .collect()
        })
        .unwrap_or_default();
    let name = alias.trim_start_matches('*');
    (
        None,
        format!("the alias `*{name}` refers to no anchor: no `&{name}` comes before it"),
        format!("define the anchor (`&{name}`) on a value before the alias, or fix the name"),
    )
}

/// The error itself, without the snippet and alias wrappers around it.
fn original(e: &Error) -> &Error {
    match e.without_snippet() {
        Error::AliasError { error, .. } => original(error),
        inner => inner,
    }
}

/// The named limit a breach of the parser's budget stands for ([`super::guard::options`]).
fn budget(breach: &BudgetBreach, limits: &Limits) -> LimitError {
    match breach {
        BudgetBreach::Depth { depth } => LimitError::new(
            "max_nesting_depth",
            format!("mappings and lists are nested {depth} deep here"),
            format!("{} levels", limits.max_nesting_depth),
            "a pipeline nests only a few levels; remove the extra nesting",
        ),
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::RecordedAnchorBytes { .. } => {
            LimitError::new(
                "max_yaml_scalar_bytes",
                format!(
                    "the document holds more than {} bytes of text once its aliases (*name) are expanded",
                    limits.max_yaml_scalar_bytes
                ),
                format!("{} bytes", limits.max_yaml_scalar_bytes),
                ALIASES,
            )
        }
        // Nodes, and the counts set from the node budget: events, aliases, anchors and
        // the events kept to replay anchors.
        _ => too_many_nodes(limits),
    }
}

fn too_many_nodes(limits: &Limits) -> LimitError {
    LimitError::new(
        "max_yaml_nodes",
        format!(
            "the document holds more than {} YAML nodes once its aliases (*name) are expanded",
            limits.max_yaml_nodes
        ),
        format!("{} nodes", limits.max_yaml_nodes),
        ALIASES,
    )
}

/// What serde says of the names it expected: `expected `a``, `expected `a` or `b``,
/// `expected one of `a`, `b`, `c``.
fn one_of(expected: &[&str]) -> String {
    match expected {
        [] => "there are no keys here".into(),
        [one] => format!("expected `{one}`"),
        [a, b] => format!("expected `{a}` or `{b}`"),
        names => {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("expected one of {}", names.join(", "))
        }
    }
}

/// A YAML node as serde names what it found: `string "five"`, `integer `3``, `sequence`.
fn found(kind: Option<&Kind>) -> String {
    match kind {
        Some(Kind::Mapping) => "map".into(),
        Some(Kind::Sequence) => "sequence".into(),
        Some(Kind::Alias(_)) => "an alias".into(),
        Some(Kind::Scalar(s)) => match number(s) {
            Some(kind) => format!("{kind} `{s}`"),
            None if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL") => "null".into(),
            None if matches!(s.as_str(), "true" | "false" | "True" | "False") => {
                format!("boolean `{s}`")
            }
            None => format!("string {s:?}"),
        },
        None => "a value".into(),
    }
}

/// `integer` or `floating point` when `s` reads as one.
fn number(s: &str) -> Option<&'static str> {
    if s.parse::<i128>().is_ok() {
        Some("integer")
    } else if s.parse::<f64>().is_ok() {
        Some("floating point")
    } else {
        None
    }
}

/// The whole numbers an integer type holds, in words.
fn range(ty: &str) -> Option<String> {
    let (min, max) = match ty {
        "u8" => (0, i128::from(u8::MAX)),
        "u16" => (0, i128::from(u16::MAX)),
        "u32" => (0, i128::from(u32::MAX)),
        "u64" | "usize" => (0, i128::from(u64::MAX)),
        "i8" => (i128::from(i8::MIN), i128::from(i8::MAX)),
        "i16" => (i128::from(i16::MIN), i128::from(i16::MAX)),
        "i32" => (i128::from(i32::MIN), i128::from(i32::MAX)),
        "i64" | "isize" => (i128::from(i64::MIN), i128::from(i64::MAX)),
        _ => return None,
    };
    Some(format!("a whole number from {min} to {max}"))
}

/// What a Rust type or a parser's expectation means in YAML: `u32` is a whole number,
/// `struct HttpSource` a mapping.
fn plain(expected: &str) -> String {
    let plain = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" | "floating point" => "a number",
        "bool" | "boolean" => "true or false",
        "a map" | "mapping start" | "mapping" => "a mapping of keys to values",
        "a sequence" | "sequence start" | "sequence" => "a list",
        "string scalar" | "a string" | "string" => "a string",
        e if e.starts_with("struct ") => "a mapping of keys to values",
        e => e,
    };
    plain.to_string()
}

#[cfg(test)]
mod tests {
    use super::{found, plain, Kind};

    #[test]
    fn rust_types_are_named_as_yaml() {
        assert_eq!(plain("u32"), "a whole number, 0 or more");
        assert_eq!(plain("struct HttpSource"), "a mapping of keys to values");
        assert_eq!(plain("mapping start"), "a mapping of keys to values");
        assert_eq!(plain("a duration"), "a duration");
        assert_eq!(
            super::range("u32").as_deref(),
            Some("a whole number from 0 to 4294967295")
        );
        assert_eq!(super::range("f64"), None);
        assert_eq!(found(Some(&Kind::Scalar("five".into()))), "string \"five\"");
        assert_eq!(found(Some(&Kind::Scalar("-5".into()))), "integer `-5`");
        assert_eq!(found(Some(&Kind::Scalar("~".into()))), "null");
        assert_eq!(found(Some(&Kind::Sequence)), "sequence");
    }
}
