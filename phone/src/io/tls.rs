//! TLS for the shell: rustls with the ring provider, trusting only the CA given with `--ca`, checking the certificate names the host the phone connected to.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::error::PhoneError;

/// A connector trusting only the certificates of the PEM file `ca`.
pub fn connector(ca: &Path) -> Result<TlsConnector, PhoneError> {
    let bad = |reason: String| PhoneError::TrustAnchors { file: ca.to_owned(), reason };
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca).map_err(|e| bad(format!("cannot read PEM: {e}")))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| bad(format!("bad PEM certificate: {e}")))?;
        roots.add(certificate).map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name the server's certificate must carry: the configured host (RFC 5922), else its address.
pub fn server_name(configured: Option<&str>, address: std::net::IpAddr) -> Result<ServerName<'static>, String> {
    match configured {
        Some(name) => ServerName::try_from(name.trim_end_matches('.').to_owned()).map_err(|e| format!("{name}: {e}")),
        None => Ok(ServerName::IpAddress(address.into())),
    }
}
