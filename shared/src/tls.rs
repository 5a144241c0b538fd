//! What the TLS connections to Redis and PostgreSQL trust, in one place: a CA file an operator
//! names (a private CA, or RDS's bundle, which no system store holds), the system roots
//! otherwise, and the one rustls crypto provider of the process.
//!
//! A CA file is read and parsed once, when its option is parsed, so a missing or malformed file
//! stops startup with a message naming the option instead of failing every connection later.

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The certificates of a PEM CA file, parsed (cheap to clone).
#[derive(Clone)]
pub struct CaFile {
    path: PathBuf,
    /// The file as read: redis-rs takes PEM and parses it itself.
    pem: Arc<[u8]>,
    roots: Arc<RootCertStore>,
}

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read the CA file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {path} is not PEM: {reason}")]
    NotPem { path: PathBuf, reason: String },
    #[error("the CA file {path} holds no certificate")]
    Empty { path: PathBuf },
    #[error("the CA file {path} holds a certificate that cannot be a trust anchor: {reason}")]
    NotAnAnchor { path: PathBuf, reason: String },
}

impl CaFile {
    /// Reads every certificate of the PEM file at `path` (a bundle may hold several, as RDS's
    /// does during a CA rotation).
    ///
    /// # Errors
    /// [`CaFileError`], naming the file, when it cannot be read or holds no usable certificate.
    pub fn read(path: impl Into<PathBuf>) -> Result<Self, CaFileError> {
        let path = path.into();
        let pem = std::fs::read(&path).map_err(|source| CaFileError::Read {
            path: path.clone(),
            source,
        })?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CaFileError::NotPem {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(CaFileError::Empty { path });
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| CaFileError::NotAnAnchor {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(Self {
            path,
            pem: pem.into(),
            roots: Arc::new(roots),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's PEM text, as read.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The file's certificates as the only trust anchors.
    pub fn roots(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }
}

impl fmt::Debug for CaFile {
    /// The path only: the certificates are public but long.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CaFile").field(&self.path).finish()
    }
}

/// `value_parser` of the CA-file options.
///
/// # Errors
/// See [`CaFile::read`].
pub fn parse_ca_file(value: &str) -> Result<CaFile, CaFileError> {
    CaFile::read(value)
}

/// The system's trust store (Debian's `ca-certificates` in the images), for a verified
/// connection that names no CA file.
///
/// # Errors
/// When the store holds no usable certificate, with the loader's first complaint.
pub fn system_roots() -> Result<Arc<RootCertStore>, String> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded
            .errors
            .first()
            .map_or_else(|| "it is empty".to_owned(), ToString::to_string);
        return Err(format!(
            "no system root certificates could be loaded: {why}"
        ));
    }
    Ok(Arc::new(roots))
}

/// The process's rustls crypto provider, installed as the process default on first use.
///
/// redis-rs and async-nats build their TLS configs from the process default, which rustls picks
/// by itself only while exactly one provider is compiled in. The services link ring alone, but a
/// workspace-wide build also compiles aws-lc-rs into rustls (through the load tests' HTTP
/// client), and then every `ClientConfig::builder()` would panic; installing ring first (the
/// provider the services already use) makes the choice explicit. A provider someone installed
/// earlier is kept.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(provider) = CryptoProvider::get_default() {
        return Arc::clone(provider);
    }
    // Losing a race to another installer is fine: the winner's provider is used below.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        file
    }

    /// Why a CA file holding `text` is refused.
    fn refusal_of(text: &str) -> CaFileError {
        CaFile::read(file_with(text).path()).unwrap_err()
    }

    #[test]
    fn a_missing_ca_file_is_refused_naming_it() {
        let error = CaFile::read("/nonexistent/ca.pem").unwrap_err();
        assert!(matches!(error, CaFileError::Read { .. }));
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        assert!(matches!(
            refusal_of("not a certificate\n"),
            CaFileError::Empty { .. }
        ));
    }

    #[test]
    fn a_certificate_that_is_not_der_is_refused() {
        assert!(matches!(
            refusal_of("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            CaFileError::NotAnAnchor { .. }
        ));
    }

    #[test]
    fn the_provider_is_installed_once_and_reused() {
        let first = crypto_provider();
        let again = crypto_provider();
        assert!(Arc::ptr_eq(&first, &again));
    }
}
