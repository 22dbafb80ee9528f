//! `{{ var }}` template variables in URLs, query values and headers. They are bound per
//! shard (`{{ shard.value }}`, `{{ shard.start }}`, `{{ shard.end }}`, `{{ <param> }}`) when
//! the worker builds a request.

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::delimited::{between, pieces, Piece};

/// Everything but RFC 3986 unreserved characters: what a value may not bring into a path
/// segment or a query value unencoded (`/`, `?`, `&`, `=`, `#`, `+`, `%`, space, non-ASCII).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn unclosed(text: &str) -> String {
    format!("`{{{{` without a closing `}}}}` in {text:?}")
}

/// The names of every `{{ var }}` in `text`, or an error for an unclosed `{{`.
pub fn variables(text: &str) -> Result<Vec<String>, String> {
    between(text, "{{", "}}")
        .map(|name| {
            let name = name.ok_or_else(|| unclosed(text))?.trim();
            if name.is_empty() {
                return Err(format!("empty `{{{{ }}}}` in {text:?}"));
            }
            Ok(name.to_string())
        })
        .collect()
}

/// Replaces every `{{ var }}` with its value; unknown variables are an error.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    render_with(text, vars, |out, _, value| {
        out.push_str(value);
        Ok(())
    })
}

/// The one scan of `{{ var }}` references: `put` appends each variable's value (with its
/// name) to the output so far, as the caller needs it written.
fn render_with(
    text: &str,
    vars: &BTreeMap<String, String>,
    mut put: impl FnMut(&mut String, &str, &str) -> Result<(), String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text, "{{", "}}") {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Reference(name) => {
                let name = name.trim();
                let value = vars
                    .get(name)
                    .ok_or_else(|| format!("unknown template variable {{{{ {name} }}}}"))?;
                put(&mut out, name, value)?;
            }
            Piece::Unclosed => return Err(unclosed(text)),
        }
    }
    Ok(out)
}

/// The part of a URL a template variable lands in, from the text before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    Authority,
    Path,
    Query,
    Fragment,
}

fn component_at(before: &str) -> Component {
    if before.contains('#') {
        Component::Fragment
    } else if before.contains('?') {
        Component::Query
    } else {
        match before.split_once("://") {
            Some((_, rest)) if !rest.contains('/') => Component::Authority,
            None if !before.contains('/') => Component::Authority,
            _ => Component::Path,
        }
    }
}

/// [`render`] for a URL: each value is percent-encoded for the component it lands in, so
/// that it cannot start a query, a fragment or another parameter (`x&y=1` becomes
/// `x%26y%3D1` in a query, `a?b` becomes `a%3Fb` in a path). In the path, `/` stays a
/// segment separator (a shard value `rust-lang/rust` fills `repos/{{ shard.value }}`), but
/// `.` and `..` segments are refused; in the query and fragment `/` is encoded too. A value
/// in the host or port must be a plain host name.
pub fn render_url(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    render_with(text, vars, |out, name, value| {
        match component_at(out) {
            Component::Authority => {
                let plain = value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
                if !plain {
                    return Err(format!(
                        "the value of {{{{ {name} }}}} lands in the URL's host and is not a host \
                         name (letters, digits, `.`, `-`, `:` only)"
                    ));
                }
                out.push_str(value);
            }
            Component::Path => {
                // `/` stays a separator (`repos/{{ shard.value }}` with `rust-lang/rust`);
                // everything else is encoded segment by segment.
                if value.split('/').any(|seg| seg == "." || seg == "..") {
                    return Err(format!(
                        "the value of {{{{ {name} }}}} holds a `.` or `..` path segment, which \
                         would change the URL's path"
                    ));
                }
                for (i, seg) in value.split('/').enumerate() {
                    if i > 0 {
                        out.push('/');
                    }
                    out.extend(utf8_percent_encode(seg, COMPONENT));
                }
            }
            Component::Query | Component::Fragment => {
                out.extend(utf8_percent_encode(value, COMPONENT));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_lists_variables() {
        let vars = BTreeMap::from([("shard.value".to_string(), "a/b".to_string())]);
        assert_eq!(
            render("http://x/{{ shard.value }}/y{{shard.value}}", &vars).unwrap(),
            "http://x/a/b/ya/b"
        );
        assert_eq!(variables("{{ a }}-{{b}}").unwrap(), vec!["a", "b"]);
        assert!(render("{{ nope }}", &vars).is_err());
        assert!(variables("{{ open").is_err());
    }

    #[test]
    fn url_values_are_encoded_for_their_component() {
        let value = "a/b?c&d=e#f g+h%ü";
        let vars = BTreeMap::from([
            ("v".to_string(), value.to_string()),
            ("host".to_string(), "api.example.com:8443".to_string()),
        ]);
        let url = render_url(
            "https://{{ host }}/repos/{{ v }}/issues?since={{v}}&x=1#{{ v }}",
            &vars,
        )
        .unwrap();
        let enc = "a%2Fb%3Fc%26d%3De%23f%20g%2Bh%25%C3%BC";
        let in_path = "a/b%3Fc%26d%3De%23f%20g%2Bh%25%C3%BC";
        assert_eq!(
            url,
            format!("https://api.example.com:8443/repos/{in_path}/issues?since={enc}&x=1#{enc}")
        );
        // The url crate reads back the path unchanged and exactly one query value.
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), format!("/repos/{in_path}/issues"));
        let since: Vec<_> = parsed.query_pairs().filter(|(k, _)| k == "since").collect();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].1, value);
        assert_eq!(parsed.query_pairs().count(), 2);

        let bad = |k: &str, v: &str, t: &str| {
            let vars = BTreeMap::from([(k.to_string(), v.to_string())]);
            render_url(t, &vars).unwrap_err()
        };
        assert!(bad("h", "evil.com/x", "https://{{ h }}/a").contains("host"));
        assert!(bad("h", "user@evil.com", "https://{{ h }}/a").contains("host"));
        assert!(bad("p", "..", "https://a/x/{{ p }}/admin").contains("path"));
        assert!(bad("p", "a/../../admin", "https://a/x/{{ p }}").contains("path"));
        assert!(bad("p", "./a", "https://a/x/{{ p }}").contains("path"));
        assert!(render_url("https://a/{{ nope }}", &vars).is_err());
        // Plain values are unchanged.
        let vars = BTreeMap::from([("n".to_string(), "2024-01-01T00:00:00Z".to_string())]);
        assert_eq!(
            render_url("https://a/x?since={{ n }}", &vars).unwrap(),
            "https://a/x?since=2024-01-01T00%3A00%3A00Z"
        );
    }
}
