//! A throwaway certificate authority for a TLS test cluster: one CA, one certificate for
//! every coordinator (127.0.0.1 and localhost, server and client use) and one client
//! certificate for workers and apitapctl, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// The files of [`generate`].
#[derive(Debug, Clone)]
pub struct TestCerts {
    pub ca: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCerts {
    /// `APITAP_TLS_*` variables naming the node's files (coordinators).
    pub fn node_env(&self) -> Vec<(String, String)> {
        env(&self.ca, &self.node_cert, &self.node_key)
    }

    /// The client's TLS material, for in-process gRPC clients.
    pub fn client_tls(&self) -> anyhow::Result<apitap_proto::tls::Tls> {
        apitap_proto::tls::TlsFiles {
            ca: self.ca.clone(),
            cert: self.client_cert.clone(),
            key: self.client_key.clone(),
        }
        .load()
        .map_err(anyhow::Error::msg)
    }

    /// `APITAP_TLS_*` variables naming the client's files (workers, apitapctl).
    pub fn client_env(&self) -> Vec<(String, String)> {
        env(&self.ca, &self.client_cert, &self.client_key)
    }
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

/// A new CA and the certificates it signs, in `dir`.
pub fn generate(dir: &Path) -> anyhow::Result<TestCerts> {
    std::fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "apitap test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;

    let issue = |name: &str,
                 sans: Vec<String>,
                 usages: Vec<ExtendedKeyUsagePurpose>|
     -> anyhow::Result<(String, String)> {
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usages;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (node_cert, node_key) = issue(
        "apitap coordinator",
        vec!["127.0.0.1".into(), "localhost".into()],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )?;
    let (client_cert, client_key) = issue(
        "apitap client",
        vec!["apitap-client".into()],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    let write = |name: &str, pem: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, pem)?;
        Ok(path)
    };
    Ok(TestCerts {
        ca: write("ca.pem", &ca.pem())?,
        node_cert: write("node.pem", &node_cert)?,
        node_key: write("node-key.pem", &node_key)?,
        client_cert: write("client.pem", &client_cert)?,
        client_key: write("client-key.pem", &client_key)?,
    })
}
