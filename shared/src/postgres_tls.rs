//! `DATABASE_URL`'s `sslmode` and `sslrootcert`, as libpq means them, for tokio-postgres.
//!
//! tokio-postgres parses only `disable`, `prefer` and `require`, and checks no certificate
//! itself: what a TLS session accepts is its connector's business. This module reads the whole
//! libpq vocabulary from the URL and builds the connector that does what it says:
//!
//! | `sslmode`          | TLS                       | certificate chain | host name |
//! |--------------------|---------------------------|-------------------|-----------|
//! | `disable`          | never (`NoTls`)           | –                 | –         |
//! | `prefer` (default) | when the server offers it | not checked       | no        |
//! | `require`          | always                    | not checked       | no        |
//! | `verify-ca`        | always                    | checked           | no        |
//! | `verify-full`      | always                    | checked           | checked   |
//!
//! The chain is checked against `sslrootcert=<PEM file>` (RDS's bundle, a private CA) or, with
//! `sslrootcert=system` or none, the system roots. As in libpq, a CA file given with `prefer` or
//! `require` makes them check the chain too, and `sslrootcert=system` means `verify-full`
//! (PostgreSQL 16 refuses it with a weaker mode, and so do we). `allow` (plain first) has no
//! tokio-postgres equivalent and is refused rather than silently changed.
//!
//! The extended forms are read from the URL form (`postgres://…?sslmode=verify-full`); the
//! key-value form (`host=… sslmode=require`) is passed to tokio-postgres unchanged, so it keeps
//! the three modes tokio-postgres knows.

