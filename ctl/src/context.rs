//! The context file (like kubectl's kubeconfig): named sets of coordinators, TLS files, a
//! token file and a namespace, so that someone who works with several clusters does not
//! repeat flags. Flags and environment variables win over the context; the context wins over
//! the built-in defaults.
//!
//! ```yaml
//! current-context: staging
//! contexts:
//!   - name: staging
//!     coordinators: [10.0.0.1:7400, 10.0.0.2:7400]
//!     namespace: orders
//!     tls-ca: certs/ca.pem          # relative paths are relative to this file
//!     tls-cert: certs/me.pem
//!     tls-key: certs/me.key
//!     token-file: staging.token
//! ```
//!
//! A context names a token *file*, never a token: the context file can be shared or
//! committed, the token file stays private.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the context file is looked for without `--config` / `APITAP_CONFIG`.
pub const DEFAULT_PATH: &str = ".config/apitap/config.yaml";

/// Most bytes read from a context file (it is a handful of lines).
pub const MAX_CONTEXT_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContextFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Context {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coordinators: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// The file to read: `explicit` (`--config` / `APITAP_CONFIG`, which must exist), else
/// `~/.config/apitap/config.yaml` if it exists, else none.
pub fn locate(explicit: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        if !p.exists() {
            anyhow::bail!(
                "--config {}: no such file (APITAP_CONFIG names one too)",
                p.display()
            );
        }
        return Ok(Some(p.to_path_buf()));
    }
    let default = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(DEFAULT_PATH));
    Ok(default.filter(|p| p.exists()))
}

impl ContextFile {
    /// The file as written (relative paths kept), read within [`MAX_CONTEXT_FILE_BYTES`].
    pub fn read_as_written(path: &Path) -> anyhow::Result<Self> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_CONTEXT_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| anyhow::anyhow!("context file {}: {e}", path.display()))?;
        if text.len() as u64 > MAX_CONTEXT_FILE_BYTES {
            anyhow::bail!(
                "context file {}: over {MAX_CONTEXT_FILE_BYTES} bytes (MAX_CONTEXT_FILE_BYTES); \
                 is it the right file?",
                path.display()
            );
        }
        // The message names the line and column; no snippet of the file in it.
        let options = serde_saphyr::options! { with_snippet: false };
        serde_saphyr::from_str_with_options(&text, options)
            .map_err(|e| anyhow::anyhow!("context file {}: {e}", path.display()))
    }

    /// The file with its relative paths resolved against its folder.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let mut file = Self::read_as_written(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for c in &mut file.contexts {
            for p in [
                &mut c.tls_ca,
                &mut c.tls_cert,
                &mut c.tls_key,
                &mut c.token_file,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(file)
    }

    /// The context called `name` (`--context`), else the current one; `None` when the file
    /// names none.
    pub fn select(&self, name: Option<&str>) -> anyhow::Result<Option<&Context>> {
        let Some(name) = name.or(self.current_context.as_deref()) else {
            return Ok(None);
        };
        match self.contexts.iter().find(|c| c.name == name) {
            Some(c) => Ok(Some(c)),
            None => anyhow::bail!(
                "no context {name:?} in the context file; it has: {}",
                self.names()
            ),
        }
    }

    pub fn names(&self) -> String {
        if self.contexts.is_empty() {
            return "none".into();
        }
        self.contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("config.yaml");
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn a_context_resolves_paths_next_to_the_file_and_is_selected_by_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = write(
            dir.path(),
            "current-context: a\ncontexts:\n  - name: a\n    coordinators: [h:1]\n    \
             token-file: a.token\n  - name: b\n    namespace: team-b\n    tls-ca: /etc/ca.pem\n",
        );
        let file = ContextFile::read(&p).expect("read");
        let a = file.select(None).expect("select").expect("current");
        assert_eq!(a.coordinators, ["h:1"]);
        assert_eq!(
            a.token_file.as_deref(),
            Some(dir.path().join("a.token").as_path())
        );
        let b = file.select(Some("b")).expect("select").expect("b");
        assert_eq!(b.namespace.as_deref(), Some("team-b"));
        assert_eq!(b.tls_ca.as_deref(), Some(Path::new("/etc/ca.pem")));
        let err = file.select(Some("c")).expect_err("no c").to_string();
        assert!(
            err.contains("no context \"c\"") && err.contains("a, b"),
            "{err}"
        );
    }

    #[test]
    fn a_misspelt_key_or_a_huge_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = write(dir.path(), "contexts:\n  - name: a\n    token: secret\n");
        let err = ContextFile::read(&p).expect_err("token inline").to_string();
        assert!(err.contains("unknown field `token`"), "{err}");
        let big = "#".repeat(MAX_CONTEXT_FILE_BYTES as usize + 10);
        let p = write(dir.path(), &big);
        let err = ContextFile::read(&p).expect_err("huge").to_string();
        assert!(err.contains("MAX_CONTEXT_FILE_BYTES"), "{err}");
        let err = locate(Some(&dir.path().join("missing.yaml")))
            .expect_err("missing")
            .to_string();
        assert!(err.contains("no such file"), "{err}");
    }
}
