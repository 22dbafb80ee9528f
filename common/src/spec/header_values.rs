//! What a worker sends as HTTP header text must be valid there: header values (custom
//! headers, `auth.bearer`, an `auth.api_key` sent in a header) without control characters
//! (a tab excepted), an `api_key` header name made of token characters. Checked at submit
//! time because every worker refuses such a source when it builds its requests: the spec
//! would be stored and then fail on every run, far from whoever wrote it.
//!
//! Values are checked as written, with `${SECRET}` references unresolved (a secret's value
//! is checked by the worker) and `{{ var }}` templates left in place, plus each of the
//! spec's own shard `values` a header template would put in. Messages never quote values:
//! they may be credentials.

use super::parse::Problem;
use super::template;
use super::types::*;

const HTTP: &str = "spec.source.http";

/// The first character of `text` that cannot be in an HTTP header value (RFC 9110
/// field-value: visible ASCII, space, tab and bytes above 0x7F; no other control).
fn bad_char(text: &str) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|(_, c)| c.is_ascii_control() && *c != '\t')
}

/// Whether `name` is an HTTP header name (RFC 9110 token).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) fn header_values(p: &Pipeline, out: &mut Vec<Problem>) {
    let h = &p.spec.source.http;
    let shard_values: &[String] = p
        .spec
        .shards
        .as_ref()
        .and_then(|s| s.values.as_deref())
        .unwrap_or_default();
    let shard_vars: Vec<String> = p
        .spec
        .shards
        .iter()
        .flat_map(|s| [s.param.clone(), "shard.value".to_string()])
        .collect();
    let mut check = |path: String, text: &str| {
        if let Some((at, c)) = bad_char(text) {
            out.push(
                Problem::new(
                    path.clone(),
                    format!(
                        "character {} of the value is the control character U+{:04X}, \
                         which HTTP header values cannot carry",
                        at + 1,
                        c as u32
                    ),
                )
                .hint("remove it (a YAML double-quoted string turns \\n, \\t, \\0 into control characters)"),
            );
            return;
        }
        let uses_shard = template::variables(text)
            .unwrap_or_default()
            .iter()
            .any(|v| shard_vars.contains(v));
        if uses_shard {
            if let Some(i) = shard_values.iter().position(|v| bad_char(v).is_some()) {
                out.push(Problem::new(
                    "spec.shards.values",
                    format!(
                        "value #{} holds a control character, and {path} puts the shard \
                         value into an HTTP header",
                        i + 1
                    ),
                ));
            }
        }
    };
    for (k, v) in &h.headers {
        check(format!("{HTTP}.headers.{k}"), v);
    }
    if let Some(auth) = &h.auth {
        if let Some(token) = &auth.bearer {
            check(format!("{HTTP}.auth.bearer"), token);
        }
        if let Some(key) = &auth.api_key {
            if key.location == ApiKeyLocation::Header {
                check(format!("{HTTP}.auth.api_key.value"), &key.value);
                if !key.name.trim().is_empty() && !is_token(&key.name) {
                    out.push(
                        Problem::new(
                            format!("{HTTP}.auth.api_key.name"),
                            format!("{:?} is not an HTTP header name", key.name),
                        )
                        .hint("use letters, digits and - (for example X-Api-Key)"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::spec::{env, BASE};
    use crate::spec::load;

    fn errors(text: &str) -> Vec<String> {
        match load("f.yaml", text, Some(&env())) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Found by `apitap-chaos fuzz --target spec`: a NUL in a header value (here through an
    /// alias) was accepted, and every worker then refused the source on every run.
    #[test]
    fn a_control_character_in_a_header_value_is_refused_at_submit() {
        let text = BASE.replace("tag: &t blue", "tag: &t \"\\u0000\"");
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("spec.source.http.headers.X-Tag: character 1 of the value is the control character U+0000"), "{found:?}");
        // The query parameter with the same value is fine: it is percent-encoded.
        assert!(errors(
            &BASE
                .replace("X-Tag: *t", "X-Tag: blue")
                .replace("tag: &t blue", "tag: \"\\u0000\"")
        )
        .is_empty());
    }

    #[test]
    fn bearer_tokens_api_keys_and_shard_values_in_headers_are_checked() {
        let bearer = BASE.replace("bearer: \"${API_TOKEN}\"", "bearer: \"a\\nb\"");
        assert!(
            errors(&bearer)[0].contains("auth.bearer: character 2"),
            "{:?}",
            errors(&bearer)
        );
        let key = BASE.replace(
            "auth: { bearer: \"${API_TOKEN}\" }",
            "auth: { api_key: { name: X Key, value: \"k\\r\" } }",
        );
        let e = errors(&key);
        assert!(
            e.iter()
                .any(|e| e.contains("auth.api_key.value: character 2")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.contains("\"X Key\" is not an HTTP header name")),
            "{e:?}"
        );
        let in_query = key.replace("value: \"k\\r\" }", "value: k, in: query }");
        assert!(errors(&in_query).is_empty(), "{:?}", errors(&in_query));
        let values = BASE
            .replace(
                "window: { start: \"2026-01-01T00:00:00Z\", end: \"2026-02-01T00:00:00+02:00\", step: 1d }",
                "values: [a, \"b\\u0007\"]",
            )
            .replace("?from={{ shard.start }}", "")
            .replace("X-Tag: *t", "X-Tag: \"{{ day }}\"");
        let e = errors(&values);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("spec.shards.values: value #2 holds a control character"),
            "{e:?}"
        );
    }

    #[test]
    fn control_characters_are_found_tabs_and_non_ascii_are_not() {
        assert_eq!(bad_char("a\tb é 日"), None);
        assert_eq!(bad_char("ab\0"), Some((2, '\0')));
        assert_eq!(bad_char("\u{7f}"), Some((0, '\u{7f}')));
        assert_eq!(bad_char("a\nb"), Some((1, '\n')));
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(is_token("X-Api-Key"));
        assert!(!is_token("X Api"));
        assert!(!is_token("X:Api"));
        assert!(!is_token("é"));
    }
}
