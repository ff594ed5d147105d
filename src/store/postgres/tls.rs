//! TLS to PostgreSQL, as the URL's `sslmode` asks (`disable`, `prefer`, `require`), with rustls.
//!
//! tokio-postgres reads `sslmode` itself (default `prefer`) and asks this connector only when
//! TLS is wanted: `prefer` falls back to plain text when the server offers no TLS, `require`
//! fails with "server does not support TLS".
//!
//! The server's certificate is handled as libpq does for these modes: the connection is
//! encrypted and the handshake's signatures are checked, but the certificate is not matched
//! to a trusted root or a host name (libpq verifies only under `verify-ca` / `verify-full`,
//! which tokio-postgres does not parse). Why: a URL that works with `psql` must work here;
//! verifying on `prefer`, the default, would refuse every server with a self-signed
//! certificate (Debian's default). This protects against eavesdropping, not against an
//! active impostor on the network path; docs/security.md says so.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector for every pool connection.
pub fn connector() -> Result<MakeRustlsConnect, rustls::Error> {
    let provider = crate::server::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LibpqRequire(provider)))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's `require`: any certificate, but the handshake must be signed by its key.
#[derive(Debug)]
struct LibpqRequire(Arc<CryptoProvider>);

impl ServerCertVerifier for LibpqRequire {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
