//! DKLs23 signing with presigning (`protocols.md` §3).
//!
//! Every round implements [`Round`]; the numbers are the message-id rounds (S0 is round 1).
//!
//! ```text
//! start                  -> (SignRound1, S0 broadcast)        commitments, fresh ρ
//! SignRound1 next        -> (SignRound2, S1 p2p)               RVOLE SG1 as Bob to every signer
//! SignRound2 next        -> (SignRound3, S2 broadcast + p2p)   sigid echo BEFORE any OT work
//! SignRound3 next        -> Presignature                       μ / Γ / Σpk checks (§3.3)
//! Presignature::sign     -> (PartialSignature, S3 broadcast)   consumes the presignature
//! PartialSignature next  -> Signature                          low-s, recovery id, verified
//! ```
//! A [`Presignature`] is neither `Clone` nor `Copy`: `sign` consumes it, so it cannot sign twice.
//! A stored presignature is finished by [`FinishCommitRound`] (a commitment to the message
//! first, then S3; see [`request`]).

use std::collections::BTreeMap;

use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::Group;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::point::AffineCoordinates;
use k256::{FieldBytes, ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

mod presignature;
pub mod request;

pub use presignature::{
    ONLINE_ROUND, PRESIGNATURE_VERSION, PartialSignature, Presignature, Signature,
};
pub use request::{FinishCommitRound, PresignRequest, SignRequest, finish_marker};

use crate::bip32;
use crate::encoding::{POINT_LEN, Reader, SCALAR_LEN, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::math::{PartyIndex, lagrange_at_zero, random_nonzero, zero_share};
use crate::ot::{self, BobVole, Sg1, Sg2};
use crate::round::{Expected, Inbox, Outgoing, Received, Round, Step, expect_from, payload};
use crate::transcript::{Tag, Th, th};

/// Public parameters of one signing session (from the setup; identical at every signer).
#[derive(Debug, Clone)]
pub struct SignConfig {
    /// `setup_hash` of the session setup (binds signers, key, path and message if any).
    pub setup_hash: [u8; 32],
    /// The signing set S (any order; it is sorted). Must contain this party and ≥ t members.
    pub signers: Vec<PartyIndex>,
    /// Non-hardened BIP32 derivation path (empty for the root key).
    pub path: Vec<u32>,
    /// This party's ephemeral X25519 public key for the session.
    pub ephemeral_public: [u8; 32],
    /// Parties this party has banned for this key: signing with them is refused.
    pub banned: Vec<PartyIndex>,
}

/// `vsid` for Alice `a` and Bob `b`: TH("dsg/rvole", sigid, u16(a), u16(b)).
fn vsid(sigid: &[u8; 32], alice: PartyIndex, bob: PartyIndex) -> [u8; 32] {
    th(Tag::DsgRvole, &[sigid, &alice.to_be_bytes(), &bob.to_be_bytes()])
}

const S0_LEN: usize = 96;
// The p2p messages carry no separate sigid echo: the RVOLE messages start with their vsid,
// which is derived from sigid and checked for every sender before any OT processing.
const S1_LEN: usize = Sg1::LEN;
const S2_P2P_LEN: usize = Sg2::LEN + 2 * POINT_LEN + SCALAR_LEN;
const S2_BCAST_LEN: usize = 32 + 2 * POINT_LEN + 32;
const S3_LEN: usize = 64 + 2 * SCALAR_LEN;

struct Secrets {
    k: Scalar,
    phi: Scalar,
}

impl Drop for Secrets {
    fn drop(&mut self) {
        self.k.zeroize();
        self.phi.zeroize();
    }
}

/// State after S0.
pub struct SignRound1<'a> {
    share: &'a KeyShare,
    cfg: SignConfig,
    signers: Vec<PartyIndex>,
    derived: bip32::Derived,
    secrets: Secrets,
    r_point: ProjectivePoint,
    salt: [u8; 32],
    own_s0: [u8; S0_LEN],
}

/// S0: validate the request, sample k_i and φ_i, commit to R_i.
///
/// # Errors
/// [`Error::InvalidInput`] before anything is sent: this party not in S, |S| < t, duplicate or
/// unknown indices, a banned member, a hardened path.
pub fn start<'a>(
    rng: &mut (impl CryptoRng + ?Sized),
    share: &'a KeyShare,
    cfg: SignConfig,
) -> Result<(SignRound1<'a>, Outgoing), Error> {
    let me = share.index();
    let mut signers = cfg.signers.clone();
    signers.sort_unstable();
    if signers.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(Error::InvalidInput("the signing set contains a duplicate index".into()));
    }
    if !signers.contains(&me) {
        return Err(Error::InvalidInput(format!(
            "this party (index {me}) is not in the signing set"
        )));
    }
    if signers.len() < usize::from(share.threshold()) {
        return Err(Error::InvalidInput(format!(
            "{} signers cannot sign with a {}-of-{} key",
            signers.len(),
            share.threshold(),
            share.parties()
        )));
    }
    if let Some(bad) = signers.iter().find(|&&j| j == 0 || j > share.parties()) {
        return Err(Error::InvalidInput(format!("index {bad} is not a party of this key")));
    }
    if let Some(b) = signers.iter().find(|j| cfg.banned.contains(j)) {
        return Err(Error::InvalidInput(format!(
            "party {b} is banned for this key; reshare without it"
        )));
    }
    let derived = bip32::derive(share.public_key(), share.chain_code(), &cfg.path)
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
    let k = random_nonzero(rng);
    let phi = random_nonzero(rng);
    let r_point = ProjectivePoint::mul_by_generator(&k);
    let mut rho = [0u8; 32];
    rng.fill_bytes(&mut rho);
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    let gamma =
        th(Tag::DsgComR, &[&cfg.setup_hash, &me.to_be_bytes(), &point_to_bytes(&r_point), &salt]);
    let mut own_s0 = [0u8; S0_LEN];
    for (dst, src) in own_s0.chunks_exact_mut(32).zip([&rho, &cfg.ephemeral_public, &gamma]) {
        dst.copy_from_slice(src);
    }
    Ok((
        SignRound1 {
            share,
            cfg,
            signers,
            derived,
            secrets: Secrets { k, phi },
            r_point,
            salt,
            own_s0,
        },
        Outgoing::broadcast(own_s0.to_vec()),
    ))
}

