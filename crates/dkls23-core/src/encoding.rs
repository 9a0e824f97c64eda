//! Strict wire encodings of scalars and points (`protocols.md` §1.1, `ot.md` §1.2).
//!
//! * Scalars: 32-byte big-endian, canonical; values ≥ q are rejected (never reduced).
//! * secp256k1 points: 33-byte SEC1 compressed; the identity, a bad prefix, x ≥ p and x not on
//!   the curve are rejected. (k256 maps the all-zero string to the identity; we reject it.)
//! * Ristretto255 points (base OT only): 32-byte canonical encodings, identity rejected.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::traits::IsIdentity;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::{Group, GroupEncoding};
use k256::elliptic_curve::sec1::ToSec1Point;
use k256::{AffinePoint, ProjectivePoint, Scalar};

/// Bytes of an encoded scalar.
pub const SCALAR_LEN: usize = 32;
/// Bytes of an encoded secp256k1 point.
pub const POINT_LEN: usize = 33;
/// Bytes of an encoded Ristretto255 point.
pub const RISTRETTO_LEN: usize = 32;

/// Why an encoding was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input has the wrong length.
    #[error("wrong length: expected {expected} bytes, got {got}")]
    Length {
        /// Expected length.
        expected: usize,
        /// Received length.
        got: usize,
    },
    /// A scalar is not below the group order.
    #[error("scalar is not canonical (>= q)")]
    NonCanonicalScalar,
    /// A scalar declared non-zero is zero.
    #[error("scalar is zero")]
    ZeroScalar,
    /// A point encoding is invalid (bad prefix, x out of range, not on the curve).
    #[error("invalid point encoding")]
    InvalidPoint,
    /// The point is the identity.
    #[error("point is the identity")]
    IdentityPoint,
    /// Any other structural problem, with a fixed description.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// Encodes a scalar (32 bytes big-endian).
pub fn scalar_to_bytes(s: &Scalar) -> [u8; SCALAR_LEN] {
    s.to_bytes().into()
}

/// Decodes a canonical scalar, rejecting values ≥ q.
pub fn scalar_from_bytes(bytes: &[u8; SCALAR_LEN]) -> Result<Scalar, DecodeError> {
    Option::from(Scalar::from_repr((*bytes).into())).ok_or(DecodeError::NonCanonicalScalar)
}

/// Decodes a canonical, non-zero scalar.
pub fn nonzero_scalar_from_bytes(bytes: &[u8; SCALAR_LEN]) -> Result<Scalar, DecodeError> {
    let s = scalar_from_bytes(bytes)?;
    if bool::from(s.is_zero()) {
        return Err(DecodeError::ZeroScalar);
    }
    Ok(s)
}

/// Decodes a scalar from a slice of exactly 32 bytes.
pub fn scalar_from_slice(bytes: &[u8]) -> Result<Scalar, DecodeError> {
    scalar_from_bytes(&fixed(bytes)?)
}

/// Encodes a secp256k1 point (33-byte SEC1 compressed). The identity encodes as 33 zero bytes,
/// which [`point_from_bytes`] rejects.
pub fn point_to_bytes(p: &ProjectivePoint) -> [u8; POINT_LEN] {
    let enc = p.to_affine().to_sec1_point(true);
    let mut out = [0u8; POINT_LEN];
    if let Some(dst) = out.get_mut(..enc.as_bytes().len()) {
        dst.copy_from_slice(enc.as_bytes());
    }
    out
}

/// Decodes a secp256k1 point strictly: compressed SEC1 only, identity rejected.
pub fn point_from_bytes(bytes: &[u8; POINT_LEN]) -> Result<ProjectivePoint, DecodeError> {
    match bytes[0] {
        0x02 | 0x03 => {}
        _ => return Err(DecodeError::InvalidPoint),
    }
    let affine: Option<AffinePoint> = AffinePoint::from_bytes(&(*bytes).into()).into();
    let p = ProjectivePoint::from(affine.ok_or(DecodeError::InvalidPoint)?);
    if bool::from(p.is_identity()) {
        return Err(DecodeError::IdentityPoint);
    }
    Ok(p)
}

/// Decodes a secp256k1 point from a slice of exactly 33 bytes.
pub fn point_from_slice(bytes: &[u8]) -> Result<ProjectivePoint, DecodeError> {
    point_from_bytes(&fixed(bytes)?)
}