use crate::tls::{self, CaFile, CaFileError};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, less `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, PostgresTlsError> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            "allow" => Err(PostgresTlsError::Unsupported(
                "sslmode=allow (plain first, TLS only if the server insists) is not supported: \
                 use prefer, or require and stronger",
            )),
            other => Err(PostgresTlsError::UnknownMode(other.to_owned())),
        }
    }

    /// What tokio-postgres asks the server for.
    fn wire(self) -> WireMode {
        match self {
            Self::Disable => WireMode::Disable,
            Self::Prefer => WireMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => WireMode::Require,
        }
    }
}

/// Why `DATABASE_URL`'s TLS settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum PostgresTlsError {
    /// Not a connection string tokio-postgres accepts.
    #[error("invalid DATABASE_URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
    #[error(
        "invalid sslmode {0:?} in DATABASE_URL: use disable, prefer, require, verify-ca or verify-full"
    )]
    UnknownMode(String),
    #[error("{0}")]
    Unsupported(&'static str),
    /// `sslrootcert` names a file that cannot be used.
    #[error("DATABASE_URL's sslrootcert")]
    RootCert(#[source] CaFileError),
    /// A verified mode without a CA file, and no system roots to use instead.
    #[error("DATABASE_URL asks to verify the server but gives no sslrootcert, and {0}")]
    NoRoots(String),
    #[error("building the TLS configuration")]
    Rustls(#[source] rustls::Error),
}

/// A parsed `DATABASE_URL`: what to connect to, and the TLS connector (`None`: plain, `NoTls`).
pub struct Settings {
    pub config: tokio_postgres::Config,
    pub mode: SslMode,
    pub tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("config", &self.config)
            .field("mode", &self.mode)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Where the chain of trust comes from.
enum RootCert {
    File(CaFile),
    System,
}

/// Reads `url` (see the module docs for what each mode means).
///
/// # Errors
/// [`PostgresTlsError`]: an invalid URL or mode, an unusable `sslrootcert`, or a verified mode
/// with nothing to verify against.
pub fn settings(url: &str) -> Result<Settings, PostgresTlsError> {
    let (rest, mode, root) = match split_tls_params(url) {
        Some((rest, mode, root)) => (rest, mode, root),
        None => (url.to_owned(), None, None),
    };
    let mut config =
        tokio_postgres::Config::from_str(&rest).map_err(PostgresTlsError::InvalidUrl)?;
    let root = match root.as_deref() {
        None => None,
        Some("system") => Some(RootCert::System),
        Some(path) => Some(RootCert::File(
            CaFile::read(path).map_err(PostgresTlsError::RootCert)?,
        )),
    };
    let mode = match mode.as_deref().map(SslMode::parse).transpose()? {
        Some(mode) => mode,
        None if matches!(root, Some(RootCert::System)) => SslMode::VerifyFull,
        // The key-value form (or a URL without sslmode): tokio-postgres's own reading.
        None => match config.get_ssl_mode() {
            WireMode::Disable => SslMode::Disable,
            WireMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        },
    };
    if matches!(root, Some(RootCert::System)) && mode != SslMode::VerifyFull {
        return Err(PostgresTlsError::Unsupported(
            "sslrootcert=system needs sslmode=verify-full (as in PostgreSQL 16)",
        ));
    }
    config.ssl_mode(mode.wire());
    let tls = match mode {
        SslMode::Disable => None,
        _ => Some(MakeRustlsConnect::new(client_config(mode, root)?)),
    };
    Ok(Settings { config, mode, tls })
}

/// The URL form with `sslmode` and `sslrootcert` taken out of its query (tokio-postgres
/// refuses `verify-*` and does not know `sslrootcert`), and their percent-decoded values.
/// `None` for the key-value form.
fn split_tls_params(url: &str) -> Option<(String, Option<String>, Option<String>)> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return None;
    }
    let Some((base, query)) = url.split_once('?') else {
        return Some((url.to_owned(), None, None));
    };
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        match key {
            "sslmode" => mode = Some(decoded().into_owned()),
            "sslrootcert" => root = Some(decoded().into_owned()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Some((rest, mode, root))
}

/// The rustls configuration that checks what `mode` asks for.
fn client_config(mode: SslMode, root: Option<RootCert>) -> Result<ClientConfig, PostgresTlsError> {
    let provider = tls::crypto_provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(PostgresTlsError::Rustls)?;
    let roots = |root: Option<RootCert>| -> Result<Arc<RootCertStore>, PostgresTlsError> {
        match root {
            Some(RootCert::File(file)) => Ok(file.roots()),
            Some(RootCert::System) | None => tls::system_roots().map_err(PostgresTlsError::NoRoots),
        }
    };
    let check_chain = match mode {
        SslMode::VerifyFull => {
            return Ok(builder
                .with_root_certificates(roots(root)?)
                .with_no_client_auth());
        }
        SslMode::VerifyCa => true,
        // libpq: a root CA file makes `require` (and `prefer`) check the chain.
        _ => matches!(root, Some(RootCert::File(_))),
    };
    let chain = if check_chain {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(roots(root)?, Arc::clone(&provider))
                .build()
                .map_err(|e| PostgresTlsError::Rustls(rustls::Error::General(e.to_string())))?;
        Some(verifier)
    } else {
        None
    };
    let verifier = Arc::new(NameUnchecked { chain, provider });
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The certificate checks short of `verify-full`, where the name in the certificate may be
/// any: `verify-ca` (and a CA file with `prefer` or `require`) checks that the chain leads to a
/// trusted root; `prefer` and `require` without a CA file take whoever holds the certificate's
/// key, as libpq does. The handshake signature is checked either way; only `verify-full` stops
/// an active man in the middle, and the deployment uses it.
#[derive(Debug)]
struct NameUnchecked {
    /// The chain check, or `None` for no check of the certificate itself.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NameUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The web PKI verifier checks the chain first and the name last, so a name error means
        // the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(url: &str) -> SslMode {
        settings(url).expect(url).mode
    }

    #[test]
    fn no_sslmode_means_prefer_as_in_libpq() {
        let settings = settings("postgres://postgres@127.0.0.1:5432/auction").unwrap();
        assert_eq!(settings.mode, SslMode::Prefer);
        assert_eq!(settings.config.get_ssl_mode(), WireMode::Prefer);
        assert!(settings.tls.is_some());
    }

    #[test]
    fn disable_connects_without_tls() {
        let settings = settings("postgres://postgres@db/auction?sslmode=disable").unwrap();
        assert_eq!(settings.config.get_ssl_mode(), WireMode::Disable);
        assert!(settings.tls.is_none());
    }

    #[test]
    fn verified_modes_require_tls_on_the_wire() {
        for (url, mode) in [
            ("postgres://db/a?sslmode=require", SslMode::Require),
            ("postgres://db/a?sslmode=verify-ca", SslMode::VerifyCa),
            ("postgresql://db/a?sslmode=verify-full", SslMode::VerifyFull),
        ] {
            let settings = settings(url).expect(url);
            assert_eq!(settings.mode, mode, "{url}");
            assert_eq!(settings.config.get_ssl_mode(), WireMode::Require, "{url}");
        }
    }

    #[test]
    fn other_parameters_survive_the_tls_ones_being_taken_out() {
        let settings = settings(
            "postgres://u@db:6432/a?application_name=w&sslmode=verify-full&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(settings.config.get_application_name(), Some("w"));
        assert_eq!(
            settings.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(settings.config.get_ports(), &[6432]);
    }

    #[test]
    fn the_key_value_form_keeps_tokio_postgres_modes() {
        assert_eq!(mode_of("host=db user=u sslmode=require"), SslMode::Require);
        assert_eq!(mode_of("host=db user=u sslmode=disable"), SslMode::Disable);
        assert!(matches!(
            settings("host=db sslmode=verify-full"),
            Err(PostgresTlsError::InvalidUrl(_))
        ));
    }

    #[test]
    fn an_unknown_or_allow_mode_is_refused_naming_it() {
        let Err(e) = settings("postgres://db/a?sslmode=verify_full") else {
            panic!("accepted");
        };
        assert!(e.to_string().contains("verify_full"), "{e}");
        assert!(matches!(
            settings("postgres://db/a?sslmode=allow"),
            Err(PostgresTlsError::Unsupported(_))
        ));
    }

    #[test]
    fn a_missing_root_certificate_file_is_refused_at_once() {
        let Err(e) = settings("postgres://db/a?sslmode=verify-full&sslrootcert=%2Fno%2Fca.pem")
        else {
            panic!("accepted");
        };
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert!(chain.contains("/no/ca.pem"), "{chain}");
    }

    #[test]
    fn system_roots_mean_verify_full() {
        assert_eq!(
            mode_of("postgres://db/a?sslrootcert=system"),
            SslMode::VerifyFull
        );
        assert!(matches!(
            settings("postgres://db/a?sslmode=require&sslrootcert=system"),
            Err(PostgresTlsError::Unsupported(_))
        ));
    }
}
