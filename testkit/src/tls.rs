//! A certificate authority made at test time and a server certificate it signed for
//! `127.0.0.1` and `localhost`, for test servers that speak TLS (rustls, ring provider). The
//! CA's PEM file is written to a temporary directory, for a client's `--otlp-certificate`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::{
    ServerConfig,
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
};
use tokio_rustls::TlsAcceptor;

/// The test CA and the server side of TLS.
pub struct TestCa {
    acceptor: TlsAcceptor,
    ca_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA, a server certificate for `127.0.0.1` and `localhost` signed by it, and the
    /// CA's PEM file.
    ///
    /// # Panics
    /// When a key or certificate cannot be made, or the temporary file written.
    pub fn new() -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "redside test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &ca)
            .expect("server certificate");

        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).expect("writing the CA file");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![server.der().clone()], key)
            .expect("server key and certificate");
        TestCa {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_path,
            _dir: dir,
        }
    }

    /// The CA certificate's PEM file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The server side of a TLS connection, with the certificate the CA signed.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
