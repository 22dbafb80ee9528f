//! Who is calling: the identity a node's certificate names in a URI subject alternative
//! name, `apitap://coordinator/<id>`, `apitap://worker/<id>` or `apitap://user/<name>`.
//! The cluster's CA vouches for the certificate; this module only reads what it says.

use std::fmt;

use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

const SCHEME: &str = "apitap://";

/// The identity in a node's or person's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Coordinator(u64),
    Worker(String),
    User(String),
}

impl Identity {
    /// The URI SAN that names this identity.
    pub fn uri(&self) -> String {
        match self {
            Identity::Coordinator(id) => format!("{SCHEME}coordinator/{id}"),
            Identity::Worker(id) => format!("{SCHEME}worker/{id}"),
            Identity::User(name) => format!("{SCHEME}user/{name}"),
        }
    }

    /// Reads `apitap://<kind>/<name>`; `None` for any other URI.
    pub fn parse(uri: &str) -> Option<Identity> {
        let rest = uri.strip_prefix(SCHEME)?;
        let (kind, name) = rest.split_once('/')?;
        if name.is_empty() || name.len() > 253 || name.contains('/') {
            return None;
        }
        match kind {
            "coordinator" => name.parse().ok().map(Identity::Coordinator),
            "worker" => Some(Identity::Worker(name.to_string())),
            "user" => Some(Identity::User(name.to_string())),
            _ => None,
        }
    }

    /// The one `apitap://` identity of a DER certificate. A certificate with none, or
    /// with two different ones, names nobody: refusing is safer than picking one.
    pub fn from_cert(der: &[u8]) -> Result<Identity, String> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| format!("unreadable client certificate: {e}"))?;
        let mut found: Option<Identity> = None;
        for ext in cert.tbs_certificate.extensions.iter().flatten() {
            if ext.extn_id != x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
                continue;
            }
            let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                .map_err(|e| format!("unreadable subject alternative names: {e}"))?;
            for name in san.0 {
                let GeneralName::UniformResourceIdentifier(uri) = name else {
                    continue;
                };
                let Some(id) = Identity::parse(uri.as_str()) else {
                    continue;
                };
                match &found {
                    Some(f) if *f != id => {
                        return Err(format!(
                            "the certificate names two identities, {} and {}; issue one per node",
                            f.uri(),
                            id.uri()
                        ))
                    }
                    _ => found = Some(id),
                }
            }
        }
        found.ok_or_else(|| {
            "the client certificate has no apitap:// URI SAN (apitap://coordinator/<id>, \
             apitap://worker/<id> or apitap://user/<name>); see docs/security.md"
                .to_string()
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_strangers_are_nobody() {
        for id in [
            Identity::Coordinator(3),
            Identity::Worker("w-1".into()),
            Identity::User("ops".into()),
        ] {
            assert_eq!(Identity::parse(&id.uri()), Some(id));
        }
        for bad in [
            "apitap://coordinator/x",
            "apitap://worker/",
            "apitap://worker/a/b",
            "apitap://root/1",
            "https://worker/1",
            "apitap://coordinator",
        ] {
            assert_eq!(Identity::parse(bad), None, "{bad}");
        }
    }
}
