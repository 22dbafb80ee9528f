//! Reading a response body: the records, where the next page is, and when to stop. Pure
//! functions, no I/O; errors are plain messages that the caller wraps with the URL.

use apitap_common::checkpoint::Position;
use apitap_common::jsonpath::JsonPath;
use apitap_common::spec::{Pagination, PaginationKind, StopOn};
use serde_json::Value;
use url::Url;

/// The pagination settings with their JSON paths parsed.
#[derive(Debug, Clone)]
pub(crate) struct Paginator {
    pub(crate) kind: PaginationKind,
    start_page: u64,
    cursor_path: Option<JsonPath>,
    has_more_path: Option<JsonPath>,
    next_url_path: Option<JsonPath>,
    total_path: Option<JsonPath>,
    max_pages: Option<u64>,
    /// `cursor_field`: the cursor is this field of the page's last record.
    cursor_field: Option<String>,
    /// Records on a full page, if known (sent for `cursor`, given for the others).
    full_page: Option<u64>,
    stop_on: StopOn,
}

/// What one fetched page says about the next.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageView<'a> {
    /// The position that was fetched.
    pub position: &'a Position,
    /// The URL that was fetched (relative next links are resolved against it).
    pub url: &'a Url,
    /// The whole response body, records included.
    pub body: &'a Value,
    /// The page's last record.
    pub last: Option<&'a Value>,
    /// Every `Link` header value of the response, joined with `,`.
    pub link: Option<&'a str>,
    /// Records on this page.
    pub count: u64,
    /// Pages and records the shard committed before this page.
    pub pages_done: u64,
    pub records_done: u64,
}

fn parse_path(what: &str, text: Option<&str>) -> Result<Option<JsonPath>, String> {
    text.map(|t| JsonPath::parse(t).map_err(|e| format!("pagination.{what}: {e}")))
        .transpose()
}

impl Paginator {
    pub(crate) fn new(p: &Pagination) -> Result<Self, String> {
        let this = Self {
            kind: p.kind,
            start_page: p.start_page(),
            cursor_path: parse_path("cursor_path", p.cursor_path.as_deref())?,
            has_more_path: parse_path("has_more_path", p.has_more_path.as_deref())?,
            next_url_path: parse_path("next_url_path", p.next_url_path.as_deref())?,
            total_path: parse_path("total_path", p.total_path.as_deref())?,
            max_pages: p.max_pages,
            cursor_field: p.cursor_field.clone(),
            full_page: match p.kind {
                PaginationKind::Cursor => Some(p.size()),
                _ => p.size,
            },
            stop_on: p.stop_on,
        };
        match p.kind {
            PaginationKind::Cursor if this.cursor_path.is_none() && this.cursor_field.is_none() => {
                Err("pagination kind `cursor` needs `cursor_path` or `cursor_field`".to_string())
            }
            PaginationKind::NextUrl if this.next_url_path.is_none() => {
                Err("pagination kind `next_url` needs `next_url_path`".to_string())
            }
            _ => Ok(this),
        }
    }

