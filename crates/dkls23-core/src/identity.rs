//! Long-term party identity keys (`protocols.md` §1.2, §7).
//!
//! A party's identity is an Ed25519 (recommended) or ECDSA P-256 public key. The private half sits
//! behind [`IdentitySigner`], so it may live outside the process (secure enclave, HSM, remote
//! signer); [`Ed25519Identity`] and [`P256Identity`] are the in-process implementations.
//!
//! * Canonical public-key encoding: one kind byte ([`KIND_ED25519`] or [`KIND_P256`]) followed by
//!   the key (32-byte Ed25519 point, or 33-byte compressed SEC1 P-256 point).
//! * Signatures are always 64 bytes: Ed25519 `R ‖ s`, or P-256 ECDSA-SHA-256 `r ‖ s`.
//! * Verification is strict: Ed25519 uses `verify_strict` (rejects small-order keys and `R`,
//!   non-canonical `s`); P-256 **rejects high-s** signatures (`s > n/2`), so a signature cannot be
//!   mauled into a second valid encoding. Signers of the P-256 kind must therefore produce low-s
//!   signatures; [`normalize_signature`] canonicalises one produced by an external device.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::elliptic_curve::Generate as _;
use p256::elliptic_curve::scalar::IsHigh as _;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::encoding::{DecodeError, Reader};

/// Kind byte of an Ed25519 identity key.
pub const KIND_ED25519: u8 = 1;
/// Kind byte of a P-256 identity key.
pub const KIND_P256: u8 = 2;
/// Bytes of an identity signature (both kinds).
pub const SIGNATURE_LEN: usize = 64;
/// Longest canonical identity-key encoding (P-256: 1 + 33).
pub const MAX_IDENTITY_KEY_LEN: usize = 34;

/// A 64-byte identity signature (Ed25519 `R ‖ s` or P-256 `r ‖ s`). Public data.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Signature {
    /// The raw 64 bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0
    }

    /// Reads a signature from exactly 64 bytes.
    ///
    /// # Errors
    /// [`DecodeError::Length`] for any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        crate::encoding::fixed(bytes).map(Self)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// Why an identity operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key encoding is malformed (unknown kind, wrong length, not a valid point, weak key).
    #[error("invalid identity key: {0}")]
    InvalidKey(&'static str),
    /// The signer could not produce a signature (device error, key erased, …).
    #[error("identity signer failed: {0}")]
    Signer(String),
    /// A PKCS#8 document could not be read or written.
    #[error("PKCS#8 error")]
    Pkcs8,
}

/// An identity signer shared between the tasks of a service: how runs and sessions hold one.
pub type SharedSigner = std::sync::Arc<dyn IdentitySigner + Send + Sync>;

/// The private half of a party identity: signs protocol messages.
///
/// Implementations may forward to a secure enclave or HSM. A P-256 signer must return low-s
/// signatures (or pass them through [`normalize_signature`]); the verifier rejects high s.
pub trait IdentitySigner {
    /// The identity public key this signer signs for.
    fn public_key(&self) -> IdentityPublicKey;

    /// Signs `msg` (the full message; the implementation hashes it as its algorithm requires).
    ///
    /// # Errors
    /// [`IdentityError::Signer`] when the backend fails.
    fn sign(&self, msg: &[u8]) -> Result<Signature, IdentityError>;
}

/// A party's public identity key.
///
/// Construct with [`IdentityPublicKey::from_bytes`] (strict) or the variants directly; in the
/// latter case call [`IdentityPublicKey::validate`] (a [`crate::setup::Setup`] does).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityPublicKey {
    /// A compressed Edwards point (RFC 8032 encoding).
    Ed25519([u8; 32]),
    /// A compressed SEC1 P-256 point (`0x02|0x03 ‖ x`).
    P256([u8; 33]),
}

