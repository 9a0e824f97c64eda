//! Envelope encryption of key shares and presignatures.
//!
//! - KEK: Argon2id(master password, random 16-byte salt, stored parameters), 32 bytes.
//! - Data key: 32 random bytes per key share (and epoch), stored wrapped by the KEK.
//! - Share and presignatures: sealed under the data key.
//!
//! Every seal is XChaCha20-Poly1305 with a fresh random 192-bit nonce; a sealed blob is
//! `version(1) ‖ nonce(24) ‖ ciphertext ‖ tag(16)`. Associated data is a domain label followed by
//! length-prefixed fields ([`Aad`]), so a blob only opens for the exact application, key name,
//! player, epoch (and presignature id) it was written for.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::StoreError;

/// Format version of a sealed blob.
const BLOB_VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes a seal adds to the plaintext.
pub(crate) const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// Length of the KDF salt.
pub(crate) const SALT_LEN: usize = 16;

/// Domain labels of the associated data, one per kind of sealed object.
pub(crate) const DOMAIN_CHECK: &str = "mpc-node-store/v1/password-check";
pub(crate) const DOMAIN_DATA_KEY: &str = "mpc-node-store/v1/data-key";
pub(crate) const DOMAIN_SHARE: &str = "mpc-node-store/v1/share";
pub(crate) const DOMAIN_PRESIG: &str = "mpc-node-store/v1/presignature";
pub(crate) const DOMAIN_STAGED: &str = "mpc-node-store/v1/staged-share";

