//! Key shares (and presignatures) encrypted at rest under a passphrase.
//!
//! File layout (all integers big-endian):
//!
//! ```text
//! magic "DKLSENC1" (8) ‖ kind u8 ‖ m_cost_kib u32 ‖ t_cost u32 ‖ p_cost u32 ‖ salt (16)
//!   ‖ check (16) ‖ nonce (12) ‖ ct_len u32 ‖ ct ‖ tag (16) ‖ sha256(all preceding bytes) (32)
//! ```
//!
//! `K = Argon2id(passphrase, salt; m, t, p)` (32 bytes). From it HKDF-SHA256 derives the AEAD
//! key (`info = "dkls-party/v1/seal-key"`) and a 16-byte passphrase check value
//! (`info = "dkls-party/v1/passphrase-check"`). The plaintext is sealed with
//! ChaCha20-Poly1305 under a random nonce, with the whole header (magic … ct_len) as associated
//! data. The trailing SHA-256 lets a damaged file be told apart from a wrong passphrase before
//! any key derivation; the check value tells a wrong passphrase apart from a forged body.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"DKLSENC1";
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 8 + 1 + 4 + 4 + 4 + SALT_LEN + CHECK_LEN + NONCE_LEN + 4;
/// Largest plaintext accepted (a 255-party key share is about 16 MiB).
pub const MAX_PLAINTEXT: usize = 32 * 1024 * 1024;

/// What a sealed file holds (bound into the associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A serialised `KeyShare`.
    KeyShare = 1,
    /// A serialised presignature.
    Presignature = 2,
    /// A serialised `KeyShare` whose authenticated ban list must be present
    /// ([`crate::bans`]). Every share this version writes is of this kind; a file of kind
    /// [`Kind::KeyShare`] is a share from before ban lists were authenticated.
    KeyShareWithBans = 3,
}

/// The kind of a sealed file (unauthenticated: [`open`] checks it again, under the AEAD).
pub fn peek_kind(file: &[u8]) -> Option<Kind> {
    if file.get(..8) != Some(MAGIC.as_slice()) {
        return None;
    }
    match file.get(8) {
        Some(1) => Some(Kind::KeyShare),
        Some(2) => Some(Kind::Presignature),
        Some(3) => Some(Kind::KeyShareWithBans),
        _ => None,
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 19 MiB, 2 iterations, 1 lane (the OWASP recommendation for Argon2id).
    fn default() -> Self {
        Self { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 }
    }
}

/// Why a sealed file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The file is truncated, altered or not a sealed file of the expected kind.
    #[error("the file is corrupted: {0}")]
    Corrupted(&'static str),
    /// The passphrase is wrong.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Key derivation or encryption failed (bad parameters).
    #[error("encryption failed: {0}")]
    Crypto(&'static str),
}

/// The AEAD key and the passphrase check value.
type Derived = (Zeroizing<[u8; 32]>, Zeroizing<[u8; CHECK_LEN]>);

fn derive(passphrase: &[u8], salt: &[u8], p: KdfParams) -> Result<Derived, SealError> {
    // Refuse absurd costs from a damaged header before allocating anything.
    if p.m_cost_kib > 1024 * 1024 || p.t_cost == 0 || p.t_cost > 16 || p.p_cost == 0 || p.p_cost > 8
    {
        return Err(SealError::Corrupted("unreasonable key-derivation parameters"));
    }
    let params = Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .map_err(|_| SealError::Corrupted("invalid key-derivation parameters"))?;
    let mut k = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, k.as_mut())
        .map_err(|_| SealError::Crypto("Argon2id"))?;
    let hk = hkdf::Hkdf::<Sha256>::new(None, k.as_ref());
    let mut key = Zeroizing::new([0u8; 32]);
    let mut check = Zeroizing::new([0u8; CHECK_LEN]);
    hk.expand(b"dkls-party/v1/seal-key", key.as_mut()).map_err(|_| SealError::Crypto("HKDF"))?;
    hk.expand(b"dkls-party/v1/passphrase-check", check.as_mut())
        .map_err(|_| SealError::Crypto("HKDF"))?;
    Ok((key, check))
}

/// Encrypts `plaintext` under `passphrase`.
///
/// # Errors
/// [`SealError::Crypto`] if the parameters are unusable or the OS has no randomness.
pub fn seal(
    kind: Kind,
    plaintext: &[u8],
    passphrase: &[u8],
    params: KdfParams,
) -> Result<Vec<u8>, SealError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(SealError::Crypto("plaintext too large"));
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(|_| SealError::Crypto("OS randomness"))?;
    getrandom::fill(&mut nonce).map_err(|_| SealError::Crypto("OS randomness"))?;
    let (key, check) = derive(passphrase, &salt, params)?;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN + 32);
    out.extend_from_slice(MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&params.m_cost_kib.to_be_bytes());
    out.extend_from_slice(&params.t_cost.to_be_bytes());
    out.extend_from_slice(&params.p_cost.to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(check.as_ref());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&(plaintext.len() as u32).to_be_bytes());
    let mut body = Zeroizing::new(plaintext.to_vec());
    let tag = ChaCha20Poly1305::new(&(*key).into())
        .encrypt_inout_detached(&Nonce::from(nonce), &out, body.as_mut_slice().into())
        .map_err(|_| SealError::Crypto("AEAD"))?;
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    let digest: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&digest);
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> Result<u32, SealError> {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_be_bytes)
        .ok_or(SealError::Corrupted("truncated"))
}

