//! The client side: trusted roots, pins, an optional client certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use crate::error::{Failure, PinMismatch, TlsError};
use crate::fingerprint::Fingerprint;
use crate::pem;

/// A pin on the server's certificate: the connection is accepted only when the certificate
/// (which must still chain to a trusted CA) matches one of the configured pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// SHA-256 of the whole end-entity certificate: changes on every renewal.
    Certificate(Fingerprint),
    /// SHA-256 of the certificate's `SubjectPublicKeyInfo`: survives a renewal with the same key.
    PublicKey(Fingerprint),
}

impl Pin {
    fn matches(&self, cert: &Fingerprint, key: &Fingerprint) -> bool {
        match self {
            Self::Certificate(f) => f == cert,
            Self::PublicKey(f) => f == key,
        }
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Certificate(fp) => write!(f, "cert-sha256:{fp}"),
            Self::PublicKey(fp) => write!(f, "spki-sha256:{fp}"),
        }
    }
}

impl std::str::FromStr for Pin {
    type Err = String;

    /// `cert-sha256:<hex>` or `spki-sha256:<hex>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(hex) = s.strip_prefix("cert-sha256:") {
            Ok(Self::Certificate(hex.parse()?))
        } else if let Some(hex) = s.strip_prefix("spki-sha256:") {
            Ok(Self::PublicKey(hex.parse()?))
        } else {
            Err(format!(
                "a pin is cert-sha256:<64 hex digits> or spki-sha256:<64 hex digits>, not {s:?}"
            ))
        }
    }
}

/// The SHA-256 of a certificate's `SubjectPublicKeyInfo`.
pub(crate) fn spki_fingerprint(cert: &CertificateDer<'_>) -> Result<Fingerprint, rustls::Error> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(Fingerprint::of(parsed.subject_public_key_info().as_ref()))
}

/// A client TLS configuration; cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

/// Two configurations are equal when they are the same configuration (clones of one build).
impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for ClientTls {}

impl ClientTls {
    /// A builder starting from the bundled web PKI roots, no pins and no client certificate.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder { public_roots: true, extra: Vec::new(), pins: Vec::new(), identity: None }
    }

    /// The bundled web PKI roots and nothing else.
    ///
    /// # Errors
    /// Never in practice (the bundled roots are valid); kept fallible like the builder.
    pub fn public_roots() -> Result<Self, TlsError> {
        Self::builder().build()
    }

    /// The rustls configuration (to hand to another TLS-aware library).
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.config)
    }

    /// Runs the TLS handshake over `tcp` to the server `host` (a DNS name or an IP address;
    /// `peer` names it in errors, e.g. `host:port`). Callers bound it with their connect timeout.
    ///
    /// # Errors
    /// [`TlsError::Handshake`] with the classified [`Failure`]; [`TlsError::Config`] when
    /// `host` is not a valid server name.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
        peer: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| TlsError::setting(host, format!("not a valid TLS server name: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        connector.connect(name, tcp).await.map_err(|e| TlsError::Handshake {
            peer: peer.to_owned(),
            failure: Failure::from_io(&e, host),
        })
    }
}

/// Builds a [`ClientTls`].
pub struct ClientTlsBuilder {
    public_roots: bool,
    extra: Vec<CertificateDer<'static>>,
    pins: Vec<Pin>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl std::fmt::Debug for ClientTlsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTlsBuilder")
            .field("public_roots", &self.public_roots)
            .field("extra_cas", &self.extra.len())
            .field("pins", &self.pins)
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl ClientTlsBuilder {
    /// Whether the bundled web PKI roots are trusted (default: yes). Turn off to trust only
    /// the extra CAs, e.g. a private CA.
    #[must_use]
    pub fn public_roots(mut self, trust: bool) -> Self {
        self.public_roots = trust;
        self
    }

    /// Also trusts every CA certificate in the PEM file at `path`.
    ///
    /// # Errors
    /// [`TlsError::Config`] naming the file when it cannot be read or holds no certificate.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        self.extra.extend(pem::certs_from_file(path.as_ref())?);
        Ok(self)
    }

    /// Also trusts every CA certificate in `pem_text`.
    ///
    /// # Errors
    /// [`TlsError::Config`] when it holds no certificate.
    pub fn ca_pem(mut self, pem_text: &[u8]) -> Result<Self, TlsError> {
        let certs = pem::certs_from_pem(pem_text).map_err(|r| TlsError::setting("CA PEM", r))?;
        self.extra.extend(certs);
        Ok(self)
    }

    /// Accepts only servers whose certificate matches this pin (or another added one).
    #[must_use]
    pub fn pin(mut self, pin: Pin) -> Self {
        self.pins.push(pin);
        self
    }

    /// Presents the certificate chain and key in these PEM files to servers that ask (mTLS).
    ///
    /// # Errors
    /// [`TlsError::Config`] naming the file that cannot be used.
    pub fn client_identity_files(
        mut self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let chain = pem::certs_from_file(cert.as_ref())?;
        let key = pem::key_from_file(key.as_ref())?;
        self.identity = Some((chain, key));
        Ok(self)
    }

    /// As [`Self::client_identity_files`], from PEM text.
    ///
    /// # Errors
    /// [`TlsError::Config`] when either cannot be used.
    pub fn client_identity_pem(mut self, cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain =
            pem::certs_from_pem(cert).map_err(|r| TlsError::setting("client certificate", r))?;
        let key = pem::key_from_pem(key).map_err(|r| TlsError::setting("client key", r))?;
        self.identity = Some((chain, key));
        Ok(self)
    }

    /// The configuration.
    ///
    /// # Errors
    /// [`TlsError::Config`] when nothing is trusted, an extra CA is not a usable trust anchor,
    /// or the client certificate and key do not belong together.
    pub fn build(self) -> Result<ClientTls, TlsError> {
        let mut roots = RootCertStore::empty();
        if self.public_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for ca in self.extra {
            roots.add(ca).map_err(|e| {
                TlsError::setting("CA certificate", format!("not usable as a CA: {e}"))
            })?;
        }
        if roots.is_empty() {
            return Err(TlsError::setting(
                "trusted CAs",
                "none: public roots are off and no CA file was given",
            ));
        }
        let roots = Arc::new(roots);
        let builder = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::setting("TLS versions", e))?;
        let builder = if self.pins.is_empty() {
            builder.with_root_certificates(roots)
        } else {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, crate::provider())
                .build()
                .map_err(|e| TlsError::setting("certificate verifier", e))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(PinningVerifier {
                inner,
                pins: self.pins,
            }))
        };
        let mut config = match self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                TlsError::setting("client certificate", format!("cannot be used with its key: {e}"))
            })?,
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ClientTls { config: Arc::new(config) })
    }
}

/// The web PKI verification, then the pins.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<Pin>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let cert = Fingerprint::of(end_entity.as_ref());
        let key = spki_fingerprint(end_entity)?;
        if self.pins.iter().any(|p| p.matches(&cert, &key)) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(PinMismatch { cert, key }),
            ))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_print() {
        let f = Fingerprint::of(b"x");
        for pin in [Pin::Certificate(f), Pin::PublicKey(f)] {
            assert_eq!(pin.to_string().parse::<Pin>().unwrap(), pin);
        }
        let err = "sha256:00".parse::<Pin>().unwrap_err();
        assert!(err.contains("cert-sha256"), "{err}");
    }

    #[test]
    fn nothing_trusted_is_a_configuration_error() {
        let err = ClientTls::builder().public_roots(false).build().unwrap_err();
        assert!(err.to_string().contains("no CA file"), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = ClientTls::builder().ca_file("/nonexistent/ca.pem").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