/// Argon2id parameters of the key-encryption key. Stored in the database when it is created;
/// later opens use the stored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP's recommended minimum for Argon2id: 19 MiB, 2 iterations, 1 lane (the default).
    pub const RECOMMENDED: Self = Self { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 };
    /// Cheap parameters for tests only (64 KiB, 1 iteration): never for real data.
    #[cfg(any(test, feature = "testing"))]
    pub const INSECURE_FOR_TESTS: Self = Self { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
    /// Largest memory cost accepted from a database file (2 GiB), so a damaged file cannot make
    /// the node allocate without bound.
    pub const MAX_M_COST_KIB: u32 = 2 * 1024 * 1024;
    /// Largest iteration count accepted from a database file.
    pub const MAX_T_COST: u32 = 64;
    /// Largest lane count accepted from a database file.
    pub const MAX_P_COST: u32 = 16;

    fn to_argon2(self) -> Result<Params, StoreError> {
        if self.m_cost_kib > Self::MAX_M_COST_KIB
            || self.t_cost == 0
            || self.t_cost > Self::MAX_T_COST
            || self.p_cost == 0
            || self.p_cost > Self::MAX_P_COST
        {
            return Err(StoreError::Corrupt("key derivation parameters out of range".into()));
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(KEY_LEN))
            .map_err(|_| StoreError::Corrupt("key derivation parameters out of range".into()))
    }

    /// The 12-byte encoding stored in the database (and bound into the password check).
    pub(crate) fn encode(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        let (m, rest) = out.split_at_mut(4);
        let (t, p) = rest.split_at_mut(4);
        m.copy_from_slice(&self.m_cost_kib.to_be_bytes());
        t.copy_from_slice(&self.t_cost.to_be_bytes());
        p.copy_from_slice(&self.p_cost.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("key derivation parameters malformed".into());
        let b: [u8; 12] = bytes.try_into().map_err(|_| bad())?;
        let word = |i: usize| -> Result<u32, StoreError> {
            let w: [u8; 4] = b.get(i..i + 4).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
            Ok(u32::from_be_bytes(w))
        };
        Ok(Self { m_cost_kib: word(0)?, t_cost: word(4)?, p_cost: word(8)? })
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

/// A 32-byte symmetric key (KEK or data key): zeroized on drop, never printed, not `Clone`.
pub(crate) struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), StoreError> {
    getrandom::fill(buf).map_err(|_| StoreError::Io("operating system RNG failed".into()))
}

impl SecretKey {
    /// A fresh random key.
    pub(crate) fn random() -> Result<Self, StoreError> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(k.as_mut_slice())?;
        Ok(Self(k))
    }

    /// The key-encryption key from the master password.
    pub(crate) fn derive_kek(
        password: &[u8],
        salt: &[u8],
        params: KdfParams,
    ) -> Result<Self, StoreError> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(password, salt, k.as_mut_slice())
            .map_err(|_| StoreError::Corrupt("key derivation failed".into()))?;
        Ok(Self(k))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.0).into())
    }

    /// `version ‖ nonce ‖ AEAD(pt, aad) ‖ tag` under a fresh random nonce.
    pub(crate) fn seal(&self, aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        // The buffer holds plaintext until encrypted in place: zeroized if encryption fails.
        // Its capacity is final, so no reallocation leaves a plaintext copy behind.
        let mut out = Zeroizing::new(Vec::with_capacity(pt.len() + SEAL_OVERHEAD));
        out.push(BLOB_VERSION);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(pt);
        let body = out.get_mut(start..).ok_or_else(|| StoreError::Io("seal buffer".into()))?;
        let tag = self
            .cipher()
            .encrypt_inout_detached(&XNonce::from(nonce), aad, body.into())
            .map_err(|_| StoreError::Io("encryption failed".into()))?;
        out.extend_from_slice(&tag);
        Ok(std::mem::take(&mut *out))
    }

    /// Opens a blob made by [`SecretKey::seal`] with the same `aad`; [`StoreError::Corrupt`]
    /// (naming only `what`) if it is malformed or does not authenticate.
    pub(crate) fn open(
        &self,
        aad: &[u8],
        blob: &[u8],
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let bad = || StoreError::Corrupt(format!("{what} does not authenticate"));
        let (&version, rest) = blob.split_first().ok_or_else(bad)?;
        if version != BLOB_VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(bad());
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| bad())?;
        let tag = Tag::try_from(tag).map_err(|_| bad())?;
        let mut buf = Zeroizing::new(ct.to_vec());
        self.cipher()
            .decrypt_inout_detached(&XNonce::from(nonce), aad, buf.as_mut_slice().into(), &tag)
            .map_err(|_| bad())?;
        Ok(buf)
    }

    /// Wraps this (data) key under `kek`.
    pub(crate) fn wrap(&self, kek: &SecretKey, aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        kek.seal(aad, self.0.as_slice())
    }

    /// Unwraps a data key sealed by [`SecretKey::wrap`].
    pub(crate) fn unwrap_with(
        kek: &SecretKey,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Self, StoreError> {
        let pt = kek.open(aad, blob, "data key")?;
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        if pt.len() != KEY_LEN {
            return Err(StoreError::Corrupt("data key does not authenticate".into()));
        }
        k.copy_from_slice(&pt);
        Ok(Self(k))
    }
}

/// Associated data: a domain label, then length-prefixed fields, so no two different field
/// tuples encode alike.
pub(crate) struct Aad(Vec<u8>);

impl Aad {
    pub(crate) fn new(domain: &str) -> Self {
        let mut a = Self(Vec::with_capacity(128));
        a.bytes(domain.as_bytes());
        a
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        // Fields are names (≤ 128 bytes), salts and parameters: far below 4 GiB.
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }

    /// The binding of a key share: application, key name, player, epoch.
    pub(crate) fn for_key(domain: &str, app: &str, key: &str, player: u16, epoch: u32) -> Self {
        let mut a = Self::new(domain);
        a.bytes(app.as_bytes())
            .bytes(key.as_bytes())
            .bytes(&player.to_be_bytes())
            .bytes(&epoch.to_be_bytes());
        a
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let k = SecretKey::random().unwrap();
        let aad = Aad::for_key(DOMAIN_SHARE, "app", "k", 1, 0);
        let blob = k.seal(aad.as_slice(), b"secret share").unwrap();
        assert_eq!(blob.len(), 12 + SEAL_OVERHEAD);
        assert_eq!(&*k.open(aad.as_slice(), &blob, "share").unwrap(), b"secret share");
        // Every field of the binding matters.
        for other in [
            Aad::for_key(DOMAIN_PRESIG, "app", "k", 1, 0),
            Aad::for_key(DOMAIN_SHARE, "app2", "k", 1, 0),
            Aad::for_key(DOMAIN_SHARE, "app", "k2", 1, 0),
            Aad::for_key(DOMAIN_SHARE, "app", "k", 2, 0),
            Aad::for_key(DOMAIN_SHARE, "app", "k", 1, 1),
            // Length prefixes: moving a byte between fields changes the encoding.
            Aad::for_key(DOMAIN_SHARE, "ap", "pk", 1, 0),
        ] {
            assert!(matches!(
                k.open(other.as_slice(), &blob, "share"),
                Err(StoreError::Corrupt(_))
            ));
        }
        // Another key, a flipped bit anywhere, truncation: all refused.
        let k2 = SecretKey::random().unwrap();
        assert!(k2.open(aad.as_slice(), &blob, "share").is_err());
        for i in 0..blob.len() {
            let mut t = blob.clone();
            t[i] ^= 1;
            assert!(k.open(aad.as_slice(), &t, "share").is_err(), "bit flip at {i}");
        }
        for len in 0..blob.len() {
            assert!(k.open(aad.as_slice(), &blob[..len], "share").is_err());
        }
    }

    #[test]
    fn fresh_nonces() {
        let k = SecretKey::random().unwrap();
        let a = k.seal(b"", b"x").unwrap();
        let b = k.seal(b"", b"x").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn kek_depends_on_password_salt_and_params() {
        let p = KdfParams::INSECURE_FOR_TESTS;
        let salt = [7u8; SALT_LEN];
        let k1 = SecretKey::derive_kek(b"pw", &salt, p).unwrap();
        let k1b = SecretKey::derive_kek(b"pw", &salt, p).unwrap();
        assert_eq!(*k1.0, *k1b.0);
        let k2 = SecretKey::derive_kek(b"pw2", &salt, p).unwrap();
        let k3 = SecretKey::derive_kek(b"pw", &[8u8; SALT_LEN], p).unwrap();
        let k4 = SecretKey::derive_kek(b"pw", &salt, KdfParams { t_cost: 2, ..p }).unwrap();
        assert_ne!(*k1.0, *k2.0);
        assert_ne!(*k1.0, *k3.0);
        assert_ne!(*k1.0, *k4.0);
    }

    #[test]
    fn params_encoding_and_bounds() {
        let p = KdfParams::RECOMMENDED;
        assert_eq!(KdfParams::decode(&p.encode()).unwrap(), p);
        assert!(KdfParams::decode(&[0u8; 11]).is_err());
        let huge = KdfParams { m_cost_kib: u32::MAX, ..p };
        assert!(SecretKey::derive_kek(b"pw", &[0; SALT_LEN], huge).is_err());
        let zero_t = KdfParams { t_cost: 0, ..p };
        assert!(SecretKey::derive_kek(b"pw", &[0; SALT_LEN], zero_t).is_err());
    }

    #[test]
    fn wrap_unwrap() {
        let kek = SecretKey::random().unwrap();
        let dk = SecretKey::random().unwrap();
        let aad = Aad::for_key(DOMAIN_DATA_KEY, "a", "k", 0, 3);
        let w = dk.wrap(&kek, aad.as_slice()).unwrap();
        let back = SecretKey::unwrap_with(&kek, aad.as_slice(), &w).unwrap();
        assert_eq!(*back.0, *dk.0);
        let wrong = Aad::for_key(DOMAIN_DATA_KEY, "a", "k", 0, 4);
        assert!(SecretKey::unwrap_with(&kek, wrong.as_slice(), &w).is_err());
        assert!(format!("{dk:?}").contains("redacted"));
    }
}
