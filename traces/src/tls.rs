//! TLS for `https://` OTLP endpoints: whose certificates the exporter trusts, and the
//! connector that speaks both `http://` and `https://`.
//!
//! By default the roots are Mozilla's, compiled in (`webpki-roots`): a hosted collector
//! (Grafana Cloud, Honeycomb) verifies in a container image that has no CA files, where the
//! system's roots would be empty. `--otlp-certificate` (`OTEL_EXPORTER_OTLP_CERTIFICATE`) names
//! a PEM file whose CA certificates are then the only roots, as in the OpenTelemetry SDKs: a
//! collector behind a private CA. rustls with the ring provider (aws-lc-rs needs cmake and nasm
//! to build).

use std::{path::Path, sync::Arc};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

/// The roots an `https://` endpoint's certificate must chain to.
#[derive(Clone, Debug)]
pub struct Roots(Arc<RootCertStore>);

/// A certificate file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("OTLP certificate file `{path}`: {reason}")]
pub struct CertificateError {
    path: String,
    reason: String,
}

impl Roots {
    /// Mozilla's roots, as shipped in `webpki-roots`.
    pub fn webpki() -> Self {
        Self(Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }))
    }

    /// The CA certificates of the PEM file at `path`, and only those.
    ///
    /// # Errors
    /// The file cannot be read, holds no PEM certificate, or one that is not a valid X.509
    /// certificate.
    pub fn from_pem_file(path: &Path) -> Result<Self, CertificateError> {
        let bad = |reason: String| CertificateError {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        Self::from_pem(&pem).map_err(bad)
    }

    /// The CA certificates of a PEM text.
    ///
    /// # Errors
    /// No certificate in it, or one that is not a valid X.509 certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut store = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|e| format!("not PEM: {e}"))?;
            store
                .add(certificate)
                .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        }
        if store.is_empty() {
            return Err("no `BEGIN CERTIFICATE` block in it".to_owned());
        }
        Ok(Self(Arc::new(store)))
    }
}

/// A connector for `http://` and `https://` (HTTP/1.1) endpoints, verifying against `roots`.
pub(crate) fn connector(roots: &Roots) -> HttpsConnector<HttpConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring's provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots.0.clone())
        .with_no_client_auth();
    HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn files_without_a_usable_certificate_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let missing = dir.join("missing.pem");
        let error = Roots::from_pem_file(&missing).unwrap_err().to_string();
        assert!(error.contains("missing.pem"), "{error}");
        for (name, text) in [
            ("empty.pem", "just some text\n"),
            (
                "broken.pem",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let error = Roots::from_pem_file(&path).unwrap_err().to_string();
            assert!(error.starts_with("OTLP certificate file `"), "{error}");
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn the_default_roots_are_mozillas() {
        assert!(Roots::webpki().0.len() > 100);
    }
}
