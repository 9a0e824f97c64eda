//! TLS errors that say what went wrong and what to change.

use std::path::Path;

use rustls::{AlertDescription, CertificateError};

use crate::fingerprint::Fingerprint;

/// A TLS configuration or handshake error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate, key or CA file could not be used, or the configuration is inconsistent.
    #[error("TLS configuration: {what}: {reason}")]
    Config {
        /// The file or setting at fault.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS handshake with `peer` failed.
    #[error("TLS handshake with {peer} failed: {failure}")]
    Handshake {
        /// `host:port` (client side) or the client's address (server side).
        peer: String,
        /// Why.
        failure: Failure,
    },
}

impl TlsError {
    pub(crate) fn config(what: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Self::Config { what: what.as_ref().display().to_string(), reason: reason.into() }
    }

    pub(crate) fn setting(what: &str, reason: impl std::fmt::Display) -> Self {
        Self::Config { what: what.to_owned(), reason: reason.to_string() }
    }

    /// Whether trying again cannot help (a certificate or configuration problem, as opposed to
    /// a network one): clients stop retrying and report it.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Config { .. } => true,
            Self::Handshake { failure, .. } => failure.is_permanent(),
        }
    }

    /// The failure of a handshake, if this is one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Handshake { failure, .. } => Some(failure),
            Self::Config { .. } => None,
        }
    }
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The server's certificate does not chain to a trusted CA.
    #[error(
        "the server's certificate is not signed by a trusted CA (unknown issuer); configure \
         the CA that issued it (the CA-file option) or check that this is the right server"
    )]
    UntrustedIssuer,
    /// The peer's certificate has expired.
    #[error("the certificate has expired ({0}); the server must renew it")]
    Expired(String),
    /// The peer's certificate is not valid yet (or this machine's clock is wrong).
    #[error("the certificate is not valid yet ({0}); check this machine's clock")]
    NotValidYet(String),
    /// The server's certificate is for other names.
    #[error(
        "the server's certificate is not valid for the host name {expected:?} ({detail}); \
         connect with a name the certificate lists"
    )]
    WrongName {
        /// The name this client connected to.
        expected: String,
        /// The names the certificate lists, as rustls reports them.
        detail: String,
    },
    /// The certificate chains to a trusted CA but does not match the configured pin.
    #[error(
        "the server's certificate does not match the configured pin (it presented certificate \
         sha256 {cert}, public key sha256 {key}); the server changed its certificate or this \
         is not the server you pinned"
    )]
    PinMismatch {
        /// SHA-256 of the presented certificate.
        cert: Fingerprint,
        /// SHA-256 of its public key (`SubjectPublicKeyInfo`).
        key: Fingerprint,
    },
    /// Another problem with the peer's certificate.
    #[error("the certificate was rejected: {0}")]
    BadCertificate(String),
    /// The server answered, but not in TLS: this is a plaintext port.
    #[error(
        "the server does not speak TLS on this port (it answered in plaintext); use an \
         http:// or ws:// URL for it, or the server's TLS port"
    )]
    NotTls,
    /// A client sent plain HTTP to this TLS port (it was answered with a `400`).
    #[error("the client sent plaintext to the TLS port (it must use https:// or wss://)")]
    PlaintextClient,
    /// The server closed the connection during the handshake.
    #[error(
        "the server closed the connection during the TLS handshake (a plaintext port, or the \
         server rejected this client)"
    )]
    Closed,
    /// The server requires a client certificate and none was configured.
    #[error("the server requires a client certificate; configure one (mTLS)")]
    ClientCertificateRequired,
    /// The server did not accept this client's certificate.
    #[error("the server rejected this client's certificate ({0})")]
    ClientCertificateRejected(String),
    /// The peer ended the handshake with a TLS alert.
    #[error("the peer sent the TLS alert {0}")]
    Alert(String),
    /// The handshake did not finish in time.
    #[error("the handshake did not finish within {0:?}")]
    Timeout(std::time::Duration),
    /// A network error during the handshake.
    #[error("network error: {0}")]
    Io(String),
    /// Something else rustls reported.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// Whether trying again cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Closed | Self::Timeout(_) | Self::Io(_) | Self::Other(_))
    }

    /// The TLS failure inside an I/O error from a TLS stream, if there is one. With TLS 1.3 a
    /// server rejects a client certificate only after the client's handshake finished, so the
    /// rejection surfaces on the first read or write: callers classify such errors with this.
    pub fn from_stream_error(e: &std::io::Error, host: &str) -> Option<Self> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|tls| Self::from_rustls(tls, host))
    }

    /// Classifies what tokio-rustls reported for a failed handshake to `expected_name`.
    pub(crate) fn from_io(e: &std::io::Error, expected_name: &str) -> Self {
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return Self::from_rustls(tls, expected_name);
        }
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => Self::Closed,
            _ => Self::Io(e.to_string()),
        }
    }

    fn from_rustls(e: &rustls::Error, expected_name: &str) -> Self {
        match e {
            rustls::Error::InvalidCertificate(c) => Self::from_certificate(c, expected_name),
            // A plaintext server answers a ClientHello with e.g. `HTTP/1.1 400`, which is no
            // TLS record at all.
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                Self::NotTls
            }
            rustls::Error::AlertReceived(alert) => Self::from_alert(*alert),
            rustls::Error::NoCertificatesPresented => {
                Self::BadCertificate("no certificate presented".into())
            }
            other => Self::Other(other.to_string()),
        }
    }

    fn from_certificate(c: &CertificateError, expected_name: &str) -> Self {
        match c {
            // A bad signature on the chain: a CA of the same name as a trusted one (or a
            // forgery) issued it; either way no trusted CA did.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                Self::UntrustedIssuer
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                Self::Expired(rustls::Error::InvalidCertificate(c.clone()).to_string())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Self::NotValidYet(rustls::Error::InvalidCertificate(c.clone()).to_string())
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Self::WrongName {
                    expected: expected_name.to_owned(),
                    detail: rustls::Error::InvalidCertificate(c.clone()).to_string(),
                }
            }
            CertificateError::Other(other) => match other.0.downcast_ref::<PinMismatch>() {
                Some(pin) => Self::PinMismatch { cert: pin.cert, key: pin.key },
                None => Self::BadCertificate(other.0.to_string()),
            },
            c => Self::BadCertificate(rustls::Error::InvalidCertificate(c.clone()).to_string()),
        }
    }

    fn from_alert(alert: AlertDescription) -> Self {
        match alert {
            AlertDescription::CertificateRequired => Self::ClientCertificateRequired,
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied
            // What rustls sends when a client certificate's signature does not verify.
            | AlertDescription::DecryptError => {
                Self::ClientCertificateRejected(format!("{alert:?}"))
            }
            // TLS 1.2 servers answer a missing client certificate with handshake_failure.
            AlertDescription::HandshakeFailure => Self::Alert(
                "HandshakeFailure (no common cipher, or a client certificate is required)".into(),
            ),
            other => Self::Alert(format!("{other:?}")),
        }
    }
}

/// The verifier's own rejection: the chain is fine, the pin is not.
#[derive(Debug)]
pub(crate) struct PinMismatch {
    pub(crate) cert: Fingerprint,
    pub(crate) key: Fingerprint,
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "certificate sha256 {} / key sha256 {} matches no pin", self.cert, self.key)
    }
}

impl std::error::Error for PinMismatch {}
