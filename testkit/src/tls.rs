//! A throwaway certificate authority, for tests of the TLS connections to Redis and PostgreSQL.
//!
//! Each [`TestCa`] is a new CA key (rcgen, in memory) whose certificate is written to a PEM file
//! in its own temp dir, the file a service is given as its CA option. [`TestCa::issue`] signs a
//! server certificate for the names and addresses given, which the throwaway servers
//! ([`crate::server::TlsRedisServer`], [`crate::PostgresServer::start_tls`]) present. A second
//! CA is the "wrong CA"; a certificate issued for other names is the "wrong host name".

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A CA that exists for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA whose certificate is named `name`.
    ///
    /// # Errors
    /// When the key cannot be generated or the file written.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let dir = tempfile::tempdir()?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).context("writing the CA file")?;
        Ok(Self {
            issuer,
            ca_file,
            _dir: dir,
        })
    }

    /// The PEM file holding the CA's certificate (what `--redis-ca-file` or `sslrootcert` name).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A server certificate for `names`: host names, or IP addresses such as `127.0.0.1`
    /// (each becomes a subject alternative name of its kind).
    ///
    /// # Errors
    /// When a name is not a valid DNS name or IP address.
    pub fn issue(&self, names: &[&str]) -> anyhow::Result<ServerCert> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A server's certificate and private key, PEM.
#[derive(Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ServerCert {
    /// Writes `server.crt` and `server.key` (mode 0600, as PostgreSQL insists) into `dir`.
    ///
    /// # Errors
    /// When the files cannot be written.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        use std::os::unix::fs::PermissionsExt;
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&cert, &self.cert_pem).context("writing server.crt")?;
        std::fs::write(&key, &self.key_pem).context("writing server.key")?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        Ok((cert, key))
    }
}
