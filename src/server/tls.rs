//! `[server.tls]`: the rustls server config made from a PEM certificate chain and key.
//!
//! Loaded while the config is read, so a missing or unreadable file stops the start (and
//! `check-config`) with one line naming `server.tls.cert` or `server.tls.key`. The ring
//! provider is named explicitly: no process-wide default is installed, and no C toolchain
//! is needed to build it.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The rustls provider every TLS config of this program uses (HTTPS and PostgreSQL).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads both files; an error says which key (`cert` or `key`) and why.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, (&'static str, String)> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ("cert", format!("{}: {}", cert.display(), pem_error(&e))))?;
    if certs.is_empty() {
        return Err((
            "cert",
            format!("{}: no PEM certificate in it", cert.display()),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ("key", format!("{}: {}", key.display(), pem_error(&e))))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            (
                "key",
                format!("{}: does not fit the certificate: {e}", key.display()),
            )
        })?;
    // HTTP/1.1 only: the server speaks nothing else (see `server::serve_connection`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A PEM reading error in words (rustls names a missing end marker by its bytes, and an
/// encrypted key as "no items found").
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "the PEM section has no end line (-----END {}-----): a truncated file?",
            String::from_utf8_lossy(end_marker)
        ),
        Error::NoItemsFound => "no unencrypted PEM item of the expected kind in it (an encrypted key must be decrypted first: openssl pkey -in KEY -out PLAIN)".to_owned(),
        other => other.to_string(),
    }
}
