//! The lab's TLS: a CA made per lab (rcgen) and a server certificate per element, with its FQDN, its IP, the zone and (registrars) the registrars' service name as SANs (RFC 5922).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
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

impl LabCa {
    pub fn new() -> Result<LabCa, HarnessError> {
        let key = KeyPair::generate().map_err(tls_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, "sipharness lab CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let certificate = params.self_signed(&key).map_err(tls_error)?;
        Ok(LabCa {
            certificate_pem: certificate.pem(),
            certificate_der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        })
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
