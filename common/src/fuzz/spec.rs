//! Pipeline specs for the loader: a valid base spec mutated character by character, the same
//! spec with one value replaced by hostile text, nested past the depth limit, or carrying an
//! alias bomb, and [`check`], what every answer of [`load`](crate::spec::load) must satisfy.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use super::hostile;
use crate::limits::{MAX_DURATION, MAX_SHARDS};
use crate::shard;
use crate::spec::{Pipeline, SpecErrors, MAX_MESSAGE_CHARS};

/// A valid spec that uses most sections, so that mutations reach many checks.
pub const BASE: &str = r#"apiVersion: apitap/v1
kind: Pipeline
metadata: { name: users, namespace: crm }
spec:
  schedule: { every: 15m }
  source:
    http:
      url: "https://api.example.com/v1/{{ shard.value }}?from={{ shard.start }}"
      query: { since: "{{ watermark }}", tag: &t blue }
      headers: { X-Tag: *t, X-Key: "${API_TOKEN}" }
      auth: { bearer: "${API_TOKEN}" }
      records: $.data['items'][0]
      pagination: { kind: cursor, cursor_path: $.next, has_more_path: $.more, size: 50 }
      retry: { max_attempts: 5, initial_backoff: 200ms, max_backoff: 30s }
      timeout: 1h 30m
  rate_limit: { key: api.example.com, requests_per_second: 20, burst: 40 }
  shards:
    param: day
    window: { start: "2026-01-01T00:00:00Z", end: "2026-02-01T00:00:00+02:00", step: 1d }
  incremental: { cursor_field: updated_at }
  transform:
    sql: |
      SELECT id, "userName" FROM source WHERE id > 0
  sink:
    postgres: { url: "${API_TOKEN}", table: crm.users, mode: merge, primary_key: [id] }
"#;

/// The file name every generated spec is loaded as.
pub const FILE: &str = "f.yaml";

/// Characters that change the meaning of YAML, plus a few that are merely unexpected.
pub const ALPHABET: &[char] = &[
    '[', ']', '{', '}', ':', '-', ',', '&', '*', '!', '|', '>', '#', '\'', '"', '\n', '\t', ' ',
    '?', '%', '@', '$', '.', '0', '9', 'a', 'Z', 'é', '~', '\\', '\0', '\r', '\u{feff}',
];

/// The environment `${API_TOKEN}` resolves in.
pub fn env() -> BTreeMap<String, String> {
    BTreeMap::from([("API_TOKEN".to_string(), "postgres://u@h/db".to_string())])
}

/// `BASE` with a few characters inserted, removed or replaced.
pub fn mutated() -> impl Strategy<Value = String> {
    let edit = (
        any::<Index>(),
        0..3u8,
        prop::sample::select(ALPHABET),
        1..8usize,
    );
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut chars: Vec<char> = BASE.chars().collect();
        for (at, op, c, n) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 => {
                    let end = (i + n).min(chars.len());
                    chars.drain(i..end);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    })
}

/// Values of `BASE` that [`hostile_value`] replaces (each occurs once).
pub const SLOTS: &[&str] = &[
    "users",
    "crm }",
    "15m",
    "\"https://api.example.com/v1/{{ shard.value }}?from={{ shard.start }}\"",
    "\"{{ watermark }}\"",
    "blue",
    "$.data['items'][0]",
    "$.next",
    "50",
    "200ms",
    "1h 30m",
    "api.example.com",
    "20,",
    "\"2026-01-01T00:00:00Z\"",
    "1d",
    "updated_at",
    "crm.users",
    "[id]",
];

/// `s` as a YAML double-quoted scalar (control characters as `\u` escapes).
fn double_quoted(s: String) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A hostile value written as YAML: plain, double-quoted with escapes, or single-quoted.
fn yaml_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => hostile::string(30).prop_map(double_quoted),
        1 => hostile::string(30).prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        1 => hostile::string(30),
        2 => hostile::number_text(),
        1 => (hostile::number_text(), "(ms|s|m|h|d| days)").prop_map(|(n, u)| format!("{n}{u}")),
    ]
}