impl IdentityPublicKey {
    /// The kind byte of this key.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Ed25519(_) => KIND_ED25519,
            Self::P256(_) => KIND_P256,
        }
    }

    /// The key bytes without the kind byte.
    pub fn key_bytes(&self) -> &[u8] {
        match self {
            Self::Ed25519(k) => k,
            Self::P256(k) => k,
        }
    }

    /// Canonical encoding: kind byte ‖ key bytes (33 or 34 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(self.kind());
        out.extend_from_slice(self.key_bytes());
        out
    }

    /// Length of [`Self::to_bytes`].
    pub fn encoded_len(&self) -> usize {
        1 + self.key_bytes().len()
    }

    /// Strictly decodes a canonical encoding (exact length, valid and non-weak key).
    ///
    /// # Errors
    /// [`IdentityError::InvalidKey`] on any defect.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut r = Reader::new(bytes);
        let key = Self::read(&mut r)?;
        r.finish().map_err(|_| IdentityError::InvalidKey("trailing bytes"))?;
        Ok(key)
    }

    /// Reads one canonical key from a reader (used by composite decoders).
    ///
    /// # Errors
    /// [`IdentityError::InvalidKey`] on any defect, including truncation.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, IdentityError> {
        let truncated = |_| IdentityError::InvalidKey("truncated");
        let [kind] = r.array::<1>().map_err(truncated)?;
        let key = match kind {
            KIND_ED25519 => Self::Ed25519(r.array().map_err(truncated)?),
            KIND_P256 => Self::P256(r.array().map_err(truncated)?),
            _ => return Err(IdentityError::InvalidKey("unknown kind")),
        };
        key.validate()?;
        Ok(key)
    }

    /// Checks that the key decodes: an Ed25519 point that is not of small order, or a P-256
    /// compressed point on the curve.
    ///
    /// # Errors
    /// [`IdentityError::InvalidKey`] when it does not.
    pub fn validate(&self) -> Result<(), IdentityError> {
        match self {
            Self::Ed25519(k) => {
                let vk = ed25519_dalek::VerifyingKey::from_bytes(k)
                    .map_err(|_| IdentityError::InvalidKey("not an Ed25519 point"))?;
                if vk.is_weak() {
                    return Err(IdentityError::InvalidKey("small-order Ed25519 key"));
                }
                Ok(())
            }
            Self::P256(k) => {
                if !matches!(k.first(), Some(0x02 | 0x03)) {
                    return Err(IdentityError::InvalidKey("P-256 key not compressed"));
                }
                p256::ecdsa::VerifyingKey::from_sec1_bytes(k)
                    .map(|_| ())
                    .map_err(|_| IdentityError::InvalidKey("not a P-256 point"))
            }
        }
    }

    /// Verifies `sig` over `msg`. Total: returns false for an invalid key or signature.
    ///
    /// Ed25519: `verify_strict`. P-256: ECDSA over SHA-256(msg), `r ‖ s` big-endian, high s
    /// rejected.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> bool {
        match self {
            Self::Ed25519(k) => {
                let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(k) else {
                    return false;
                };
                let s = ed25519_dalek::Signature::from_bytes(&sig.0);
                vk.verify_strict(msg, &s).is_ok()
            }
            Self::P256(k) => {
                let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(k) else {
                    return false;
                };
                let Ok(s) = p256::ecdsa::Signature::from_slice(&sig.0) else {
                    return false;
                };
                if bool::from(s.s().is_high()) {
                    return false;
                }
                vk.verify(msg, &s).is_ok()
            }
        }
    }
}

impl fmt::Display for IdentityPublicKey {
    /// `ed25519:<hex>` or `p256:<hex>` (hex of the key bytes, without the kind byte).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Ed25519(_) => "ed25519",
            Self::P256(_) => "p256",
        };
        write!(f, "{name}:{}", hex::encode(self.key_bytes()))
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey({self})")
    }
}

impl std::str::FromStr for IdentityPublicKey {
    type Err = IdentityError;