/// Decrypts a file produced by [`seal`] with the same `kind`.
///
/// # Errors
/// [`SealError::Corrupted`] for a damaged file, [`SealError::WrongPassphrase`] otherwise when
/// the passphrase does not match.
pub fn open(kind: Kind, file: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let corrupted = SealError::Corrupted;
    if file.len() < HEADER_LEN + TAG_LEN + 32 {
        return Err(corrupted("truncated"));
    }
    let (body, digest) = file.split_at(file.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(corrupted("checksum mismatch (truncated or altered)"));
    }
    if body.get(..8) != Some(MAGIC.as_slice()) {
        return Err(corrupted("not a dkls-party sealed file"));
    }
    if body.get(8) != Some(&(kind as u8)) {
        return Err(corrupted("sealed file of another kind"));
    }
    let params =
        KdfParams { m_cost_kib: be32(body, 9)?, t_cost: be32(body, 13)?, p_cost: be32(body, 17)? };
    let salt = body.get(21..21 + SALT_LEN).ok_or(corrupted("truncated"))?;
    let check = body.get(37..37 + CHECK_LEN).ok_or(corrupted("truncated"))?;
    let nonce: [u8; NONCE_LEN] = body
        .get(53..53 + NONCE_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(corrupted("truncated"))?;
    let ct_len = be32(body, 65)? as usize;
    if ct_len > MAX_PLAINTEXT || body.len() != HEADER_LEN + ct_len + TAG_LEN {
        return Err(corrupted("length mismatch"));
    }
    let (header, rest) = body.split_at(HEADER_LEN);
    let (ct, tag) = rest.split_at(ct_len);
    let (key, expected) = derive(passphrase, salt, params)?;
    if !bool::from(expected.as_slice().ct_eq(check)) {
        return Err(SealError::WrongPassphrase);
    }
    let tag = Tag::try_from(tag).map_err(|_| corrupted("truncated"))?;
    let mut pt = Zeroizing::new(ct.to_vec());
    ChaCha20Poly1305::new(&(*key).into())
        .decrypt_inout_detached(&Nonce::from(nonce), header, pt.as_mut_slice().into(), &tag)
        .map_err(|_| corrupted("authentication failed"))?;
    Ok(pt)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

    #[test]
    fn round_trip_and_failures() {
        let sealed = seal(Kind::KeyShare, b"secret share", b"pw", FAST).unwrap();
        assert_eq!(open(Kind::KeyShare, &sealed, b"pw").unwrap().as_slice(), b"secret share");
        assert_eq!(open(Kind::KeyShare, &sealed, b"other"), Err(SealError::WrongPassphrase));
        assert!(matches!(open(Kind::Presignature, &sealed, b"pw"), Err(SealError::Corrupted(_))));
        for i in [0, 9, 30, 60, sealed.len() / 2, sealed.len() - 40, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(matches!(open(Kind::KeyShare, &bad, b"pw"), Err(SealError::Corrupted(_))));
        }
        assert!(matches!(
            open(Kind::KeyShare, &sealed[..sealed.len() - 1], b"pw"),
            Err(SealError::Corrupted(_))
        ));
        // A body altered with a recomputed checksum still fails authentication.
        let mut forged = sealed.clone();
        let n = forged.len();
        forged[HEADER_LEN] ^= 1;
        let digest: [u8; 32] = Sha256::digest(&forged[..n - 32]).into();
        forged[n - 32..].copy_from_slice(&digest);
        assert_eq!(
            open(Kind::KeyShare, &forged, b"pw"),
            Err(SealError::Corrupted("authentication failed"))
        );
        // Two seals of the same plaintext differ (fresh salt and nonce).
        assert_ne!(sealed, seal(Kind::KeyShare, b"secret share", b"pw", FAST).unwrap());
    }
}