/// State after S1.
pub struct SignRound2<'a> {
    r1: SignRound1<'a>,
    sigid: [u8; 32],
    sk: zeroize::Zeroizing<Scalar>,
    pk: ProjectivePoint,
    commitments: BTreeMap<PartyIndex, [u8; 32]>,
    ephemerals: BTreeMap<PartyIndex, [u8; 32]>,
    bob: BTreeMap<PartyIndex, BobVole>,
}

impl<'a> SignRound1<'a> {
    fn others(&self) -> Vec<PartyIndex> {
        let me = self.share.index();
        self.signers.iter().copied().filter(|&j| j != me).collect()
    }

    /// Consumes the S0 broadcasts; derives sigid and this party's session key share and starts
    /// one RVOLE as Bob with every other signer (S1).
    fn advance(
        self,
        rng: &mut (impl CryptoRng + ?Sized),
        s0: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(SignRound2<'a>, Outgoing), Error> {
        let me = self.share.index();
        let others = self.others();
        expect_from(1, s0, &others)?;
        let mut h = Th::new(Tag::DsgSid);
        h.put(&self.cfg.setup_hash)
            .put(self.share.keygen_sid())
            .put(&point_to_bytes(&self.derived.public_key));
        let mut commitments = BTreeMap::new();
        let mut ephemerals = BTreeMap::new();
        for &j in &self.signers {
            let bytes: &[u8] =
                if j == me { &self.own_s0 } else { s0.get(&j).map_or(&[][..], Vec::as_slice) };
            if bytes.len() != S0_LEN {
                return Err(Error::blame(
                    j,
                    format!("S0 has {} bytes, expected {S0_LEN}", bytes.len()),
                ));
            }
            h.put_u16(j).put(bytes);
            let mut r = Reader::new(bytes);
            let bad = |_| Error::blame(j, "malformed S0");
            let _rho: [u8; 32] = r.array().map_err(bad)?;
            ephemerals.insert(j, r.array().map_err(bad)?);
            commitments.insert(j, r.array().map_err(bad)?);
        }
        let sigid = h.finish();
        let lambda = lagrange_at_zero(&self.signers, me)
            .ok_or_else(|| Error::InvalidInput("invalid signing set".into()))?;
        let seeds = self.share.zero_seeds.iter().map(|(j, s)| (*j, s));
        let zeta = zero_share(me, seeds, &self.signers, &sigid);
        let sk =
            zeroize::Zeroizing::new(lambda * (self.share.secret_share + self.derived.tweak) + zeta);
        let pk = ProjectivePoint::mul_by_generator(&sk);
        let mut out = Outgoing::default();
        let mut bob = BTreeMap::new();
        for &j in &others {
            let state = self
                .share
                .ot_bob
                .get(&j)
                .ok_or_else(|| Error::InvalidInput(format!("no OT state for party {j}")))?;
            let (b, sg1) = BobVole::start(rng, state, vsid(&sigid, j, me));
            out.p2p.insert(j, sg1.encode());
            bob.insert(j, b);
        }
        ephemerals.remove(&me);
        Ok((SignRound2 { r1: self, sigid, sk, pk, commitments, ephemerals, bob }, out))
    }
}

#[derive(Zeroize, ZeroizeOnDrop)]
struct AliceOut {
    cu: Scalar,
    cv: Scalar,
}

/// State after S2.
pub struct SignRound3<'a> {
    r2: SignRound2<'a>,
    alice: BTreeMap<PartyIndex, AliceOut>,
}