    /// Parses the [`Display`](fmt::Display) form, validating the key.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, hex_key) =
            s.split_once(':').ok_or(IdentityError::InvalidKey("expected <kind>:<hex>"))?;
        let raw = hex::decode(hex_key).map_err(|_| IdentityError::InvalidKey("bad hex"))?;
        let kind = match name {
            "ed25519" => KIND_ED25519,
            "p256" => KIND_P256,
            _ => return Err(IdentityError::InvalidKey("unknown kind")),
        };
        let mut enc = Vec::with_capacity(raw.len() + 1);
        enc.push(kind);
        enc.extend_from_slice(&raw);
        Self::from_bytes(&enc)
    }
}

/// Canonicalises a signature of the given key kind: P-256 signatures get low s; Ed25519
/// signatures are returned unchanged. Apply to the output of an external P-256 signer that may
/// return high s. Invalid encodings are returned unchanged (verification will reject them).
pub fn normalize_signature(key: &IdentityPublicKey, sig: Signature) -> Signature {
    match key {
        IdentityPublicKey::Ed25519(_) => sig,
        IdentityPublicKey::P256(_) => match p256::ecdsa::Signature::from_slice(&sig.0) {
            Ok(s) => match crate::encoding::fixed(&s.normalize_s().to_bytes()) {
                Ok(b) => Signature(b),
                Err(_) => sig,
            },
            Err(_) => sig,
        },
    }
}

/// An in-process Ed25519 identity. The secret is zeroized on drop and on [`Zeroize::zeroize`]
/// (after which signing fails).
pub struct Ed25519Identity {
    key: Option<ed25519_dalek::SigningKey>,
    public: [u8; 32],
}

impl Ed25519Identity {
    /// Generates a fresh identity from `rng`.
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + ?Sized)) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Builds the identity from its 32-byte RFC 8032 secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = key.verifying_key().to_bytes();
        Self { key: Some(key), public }
    }

    /// Reads a PKCS#8 v1/v2 DER private key (RFC 8410).
    ///
    /// # Errors
    /// [`IdentityError::Pkcs8`] if the document is not a valid Ed25519 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, IdentityError> {
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|_| IdentityError::Pkcs8)?;
        let public = key.verifying_key().to_bytes();
        Ok(Self { key: Some(key), public })
    }

    /// Writes the key as PKCS#8 DER (zeroized when dropped).
    ///
    /// # Errors
    /// [`IdentityError::Pkcs8`] on encoding failure or after the key was zeroized.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
        let key = self.key.as_ref().ok_or(IdentityError::Pkcs8)?;
        let doc = key.to_pkcs8_der().map_err(|_| IdentityError::Pkcs8)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }
}

impl IdentitySigner for Ed25519Identity {
    fn public_key(&self) -> IdentityPublicKey {
        IdentityPublicKey::Ed25519(self.public)
    }

    fn sign(&self, msg: &[u8]) -> Result<Signature, IdentityError> {
        let key = self.key.as_ref().ok_or(IdentityError::Signer("key was zeroized".into()))?;
        let sig: ed25519_dalek::Signature = ed25519_dalek::Signer::sign(key, msg);
        Ok(Signature(sig.to_bytes()))
    }
}

impl Zeroize for Ed25519Identity {
    fn zeroize(&mut self) {
        // Dropping the dalek key zeroizes its secret.
        self.key = None;
    }
}

impl ZeroizeOnDrop for Ed25519Identity {}

impl ConstantTimeEq for Ed25519Identity {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        match (&self.key, &other.key) {
            (Some(a), Some(b)) => a.ct_eq(b),
            (None, None) => subtle::Choice::from(1),
            _ => subtle::Choice::from(0),
        }
    }
}

impl fmt::Debug for Ed25519Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Identity")
            .field("public", &hex::encode(self.public))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An in-process ECDSA P-256 identity (SHA-256, RFC 6979 nonces, low-s output). The secret is
