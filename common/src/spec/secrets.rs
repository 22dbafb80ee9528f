//! `${VAR}` secrets. The stored spec keeps the references; `apitapctl` sends the values
//! beside the spec and workers substitute them when they build requests and connections, so
//! a secret is never part of what `describe` prints or what logs show.

use std::collections::BTreeMap;

use serde_json::Value;

use super::delimited::{between, pieces, Piece};
use super::types::Pipeline;

const UNCLOSED: &str = "`${` without a closing `}`";

/// Names of every `${VAR}` in `text`.
pub fn references(text: &str) -> Result<Vec<String>, String> {
    between(text, "${", "}")
        .map(|name| {
            let name = name.ok_or_else(|| UNCLOSED.to_string())?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{name}}}` is not an environment variable name (letters, digits and _)"
                ));
            }
            Ok(name.to_string())
        })
        .collect()
}

/// Every (key path, variable) referenced anywhere in the pipeline.
pub fn referenced_vars(p: &Pipeline) -> Vec<(String, Result<Vec<String>, String>)> {
    let mut out = Vec::new();
    let value = serde_json::to_value(p).unwrap_or(Value::Null);
    walk(&value, String::new(), &mut |path, s| {
        if s.contains("${") {
            out.push((path.to_string(), references(s)));
        }
    });
    out
}

/// Replaces every `${VAR}` with its value from `env`.
pub fn substitute(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text, "${", "}") {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Reference(name) => out.push_str(
                env.get(name)
                    .ok_or_else(|| format!("environment variable {name} is not set"))?,
            ),
            Piece::Unclosed => return Err(UNCLOSED.to_string()),
        }
    }
    Ok(out)
}

/// The pipeline with every secret substituted. Only workers call this, right before use.
pub fn resolve(p: &Pipeline, env: &BTreeMap<String, String>) -> Result<Pipeline, String> {
    let mut value = serde_json::to_value(p).map_err(|e| e.to_string())?;
    let mut err = None;
    walk_mut(&mut value, &mut |s| {
        if s.contains("${") {
            match substitute(s, env) {
                Ok(v) => *s = v,
                Err(e) => err = Some(e),
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Secret values shorter than this are not redacted: a value like `1` or `on` would blank
/// out ordinary text and hides nothing worth hiding.
pub const MIN_REDACTED_LEN: usize = 4;

/// `text` with every secret value of `secrets`, as written and as percent-encoded in a URL
/// query or path, replaced by `***`: an upstream that echoes a key back into an error body
/// cannot put it into a shard's error or a log line.
pub fn redact<'a>(text: &str, secrets: impl IntoIterator<Item = &'a String>) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let mut out = text.to_string();
    let mut values: Vec<String> = Vec::new();
    for v in secrets.into_iter().filter(|v| v.len() >= MIN_REDACTED_LEN) {
        values.push(v.clone());
        values.push(utf8_percent_encode(v, NON_ALPHANUMERIC).to_string());
        values.push(v.replace(' ', "+"));
    }
    // Longest first, so that a value inside another does not leave part of the longer one.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values {
        if out.contains(&v) {
            out = out.replace(&v, "***");
        }
    }
    out
}

/// The values of the variables `p` references, taken from `env`; the error lists the
/// missing ones.
pub fn collect(p: &Pipeline, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (_, names) in referenced_vars(p) {
        for name in names.unwrap_or_default() {
            if let Some(v) = env.get(&name) {
                out.insert(name, v.clone());
            }
        }
    }
    out
}

fn walk(v: &Value, path: String, f: &mut impl FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(&path, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, format!("{path}[{i}]"), f);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(x, p, f);
            }
        }
        _ => {}
    }
}

fn walk_mut(v: &mut Value, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| walk_mut(x, f)),
        Value::Object(o) => o.values_mut().for_each(|x| walk_mut(x, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_values_and_their_url_forms() {
        let secrets = [
            "s3cr3t key&x".to_string(),
            "abc".to_string(),
            "tok-123456".to_string(),
        ];
        let text = "bad key s3cr3t key&x, url ?k=s3cr3t%20key%26x or s3cr3t+key&x, \
                    tok-123456 twice tok-123456, abc stays";
        let out = redact(text, &secrets);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains("tok-123456"), "{out}");
        assert!(
            out.contains("abc stays"),
            "short values are not redacted: {out}"
        );
        assert_eq!(out.matches("***").count(), 5, "{out}");
    }
}
