//! A local certificate authority for development and tests: `mpc-node dev --tls` and the TLS
//! tests issue their certificates with it. Not for production (keys are generated in memory
//! and written as plain PEM files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::TlsError;
use crate::fingerprint::Fingerprint;

/// When an issued certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From an hour ago for 397 days (the longest a public CA issues).
    Current,
    /// Ended yesterday (for tests of expired certificates).
    Expired,
    /// Starts tomorrow (for tests of clocks and not-yet-valid certificates).
    NotYetValid,
}

/// What an issued certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server (the names are its DNS names or IP addresses).
    Server,
    /// A TLS client (mTLS); the first name becomes its common name.
    Client,
}

/// A certificate and its private key, PEM-encoded.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM (wiped when dropped).
    pub key_pem: Zeroizing<String>,
    /// SHA-256 of the certificate (DER).
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("fingerprint", &self.fingerprint)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl Issued {
    /// Writes `<stem>.pem` and `<stem>.key` into `dir` (the key readable by the owner only)
    /// and returns their paths.
    ///
    /// # Errors
    /// [`TlsError::Config`] naming the file that cannot be written.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), TlsError> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        write_file(&cert, self.cert_pem.as_bytes(), false)?;
        write_file(&key, self.key_pem.as_bytes(), true)?;
        Ok((cert, key))
    }
}

/// A certificate authority held in memory.
pub struct LocalCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("fingerprint", &self.fingerprint()).finish()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::setting(what, format!("cannot generate: {e}"))
}

fn window(validity: Validity) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    let hour = Duration::from_secs(3600);
    let day = Duration::from_secs(86_400);
    match validity {
        Validity::Current => (now - hour, now + 397 * day),
        Validity::Expired => (now - 30 * day, now - day),
        Validity::NotYetValid => (now + day, now + 30 * day),
    }
}

impl LocalCa {
    /// A new CA (ECDSA P-256) with the given common name, valid for ten years.
    ///
    /// # Errors
    /// [`TlsError::Config`] if generation fails.
    pub fn new(common_name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA", e))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + Duration::from_secs(10 * 365 * 86_400);
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(|e| failed("CA", e))?;
        Ok(Self { issuer })
    }

    /// The CA certificate, PEM (what clients are given as their CA file).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// SHA-256 of the CA certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.issuer.der().as_ref())
    }

    /// Writes the CA certificate to `path`.
    ///
    /// # Errors
    /// [`TlsError::Config`] naming the file.
    pub fn write_cert(&self, path: &Path) -> Result<(), TlsError> {
        write_file(path, self.cert_pem().as_bytes(), false)
    }

    /// Issues a certificate for `names` (DNS names or IP addresses).
    ///
    /// # Errors
    /// [`TlsError::Config`] when a name is not usable or generation fails.
    pub fn issue(
        &self,
        names: &[&str],
        usage: Usage,
        validity: Validity,
    ) -> Result<Issued, TlsError> {
        let key = KeyPair::generate().map_err(|e| failed("certificate key", e))?;
        let owned: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(owned).map_err(|e| failed("certificate", e))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().copied().unwrap_or("dkls"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        (params.not_before, params.not_after) = window(validity);
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| failed("certificate", e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
            fingerprint: Fingerprint::of(cert.der().as_ref()),
        })
    }
}

/// Files of a development PKI written by [`write_dev_pki`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPki {
    /// The CA certificate: what clients trust.
    pub ca: PathBuf,
    /// The server certificate (for `localhost`, `127.0.0.1` and `::1`).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
}

/// Creates `dir` and writes a new CA and a server certificate for the loopback names into it.
///
/// # Errors
/// [`TlsError::Config`] naming what could not be generated or written.
pub fn write_dev_pki(dir: &Path) -> Result<DevPki, TlsError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| TlsError::config(dir, format!("cannot create: {e}")))?;
    let ca = LocalCa::new("dkls development CA")?;
    let ca_path = dir.join("ca.pem");
    ca.write_cert(&ca_path)?;
    let server = ca.issue(&["localhost", "127.0.0.1", "::1"], Usage::Server, Validity::Current)?;
    let (server_cert, server_key) = server.write(dir, "server")?;
    Ok(DevPki { ca: ca_path, server_cert, server_key })
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    let cannot = |e: std::io::Error| TlsError::config(path, format!("cannot write: {e}"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(cannot)?;
    std::io::Write::write_all(&mut file, bytes).map_err(cannot)?;
    file.sync_all().map_err(cannot)
}
