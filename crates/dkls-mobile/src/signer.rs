//! The identity that signs this phone's protocol messages: implemented by the app (the Secure
//! Enclave, the Android Keystore) or in software for tests and desktops.

use std::sync::Arc;

use dkls23_core::identity::{
    Ed25519Identity, IdentityError, IdentityPublicKey, IdentitySigner, P256Identity, Signature,
    normalize_signature,
};
use rand_core::{Rng as _, UnwrapErr};

use crate::error::{ForeignError, MobileError};
use crate::payload::identity_key;

/// The kinds of message-signing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum IdentityKind {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA over P-256 with SHA-256: the kind the Secure Enclave and the Android Keystore hold.
    P256,
}

/// Signs this phone's protocol messages. Implemented by the app.
#[uniffi::export(with_foreign)]
pub trait MessageSigner: Send + Sync {
    /// The key's kind.
    fn key_kind(&self) -> IdentityKind;
    /// The verifying key: 32 bytes for Ed25519; for P-256 the SEC1 point, compressed (33
    /// bytes) or uncompressed (65 bytes, as the platforms export it).
    fn verifying_key(&self) -> Vec<u8>;
    /// Signs `message` (the whole message: the key hashes it, SHA-256 for P-256). Ed25519:
    /// the 64-byte signature. P-256: `r ‖ s` (64 bytes) or DER, as the platforms return it.
    ///
    /// # Errors
    /// [`ForeignError`] when the key cannot sign (locked, revoked, user cancelled).
    fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, ForeignError>;
}

/// A [`MessageSigner`] of the app as the protocol's identity signer.
pub(crate) struct ForeignIdentity {
    inner: Arc<dyn MessageSigner>,
    key: IdentityPublicKey,
}

impl ForeignIdentity {
    /// Reads and checks the app's verifying key once.
    pub(crate) fn new(inner: Arc<dyn MessageSigner>) -> Result<Self, MobileError> {
        let kind = inner.key_kind();
        let mut bytes = inner.verifying_key();
        if kind == IdentityKind::P256 && bytes.len() == 65 {
            let point = compress_p256(&bytes).ok_or_else(|| MobileError::Signer {
                message: "the P-256 key is not a valid point".into(),
            })?;
            bytes = point;
        }
        let key = identity_key(kind, &bytes).map_err(|message| MobileError::Signer { message })?;
        Ok(Self { inner, key })
    }

    pub(crate) fn public_key(&self) -> IdentityPublicKey {
        self.key
    }
}

/// Compresses an uncompressed SEC1 P-256 point (`04 ‖ x ‖ y`).
fn compress_p256(uncompressed: &[u8]) -> Option<Vec<u8>> {
    use p256::elliptic_curve::sec1::ToSec1Point as _;
    let point = p256::PublicKey::from_sec1_bytes(uncompressed).ok()?;
    Some(point.to_sec1_point(true).as_bytes().to_vec())
}

impl IdentitySigner for ForeignIdentity {
    fn public_key(&self) -> IdentityPublicKey {
        self.key
    }

    fn sign(&self, msg: &[u8]) -> Result<Signature, IdentityError> {
        let bytes = self
            .inner
            .sign(msg.to_vec())
            .map_err(|e| IdentityError::Signer(format!("the app's message signer failed: {e}")))?;
        let raw: [u8; 64] = match <[u8; 64]>::try_from(bytes.as_slice()) {
            Ok(raw) => raw,
            Err(_) if matches!(self.key, IdentityPublicKey::P256(_)) => {
                p256::ecdsa::Signature::from_der(&bytes)
                    .map_err(|_| {
                        IdentityError::Signer(format!(
                            "the app's P-256 signature is neither 64 bytes r||s nor DER ({} bytes)",
                            bytes.len()
                        ))
                    })?
                    .to_bytes()
                    .into()
            }
            Err(_) => {
                return Err(IdentityError::Signer(format!(
                    "an Ed25519 signature is 64 bytes, the app's signer returned {}",
                    bytes.len()
                )));
            }
        };
        // The platforms may return a high-s ECDSA signature; the protocol accepts only low-s.
        Ok(normalize_signature(&self.key, Signature(raw)))
    }
}

/// 32 random bytes: the secret of a new software identity of `kind` (an Ed25519 seed or a
/// P-256 secret scalar). Keep it in secure storage; prefer a platform key on a phone.
#[uniffi::export]
pub fn new_signer_secret(kind: IdentityKind) -> Vec<u8> {
    let mut rng = UnwrapErr(getrandom::SysRng);
    loop {
        let mut secret = vec![0u8; 32];
        rng.fill_bytes(&mut secret);
        if software_signer(kind, secret.clone()).is_ok() {
            return secret;
        }
    }
}

/// A software identity from its 32-byte secret (tests, desktops).
///
/// # Errors
/// [`MobileError::InvalidInput`] for a secret of the wrong length or, for P-256, out of range.
#[uniffi::export]
pub fn software_signer(
    kind: IdentityKind,
    secret: Vec<u8>,
) -> Result<Arc<dyn MessageSigner>, MobileError> {
    let secret =
        zeroize::Zeroizing::new(<[u8; 32]>::try_from(secret.as_slice()).map_err(|_| {
            MobileError::input(format!("a signer secret is 32 bytes, not {}", secret.len()))
        })?);
    let signer: Arc<dyn IdentitySigner + Send + Sync> = match kind {
        IdentityKind::Ed25519 => Arc::new(Ed25519Identity::from_seed(&secret)),
        IdentityKind::P256 => Arc::new(
            P256Identity::from_secret_bytes(&secret)
                .map_err(|e| MobileError::input(e.to_string()))?,
        ),
    };
    Ok(Arc::new(SoftwareSigner { kind, signer }))
}

/// A [`MessageSigner`] in this process.
pub struct SoftwareSigner {
    kind: IdentityKind,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftwareSigner({})", self.signer.public_key())
    }
}

impl MessageSigner for SoftwareSigner {
    fn key_kind(&self) -> IdentityKind {
        self.kind
    }

    fn verifying_key(&self) -> Vec<u8> {
        self.signer.public_key().key_bytes().to_vec()
    }

    fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, ForeignError> {
        self.signer
            .sign(&message)
            .map(|s| s.to_bytes().to_vec())
            .map_err(|e| ForeignError::Failed { message: e.to_string() })
    }
}