impl<'a> SignRound2<'a> {
    /// The signing session id (known after S0).
    pub fn sigid(&self) -> &[u8; 32] {
        &self.sigid
    }

    /// Consumes the S1 messages: checks every sigid echo first, then answers each RVOLE as Alice
    /// with input (k_i, sk_i) (S2).
    fn advance(
        self,
        rng: &mut (impl CryptoRng + ?Sized),
        s1: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(SignRound3<'a>, Outgoing), Error> {
        let me = self.r1.share.index();
        let others = self.r1.others();
        expect_from(2, s1, &others)?;
        // View check for everyone before any OT processing (ToB-8): each SG1 starts with
        // vsid = TH(sigid, j, me); a different one means a different view, never a ban.
        let mut sg1s = BTreeMap::new();
        for &j in &others {
            let m = s1.get(&j).map_or(&[][..], Vec::as_slice);
            if m.len() != S1_LEN {
                return Err(Error::blame(
                    j,
                    format!("S1 has {} bytes, expected {S1_LEN}", m.len()),
                ));
            }
            let sg1 = Sg1::decode(m).map_err(|e| Error::from_ot(j, 2, e))?;
            if sg1.sid() != &vsid(&self.sigid, me, j) {
                return Err(Error::ViewMismatch { round: 2, party: j });
            }
            sg1s.insert(j, sg1);
        }
        let mut out = Outgoing::default();
        let mut alice = BTreeMap::new();
        let input = zeroize::Zeroizing::new([self.r1.secrets.k, *self.sk]);
        for (&j, sg1) in &sg1s {
            let state = self
                .r1
                .share
                .ot_alice
                .get(&j)
                .ok_or_else(|| Error::InvalidInput(format!("no OT state for party {j}")))?;
            let (c, sg2) = ot::alice_respond(rng, state, &vsid(&self.sigid, me, j), &input, sg1)
                .map_err(|e| Error::from_ot(j, 2, e))?;
            let chi = self.bob.get(&j).map(|b| *b.multiplier()).unwrap_or_default();
            let psi = self.r1.secrets.phi - chi;
            let mut p = Vec::with_capacity(S2_P2P_LEN);
            p.extend_from_slice(&sg2.encode());
            p.extend_from_slice(&point_to_bytes(&ProjectivePoint::mul_by_generator(&c.c[0])));
            p.extend_from_slice(&point_to_bytes(&ProjectivePoint::mul_by_generator(&c.c[1])));
            p.extend_from_slice(&scalar_to_bytes(&psi));
            out.p2p.insert(j, p);
            alice.insert(j, AliceOut { cu: c.c[0], cv: c.c[1] });
        }
        let mut b = Vec::with_capacity(S2_BCAST_LEN);
        b.extend_from_slice(&self.sigid);
        b.extend_from_slice(&point_to_bytes(&self.r1.r_point));
        b.extend_from_slice(&self.r1.salt);
        b.extend_from_slice(&point_to_bytes(&self.pk));
        out.broadcast = Some(b);
        Ok((SignRound3 { r2: self, alice }, out))
    }
}

/// Signer j's S2, opened and checked: its nonce point and key share point, its ψ and this
/// party's side of the RVOLE with it.
struct PeerS2 {
    r: ProjectivePoint,
    pk: ProjectivePoint,
    psi: Scalar,
    vole: ot::BobVoleOutput,
}

impl SignRound3<'_> {
    /// S2 lengths and view checks for every other signer, before any of it is used: the
    /// broadcast echoes sigid, the SG2 inside the p2p message starts with vsid = TH(sigid, j, me).
    fn check_views(&self, others: &[PartyIndex], bcast: &Inbox, p2p: &Inbox) -> Result<(), Error> {
        let sigid = &self.r2.sigid;
        let me = self.r2.r1.share.index();
        for &j in others {
            let (b, p) = (payload(bcast, j), payload(p2p, j));
            if b.len() != S2_BCAST_LEN || p.len() != S2_P2P_LEN {
                return Err(Error::blame(j, "S2 message has the wrong length"));
            }
            if b.get(..32) != Some(&sigid[..]) || p.get(..32) != Some(&vsid(sigid, j, me)[..]) {
                return Err(Error::ViewMismatch { round: 3, party: j });
            }
        }
        Ok(())
    }

