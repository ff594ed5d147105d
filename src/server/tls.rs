//! `[server.tls]`: the rustls server config made from a PEM certificate chain and key.
//!
//! Loaded while the config is read, so a missing or unreadable file stops the start (and
//! `check-config`) with one line naming `server.tls.cert` or `server.tls.key`. The ring
//! provider is named explicitly: no process-wide default is installed, and no C toolchain
//! is needed to build it.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::der::{self, Decode};

/// The rustls provider every TLS config of this program uses (HTTPS and PostgreSQL).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads both files; an error says which key (`cert` or `key`) and why.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<ServerConfig>, Validity), (&'static str, String)> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ("cert", format!("{}: {}", cert.display(), pem_error(&e))))?;
    if certs.is_empty() {
        return Err((
            "cert",
            format!("{}: no PEM certificate in it", cert.display()),
        ));
    }
    let valid =
        Validity::of(&certs[0]).map_err(|e| ("cert", format!("{}: {e}", cert.display())))?;
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
    Ok((Arc::new(config), valid))
}

/// When the server's certificate may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// Reads the leaf certificate's dates; refuses one that is not X.509 v3, which rustls
    /// cannot serve (it said `UnsupportedCertVersion` under `server.tls.key`, as if the key
    /// did not fit).
    fn of(cert: &CertificateDer<'_>) -> Result<Self, String> {
        let parsed = Certificate::from_der(cert.as_ref())
            .map_err(|e| format!("not a readable X.509 certificate: {e}"))?;
        let tbs = parsed.tbs_certificate;
        let version = match tbs.version {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::V3 => "v3",
        };
        if version != "v3" {
            return Err(format!(
                "an X.509 {version} certificate; TLS needs v3 (made with `openssl req -x509`, \
                 or `openssl x509 -req` with `-extfile` or `-copy_extensions`)"
            ));
        }
        Ok(Self {
            not_before: tbs.validity.not_before.to_system_time(),
            not_after: tbs.validity.not_after.to_system_time(),
        })
    }

    /// A warning when the certificate is not valid at `now` (clients refuse it); `None` when
    /// it is.
    pub fn warning(&self, cert: &Path, now: SystemTime) -> Option<String> {
        let date = |t: SystemTime| {
            der::DateTime::from_system_time(t).map_or_else(|_| format!("{t:?}"), |d| d.to_string())
        };
        if now > self.not_after {
            Some(format!(
                "server.tls.cert: {} expired on {}: clients will refuse every connection",
                cert.display(),
                date(self.not_after)
            ))
        } else if now < self.not_before {
            Some(format!(
                "server.tls.cert: {} is not valid before {}: clients will refuse every connection until then",
                cert.display(),
                date(self.not_before)
            ))
        } else {
            None
        }
    }
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
