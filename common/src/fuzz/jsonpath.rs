//! JSON paths: as steps (with the document they point into, and the text that writes them)
//! and as hostile text built from the subset's own punctuation; [`check_steps`] and
//! [`check_text`] are what the parser must do with them.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use super::hostile;
use crate::jsonpath::{JsonPath, Segment};

/// One step of a path: a key (written `.key` when the flag is false, `['key']` when true)
/// or an index.
#[derive(Debug, Clone)]
pub enum Step {
    Key(String, bool),
    Index(usize),
}

/// A step with a plain key, a key that needs quotes, a hostile key, or an index.
pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => ("[a-z_][a-z0-9_]{0,8}", any::<bool>()).prop_map(|(k, q)| Step::Key(k, q)),
        1 => ("[a-z ]{1,8}").prop_map(|k| Step::Key(k, true)),
        1 => (hostile::string(10), any::<bool>()).prop_map(|(k, q)| Step::Key(k, q)),
        2 => (0..4usize).prop_map(Step::Index),
        1 => any::<usize>().prop_map(Step::Index),
    ]
}

/// How a path's key must be written to parse back as itself, if it can be written at all.
/// `.key` runs to the next `.` or `[` (and the whole text is trimmed, so the last key must
/// not end in whitespace); `['key']` runs to the first `]`. A key that needs both is outside
/// the subset.
pub fn write_key(key: &str, bracket: bool, last: bool) -> Option<String> {
    let trimmed_away = last && key.ends_with(char::is_whitespace);
    let dot_ok = !key.is_empty() && key != "*" && !key.contains(['.', '[']) && !trimmed_away;
    let bracket_ok = !key.contains(']');
    match (bracket, dot_ok, bracket_ok) {
        (false, true, _) | (true, true, false) => Some(format!(".{key}")),
        (_, _, true) => Some(format!("['{key}']")),
        _ => None,
    }
}

/// The text of a path, or `None` when a key cannot be written in the subset.
pub fn write(segments: &[Segment]) -> Option<String> {
    let mut text = "$".to_string();
    for (i, s) in segments.iter().enumerate() {
        match s {
            Segment::Key(k) => text.push_str(&write_key(k, false, i + 1 == segments.len())?),
            Segment::Index(i) => text.push_str(&format!("[{i}]")),
            Segment::FromEnd(n) => text.push_str(&format!("[-{n}]")),
        }
    }
    Some(text)
}

/// The text of `steps` written as each step asks (or as it must), or `None`.
pub fn write_steps(steps: &[Step]) -> Option<String> {
    let mut text = "$".to_string();
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Key(k, q) => text.push_str(&write_key(k, *q, i + 1 == steps.len())?),
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    Some(text)
}

/// The segments `steps` stand for.
pub fn segments(steps: &[Step]) -> Vec<Segment> {
    steps
        .iter()
        .map(|s| match s {
            Step::Key(k, _) => Segment::Key(k.clone()),
            Step::Index(i) => Segment::Index(*i),
        })
        .collect()
}

/// A document with `leaf` at `steps` (nulls before an index; huge indexes are left out,
/// the document then has no value there).
pub fn document(steps: &[Step], leaf: Value) -> Option<Value> {
    let mut doc = leaf;
    for s in steps.iter().rev() {
        doc = match s {
            Step::Key(k, _) => json!({ k.clone(): doc }),
            Step::Index(i) if *i < 64 => {
                let mut items = vec![Value::Null; *i];
                items.push(doc);
                Value::Array(items)
            }
            Step::Index(_) => return None,
        };
    }
    Some(doc)
}

/// Pieces of path text: the subset's punctuation, keys, indexes (huge ones too), quotes,
/// whitespace and hostile characters.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(
            &[".", "[", "]", "'", "\"", "*", "..", "['", "']", "[\"", "\"]", " ", "$", "[0]",
              "[-1]", "[+1]", "[18446744073709551616]", "\0", "é", "\u{a0}"][..]
        )
        .prop_map(str::to_string),
        2 => "[a-z_][a-z0-9_]{0,6}",
        1 => hostile::number_text(),
        1 => hostile::string(6),
    ]
}

/// Path-like text: `$` (usually) and up to 20 pieces.
pub fn text() -> impl Strategy<Value = String> {
    (any::<u8>(), prop::collection::vec(piece(), 0..20)).prop_map(|(start, pieces)| {
        let head = if start < 230 { "$" } else { "" };
        format!("{head}{}", pieces.concat())
    })
}

/// Steps written out parse back as the same steps, and the path finds `leaf` in the
/// document built from them.
pub fn check_steps(steps: &[Step]) -> Result<(), TestCaseError> {
    let Some(written) = write_steps(steps) else {
        return Ok(());
    };
    let parsed = JsonPath::parse(&written);
    prop_assert!(parsed.is_ok(), "{written:?}: {:?}", parsed.err());
    let path = parsed.unwrap();
    prop_assert_eq!(path.segments(), &segments(steps)[..], "{:?}", written);
    if let Some(doc) = document(steps, json!("leaf")) {
        prop_assert_eq!(path.find(&doc), Some(&json!("leaf")), "{:?}", written);
    }
    Ok(())
}

/// Any text parses or fails with a message that quotes it; a parsed path can be written
/// again and then parses back as itself; looking it up in `doc` does not panic.
pub fn check_text(text: &str, doc: &Value) -> Result<(), TestCaseError> {
    match JsonPath::parse(text) {
        Err(message) => {
            prop_assert!(message.starts_with("JSON path "), "{:?}", message);
        }
        Ok(path) => {
            let again = write(path.segments());
            prop_assert!(
                again.is_some(),
                "{text:?} parsed but cannot be written again"
            );
            let again = again.unwrap();
            let reparsed = JsonPath::parse(&again).map(|p| p.segments().to_vec());
            prop_assert_eq!(
                reparsed,
                Ok(path.segments().to_vec()),
                "{:?} -> {:?}",
                text,
                again
            );
            let _ = path.find(doc);
        }
    }
    Ok(())
}
