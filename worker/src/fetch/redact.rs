//! Keeping secret values out of what leaves the fetcher: errors and logs get `***`, and
//! stored positions (a next-page URL or cursor that echoes a token) get a placeholder that
//! names the secret by its place in the source, put back when the position is fetched.
//! Positions are stored in the sink and in Raft, so neither holds a secret value.

use url::Url;

use super::error::FetchError;

/// Secrets shorter than this are not scrubbed (they would garble every message).
const MIN_SECRET_LEN: usize = 3;

/// How placeholders start; a stored position holding one is resolved before it is fetched.
const PLACEHOLDER_PREFIX: &str = "{{secret:";

/// One form of a secret value as it may appear in text or a URL.
#[derive(Clone)]
struct Form {
    value: String,
    /// `{{secret:<index>:<encoding>}}`, index in the order the source lists its secrets
    /// (stable for a run: its spec and secret values are fixed).
    placeholder: String,
}

/// Replaces known secret values: with `***` in text meant for errors and logs, with a
/// placeholder in stored positions.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Longest value first, so that a secret containing another is replaced whole.
    forms: Vec<Form>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.forms.len())
    }
}

impl Redactor {
    pub(crate) fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut forms: Vec<Form> = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            if v.chars().count() < MIN_SECRET_LEN {
                continue;
            }
            // URLs carry the secret percent-encoded (`+` for a space in a query, `%20` in a
            // path).
            let query: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            let path = query.replace('+', "%20");
            for (value, encoding) in [(v, "raw"), (query, "query"), (path, "path")] {
                if !forms.iter().any(|f| f.value == value) {
                    let placeholder = format!("{PLACEHOLDER_PREFIX}{i}:{encoding}}}}}");
                    forms.push(Form { value, placeholder });
                }
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.value.len()));
        Self { forms }
    }

    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.forms {
            if out.contains(f.value.as_str()) {
                out = out.replace(f.value.as_str(), "***");
            }
        }
        out
    }

    /// `text` as it may be stored: every secret value replaced by its placeholder.
    pub(crate) fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.forms {
            if out.contains(f.value.as_str()) {
                out = out.replace(f.value.as_str(), &f.placeholder);
            }
        }
        out
    }

    /// A stored `text` ready to fetch: placeholders replaced by their values. A placeholder
    /// this source does not have (its secrets changed under a stored position) is an error.
    pub(crate) fn unmask(&self, text: &str) -> Result<String, FetchError> {
        if !text.contains(PLACEHOLDER_PREFIX) {
            return Ok(text.to_string());
        }
        let mut out = text.to_string();
        for f in &self.forms {
            if out.contains(f.placeholder.as_str()) {
                out = out.replace(f.placeholder.as_str(), &f.value);
            }
        }
        if out.contains(PLACEHOLDER_PREFIX) {
            return Err(FetchError::Pagination {
                url: "checkpoint".into(),
                message: "the stored position names a secret this pipeline no longer has; \
                          retry the run with the pipeline version it started with, or start \
                          a new run"
                    .into(),
            });
        }
        Ok(out)
    }

    /// `scheme://host[:port]/path`, secrets removed: what errors and logs show of a URL.
    pub(crate) fn url(&self, url: &Url) -> String {
        let mut shown = format!("{}://", url.scheme());
        if let Some(host) = url.host_str() {
            shown.push_str(host);
        }
        if let Some(port) = url.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown.push_str(url.path());
        self.scrub(&shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_position_holds_no_secret_and_unmasks_exactly() {
        let r = Redactor::new(["tok en/1".to_string(), "ab".to_string(), "s3cr3t".into()]);
        let url = "https://api.test/items?after=s3cr3t&sig=tok+en%2F1&p=/tok%20en%2F1/";
        let stored = r.mask(url);
        assert!(
            !stored.contains("s3cr3t") && !stored.contains("tok"),
            "{stored}"
        );
        assert!(stored.contains("{{secret:2:raw}}"), "{stored}");
        assert_eq!(r.unmask(&stored).expect("unmask"), url);
        // Text without placeholders (positions stored before masking) passes as it is.
        assert_eq!(r.unmask(url).expect("plain"), url);
        // A placeholder the source no longer has is refused, not sent upstream.
        let fewer = Redactor::new(["s3cr3t".to_string()]);
        let e = fewer.unmask(&stored).expect_err("unknown placeholder");
        assert!(e.to_string().contains("no longer has"), "{e}");
    }
}