    /// Opens signer j's S2: R_j against its S0 commitment, the RVOLE (μ check) and the Γ
    /// checks that j fed its committed k_j and its session key share sk_j into the RVOLEs.
    fn open_s2(&mut self, j: PartyIndex, b: &[u8], p: &[u8]) -> Result<PeerS2, Error> {
        let setup_hash = &self.r2.r1.cfg.setup_hash;
        let mut r = Reader::new(b.get(32..).unwrap_or_default());
        let r_j = r.point().map_err(|e| Error::blame(j, format!("S2 R_j: {e}")))?;
        let salt_j: [u8; 32] = r.array().map_err(|_| Error::blame(j, "malformed S2"))?;
        let pk_j = r.point().map_err(|e| Error::blame(j, format!("S2 pk_j: {e}")))?;
        let gamma =
            th(Tag::DsgComR, &[setup_hash, &j.to_be_bytes(), &point_to_bytes(&r_j), &salt_j]);
        let committed = self.r2.commitments.get(&j).copied().unwrap_or_default();
        if !bool::from(gamma.ct_eq(&committed)) {
            return Err(Error::blame(j, "R_j does not open its S0 commitment"));
        }
        let mut r = Reader::new(p);
        let bad = |_| Error::blame(j, "malformed S2 p2p message");
        let sg2 =
            Sg2::decode(r.take(Sg2::LEN).map_err(bad)?).map_err(|e| Error::from_ot(j, 3, e))?;
        let gamma_u = r.point().map_err(|e| Error::blame(j, format!("S2 Γu: {e}")))?;
        let gamma_v = r.point().map_err(|e| Error::blame(j, format!("S2 Γv: {e}")))?;
        let psi = r.scalar().map_err(|e| Error::blame(j, format!("S2 ψ: {e}")))?;
        let bob_j = self
            .r2
            .bob
            .remove(&j)
            .ok_or_else(|| Error::InvalidInput("missing RVOLE state".into()))?;
        let d = bob_j.finish(&sg2).map_err(|e| Error::from_ot(j, 3, e))?;
        if r_j * d.b != gamma_u + ProjectivePoint::mul_by_generator(&d.d[0]) {
            return Err(Error::BanAndAbort {
                party: j,
                reason: "Γ^u check failed: RVOLE input differs from committed R_j".into(),
            });
        }
        if pk_j * d.b != gamma_v + ProjectivePoint::mul_by_generator(&d.d[1]) {
            return Err(Error::BanAndAbort {
                party: j,
                reason: "Γ^v check failed: RVOLE input differs from pk_j".into(),
            });
        }
        Ok(PeerS2 { r: r_j, pk: pk_j, psi, vole: d })
    }

