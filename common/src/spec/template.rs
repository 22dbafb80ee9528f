//! `{{ var }}` template variables in URLs, query values and headers. They are bound per
//! shard (`{{ shard.value }}`, `{{ shard.start }}`, `{{ shard.end }}`, `{{ <param> }}`) when
//! the worker builds a request.

use std::collections::BTreeMap;

/// The names of every `{{ var }}` in `text`, or an error for an unclosed `{{`.
pub fn variables(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without a closing `}}}}` in {text:?}"))?;
        let name = after[..close].trim();
        if name.is_empty() {
            return Err(format!("empty `{{{{ }}}}` in {text:?}"));
        }
        out.push(name.to_string());
        rest = &after[close + 2..];
    }
    Ok(out)
}

/// Replaces every `{{ var }}` with its value; unknown variables are an error.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without a closing `}}}}` in {text:?}"))?;
        let name = after[..close].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("unknown template variable {{{{ {name} }}}}"))?;
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
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
}
