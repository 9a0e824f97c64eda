//! What presigning produces and the online round that consumes it: [`Presignature`], its
//! stored encoding, S3 ([`Presignature::sign`]) and the combination of every signer's S3 into
//! a verified [`Signature`] ([`PartialSignature`]).

use std::collections::BTreeMap;

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, VerifyingKey};
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{FieldBytes, ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::ZeroizeOnDrop;

use super::S3_LEN;
use crate::encoding::{POINT_LEN, Reader, SCALAR_LEN, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::math::PartyIndex;
use crate::round::{Expected, Outgoing, Received, Round, Step, expect_from, wire_round};
use crate::transcript::{Tag, th};

/// Message-id round of S3 in a run that presigns and signs in one go.
pub const ONLINE_ROUND: u16 = 4;

/// A single-use presignature: everything except the message. Not `Clone`; consumed by
/// [`Presignature::sign`]. Persist it as consumed before releasing the partial signature.
///
/// Signing twice with one presignature does not compile:
/// ```compile_fail
/// fn twice(p: dkls23_core::sign::Presignature) {
///     let _ = p.sign(&[1; 32], 4);
///     let _ = p.sign(&[2; 32], 4); // use of moved value
/// }
/// ```
/// nor does copying it:
/// ```compile_fail
/// fn copy(p: &dkls23_core::sign::Presignature) -> dkls23_core::sign::Presignature {
///     p.clone()
/// }
/// ```
#[derive(ZeroizeOnDrop)]
pub struct Presignature {
    #[zeroize(skip)]
    pub(super) setup_hash: [u8; 32],
    #[zeroize(skip)]
    pub(super) key_id: [u8; 32],
    #[zeroize(skip)]
    pub(super) keygen_sid: [u8; 32],
    #[zeroize(skip)]
    pub(super) sigid: [u8; 32],
    #[zeroize(skip)]
    pub(super) signers: Vec<PartyIndex>,
    #[zeroize(skip)]
    pub(super) public_key: ProjectivePoint,
    pub(super) r: Scalar,
    #[zeroize(skip)]
    pub(super) y_odd: bool,
    #[zeroize(skip)]
    pub(super) x_big: bool,
    pub(super) phi: Scalar,
    pub(super) u: Scalar,
    pub(super) v: Scalar,
    #[zeroize(skip)]
    pub(super) me: PartyIndex,
}

impl std::fmt::Debug for Presignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presignature")
            .field("sigid", &crate::ot_hex(&self.sigid))
            .finish_non_exhaustive()
    }
}

/// The public part of a partial signature, kept by a party to combine S3 messages.
#[derive(Debug, Clone)]
pub struct PartialSignature {
    sigid: [u8; 32],
    m_digest: [u8; 32],
    m: Scalar,
    signers: Vec<PartyIndex>,
    public_key: ProjectivePoint,
    r: Scalar,
    y_odd: bool,
    x_big: bool,
    me: PartyIndex,
    own: [u8; S3_LEN],
    /// The prehash being signed.
    m32: [u8; 32],
    /// The message-id round of S3.
    round: u16,
}

/// A finished, verified ECDSA signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// r (big-endian).
    pub r: [u8; 32],
    /// s (big-endian), low-s normalised.
    pub s: [u8; 32],
    /// Recovery id (0..=3): parity of R.y plus 2 if x(R) ≥ q.
    pub recovery_id: u8,
}

impl Signature {
    /// The `k256` signature.
    pub fn to_k256(&self) -> Option<EcdsaSignature> {
        EcdsaSignature::from_scalars(self.r, self.s).ok()
    }
    /// DER encoding.
    pub fn to_der(&self) -> Vec<u8> {
        self.to_k256().map(|s| s.to_der().as_bytes().to_vec()).unwrap_or_default()
    }
    /// 65 bytes r ‖ s ‖ v with Ethereum's v = 27 + recovery id.
    pub fn to_rsv(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = 27 + self.recovery_id;
        out
    }
}

/// Version of the [`Presignature::to_bytes`] format.
pub const PRESIGNATURE_VERSION: u8 = 1;
const PRESIG_MAGIC: &[u8; 4] = b"DPS1";

impl Presignature {
    /// `setup_hash` of the signing setup that produced it (the final round must use that setup).
    pub fn setup_hash(&self) -> &[u8; 32] {
        &self.setup_hash
    }

    /// The key (and, via [`Self::keygen_sid`], the epoch) it was made for.
    pub fn key_id(&self) -> &[u8; 32] {
        &self.key_id
    }