    /// Consumes S2 (broadcasts and p2p): decommitments, RVOLE outputs and the Γ and Σpk checks;
    /// returns the presignature.
    fn finish(mut self, bcast: &Inbox, p2p: &Inbox) -> Result<Presignature, Error> {
        let others = self.r2.r1.others();
        expect_from(3, bcast, &others)?;
        expect_from(3, p2p, &others)?;
        self.check_views(&others, bcast, p2p)?;
        let (k, phi, sk) = (self.r2.r1.secrets.k, self.r2.r1.secrets.phi, *self.r2.sk);
        let mut sum_pk = self.r2.pk;
        let mut r_sum = self.r2.r1.r_point;
        let mut phi_total = phi;
        let mut u = k * phi;
        let mut v = sk * phi;
        for &j in &others {
            let peer = self.open_s2(j, payload(bcast, j), payload(p2p, j))?;
            let c = self
                .alice
                .get(&j)
                .ok_or_else(|| Error::InvalidInput("missing RVOLE output".into()))?;
            sum_pk += peer.pk;
            r_sum += peer.r;
            phi_total += peer.psi;
            u += c.cu + peer.vole.d[0];
            v += c.cv + peer.vole.d[1];
        }
        // With all μ and Γ checks passed, fold ψ into Φ_i (= φ_i + Σ ψ_{j,i}).
        u += k * (phi_total - phi);
        v += sk * (phi_total - phi);
        let r1 = &self.r2.r1;
        if sum_pk != r1.derived.public_key {
            return Err(Error::Unattributable("key consistency check failed: Σ pk_j ≠ X'".into()));
        }
        self.presignature(r_sum, u, v)
    }

    /// The presignature with nonce point R = `r_sum` and this party's shares `u`, `v`.
    fn presignature(
        &self,
        r_sum: ProjectivePoint,
        u: Scalar,
        v: Scalar,
    ) -> Result<Presignature, Error> {
        if bool::from(r_sum.is_identity()) {
            return Err(Error::Unattributable("R is the identity".into()));
        }
        let r_affine = r_sum.to_affine();
        let x_bytes: FieldBytes = r_affine.x();
        let r_scalar = <Scalar as Reduce<FieldBytes>>::reduce(&x_bytes);
        if bool::from(r_scalar.is_zero()) {
            return Err(Error::Unattributable("r = 0".into()));
        }
        let r1 = &self.r2.r1;
        Ok(Presignature {
            setup_hash: r1.cfg.setup_hash,
            key_id: *r1.share.key_id(),
            keygen_sid: *r1.share.keygen_sid(),
            sigid: self.r2.sigid,
            signers: r1.signers.clone(),
            public_key: r1.derived.public_key,
            r: r_scalar,
            y_odd: bool::from(r_affine.y_is_odd()),
            x_big: bool::from(Scalar::from_repr(x_bytes).is_none()),
            phi: r1.secrets.phi,
            u,
            v,
            me: r1.share.index(),
        })
    }
}

impl<'a> Round<'a> for SignRound1<'a> {
    type Output = Presignature;

    fn number(&self) -> u16 {
        1
    }

    fn expects(&self) -> Expected {
        Expected::broadcasts(self.others())
    }

    /// # Errors
    /// [`Error::Timeout`] for a missing S0, [`Error::Blame`] for a malformed one.
    fn next(
        self: Box<Self>,
        rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, Presignature>, Error> {
        let (next, out) = (*self).advance(rng, &got.bcast)?;
        Ok(Step::next(next, out))
    }
}

impl<'a> Round<'a> for SignRound2<'a> {
    type Output = Presignature;

    fn number(&self) -> u16 {
        2
    }

    fn expects(&self) -> Expected {
        Expected::p2p(self.r1.others())
    }

    /// The other signers' ephemeral X25519 public keys from S0 (for the p2p channel keys).
    fn peer_ephemeral_keys(&self) -> BTreeMap<PartyIndex, [u8; 32]> {
        self.ephemerals.clone()
    }

    /// # Errors
    /// [`Error::ViewMismatch`] (no ban) for a different sigid; [`Error::BanAndAbort`] when a
    /// counterparty's extension fails the consistency check.
    fn next(
        self: Box<Self>,
        rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, Presignature>, Error> {
        let (next, out) = (*self).advance(rng, &got.p2p)?;
        Ok(Step::next(next, out))
    }
}

impl<'a> Round<'a> for SignRound3<'a> {
    type Output = Presignature;

    fn number(&self) -> u16 {
        3
    }

    fn expects(&self) -> Expected {
        Expected::both(self.r2.r1.others())
    }

    /// # Errors
    /// [`Error::Blame`] for a wrong decommitment of R_j; [`Error::BanAndAbort`] for a failed μ or
    /// Γ check; [`Error::Unattributable`] when Σ pk_j ≠ X'.
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, Presignature>, Error> {
        (*self).finish(&got.bcast, &got.p2p).map(Step::Done)
    }
}

redacted!(SignRound1<'_>, SignRound2<'_>, SignRound3<'_>);

#[cfg(test)]
mod tests;
