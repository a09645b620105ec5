//! The lab's TLS: a CA made per lab (rcgen) or kept in a directory across runs and a server certificate per element, with its FQDN, its IP, the zone and (registrars) the registrars' service name as SANs (RFC 5922).

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::HarnessError;
use crate::topology::{Element, Topology};

/// A CA for one lab; the phone is given its certificate (`--ca`).
pub struct LabCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM, as handed to the phone.
    pub certificate_pem: String,
    certificate_der: CertificateDer<'static>,
}

fn tls_error(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Other(format!("TLS set-up: {e}"))
}

/// The CA's own parameters: a CA kept in `--ca-dir` signs with these and its stored key, so the
/// certificates it issues chain to the stored certificate (same subject, same key identifier).
fn ca_params() -> Result<CertificateParams, HarnessError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    params.distinguished_name.push(DnType::CommonName, "sipharness lab CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// The file names a kept CA has in its directory.
pub const CA_CERTIFICATE_FILE: &str = "lab-ca.pem";
pub const CA_KEY_FILE: &str = "lab-ca.key";

impl LabCa {
    pub fn new() -> Result<LabCa, HarnessError> {
        let key = KeyPair::generate().map_err(tls_error)?;
        let params = ca_params()?;
        let certificate = params.self_signed(&key).map_err(tls_error)?;
        Ok(LabCa {
            certificate_pem: certificate.pem(),
            certificate_der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA kept in `dir` (`lab-ca.pem` and `lab-ca.key`): loaded when both are there, else made
    /// and written there (the directory created if need be, the key readable by its owner only),
    /// so a phone that trusted it once keeps trusting it across runs.
    pub fn kept_in(dir: &Path) -> Result<LabCa, HarnessError> {
        let cert_file = dir.join(CA_CERTIFICATE_FILE);
        let key_file = dir.join(CA_KEY_FILE);
        let kept_error = |what: &Path, e: &dyn std::fmt::Display| {
            HarnessError::Other(format!("the kept CA {}: {e}", what.display()))
        };
        if cert_file.exists() || key_file.exists() {
            let certificate_pem = std::fs::read_to_string(&cert_file).map_err(|e| kept_error(&cert_file, &e))?;
            let key_pem = std::fs::read_to_string(&key_file).map_err(|e| kept_error(&key_file, &e))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| kept_error(&key_file, &e))?;
            let certificate_der =
                CertificateDer::from_pem_slice(certificate_pem.as_bytes()).map_err(|e| kept_error(&cert_file, &e))?;
            // The certificate must carry this key, or what the CA signs would not chain to it.
            let public_key = key.public_key_raw();
            if !certificate_der.windows(public_key.len()).any(|w| w == public_key) {
                return Err(kept_error(&cert_file, &"does not match the key beside it"));
            }
            tracing::info!(dir = %dir.display(), "lab CA loaded");
            return Ok(LabCa { issuer: Issuer::new(ca_params()?, key), certificate_pem, certificate_der });
        }
        let ca = LabCa::new()?;
        std::fs::create_dir_all(dir).map_err(|e| kept_error(dir, &e))?;
        std::fs::write(&cert_file, &ca.certificate_pem).map_err(|e| kept_error(&cert_file, &e))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&key_file).map_err(|e| kept_error(&key_file, &e))?;
        std::io::Write::write_all(&mut file, ca.issuer.key().serialize_pem().as_bytes())
            .map_err(|e| kept_error(&key_file, &e))?;
        tracing::info!(dir = %dir.display(), "lab CA made and kept");
        Ok(ca)
    }

    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate_der
    }

    /// A server certificate and key for `element`, its SANs being its FQDN, its IP, the zone and, for a registrar, the registrars' service.
    pub fn server_identity(
        &self,
        element: Element,
        topology: &Topology,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), HarnessError> {
        let key = KeyPair::generate().map_err(tls_error)?;
        let mut sans = vec![topology.fqdn(element), topology.ip(element).to_string(), topology.zone.clone()];
        if element.is_registrar() {
            // A URI naming the registrars' service reaches either (RFC 5922 §7.2: the URI's domain).
            sans.push(topology.registrar_service());
        }
        let mut params = CertificateParams::new(sans).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, topology.fqdn(element));
        let certificate = params.signed_by(&key, &self.issuer).map_err(tls_error)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![certificate.der().clone(), self.certificate_der.clone()], key))
    }

    /// The TLS acceptor `element` serves with.
    pub fn acceptor(&self, element: Element, topology: &Topology) -> Result<TlsAcceptor, HarnessError> {
        let (chain, key) = self.server_identity(element, topology)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_error)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// A client configuration trusting only this CA (for tests and scripted phones).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, HarnessError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.certificate_der.clone()).map_err(tls_error)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}
