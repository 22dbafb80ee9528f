//! API tokens: `apitap_<id>_<secret>`. The id is public (listings, audit); only the
//! SHA-256 of the secret is stored, so the state, its snapshots and its backups cannot be
//! used to call the cluster.

use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "apitap_";

/// A new token: (the string to hand to its user, its id, the hash to store).
pub fn generate() -> (String, String, String) {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    let mut rng = rand::thread_rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    let hash = hash(&secret);
    (format!("{PREFIX}{id}_{secret}"), id, hash)
}

/// (id, secret) of a token string; `None` if it is not shaped like one.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id, 12) && hexish(secret, 64)).then_some((id, secret))
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a secret with a stored hash in time independent of where they differ.
pub fn matches(secret: &str, stored_hash: &str) -> bool {
    let h = hash(secret);
    h.len() == stored_hash.len()
        && h.bytes()
            .zip(stored_hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_and_matches_only_its_hash() {
        let (token, id, stored) = generate();
        let (pid, secret) = parse(&token).unwrap();
        assert_eq!(pid, id);
        assert!(matches(secret, &stored));
        assert!(!matches(
            &secret.replace('a', "b").replace('0', "1"),
            &stored
        ));
        let (other, _, _) = generate();
        assert_ne!(token, other);
        assert!(!token.contains(&stored), "the hash is not the secret");
    }

    #[test]
    fn malformed_tokens_are_not_tokens() {
        for bad in [
            "",
            "apitap_",
            "apitap_abc_def",
            "token_0123456789ab_00",
            "apitap_0123456789ab",
            "apitap_0123456789ab_zz",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