    /// The epoch binding: presignatures of an older epoch are refused after a reshare.
    pub fn keygen_sid(&self) -> &[u8; 32] {
        &self.keygen_sid
    }

    /// The signing set.
    pub fn signers(&self) -> &[PartyIndex] {
        &self.signers
    }

    /// Serialises the presignature for storage (secret: encrypt it at rest, and delete it
    /// atomically before the final round so it can never be used twice).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(
            4 + 1 + 4 * 32 + 2 + 2 + 2 * self.signers.len() + POINT_LEN + 2 + 4 * SCALAR_LEN,
        ));
        out.extend_from_slice(PRESIG_MAGIC);
        out.push(PRESIGNATURE_VERSION);
        for h in [&self.setup_hash, &self.key_id, &self.keygen_sid, &self.sigid] {
            out.extend_from_slice(h);
        }
        out.extend_from_slice(&self.me.to_be_bytes());
        out.extend_from_slice(&(self.signers.len() as u16).to_be_bytes());
        for j in &self.signers {
            out.extend_from_slice(&j.to_be_bytes());
        }
        out.extend_from_slice(&point_to_bytes(&self.public_key));
        out.push(u8::from(self.y_odd));
        out.push(u8::from(self.x_big));
        for s in [&self.r, &self.phi, &self.u, &self.v] {
            out.extend_from_slice(&scalar_to_bytes(s));
        }
        out
    }

    /// Strict decoding, checked against the key share it must belong to (same key, same epoch,
    /// same party, a valid signing set of that key).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for malformed bytes or a presignature of another key, epoch or
    /// party.
    pub fn from_bytes(bytes: &[u8], share: &KeyShare) -> Result<Self, Error> {
        let bad = |what: &str| Error::InvalidInput(format!("presignature: {what}"));
        let mut r = Reader::new(bytes);
        let head: [u8; 5] = r.array().map_err(|_| bad("truncated"))?;
        if head[..4] != PRESIG_MAGIC[..] || head[4] != PRESIGNATURE_VERSION {
            return Err(bad("unknown format or version"));
        }
        let setup_hash = r.array().map_err(|_| bad("truncated"))?;
        let key_id: [u8; 32] = r.array().map_err(|_| bad("truncated"))?;
        let keygen_sid: [u8; 32] = r.array().map_err(|_| bad("truncated"))?;
        let sigid = r.array().map_err(|_| bad("truncated"))?;
        let me = r.u16().map_err(|_| bad("truncated"))?;
        let count = r.u16().map_err(|_| bad("truncated"))?;
        if count > share.parties() {
            return Err(bad("signing set larger than the key's committee"));
        }
        let mut signers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            signers.push(r.u16().map_err(|_| bad("truncated"))?);
        }
        let public_key = r.point().map_err(|e| bad(&e.to_string()))?;
        let [y_odd, x_big] = r.array::<2>().map_err(|_| bad("truncated"))?;
        if y_odd > 1 || x_big > 1 {
            return Err(bad("invalid flag byte"));
        }
        if !bool::from(key_id.ct_eq(share.key_id()))
            || !bool::from(keygen_sid.ct_eq(share.keygen_sid()))
        {
            return Err(bad("it belongs to another key or another epoch of this key"));
        }
        if me != share.index() {
            return Err(bad("it belongs to another party of this key"));
        }
        let sorted = signers.windows(2).all(|w| w.first() < w.get(1));
        let in_range = signers.iter().all(|&j| j >= 1 && j <= share.parties());
        if !sorted
            || !in_range
            || !signers.contains(&me)
            || signers.len() < usize::from(share.threshold())
        {
            return Err(bad("invalid signing set"));
        }
        let mut scalars = zeroize::Zeroizing::new([Scalar::ZERO; 4]);
        for s in scalars.iter_mut() {
            *s = r.scalar().map_err(|e| bad(&e.to_string()))?;
        }
        r.finish().map_err(|_| bad("trailing bytes"))?;
        let [rr, phi, u, v] = *scalars;
        if bool::from(rr.is_zero()) {
            return Err(bad("r = 0"));
        }
        Ok(Self {
            setup_hash,
            key_id,
            keygen_sid,
            sigid,
            signers,
            public_key,
            r: rr,
            y_odd: y_odd == 1,
            x_big: x_big == 1,
            phi,
            u,
            v,
            me,
        })
    }

    /// The signing session id this presignature belongs to.
    pub fn sigid(&self) -> &[u8; 32] {
        &self.sigid
    }

    /// The (derived) public key the signature will verify under.
    pub fn public_key(&self) -> &ProjectivePoint {
        &self.public_key
    }

    /// S3: signs the 32-byte prehash `m32`, consuming the presignature. `round` is the
    /// message-id round S3 is sent in: [`ONLINE_ROUND`] when presigning and signing run in one
    /// go, [`FINISH_S3_ROUND`](super::request::FINISH_S3_ROUND) after a finish commitment.
    /// Returns the last round (it combines the other signers' S3) and this party's S3.
    pub fn sign(self, m32: &[u8; 32], round: u16) -> (PartialSignature, Outgoing) {
        let m = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*m32));
        let w = m * self.phi + self.r * self.v;
        let m_digest = th(Tag::DsgM, &[m32]);
        let mut own = [0u8; S3_LEN];
        own[..32].copy_from_slice(&self.sigid);
        own[32..64].copy_from_slice(&m_digest);
        own[64..96].copy_from_slice(&scalar_to_bytes(&self.u));
        own[96..128].copy_from_slice(&scalar_to_bytes(&w));
        let partial = PartialSignature {
            sigid: self.sigid,
            m_digest,
            m,
            signers: self.signers.clone(),
            public_key: self.public_key,
            r: self.r,
            y_odd: self.y_odd,
            x_big: self.x_big,
            me: self.me,
            own,
            m32: *m32,
            round,
        };
        (partial, Outgoing::broadcast(own.to_vec()))
    }
}