/// zeroized on drop and on [`Zeroize::zeroize`] (after which signing fails).
pub struct P256Identity {
    key: Option<p256::ecdsa::SigningKey>,
    public: [u8; 33],
}

impl P256Identity {
    /// Generates a fresh identity from `rng`.
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + ?Sized)) -> Self {
        Self::from_key(p256::ecdsa::SigningKey::generate_from_rng(rng))
    }

    fn from_key(key: p256::ecdsa::SigningKey) -> Self {
        let point = key.verifying_key().to_sec1_point(true);
        let mut public = [0u8; 33];
        if let Some(dst) = public.get_mut(..point.as_bytes().len()) {
            dst.copy_from_slice(point.as_bytes());
        }
        Self { key: Some(key), public }
    }

    /// Builds the identity from a 32-byte big-endian secret scalar.
    ///
    /// # Errors
    /// [`IdentityError::InvalidKey`] if the scalar is zero or not below the group order.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Result<Self, IdentityError> {
        p256::ecdsa::SigningKey::from_slice(secret)
            .map(Self::from_key)
            .map_err(|_| IdentityError::InvalidKey("invalid P-256 secret scalar"))
    }

    /// Reads a PKCS#8 DER private key (RFC 5915 inside RFC 5208).
    ///
    /// # Errors
    /// [`IdentityError::Pkcs8`] if the document is not a valid P-256 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, IdentityError> {
        p256::ecdsa::SigningKey::from_pkcs8_der(der)
            .map(Self::from_key)
            .map_err(|_| IdentityError::Pkcs8)
    }

    /// Writes the key as PKCS#8 DER (zeroized when dropped).
    ///
    /// # Errors
    /// [`IdentityError::Pkcs8`] on encoding failure or after the key was zeroized.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
        let key = self.key.as_ref().ok_or(IdentityError::Pkcs8)?;
        let doc = key.to_pkcs8_der().map_err(|_| IdentityError::Pkcs8)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }
}

impl IdentitySigner for P256Identity {
    fn public_key(&self) -> IdentityPublicKey {
        IdentityPublicKey::P256(self.public)
    }

    fn sign(&self, msg: &[u8]) -> Result<Signature, IdentityError> {
        let key = self.key.as_ref().ok_or(IdentityError::Signer("key was zeroized".into()))?;
        let sig: p256::ecdsa::Signature =
            key.try_sign(msg).map_err(|_| IdentityError::Signer("P-256 signing failed".into()))?;
        let bytes = crate::encoding::fixed(&sig.normalize_s().to_bytes())
            .map_err(|_| IdentityError::Signer("P-256 signature length".into()))?;
        Ok(Signature(bytes))
    }
}

impl Zeroize for P256Identity {
    fn zeroize(&mut self) {
        // Dropping the ecdsa key zeroizes its secret scalar.
        self.key = None;
    }
}

impl ZeroizeOnDrop for P256Identity {}

impl ConstantTimeEq for P256Identity {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        match (&self.key, &other.key) {
            (Some(a), Some(b)) => a.ct_eq(b),
            (None, None) => subtle::Choice::from(1),
            _ => subtle::Choice::from(0),
        }
    }
}

