//! A throwaway certificate authority for a TLS test cluster. Every certificate names its
//! holder in a URI SAN, as the coordinators' auth layer requires: one per coordinator
//! (`apitap://coordinator/<id>`, also 127.0.0.1 and localhost for server use), one per
//! worker (`apitap://worker/<id>`) and one user certificate (`apitap://user/testbed`) for
//! apitapctl and in-process clients. Files are PEM, in one folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apitap_proto::tls::{Tls, TlsFiles};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// The hosts every coordinator certificate names (DNS or IP SANs). A coordinator is dialled
/// by the host of its listen address (workers, apitapctl) and of its advertised address
/// (peers, clients that follow a leader hint, e.g. through a fault proxy); both must be one
/// of these, or the TLS handshake fails ([`names_coordinator_host`]).
pub const COORDINATOR_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

/// Whether a coordinator certificate of this CA is valid for `addr`'s host.
pub fn names_coordinator_host(addr: &str) -> bool {
    COORDINATOR_HOSTS.contains(&apitap_proto::tls::host_of(addr))
}

/// The CA that signs, kept to issue certificates as nodes are added.
struct Issuer {
    cert: Certificate,
    key: KeyPair,
}

/// The CA of [`generate`] and the user certificate; nodes' certificates are issued on
/// demand ([`TestCerts::coordinator_env`], [`TestCerts::worker_env`]).
#[derive(Clone)]
pub struct TestCerts {
    dir: PathBuf,
    issuer: Arc<Issuer>,
    pub ca: PathBuf,
    /// `apitap://user/testbed`: apitapctl and in-process clients.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl std::fmt::Debug for TestCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCerts").field("dir", &self.dir).finish()
    }
}

impl TestCerts {
    /// `APITAP_TLS_*` variables of coordinator `id` (its certificate is issued now).
    pub fn coordinator_env(&self, id: u64) -> anyhow::Result<Vec<(String, String)>> {
        let (cert, key) = self.coordinator_files(id)?;
        Ok(env(&self.ca, &cert, &key))
    }

    /// Coordinator `id`'s TLS material, for in-process clients that act as it.
    pub fn coordinator_tls(&self, id: u64) -> anyhow::Result<Tls> {
        let (cert, key) = self.coordinator_files(id)?;
        self.load(cert, key)
    }

    /// `APITAP_TLS_*` variables of worker `id` (its certificate is issued now).
    pub fn worker_env(&self, id: &str) -> anyhow::Result<Vec<(String, String)>> {
        let (cert, key) = self.worker_files(id)?;
        Ok(env(&self.ca, &cert, &key))
    }

    /// Worker `id`'s TLS material, for in-process clients that act as it.
    pub fn worker_tls(&self, id: &str) -> anyhow::Result<Tls> {
        let (cert, key) = self.worker_files(id)?;
        self.load(cert, key)
    }

    /// The user's TLS material, for in-process gRPC clients.
    pub fn client_tls(&self) -> anyhow::Result<Tls> {
        self.load(self.client_cert.clone(), self.client_key.clone())
    }

    fn coordinator_files(&self, id: u64) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.issue(
            &format!("coordinator.{id}"),
            vec![
                SanType::IpAddress(COORDINATOR_HOSTS[0].parse()?),
                SanType::DnsName(COORDINATOR_HOSTS[1].try_into()?),
                SanType::URI(format!("apitap://coordinator/{id}").try_into()?),
            ],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    fn worker_files(&self, id: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.issue(
            &format!("worker.{id}"),
            vec![SanType::URI(format!("apitap://worker/{id}").try_into()?)],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn load(&self, cert: PathBuf, key: PathBuf) -> anyhow::Result<Tls> {
        TlsFiles {
            ca: self.ca.clone(),
            cert,
            key,
        }
        .load()
        .map_err(anyhow::Error::msg)
    }

    /// `APITAP_TLS_*` variables naming the user's files (apitapctl).
    pub fn client_env(&self) -> Vec<(String, String)> {
        env(&self.ca, &self.client_cert, &self.client_key)
    }

    /// Writes `<name>.pem` and `<name>-key.pem`, signed by the CA.
    fn issue(
        &self,
        name: &str,
        sans: Vec<SanType>,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        issue(&self.dir, &self.issuer, name, sans, usages)
    }
}

fn issue(
    dir: &Path,
    issuer: &Issuer,
    name: &str,
    sans: Vec<SanType>,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("apitap {name}"));
    params.extended_key_usages = usages;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key)?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok((cert_path, key_path))
}

fn env(ca: &Path, cert: &Path, key: &Path) -> Vec<(String, String)> {
    [
        ("APITAP_TLS_CA", ca),
        ("APITAP_TLS_CERT", cert),
        ("APITAP_TLS_KEY", key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.display().to_string()))
    .collect()
}

/// A new CA in `dir`, and the user certificate it signs.
pub fn generate(dir: &Path) -> anyhow::Result<TestCerts> {
    std::fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "apitap test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate()?;
    let cert = ca_params.self_signed(&key)?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.pem())?;
    let issuer = Issuer { cert, key };
    let (client_cert, client_key) = issue(
        dir,
        &issuer,
        "user.testbed",
        vec![SanType::URI("apitap://user/testbed".try_into()?)],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    Ok(TestCerts {
        dir: dir.to_path_buf(),
        issuer: Arc::new(issuer),
        ca,
        client_cert,
        client_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_certificates_name_only_loopback_hosts() {
        assert!(names_coordinator_host("127.0.0.1:7400"));
        assert!(names_coordinator_host("localhost:7400"));
        assert!(!names_coordinator_host("10.0.0.7:7400"));
        assert!(!names_coordinator_host("coordinator-1:7400"));
    }
}
