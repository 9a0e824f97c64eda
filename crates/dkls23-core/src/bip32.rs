//! BIP32 non-hardened public derivation on a threshold key (`protocols.md` §5.1–5.2).
//!
//! Signing under a path uses the additive tweak τ = Σ τ_ι: every party uses the Shamir share
//! `s_i + τ`, so the derived key share is a normal share of `x + τ` with the same indices.

use hmac::{Hmac, KeyInit, Mac};
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::Group;
use k256::{FieldBytes, ProjectivePoint, Scalar};
use sha2::Sha512;

use crate::encoding::point_to_bytes;

/// First hardened child index.
pub const HARDENED: u32 = 1 << 31;

/// Why a derivation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeriveError {
    /// Hardened indices need the private key inside the HMAC and cannot be derived jointly.
    #[error(
        "hardened index {0} cannot be derived from a threshold key (use non-hardened indices < 2^31)"
    )]
    Hardened(u32),
    /// The HMAC output was ≥ q or gave the identity (probability ≈ 2^-127); BIP32 says use the
    /// next index.
    #[error("index {0} yields an invalid child key; use the next index")]
    InvalidChild(u32),
}

/// The result of deriving along a path: total tweak, child public key and chain code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// τ = Σ τ_ι mod q (zero for the empty path).
    pub tweak: Scalar,
    /// X' = X + τ·G.
    pub public_key: ProjectivePoint,
    /// The child chain code.
    pub chain_code: [u8; 32],
}

/// CKDpub for one non-hardened step: returns (τ_ι, P_child, c_child).
pub fn ckd_pub(
    parent: &ProjectivePoint,
    chain_code: &[u8; 32],
    index: u32,
) -> Result<(Scalar, ProjectivePoint, [u8; 32]), DeriveError> {
    if index >= HARDENED {
        return Err(DeriveError::Hardened(index));
    }
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(chain_code)
        .map_err(|_| DeriveError::InvalidChild(index))?;
    mac.update(&point_to_bytes(parent));
    mac.update(&index.to_be_bytes());
    let out = mac.finalize().into_bytes();
    let (il, ir) = out.split_at(32);
    let il: [u8; 32] = il.try_into().map_err(|_| DeriveError::InvalidChild(index))?;
    let tau: Scalar = Option::from(Scalar::from_repr(FieldBytes::from(il)))
        .ok_or(DeriveError::InvalidChild(index))?;
    let child = *parent + ProjectivePoint::mul_by_generator(&tau);
    if bool::from(child.is_identity()) {
        return Err(DeriveError::InvalidChild(index));
    }
    let mut cc = [0u8; 32];
    cc.copy_from_slice(ir);
    Ok((tau, child, cc))
}

/// Derives along `path` from `(public_key, chain_code)`.
pub fn derive(
    public_key: &ProjectivePoint,
    chain_code: &[u8; 32],
    path: &[u32],
) -> Result<Derived, DeriveError> {
    let mut d = Derived { tweak: Scalar::ZERO, public_key: *public_key, chain_code: *chain_code };
    for &index in path {
        let (tau, child, cc) = ckd_pub(&d.public_key, &d.chain_code, index)?;
        d.tweak += tau;
        d.public_key = child;
        d.chain_code = cc;
    }
    Ok(d)
}
