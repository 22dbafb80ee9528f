//! The JSON path subset pipelines use to point into a response body: `$`, `$.a.b`,
//! `$.a[0].b`, `$.a[-1].b` (counting from the end), `$['a key']`. Anything richer (filters,
//! wildcards) is rejected at submit time.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
    /// `[-n]`: the n-th element from the end (`[-1]` is the last).
    FromEnd(usize),
}

/// A parsed JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    segments: Vec<Segment>,
}

impl JsonPath {
    /// Parses `text`; the error says what is wrong with it.
    #[allow(
        clippy::indexing_slicing,
        reason = "every index is below chars.len(), checked in the same condition or by the search that found it; fuzzed by `apitap-chaos fuzz`"
    )]
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let rest = t.strip_prefix('$').ok_or_else(|| {
            format!("JSON path {text:?} must start with `$` (for example `$.data`)")
        })?;
        let mut segments = Vec::new();
        let chars: Vec<char> = rest.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                        end += 1;
                    }
                    let key: String = chars[start..end].iter().collect();
                    if key.is_empty() {
                        return Err(format!("JSON path {text:?} has an empty key after `.`"));
                    }
                    if key == "*" {
                        return Err(format!("JSON path {text:?}: wildcards are not supported"));
                    }
                    segments.push(Segment::Key(key));
                    i = end;
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .map(|p| p + i)
                        .ok_or_else(|| format!("JSON path {text:?} has `[` without `]`"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let inner = inner.trim();
                    if let Some(q) = inner
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                    {
                        segments.push(Segment::Key(q.to_string()));
                    } else {
                        let bad = |why: &str| format!("JSON path {text:?}: `[{inner}]`{why}");
                        let digits = inner.strip_prefix('-').unwrap_or(inner);
                        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                            return Err(bad(" is neither an index nor a quoted key"));
                        }
                        let n = digits
                            .parse::<usize>()
                            .map_err(|_| bad(": the index is too large"))?;
                        match (inner.starts_with('-'), n) {
                            (true, 0) => {
                                return Err(bad(": -0 is no index; [-1] is the last element"))
                            }
                            (true, n) => segments.push(Segment::FromEnd(n)),
                            (false, n) => segments.push(Segment::Index(n)),
                        }
                    }
                    i = close + 1;
                }
                c => {
                    return Err(format!(
                        "JSON path {text:?}: unexpected {c:?}; write keys as `$.key` or `$['key']`"
                    ))
                }
            }
        }
        Ok(Self {
            text: t.to_string(),
            segments,
        })
    }

    /// The value at this path, if there is one.
    pub fn find<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        let mut cur = value;
        for seg in &self.segments {
            cur = match seg {
                Segment::Key(k) => cur.get(k)?,
                Segment::Index(i) => cur.get(*i)?,
                Segment::FromEnd(n) => {
                    let items = cur.as_array()?;
                    items.get(items.len().checked_sub(*n)?)?
                }
            };
        }
        Some(cur)
    }

    /// The steps of the path, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_nested_values() {
        let v = json!({"data": {"items": [{"id": 1}, {"id": 2}]}, "a key": true});
        assert_eq!(JsonPath::parse("$").unwrap().find(&v), Some(&v));
        assert_eq!(
            JsonPath::parse("$.data.items[1].id").unwrap().find(&v),
            Some(&json!(2))
        );
        assert_eq!(
            JsonPath::parse("$['a key']").unwrap().find(&v),
            Some(&json!(true))
        );
        assert_eq!(JsonPath::parse("$.missing").unwrap().find(&v), None);
        assert_eq!(
            JsonPath::parse("$.data.items[-1].id").unwrap().find(&v),
            Some(&json!(2))
        );
        assert_eq!(JsonPath::parse("$.data.items[-3]").unwrap().find(&v), None);
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        for bad in [
            "data", "$.", "$.a[", "$.a[x]", "$..a", "$.*", "$a", "$.a[-0]", "$.a[-]",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn index_errors_say_what_is_wrong() {
        let err = |t: &str| JsonPath::parse(t).unwrap_err();
        assert!(err("$[18446744073709551616]").ends_with("the index is too large"));
        assert!(err("$[-0]").ends_with("-0 is no index; [-1] is the last element"));
        assert!(err("$[-]").ends_with("is neither an index nor a quoted key"));
        assert!(err("$[1x]").ends_with("is neither an index nor a quoted key"));
    }
}
