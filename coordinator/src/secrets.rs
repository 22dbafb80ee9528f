//! Secret values at rest: sealed with XChaCha20-Poly1305 under an envelope key before they
//! are proposed, so the Raft log, the state machine, snapshots and backups hold only
//! ciphertext. Every coordinator has the same key file (`--secrets-key-file`); a value is
//! opened only to hand it to a worker with its lease.
//!
//! The key file has one key per line, `<id> <64 hex digits>`; the first is the current key
//! (it seals), all of them open. Rotation without downtime: put a new key first on every
//! node (rolling restart), run `apitapctl secrets rotate-key` (every value is sealed again
//! under it), then drop the old line. Without a key file values are kept as submitted.

use std::collections::BTreeMap;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;

/// The keys of a coordinator, the first one current.
#[derive(Clone, Default)]
pub struct SecretBox {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SecretBox").field("key_ids", &ids).finish()
    }
}

impl SecretBox {
    /// Reads a key file; errors name the file and the line.
    pub fn load(path: &Path) -> Result<SecretBox, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--secrets-key-file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--secrets-key-file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<SecretBox, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, hex_key) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("line {}: expected `<id> <64 hex digits>`", n + 1))?;
            let bytes = hex::decode(hex_key.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    format!(
                        "line {}: the key must be 64 hex digits (32 bytes), e.g. from \
                         `openssl rand -hex 32`",
                        n + 1
                    )
                })?;
            if id.contains(':') || id.is_empty() || id.len() > 64 {
                return Err(format!(
                    "line {}: a key id is 1..=64 characters without `:`",
                    n + 1
                ));
            }
            if keys.iter().any(|(k, _): &(String, _)| k == id) {
                return Err(format!("line {}: key id {id} appears twice", n + 1));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| e.to_string())?;
            keys.push((id.to_string(), cipher));
        }
        if keys.is_empty() {
            return Err("no key in the file".into());
        }
        Ok(SecretBox { keys })
    }

    /// Whether values are sealed at all (a key file was given).
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the key that seals.
    pub fn current(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    /// Seals `value`, bound to `context` (the pipeline and variable it belongs to): a
    /// ciphertext moved to another slot does not open. Without keys, `value` itself.
    pub fn seal(&self, context: &str, value: &str) -> String {
        let Some((id, cipher)) = self.keys.first() else {
            return value.to_string();
        };
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: value.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and a fresh nonce cannot fail.
        let ct = cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend(ct);
        format!("{PREFIX}{id}:{}", hex::encode(blob))
    }

    /// The value of `stored`: opened if sealed, as is otherwise.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, blob) = rest
            .split_once(':')
            .ok_or("a sealed value without its key id")?;
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == id).ok_or_else(|| {
            format!(
                "the secret is sealed under key {id:?}, which --secrets-key-file does not hold; \
                 add that key back (keys stay until `apitapctl secrets rotate-key` has run)"
            )
        })?;
        let blob = hex::decode(blob).map_err(|_| "a sealed value that is not hex")?;
        if blob.len() < NONCE_LEN {
            return Err("a sealed value too short to hold its nonce".into());
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| format!("the secret sealed under key {id:?} does not open (damaged, or moved from another pipeline)"))?;
        String::from_utf8(plain).map_err(|_| "a sealed value that is not UTF-8".to_string())
    }

    /// Whether `stored` is sealed under the current key.
    pub fn is_current(&self, stored: &str) -> bool {
        match (self.current(), stored.strip_prefix(PREFIX)) {
            (Some(id), Some(rest)) => rest.split_once(':').is_some_and(|(k, _)| k == id),
            (None, None) => true,
            _ => false,
        }
    }

    /// Opens every value of `sealed` (pipeline `pipeline`).
    pub fn open_all(
        &self,
        pipeline: &str,
        sealed: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        sealed
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.open(&context(pipeline, k), v)?)))
            .collect()
    }

    /// Opens the stored values of the pipeline `namespace/name` (or of one of its runs):
    /// sealed under its key, or, when sealed before the namespace was part of a pipeline's
    /// identity, under its bare name.
    pub fn open_pipeline(
        &self,
        namespace: &str,
        name: &str,
        sealed: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        self.open_all(&crate::state::model::pipeline_key(namespace, name), sealed)
            .or_else(|e| self.open_all(name, sealed).map_err(|_| e))
    }

    /// Seals every value of `plain` for pipeline `pipeline` (its key, `namespace/name`).
    pub fn seal_all(
        &self,
        pipeline: &str,
        plain: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        plain
            .iter()
            .map(|(k, v)| (k.clone(), self.seal(&context(pipeline, k), v)))
            .collect()
    }
}

/// What a sealed value is bound to.
pub fn context(pipeline: &str, var: &str) -> String {
    format!("pipeline={pipeline};var={var}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a 0000000000000000000000000000000000000000000000000000000000000001";
    const B: &str = "b 0000000000000000000000000000000000000000000000000000000000000002";

    #[test]
    fn sealed_values_open_only_in_their_slot_and_hide_the_value() {
        let b = SecretBox::parse(A).unwrap();
        let sealed = b.seal("pipeline=p;var=T", "hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, b.seal("pipeline=p;var=T", "hunter2"), "fresh nonce");
        assert_eq!(b.open("pipeline=p;var=T", &sealed).unwrap(), "hunter2");
        assert!(b.open("pipeline=q;var=T", &sealed).is_err());
        assert_eq!(b.open("x", "plain").unwrap(), "plain");
    }

    #[test]
    fn rotation_keeps_old_values_readable_until_resealed() {
        let old = SecretBox::parse(A).unwrap();
        let sealed = old.seal("c", "v");
        let both = SecretBox::parse(&format!("{B}\n{A}\n")).unwrap();
        assert_eq!(both.open("c", &sealed).unwrap(), "v");
        assert!(!both.is_current(&sealed));
        let resealed = both.seal("c", &both.open("c", &sealed).unwrap());
        assert!(both.is_current(&resealed));
        let only_new = SecretBox::parse(B).unwrap();
        assert!(only_new.open("c", &sealed).unwrap_err().contains("\"a\""));
        assert_eq!(only_new.open("c", &resealed).unwrap(), "v");
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        assert!(SecretBox::parse("").unwrap_err().contains("no key"));
        assert!(SecretBox::parse("k 1234").unwrap_err().contains("64 hex"));
        assert!(SecretBox::parse(&format!("{A}\n{A}"))
            .unwrap_err()
            .contains("twice"));
    }
}