    /// Where the page after `page` is, or [`Position::Done`].
    #[allow(
        clippy::expect_used,
        reason = "Paginator::new refuses a next_url paginator without next_url_path"
    )]
    pub(crate) fn next(&self, page: &PageView<'_>) -> Result<Position, String> {
        if self.kind == PaginationKind::None || page.count == 0 {
            return Ok(Position::Done);
        }
        if let Some(max) = self.max_pages {
            if page.pages_done + 1 >= max {
                return Ok(Position::Done);
            }
        }
        if let Some(path) = &self.total_path {
            if let Some(total) = total_at(path, page.body)? {
                if total <= page.records_done + page.count {
                    return Ok(Position::Done);
                }
            }
        }
        match self.kind {
            PaginationKind::None => Ok(Position::Done),
            PaginationKind::LimitOffset => {
                let offset = match page.position {
                    Position::Offset { offset } => *offset,
                    _ => 0,
                };
                Ok(Position::Offset {
                    offset: offset + page.count,
                })
            }
            PaginationKind::PageNumber => {
                let current = match page.position {
                    Position::Page { page } => *page,
                    _ => self.start_page,
                };
                Ok(Position::Page { page: current + 1 })
            }
            PaginationKind::Cursor => self.next_cursor(page),
            PaginationKind::NextUrl => {
                let path = self.next_url_path.as_ref().expect("checked in new");
                match path.find(page.body) {
                    None | Some(Value::Null) => self.missing_next(page, &format!("`{path}`")),
                    Some(Value::String(s)) if s.trim().is_empty() => {
                        self.missing_next(page, &format!("`{path}`"))
                    }
                    Some(Value::String(s)) => resolve(page.url, s.trim()),
                    Some(other) => Err(format!(
                        "next_url_path `{path}` found {}, expected a URL string",
                        describe(other)
                    )),
                }
            }
            PaginationKind::LinkHeader => match page.link.and_then(next_link) {
                None => self.missing_next(page, "a `Link: <...>; rel=\"next\"` header"),
                Some(target) => resolve(page.url, &target),
            },
        }
    }

    #[allow(
        clippy::expect_used,
        reason = "Paginator::new refuses a cursor paginator without cursor_path"
    )]
    fn next_cursor(&self, page: &PageView<'_>) -> Result<Position, String> {
        let mut more = false;
        if let Some(path) = &self.has_more_path {
            match path.find(page.body) {
                None | Some(Value::Null) => {}
                Some(Value::Bool(true)) => more = true,
                Some(Value::Bool(false)) => return Ok(Position::Done),
                Some(other) => {
                    return Err(format!(
                        "has_more_path `{path}` found {}, expected a boolean",
                        describe(other)
                    ))
                }
            }
        }
        let (found, source) = match (&self.cursor_field, &self.cursor_path) {
            (Some(field), _) => (
                page.last.and_then(|r| r.get(field)),
                format!("`{field}` of the last record"),
            ),
            (None, path) => {
                let path = path.as_ref().expect("checked in new");
                (path.find(page.body), format!("cursor_path `{path}`"))
            }
        };
        let cursor = match found {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                if more {
                    return Err(format!(
                        "has_more says there are more pages, but {source} holds no cursor; \
                         check cursor_path / cursor_field against a response of this API"
                    ));
                }
                return self.missing_next(page, &source);
            }
            Some(other) => {
                return Err(format!(
                    "{source} found {}, expected a string or a number",
                    describe(other)
                ))
            }
        };
        if let Position::Cursor { cursor: current } = page.position {
            if *current == cursor {
                return Err(format!(
                    "{source} returned the cursor that was just sent ({cursor:?}); the next \
                     page would repeat this one"
                ));
            }
        }
        Ok(Position::Cursor { cursor })
    }

    /// The shard's end when `where_` holds no next pointer: fine on a short page, an error
    /// on a full one (unless `stop_on: no_next`), since a wrong pointer path would otherwise
    /// end the run `succeeded` with part of the data.
    fn missing_next(&self, page: &PageView<'_>, where_: &str) -> Result<Position, String> {
        match self.full_page {
            Some(size) if self.stop_on == StopOn::Auto && page.count >= size => Err(format!(
                "the page was full ({} records, the page size {size}) but {where_} holds no \
                 next pointer, so the shard cannot tell the end from a wrong path; check the \
                 path against a response of this API, or set `pagination.stop_on: no_next` if \
                 its last page may be full",
                page.count
            )),
            _ => Ok(Position::Done),
        }
    }
}

/// The total record count at `path`: a number or a numeric string; absent or null = unknown.
fn total_at(path: &JsonPath, body: &Value) -> Result<Option<u64>, String> {
    let bad = |v: &Value| {
        format!(
            "total_path `{path}` found {}, expected a non-negative integer",
            describe(v)
        )
    };
    match path.find(body) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(t), _) => Ok(Some(t)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f.ceil() as u64)),
            _ => Err(bad(v)),
        },
        Some(v @ Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

/// `target` resolved against `base`; only http(s), and never from https down to http (the
/// request carries credentials).
fn resolve(base: &Url, target: &str) -> Result<Position, String> {
    let url = base
        .join(target)
        .map_err(|e| format!("next page URL is not a valid URL reference: {e}"))?;
    match (base.scheme(), url.scheme()) {
        (_, "https") | ("http", "http") => Ok(Position::Url { url: url.into() }),
        ("https", "http") => {
            Err("next page URL downgrades from https to http; refusing to send credentials in clear text".to_string())
        }
        (_, other) => Err(format!(
            "next page URL has scheme `{other}`; only http and https are fetched"
        )),
    }
}

/// Takes the array of records at `path` out of `body` (leaving `null` in its place, so the
/// rest of the body can still be read for pagination); every record must be a JSON object.
/// A `null` at the path counts as no records.
/// The records `path` finds in `body`, checked (an array of objects), without taking them.
pub(crate) fn records_view<'a>(path: &JsonPath, body: &'a Value) -> Result<&'a [Value], String> {
    match path.find(body) {
        Some(Value::Array(items)) => {
            if let Some((i, bad)) = items.iter().enumerate().find(|(_, r)| !r.is_object()) {
                return Err(format!(
                    "records path `{path}`: record #{i} is {}, expected a JSON object",
                    describe(bad)
                ));
            }
            Ok(items)
        }
        Some(Value::Null) => Ok(&[]),
        Some(other) => Err(format!(
            "records path `{path}` found {}, expected an array of records",
            describe(other)
        )),
        None => Err(format!(
            "records path `{path}` found nothing in the response body ({})",
            describe(body)
        )),
    }
}

