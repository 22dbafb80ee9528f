//! Mutual TLS for every gRPC link of a cluster (apitapctl → coordinator, worker →
//! coordinator, coordinator ↔ coordinator): one CA signs the coordinators' certificates
//! (server and peer-client use) and the clients' certificates; every side checks the other
//! against it. The settings come from PEM files named on the command line.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The three PEM files of a TLS-enabled node or client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the certificates of the cluster and of its clients.
    pub ca: PathBuf,
    /// This side's certificate (chain), signed by `ca`.
    pub cert: PathBuf,
    /// The private key of `cert`.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files from the optional `--tls-ca`, `--tls-cert` and `--tls-key`: all three or
    /// none.
    pub fn from_flags(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<Self>, String> {
        match (ca, cert, key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Ok(Some(Self {
                ca: ca.to_path_buf(),
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })),
            _ => Err(
                "TLS needs all three of --tls-ca, --tls-cert and --tls-key (or none of them)"
                    .into(),
            ),
        }
    }

    /// Reads the files; an error names the file and what is wrong.
    pub fn load(&self) -> Result<Tls, String> {
        let read = |what: &str, path: &Path| {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN ") {
                return Err(format!(
                    "the TLS {what} {} is not PEM (no -----BEGIN line)",
                    path.display()
                ));
            }
            Ok(pem)
        };
        let tls = Tls {
            ca: read("CA certificate", &self.ca)?,
            cert: read("certificate", &self.cert)?,
            key: read("key", &self.key)?,
        };
        // Build a client configuration now, so that a certificate or key rustls cannot use
        // stops the binary at start instead of failing every call later.
        tonic::transport::Endpoint::from_static("https://localhost")
            .tls_config(tls.client("localhost"))
            .map_err(|e| {
                format!(
                    "the TLS files {}, {} and {} do not make a usable configuration: {e}",
                    self.ca.display(),
                    self.cert.display(),
                    self.key.display()
                )
            })?;
        Ok(tls)
    }
}

/// The `--tls-ca`, `--tls-cert` and `--tls-key` flags, the same on every binary
/// (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Mutual TLS: the CA (PEM) that signed the coordinators' and the clients' certificates.
    /// Needs --tls-cert and --tls-key too.
    #[arg(long, global = true, env = "APITAP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This side's certificate (PEM), signed by --tls-ca. A coordinator's must name the host
    /// of its advertised address.
    #[arg(long, global = true, env = "APITAP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, env = "APITAP_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The material the flags name, read and checked; `None` without the flags.
    pub fn load(&self) -> Result<Option<Tls>, String> {
        TlsFiles::from_flags(
            self.tls_ca.as_deref(),
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
        )?
        .map(|f| f.load())
        .transpose()
    }
}

/// Loaded TLS material, cheap to clone.
#[derive(Clone)]
pub struct Tls {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}

impl Tls {
    /// A client's settings for dialing `host` (the name or IP its certificate must carry).
    pub fn client(&self, host: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(Identity::from_pem(&self.cert, &self.key))
            .domain_name(host)
    }

    /// A coordinator's server settings: its certificate, and client certificates required
    /// and checked against the CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(Certificate::from_pem(&self.ca))
    }
}

/// The URI to dial `addr` (`host:port`, or a URI whose scheme is replaced): `https://` with
/// TLS, `http://` without. An `https://` address without TLS settings is an error, not a
/// silent downgrade.
pub fn uri(addr: &str, tls: bool) -> Result<String, String> {
    let (scheme, rest) = match addr.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, addr),
    };
    if scheme == Some("https") && !tls {
        return Err(format!(
            "{addr} is an https:// address: give --tls-ca, --tls-cert and --tls-key"
        ));
    }
    Ok(format!("{}://{rest}", if tls { "https" } else { "http" }))
}

/// The host part of `host:port`, `[v6]:port` or a URI, for certificate checks.
pub fn host_of(addr: &str) -> &str {
    let rest = addr.split_once("://").map_or(addr, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("127.0.0.1:7400"), "127.0.0.1");
        assert_eq!(host_of("coord-0.apitap:7400"), "coord-0.apitap");
        assert_eq!(host_of("https://coord:7400/x"), "coord");
        assert_eq!(host_of("[::1]:7400"), "::1");
        assert_eq!(host_of("coord"), "coord");
    }

    #[test]
    fn uris_follow_the_tls_setting() {
        assert_eq!(uri("c:7400", true).unwrap(), "https://c:7400");
        assert_eq!(uri("c:7400", false).unwrap(), "http://c:7400");
        assert_eq!(uri("http://c:7400", true).unwrap(), "https://c:7400");
        let e = uri("https://c:7400", false).unwrap_err();
        assert!(e.contains("--tls-ca"), "{e}");
    }

    #[test]
    fn all_three_files_or_none() {
        assert_eq!(TlsFiles::from_flags(None, None, None), Ok(None));
        let p = Path::new("x.pem");
        let e = TlsFiles::from_flags(Some(p), None, Some(p)).unwrap_err();
        assert!(e.contains("--tls-cert"), "{e}");
        let dir = std::env::temp_dir().join(format!("apitap-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let files = TlsFiles::from_flags(Some(&bad), Some(&bad), Some(&bad))
            .unwrap()
            .unwrap();
        let e = files.load().unwrap_err();
        assert!(e.contains("not PEM") && e.contains("bad.pem"), "{e}");
        let e = TlsFiles {
            ca: dir.join("missing.pem"),
            ..files
        }
        .load()
        .unwrap_err();
        assert!(e.contains("cannot read the TLS CA certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
