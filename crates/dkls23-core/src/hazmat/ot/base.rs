//! Endemic base OT (MR19 shape, `ot.md` §2), random-output variant, over Ristretto255.
//!
//! Deviation from `ot.md` (documented in `docs/ot-choices.md`): the group is Ristretto255 (a
//! prime-order group, RFC 9496) instead of secp256k1, with RFC 9496 element derivation as the
//! hash to the group. The construction only needs *some* prime-order group with a random-oracle
//! hash into it; Ristretto255 does the same work 2–3× faster, which puts the keygen OT setup
//! within its budget. As in MR19, Bob (base-OT sender) uses one ephemeral scalar per OT for both
//! slots; the slot index b is inside the KDF so the two keys stay independent.
//!
//! Every scalar multiplication whose result must be encoded is computed on the half scalar and
//! encoded with `double_and_compress_batch`, which shares one inversion across the batch.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRng;
use subtle::{Choice, ConditionallySelectable};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::util::{boxed, select};
use super::{CheatKind, OtError, Role};
use crate::encoding::{DecodeError, ristretto_from_bytes};
use crate::params::LAMBDA_C;
use crate::transcript::{Tag, Xof, hash_to_ristretto};

/// Number of base OTs per ordered pair.
pub(crate) const N: usize = LAMBDA_C;

/// The two encoded points (A_{i,0}, A_{i,1}) of one base OT.
pub(crate) type PointPair = [[u8; 32]; 2];

/// Alice's (base-OT receiver's) secret state between KG1 and KG2.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Receiver {
    /// Choice bits c_i as 0/1 bytes.
    pub(crate) choices: Box<[u8; N]>,
    /// a_i / 2 (so that a_i·Y encodes with one batched inversion).
    a_half: Box<[Scalar; N]>,
}

struct Hashers {
    h2g: Xof,
    kdf: Xof,
}

impl Hashers {
    fn new(sid: &[u8; 32]) -> Self {
        let mut h2g = Xof::new(Tag::BotH2g);
        h2g.put(sid);
        let mut kdf = Xof::new(Tag::BotKdf);
        kdf.put(sid);
        Self { h2g, kdf }
    }

    /// H2C_bot(sid, i, b, A_{i,1−b}).
    fn h2g(&self, i: usize, b: u8, other: &[u8; 32]) -> RistrettoPoint {
        let mut h = self.h2g.clone();
        h.put_u16(i as u16).put(&[b]).put(other);
        hash_to_ristretto(h)
    }

    /// KDF_bot(sid, i, b, A_{i,0}, A_{i,1}, Y_i, DH).
    fn kdf(&self, i: usize, b: u8, a: &PointPair, y: &[u8; 32], dh: &[u8; 32]) -> [u8; 32] {
        let mut h = self.kdf.clone();
        h.put_u16(i as u16).put(&[b]).put(&a[0]).put(&a[1]).put(y).put(dh);
        h.finish()
    }
}

fn random_nonzero(rng: &mut (impl CryptoRng + ?Sized)) -> Scalar {
    loop {
        let s = Scalar::random(rng);
        if s != Scalar::ZERO {
            return s;
        }
    }
}

/// KG1 (base-OT part): Alice samples choice bits and sends (A_{i,0}, A_{i,1}) for every i.
pub(crate) fn receiver_start(
    rng: &mut (impl CryptoRng + ?Sized),
    sid: &[u8; 32],
) -> (Receiver, Box<[PointPair; N]>) {
    let hashers = Hashers::new(sid);
    let mut choices: Box<[u8; N]> = boxed(0u8);
    let mut a_half: Box<[Scalar; N]> = boxed(Scalar::ZERO);
    // X_i = 2·X'_i with X'_i uniform: uniform in the prime-order group, encoded in one batch.
    let mut x_half: Vec<RistrettoPoint> = Vec::with_capacity(N);
    for (c, a) in choices.iter_mut().zip(a_half.iter_mut()) {
        let mut byte = [0u8; 1];
        rng.fill_bytes(&mut byte);
        *c = byte[0] & 1;
        *a = random_nonzero(rng);
        let mut uniform = [0u8; 64];
        rng.fill_bytes(&mut uniform);
        x_half.push(RistrettoPoint::from_uniform_bytes(&uniform));
    }
    let x_enc = RistrettoPoint::double_and_compress_batch(&x_half);

    let mut msg: Box<[PointPair; N]> = boxed([[0u8; 32]; 2]);
    for (i, (((pair, c), a), x)) in
        msg.iter_mut().zip(choices.iter()).zip(a_half.iter()).zip(x_enc.iter()).enumerate()
    {
        let x = x.to_bytes();
        // A_{i,c} = a_i·G − H2C(sid, i, c, A_{i,1−c}), A_{i,1−c} = X_i.
        let h = hashers.h2g(i, *c, &x);
        let a_full = a + a;
        let y = (RISTRETTO_BASEPOINT_TABLE * &a_full - h).compress().to_bytes();
        let choice = Choice::from(*c);
        pair[0] = select(&y, &x, choice);
        pair[1] = select(&x, &y, choice);
    }
    (Receiver { choices, a_half }, msg)
}