impl PartialSignature {
    fn others(&self) -> Vec<PartyIndex> {
        self.signers.iter().copied().filter(|&j| j != self.me).collect()
    }

    /// Combines every signer's S3 message (the others', keyed by sender) into a verified
    /// signature.
    fn combine(&self, s3: &BTreeMap<PartyIndex, Vec<u8>>) -> Result<Signature, Error> {
        let m32 = &self.m32;
        let round = self.round;
        let others = self.others();
        expect_from(round, s3, &others)?;
        let mut u_sum = Scalar::ZERO;
        let mut w_sum = Scalar::ZERO;
        for &j in &self.signers {
            let b: &[u8] =
                if j == self.me { &self.own } else { s3.get(&j).map_or(&[][..], Vec::as_slice) };
            if b.len() != S3_LEN {
                return Err(Error::blame(j, "S3 has the wrong length"));
            }
            if b.get(..32) != Some(&self.sigid[..]) || b.get(32..64) != Some(&self.m_digest[..]) {
                return Err(Error::ViewMismatch { round: wire_round(round), party: j });
            }
            let mut r = Reader::new(b.get(64..).unwrap_or_default());
            u_sum += r.scalar().map_err(|e| Error::blame(j, format!("S3 u: {e}")))?;
            w_sum += r.scalar().map_err(|e| Error::blame(j, format!("S3 w: {e}")))?;
        }
        let _ = self.m;
        let u_inv: Option<Scalar> = u_sum.invert().into();
        let u_inv = u_inv.ok_or_else(|| Error::Unattributable("Σu = 0".into()))?;
        let mut s = w_sum * u_inv;
        if bool::from(s.is_zero()) {
            return Err(Error::Unattributable("s = 0".into()));
        }
        let mut y_odd = self.y_odd;
        if bool::from(s.is_high()) {
            s = -s;
            y_odd = !y_odd;
        }
        let recovery_id = u8::from(y_odd) + 2 * u8::from(self.x_big);
        let sig = Signature { r: scalar_to_bytes(&self.r), s: scalar_to_bytes(&s), recovery_id };
        let k = sig
            .to_k256()
            .ok_or_else(|| Error::Unattributable("invalid signature scalars".into()))?;
        let vk = VerifyingKey::from_affine(self.public_key.to_affine())
            .map_err(|_| Error::Unattributable("invalid public key".into()))?;
        if vk.verify_prehash(m32, &k).is_err() {
            return Err(Error::Unattributable("the combined signature does not verify".into()));
        }
        let rid = RecoveryId::trial_recovery_from_prehash(&vk, m32, &k)
            .map_err(|_| Error::Unattributable("no recovery id recovers the key".into()))?;
        if rid.to_byte() != recovery_id {
            return Err(Error::Unattributable("recovery id mismatch".into()));
        }
        Ok(sig)
    }
}

impl<'a> Round<'a> for PartialSignature {
    type Output = Signature;

    fn number(&self) -> u16 {
        self.round
    }

    fn expects(&self) -> Expected {
        Expected::broadcasts(self.others())
    }

    /// # Errors
    /// [`Error::ViewMismatch`] for a different sigid or message digest;
    /// [`Error::Unattributable`] if the result does not verify (the presignature is gone; no ban).
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, Signature>, Error> {
        self.combine(&got.bcast).map(Step::Done)
    }
}