impl fmt::Debug for P256Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P256Identity")
            .field("public", &hex::encode(self.public))
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    #[test]
    fn sign_verify_both_kinds() {
        let mut r = rng(1);
        let signers: Vec<Box<dyn IdentitySigner>> = vec![
            Box::new(Ed25519Identity::generate(&mut r)),
            Box::new(P256Identity::generate(&mut r)),
        ];
        for s in &signers {
            let pk = s.public_key();
            pk.validate().unwrap();
            let sig = s.sign(b"hello").unwrap();
            assert!(pk.verify(b"hello", &sig));
            assert!(!pk.verify(b"hellp", &sig));
            let mut bad = sig.clone();
            bad.0[5] ^= 1;
            assert!(!pk.verify(b"hello", &bad));
            let other = Ed25519Identity::generate(&mut r).public_key();
            assert!(!other.verify(b"hello", &sig));
        }
    }

    #[test]
    fn p256_high_s_is_rejected_and_normalized() {
        let id = P256Identity::generate(&mut rng(2));
        let pk = id.public_key();
        let sig = id.sign(b"msg").unwrap();
        let s = p256::ecdsa::Signature::from_slice(&sig.0).unwrap();
        assert!(!bool::from(s.s().is_high()));
        // Build the high-s twin (r, n - s): valid ECDSA, but rejected here.
        let high = p256::ecdsa::Signature::from_scalars(s.r(), -*s.s()).unwrap();
        let high = Signature(crate::encoding::fixed(&high.to_bytes()).unwrap());
        assert!(!pk.verify(b"msg", &high));
        assert_eq!(normalize_signature(&pk, high), sig);
    }

    #[test]
    fn encoding_round_trip_and_display() {
        let mut r = rng(3);
        for pk in [
            Ed25519Identity::generate(&mut r).public_key(),
            P256Identity::generate(&mut r).public_key(),
        ] {
            let enc = pk.to_bytes();
            assert_eq!(enc.len(), pk.encoded_len());
            assert_eq!(IdentityPublicKey::from_bytes(&enc).unwrap(), pk);
            assert!(IdentityPublicKey::from_bytes(&enc[..enc.len() - 1]).is_err());
            let mut long = enc.clone();
            long.push(0);
            assert!(IdentityPublicKey::from_bytes(&long).is_err());
            let shown = pk.to_string();
            assert_eq!(shown.parse::<IdentityPublicKey>().unwrap(), pk);
        }
        // Unknown kind, small-order Ed25519 (identity point), uncompressed/invalid P-256.
        assert!(IdentityPublicKey::from_bytes(&[3u8; 34]).is_err());
        let mut ident = [0u8; 33];
        ident[0] = KIND_ED25519;
        ident[1] = 1;
        assert!(IdentityPublicKey::from_bytes(&ident).is_err());
        let mut bad_p = [0u8; 34];
        bad_p[0] = KIND_P256;
        bad_p[1] = 0x04;
        assert!(IdentityPublicKey::from_bytes(&bad_p).is_err());
        assert!(IdentityPublicKey::P256([0u8; 33]).validate().is_err());
    }

    #[test]
    fn pkcs8_round_trip_and_zeroize() {
        let mut r = rng(4);
        let ed = Ed25519Identity::generate(&mut r);
        let der = ed.to_pkcs8_der().unwrap();
        let ed2 = Ed25519Identity::from_pkcs8_der(&der).unwrap();
        assert_eq!(ed.public_key(), ed2.public_key());
        assert!(bool::from(ed.ct_eq(&ed2)));
        let p = P256Identity::generate(&mut r);
        let der = p.to_pkcs8_der().unwrap();
        let p2 = P256Identity::from_pkcs8_der(&der).unwrap();
        assert_eq!(p.public_key(), p2.public_key());
        assert!(Ed25519Identity::from_pkcs8_der(&der).is_err());
        let mut p2 = p2;
        p2.zeroize();
        assert!(p2.sign(b"x").is_err());
        assert!(!format!("{p:?}{ed:?}").contains("secret: ["));
    }

    proptest! {
        #[test]
        fn key_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = IdentityPublicKey::from_bytes(&bytes);
        }

        #[test]
        fn verify_never_panics(key in proptest::collection::vec(any::<u8>(), 34), sig in proptest::array::uniform32(any::<u8>())) {
            let mut s = [0u8; 64];
            s[..32].copy_from_slice(&sig);
            s[32..].copy_from_slice(&sig);
            let k33: [u8; 33] = key[1..].try_into().unwrap();
            let k32: [u8; 32] = key[2..].try_into().unwrap();
            let _ = IdentityPublicKey::P256(k33).verify(b"m", &Signature(s));
            let _ = IdentityPublicKey::Ed25519(k32).verify(b"m", &Signature(s));
        }
    }
}