/// `BASE` with one of its [`SLOTS`] replaced by a hostile value.
pub fn hostile_value() -> impl Strategy<Value = String> {
    (prop::sample::select(SLOTS), yaml_scalar()).prop_map(|(slot, value)| {
        let keep_comma = if slot.ends_with(',') { "," } else { "" };
        let keep_brace = if slot.ends_with(" }") { " }" } else { "" };
        BASE.replacen(slot, &format!("{value}{keep_comma}{keep_brace}"), 1)
    })
}

/// `BASE` with a query value nested `depth` flow lists or mappings deep (the limit is 32).
pub fn nested() -> impl Strategy<Value = String> {
    (1..80usize, any::<bool>()).prop_map(|(depth, lists)| {
        let (open, close) = if lists { ("[", "]") } else { ("{k: ", "}") };
        let deep = format!("{}x{}", open.repeat(depth), close.repeat(depth));
        BASE.replacen("tag: &t blue", &format!("tag: &t blue, deep: {deep}"), 1)
    })
}

/// `BASE` preceded by anchors that each alias the one before `width` times, `levels` deep:
/// `width^levels` nodes once expanded (an alias bomb when large).
pub fn alias_bomb() -> impl Strategy<Value = String> {
    (1..12usize, 1..12usize, any::<bool>()).prop_map(|(levels, width, inside)| {
        let mut bomb = String::from("[&a0 x, x]");
        for l in 1..=levels {
            let items = vec![format!("*a{}", l - 1); width].join(", ");
            bomb = format!("{bomb}, b{l}: &a{l} [{items}]");
        }
        // Either a top-level key before the spec, or a query value inside it.
        if inside {
            BASE.replacen(
                "tag: &t blue",
                &format!("tag: &t blue, bomb: {{b0: {bomb}}}"),
                1,
            )
        } else {
            format!("bomb: {{b0: {bomb}}}\n{BASE}")
        }
    })
}

/// Any of the spec generators.
pub fn any_spec() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => mutated(),
        3 => hostile_value(),
        1 => nested(),
        1 => alias_bomb(),
        1 => "(?s).{0,300}",
        1 => "[\\[\\]{}:,&*!|>#'\" \n\ta-z0-9.$-]{0,300}",
    ]
}

/// What every answer of the loader must satisfy: an accepted spec expands to 1 to
/// `MAX_SHARDS` shards and its durations are within the limit; a rejected one has at least
/// one error, each naming the file, with a message of bounded length and a line within the
/// text.
pub fn check(text: &str, result: &Result<Pipeline, SpecErrors>) -> Result<(), TestCaseError> {
    match result {
        Ok(p) => {
            let shards = shard::expand(&p.spec);
            prop_assert!(shards.is_ok(), "accepted but not expandable: {shards:?}");
            let n = shards.unwrap_or_default().len() as u64;
            prop_assert!((1..=MAX_SHARDS).contains(&n), "{n} shards");
            if let Some(every) = p.spec.schedule.as_ref().and_then(|s| s.every) {
                prop_assert!(every <= MAX_DURATION && every >= Duration::from_secs(1));
            }
        }
        Err(errors) => {
            prop_assert!(!errors.0.is_empty());
            // YAML breaks lines at \n, \r\n and a lone \r; an error at the end of a text
            // without a final line break points at the line after the last one.
            let lines = text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 2;
            for e in &errors.0 {
                prop_assert_eq!(&e.file, FILE);
                prop_assert!(!e.message.trim().is_empty(), "empty message: {e:?}");
                // The cut marker adds a few characters to a cut message.
                let longest = MAX_MESSAGE_CHARS + 40;
                prop_assert!(
                    e.message.chars().count() <= longest,
                    "message too long: {e}"
                );
                prop_assert!(e.line.is_none_or(|l| (1..=lines).contains(&l)), "{e}");
            }
        }
    }
    Ok(())
}