/// Decodes a Ristretto255 point strictly (canonical encoding, not the identity).
pub fn ristretto_from_bytes(bytes: &[u8; RISTRETTO_LEN]) -> Result<RistrettoPoint, DecodeError> {
    let p = CompressedRistretto(*bytes).decompress().ok_or(DecodeError::InvalidPoint)?;
    if p.is_identity() {
        return Err(DecodeError::IdentityPoint);
    }
    Ok(p)
}

/// Converts a slice into a fixed-size array, or reports the length mismatch.
pub fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(bytes).map_err(|_| DecodeError::Length { expected: N, got: bytes.len() })
}

/// A cursor over received bytes that hands out fixed-size pieces and never panics.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Malformed("message truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        fixed(self.take(N)?)
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a canonical scalar.
    pub fn scalar(&mut self) -> Result<Scalar, DecodeError> {
        scalar_from_bytes(&self.array()?)
    }

    /// Reads a strictly encoded secp256k1 point.
    pub fn point(&mut self) -> Result<ProjectivePoint, DecodeError> {
        point_from_bytes(&self.array()?)
    }

    /// Succeeds only if every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() { Ok(()) } else { Err(DecodeError::Malformed("trailing bytes")) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;

    const Q_HEX: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

    #[test]
    fn scalars_at_and_above_q_are_rejected() {
        let q: [u8; 32] = hex::decode(Q_HEX).unwrap().try_into().unwrap();
        assert_eq!(scalar_from_bytes(&q), Err(DecodeError::NonCanonicalScalar));
        assert_eq!(scalar_from_bytes(&[0xff; 32]), Err(DecodeError::NonCanonicalScalar));
        let mut q_minus_1 = q;
        q_minus_1[31] -= 1;
        assert_eq!(scalar_from_bytes(&q_minus_1).unwrap(), -Scalar::ONE);
        assert_eq!(nonzero_scalar_from_bytes(&[0; 32]), Err(DecodeError::ZeroScalar));
        assert_eq!(scalar_from_slice(&[0; 31]), Err(DecodeError::Length { expected: 32, got: 31 }));
    }

    #[test]
    fn points_reject_identity_bad_prefix_and_off_curve() {
        assert!(point_from_bytes(&[0u8; 33]).is_err());
        let g = point_to_bytes(&ProjectivePoint::GENERATOR);
        assert_eq!(point_from_bytes(&g).unwrap(), ProjectivePoint::GENERATOR);
        for prefix in [0x00u8, 0x01, 0x04, 0x05, 0xff] {
            let mut b = g;
            b[0] = prefix;
            assert_eq!(point_from_bytes(&b), Err(DecodeError::InvalidPoint), "prefix {prefix}");
        }
        // x = p (field modulus) is out of range; x = 5 gives y^2 = 132, a non-residue mod p.
        let mut x_is_p = [0xffu8; 33];
        x_is_p[0] = 0x02;
        x_is_p[29] = 0xfe;
        x_is_p[30] = 0xff;
        x_is_p[31] = 0xfc;
        x_is_p[32] = 0x2f;
        assert_eq!(point_from_bytes(&x_is_p), Err(DecodeError::InvalidPoint));
        let mut off = [0u8; 33];
        off[0] = 0x02;
        off[32] = 5;
        assert_eq!(point_from_bytes(&off), Err(DecodeError::InvalidPoint));
        assert_eq!(point_to_bytes(&ProjectivePoint::IDENTITY), [0u8; 33]);
    }

    #[test]
    fn round_trips() {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
        for _ in 0..32 {
            let s = Scalar::random(&mut rng);
            assert_eq!(scalar_from_bytes(&scalar_to_bytes(&s)).unwrap(), s);
            let p = ProjectivePoint::GENERATOR * s;
            assert_eq!(point_from_bytes(&point_to_bytes(&p)).unwrap(), p);
        }
    }

    #[test]
    fn ristretto_rejects_identity_and_noncanonical() {
        assert_eq!(ristretto_from_bytes(&[0u8; 32]), Err(DecodeError::IdentityPoint));
        assert_eq!(ristretto_from_bytes(&[0xffu8; 32]), Err(DecodeError::InvalidPoint));
    }

    #[test]
    fn reader_never_panics_on_short_input() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(r.take(4).is_err());
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert!(r.u16().is_err());
        let r = Reader::new(&[1]);
        assert!(r.finish().is_err());
    }
}
