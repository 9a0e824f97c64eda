//! Fiat–Shamir Schnorr proofs of knowledge of a discrete log (`protocols.md` §1.6).

use k256::elliptic_curve::group::Group;
use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;

use crate::encoding::{DecodeError, POINT_LEN, Reader, point_to_bytes, scalar_to_bytes};
use crate::math::random_nonzero;
use crate::transcript::{Hs, Tag};

/// A proof (T, z) that the prover knows a with P = a·G; 65 bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pok {
    t: ProjectivePoint,
    z: Scalar,
}

/// Encoded size of a [`Pok`].
pub const POK_LEN: usize = POINT_LEN + 32;

fn challenge(tag: Tag, ctx: &[&[u8]], p: &ProjectivePoint, t: &ProjectivePoint) -> Scalar {
    let mut h = Hs::new(tag);
    for c in ctx {
        h.put(c);
    }
    h.put(&point_to_bytes(p)).put(&point_to_bytes(t));
    h.finish_scalar()
}

impl Pok {
    /// Proves knowledge of `a` for `P = a·G` under `tag` and context `ctx` (which must include the
    /// session id, the prover's index and the position of the proven value).
    pub fn prove(rng: &mut (impl CryptoRng + ?Sized), tag: Tag, ctx: &[&[u8]], a: &Scalar) -> Self {
        let p = ProjectivePoint::mul_by_generator(a);
        let mut omega = random_nonzero(rng);
        let t = ProjectivePoint::mul_by_generator(&omega);
        let c = challenge(tag, ctx, &p, &t);
        let z = omega + c * a;
        omega = Scalar::ZERO;
        let _ = omega;
        Self { t, z }
    }

    /// Verifies the proof for `P`: `P ≠ O`, `T ≠ O` and `z·G == T + c·P`.
    pub fn verify(&self, tag: Tag, ctx: &[&[u8]], p: &ProjectivePoint) -> bool {
        if bool::from(p.is_identity()) || bool::from(self.t.is_identity()) {
            return false;
        }
        let c = challenge(tag, ctx, p, &self.t);
        ProjectivePoint::mul_by_generator(&self.z) == self.t + *p * c
    }

    /// Appends the 65-byte encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&point_to_bytes(&self.t));
        out.extend_from_slice(&scalar_to_bytes(&self.z));
    }

    /// Reads a strictly encoded proof.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.point()?;
        let z = r.scalar()?;
        Ok(Self { t, z })
    }
}

impl Default for Pok {
    fn default() -> Self {
        Self { t: ProjectivePoint::IDENTITY, z: Scalar::ZERO }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn prove_verify_and_bind_context() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let a = Scalar::random(&mut rng);
        let p = ProjectivePoint::mul_by_generator(&a);
        let pok = Pok::prove(&mut rng, Tag::DkgPokCoef, &[b"sid", b"1"], &a);
        assert!(pok.verify(Tag::DkgPokCoef, &[b"sid", b"1"], &p));
        assert!(!pok.verify(Tag::DkgPokCoef, &[b"sid", b"2"], &p));
        assert!(!pok.verify(Tag::DkgPokShare, &[b"sid", b"1"], &p));
        assert!(!pok.verify(Tag::DkgPokCoef, &[b"sid", b"1"], &(p + ProjectivePoint::GENERATOR)));
        assert!(!pok.verify(Tag::DkgPokCoef, &[b"sid", b"1"], &ProjectivePoint::IDENTITY));
        let mut buf = Vec::new();
        pok.encode_into(&mut buf);
        assert_eq!(buf.len(), POK_LEN);
        let back = Pok::read(&mut Reader::new(&buf)).unwrap();
        assert_eq!(back, pok);
    }
}
