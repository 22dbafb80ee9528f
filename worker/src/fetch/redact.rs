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

/// OAuth2 access tokens remembered for scrubbing (the newest is what placeholders resolve
/// to); older ones stay so that a late error quoting one is still scrubbed.
const MAX_TOKENS: usize = 4;

/// Replaces known secret values: with `***` in text meant for errors and logs, with a
/// placeholder in stored positions. Clones share the OAuth2 tokens learnt since.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Longest value first, so that a secret containing another is replaced whole.
    forms: Vec<Form>,
    /// The forms of the OAuth2 access tokens in use, newest token first; their placeholders
    /// are `{{secret:oauth2:<encoding>}}`, so a stored position resolves to the current token.
    tokens: std::sync::Arc<std::sync::RwLock<Vec<Vec<Form>>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.forms.len())
    }
}

/// The forms of secret `v` (raw, and percent-encoded as URLs carry it: `+` for a space in a
/// query, `%20` in a path), each with a placeholder naming it `name`. All three are kept
/// even when equal, so that a token's placeholders of every encoding resolve.
fn forms_of(v: &str, name: &str) -> Vec<Form> {
    let query: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
    let path = query.replace('+', "%20");
    let mut out: Vec<Form> = [(v.to_string(), "raw"), (query, "query"), (path, "path")]
        .into_iter()
        .map(|(value, encoding)| Form {
            value,
            placeholder: format!("{PLACEHOLDER_PREFIX}{name}:{encoding}}}}}"),
        })
        .collect();
    // Stable: of equal values the raw form comes first and is the one `mask` writes.
    out.sort_by_key(|f| std::cmp::Reverse(f.value.len()));
    out
}

impl Redactor {
    pub(crate) fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut forms: Vec<Form> = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            if v.chars().count() < MIN_SECRET_LEN {
                continue;
            }
            for form in forms_of(&v, &i.to_string()) {
                if !forms.iter().any(|f| f.value == form.value) {
                    forms.push(form);
                }
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.value.len()));
        Self {
            forms,
            tokens: Default::default(),
        }
    }

    /// Treats `token` (an OAuth2 access token just obtained) as a secret from now on.
    pub(crate) fn remember_token(&self, token: &str) {
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        if tokens
            .first()
            .and_then(|t| t.first())
            .is_some_and(|f| f.value == token)
        {
            return;
        }
        tokens.retain(|t| t.first().is_none_or(|f| f.value != token));
        tokens.insert(0, forms_of(token, "oauth2"));
        tokens.truncate(MAX_TOKENS);
    }

    /// Every form, tokens first: (value, placeholder).
    fn all_forms(&self) -> Vec<Form> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens
            .iter()
            .flatten()
            .chain(self.forms.iter())
            .cloned()
            .collect()
    }

    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.all_forms() {
            if out.contains(f.value.as_str()) {
                out = out.replace(f.value.as_str(), "***");
            }
        }
        out
    }

    /// `text` as it may be stored: every secret value replaced by its placeholder.
    pub(crate) fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.all_forms() {
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
        let newest_token = {
            let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
            tokens.first().cloned().unwrap_or_default()
        };
        for f in newest_token.iter().chain(self.forms.iter()) {
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

    #[test]
    fn oauth2_tokens_are_scrubbed_and_positions_resolve_to_the_newest() {
        let r = Redactor::new(["s3cr3t".to_string()]);
        let copy = r.clone();
        r.remember_token("tok-old");
        copy.remember_token("tok-new/1");
        // Clones share what they learnt; old tokens are still scrubbed.
        assert_eq!(
            r.scrub("a tok-old b tok-new/1 c s3cr3t"),
            "a *** b *** c ***"
        );
        let stored = r.mask("https://api.test/x?access_token=tok-new%2F1");
        assert!(!stored.contains("tok-new"), "{stored}");
        r.remember_token("tok-third");
        assert_eq!(
            r.unmask(&stored).expect("unmask"),
            "https://api.test/x?access_token=tok-third"
        );
        for i in 0..10 {
            r.remember_token(&format!("token-{i}"));
        }
        assert_eq!(r.tokens.read().unwrap().len(), MAX_TOKENS);
    }
}