/// KG2 (base-OT part): Bob checks Alice's points and derives both keys of every OT.
///
/// Returns Bob's points Y_i and keys (K_{i,0}, K_{i,1}).
#[allow(clippy::type_complexity)]
pub(crate) fn sender_respond(
    rng: &mut (impl CryptoRng + ?Sized),
    sid: &[u8; 32],
    a: &[PointPair; N],
) -> Result<(Box<[[u8; 32]; N]>, Box<[[[u8; 32]; 2]; N]>), OtError> {
    let hashers = Hashers::new(sid);
    let malformed = |reason| OtError::Malformed { culprit: Role::Alice, message: "KG1", reason };
    let mut y_half_scalars: Vec<Scalar> = Vec::with_capacity(N);
    let mut y_half_points: Vec<RistrettoPoint> = Vec::with_capacity(N);
    let mut dh_half: Vec<RistrettoPoint> = Vec::with_capacity(2 * N);
    for (i, pair) in a.iter().enumerate() {
        let a0 = ristretto_from_bytes(&pair[0]).map_err(malformed)?;
        let a1 = ristretto_from_bytes(&pair[1]).map_err(malformed)?;
        let p0 = a0 + hashers.h2g(i, 0, &pair[1]);
        let p1 = a1 + hashers.h2g(i, 1, &pair[0]);
        if p0.is_identity() || p1.is_identity() {
            return Err(OtError::Misbehaviour { culprit: Role::Alice, kind: CheatKind::BaseOt });
        }
        let y_half = random_nonzero(rng);
        y_half_points.push(RISTRETTO_BASEPOINT_TABLE * &y_half);
        dh_half.push(p0 * y_half);
        dh_half.push(p1 * y_half);
        y_half_scalars.push(y_half);
    }
    y_half_scalars.zeroize();
    let y_enc = RistrettoPoint::double_and_compress_batch(&y_half_points);
    let mut dh_enc = RistrettoPoint::double_and_compress_batch(&dh_half);
    dh_half.zeroize_points();

    let mut ys: Box<[[u8; 32]; N]> = boxed([0u8; 32]);
    let mut keys: Box<[[[u8; 32]; 2]; N]> = boxed([[0u8; 32]; 2]);
    for (i, (((y_out, k_out), y), pair)) in
        ys.iter_mut().zip(keys.iter_mut()).zip(y_enc.iter()).zip(a.iter()).enumerate()
    {
        *y_out = y.to_bytes();
        for (b, k) in k_out.iter_mut().enumerate() {
            let dh = dh_enc.get(2 * i + b).map(CompressedRistretto::to_bytes).unwrap_or_default();
            *k = hashers.kdf(i, b as u8, pair, y_out, &dh);
        }
    }
    for c in dh_enc.iter_mut() {
        c.0.zeroize();
    }
    Ok((ys, keys))
}

/// Alice finishes: K_i = KDF(sid, i, c_i, A_{i,0}, A_{i,1}, Y_i, a_i·Y_i).
pub(crate) fn receiver_finish(
    receiver: &Receiver,
    sid: &[u8; 32],
    a: &[PointPair; N],
    ys: &[[u8; 32]; N],
) -> Result<Box<[[u8; 32]; N]>, OtError> {
    let hashers = Hashers::new(sid);
    let mut dh_half: Vec<RistrettoPoint> = Vec::with_capacity(N);
    for (y, a_half) in ys.iter().zip(receiver.a_half.iter()) {
        let y = ristretto_from_bytes(y).map_err(|reason: DecodeError| OtError::Malformed {
            culprit: Role::Bob,
            message: "KG2",
            reason,
        })?;
        dh_half.push(y * a_half);
    }
    let mut dh_enc = RistrettoPoint::double_and_compress_batch(&dh_half);
    dh_half.zeroize_points();
    let mut keys: Box<[[u8; 32]; N]> = boxed([0u8; 32]);
    for (i, ((((k, c), pair), y), dh)) in keys
        .iter_mut()
        .zip(receiver.choices.iter())
        .zip(a.iter())
        .zip(ys.iter())
        .zip(dh_enc.iter())
        .enumerate()
    {
        *k = hashers.kdf(i, *c, pair, y, &dh.to_bytes());
    }
    for c in dh_enc.iter_mut() {
        c.0.zeroize();
    }
    Ok(keys)
}

trait ZeroizePoints {
    fn zeroize_points(&mut self);
}

impl ZeroizePoints for Vec<RistrettoPoint> {
    fn zeroize_points(&mut self) {
        for p in self.iter_mut() {
            p.conditional_assign(&RistrettoPoint::default(), Choice::from(1));
        }
        self.clear();
    }
}