pub(crate) fn extract_records(path: &JsonPath, body: &mut Value) -> Result<Vec<Value>, String> {
    let found = match pointer_of(path, body) {
        Some(pointer) => body.pointer_mut(&pointer).map(Value::take),
        None => None,
    };
    let records = match found {
        Some(Value::Array(items)) => items,
        Some(Value::Null) => Vec::new(),
        Some(other) => {
            let message = format!(
                "records path `{path}` found {}, expected an array of records",
                describe(&other)
            );
            return Err(message);
        }
        None => {
            return Err(format!(
                "records path `{path}` found nothing in the response body ({})",
                describe(body)
            ))
        }
    };
    if let Some((i, bad)) = records.iter().enumerate().find(|(_, r)| !r.is_object()) {
        return Err(format!(
            "records path `{path}`: record #{i} is {}, expected a JSON object",
            describe(bad)
        ));
    }
    Ok(records)
}

/// The RFC 6901 pointer of the value `path` finds in `body`.
fn pointer_of(path: &JsonPath, body: &Value) -> Option<String> {
    // Compare addresses while walking the tree (depth-first, stops at the target).
    let target = path.find(body)? as *const Value;
    fn walk(v: &Value, target: *const Value, at: &mut String) -> bool {
        if std::ptr::eq(v, target) {
            return true;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    if walk(child, target, at) {
                        return true;
                    }
                    at.truncate(len);
                }
                false
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("/{i}"));
                    if walk(child, target, at) {
                        return true;
                    }
                    at.truncate(len);
                }
                false
            }
            _ => false,
        }
    }
    let mut at = String::new();
    walk(body, target, &mut at).then_some(at)
}

/// A short description of a JSON value for error messages (no values, which may be private).
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(_) => "a boolean".to_string(),
        Value::Number(_) => "a number".to_string(),
        Value::String(_) => "a string".to_string(),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().take(10).map(String::as_str).collect();
            let more = if m.len() > 10 { ", ..." } else { "" };
            format!("an object with keys [{}{more}]", keys.join(", "))
        }
    }
}

/// One link of an RFC 8288 `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URI reference between `<` and `>`, as written (maybe relative).
    pub target: String,
    /// Parameters in order; names lower-cased, values unquoted (`None` for a bare name).
    pub params: Vec<(String, Option<String>)>,
}

impl Link {
    /// The relation types of `rel` (space-separated, lower-cased).
    pub fn rels(&self) -> Vec<String> {
        self.params
            .iter()
            .find(|(name, _)| name == "rel")
            .and_then(|(_, v)| v.as_deref())
            .map(|v| {
                v.split_ascii_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses a `Link` header value (several headers may be joined with `,`). Malformed links
/// are skipped; parsing resumes at the next `<`.
#[allow(
    clippy::indexing_slicing,
    reason = "every index is below n = chars.len(), checked in the same condition; fuzzed by `apitap-chaos fuzz`"
)]
pub fn parse_link_header(value: &str) -> Vec<Link> {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let mut links = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < n && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    while i < n {
        // Find the start of a link.
        while i < n && chars[i] != '<' {
            i += 1;
        }
        if i >= n {
            break;
        }
        let Some(close) = chars[i + 1..].iter().position(|c| *c == '>') else {
            break;
        };
        let target: String = chars[i + 1..i + 1 + close].iter().collect();
        i += close + 2;
        let mut params = Vec::new();
        loop {
            skip_ws(&mut i);
            if i >= n {
                break;
            }
            match chars[i] {
                ',' => {
                    i += 1;
                    break;
                }
                ';' => {
                    i += 1;
                    skip_ws(&mut i);
                    let start = i;
                    while i < n && !matches!(chars[i], '=' | ';' | ',') && !chars[i].is_whitespace()
                    {
                        i += 1;
                    }
                    let name: String = chars[start..i]
                        .iter()
                        .collect::<String>()
                        .to_ascii_lowercase();
                    skip_ws(&mut i);
                    let mut val = None;
                    if i < n && chars[i] == '=' {
                        i += 1;
                        skip_ws(&mut i);
                        if i < n && chars[i] == '"' {
                            i += 1;
                            let mut s = String::new();
                            while i < n && chars[i] != '"' {
                                if chars[i] == '\\' && i + 1 < n {
                                    i += 1;
                                }
                                s.push(chars[i]);
                                i += 1;
                            }
                            i += 1; // closing quote
                            val = Some(s);
                        } else {
                            let start = i;
                            while i < n && !matches!(chars[i], ';' | ',') {
                                i += 1;
                            }
                            val = Some(
                                chars[start..i]
                                    .iter()
                                    .collect::<String>()
                                    .trim()
                                    .to_string(),
                            );
                        }
                    }
                    if !name.is_empty() {
                        params.push((name, val));
                    }
                }
                // Garbage after the target: skip to the next link.
                _ => {
                    while i < n && chars[i] != ',' {
                        i += 1;
                    }
                }
            }
        }
        links.push(Link {
            target: target.trim().to_string(),
            params,
        });
    }
    links
}

/// The target of the first link with relation `next`.
pub fn next_link(value: &str) -> Option<String> {
    parse_link_header(value)
        .into_iter()
        .find(|l| l.rels().iter().any(|r| r == "next"))
        .map(|l| l.target)
        .filter(|t| !t.is_empty())
}
