//! DKLs23 signing with presigning (`protocols.md` §3).
//!
//! ```text
//! start                -> (SignRound1, S0 broadcast)          commitments, fresh ρ
//! SignRound1::next     -> (SignRound2, S1 p2p)                 RVOLE SG1 as Bob to every signer
//! SignRound2::next     -> (SignRound3, S2 broadcast + p2p)     sigid echo BEFORE any OT work
//! SignRound3::finish   -> Presignature                          μ / Γ / Σpk checks (§3.3)
//! Presignature::sign   -> (PartialSignature, S3 broadcast)     consumes the presignature
//! combine              -> Signature                             low-s, recovery id, verified
//! ```
//! A [`Presignature`] is neither `Clone` nor `Copy`: `sign` consumes it, so it cannot sign twice.

use std::collections::BTreeMap;

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, VerifyingKey};
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::Group;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{FieldBytes, ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::bip32;
use crate::dkg::{Outgoing, expect_from};
use crate::encoding::{POINT_LEN, Reader, SCALAR_LEN, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::math::{PartyIndex, lagrange_at_zero, random_nonzero, zero_share};
use crate::ot::{self, BobVole, Sg1, Sg2};
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
) -> Result<(SignRound1<'a>, Vec<u8>), Error> {
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
        own_s0.to_vec(),
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
    ///
    /// # Errors
    /// [`Error::Timeout`] for a missing S0, [`Error::Blame`] for a malformed one.
    pub fn next(
        self,
        rng: &mut (impl CryptoRng + ?Sized),
        s0: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(SignRound2<'a>, Outgoing), Error> {
        let me = self.share.index();
        let others = self.others();
        expect_from(0, s0, &others)?;
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

    /// The other signers' ephemeral X25519 public keys from S0 (for the p2p channel keys).
    pub fn peer_ephemeral_keys(&self) -> &BTreeMap<PartyIndex, [u8; 32]> {
        &self.ephemerals
    }

    /// Consumes the S1 messages: checks every sigid echo first, then answers each RVOLE as Alice
    /// with input (k_i, sk_i) (S2).
    ///
    /// # Errors
    /// [`Error::ViewMismatch`] (no ban) for a different sigid; [`Error::BanAndAbort`] when a
    /// counterparty's extension fails the consistency check.
    pub fn next(
        self,
        rng: &mut (impl CryptoRng + ?Sized),
        s1: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(SignRound3<'a>, Outgoing), Error> {
        let me = self.r1.share.index();
        let others = self.r1.others();
        expect_from(1, s1, &others)?;
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
            let sg1 = Sg1::decode(m).map_err(|e| Error::from_ot(j, 1, e))?;
            if sg1.sid() != &vsid(&self.sigid, me, j) {
                return Err(Error::ViewMismatch { round: 1, party: j });
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
                .map_err(|e| Error::from_ot(j, 1, e))?;
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

impl SignRound3<'_> {
    /// Consumes S2 (broadcasts and p2p): decommitments, RVOLE outputs and the Γ and Σpk checks;
    /// returns the presignature.
    ///
    /// # Errors
    /// [`Error::Blame`] for a wrong decommitment of R_j; [`Error::BanAndAbort`] for a failed μ or
    /// Γ check; [`Error::Unattributable`] when Σ pk_j ≠ X'.
    pub fn finish(
        self,
        bcast: &BTreeMap<PartyIndex, Vec<u8>>,
        p2p: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<Presignature, Error> {
        let SignRound3 { r2, alice } = self;
        let SignRound2 { r1, sigid, sk, pk, commitments, mut bob, .. } = r2;
        let me = r1.share.index();
        let others = r1.others();
        expect_from(2, bcast, &others)?;
        expect_from(2, p2p, &others)?;
        for &j in &others {
            let b = bcast.get(&j).map_or(&[][..], Vec::as_slice);
            let p = p2p.get(&j).map_or(&[][..], Vec::as_slice);
            if b.len() != S2_BCAST_LEN || p.len() != S2_P2P_LEN {
                return Err(Error::blame(j, "S2 message has the wrong length"));
            }
            // The SG2 inside the p2p message starts with vsid = TH(sigid, j, me).
            if b.get(..32) != Some(&sigid[..]) || p.get(..32) != Some(&vsid(&sigid, j, me)[..]) {
                return Err(Error::ViewMismatch { round: 2, party: j });
            }
        }
        let mut sum_pk = pk;
        let mut r_sum = r1.r_point;
        let mut phi_total = r1.secrets.phi;
        let mut u = r1.secrets.k * r1.secrets.phi;
        let mut v = *sk * r1.secrets.phi;
        for &j in &others {
            let b = bcast.get(&j).map_or(&[][..], Vec::as_slice);
            let mut r = Reader::new(b.get(32..).unwrap_or_default());
            let r_j = r.point().map_err(|e| Error::blame(j, format!("S2 R_j: {e}")))?;
            let salt_j: [u8; 32] = r.array().map_err(|_| Error::blame(j, "malformed S2"))?;
            let pk_j = r.point().map_err(|e| Error::blame(j, format!("S2 pk_j: {e}")))?;
            let gamma = th(
                Tag::DsgComR,
                &[&r1.cfg.setup_hash, &j.to_be_bytes(), &point_to_bytes(&r_j), &salt_j],
            );
            let committed = commitments.get(&j).copied().unwrap_or_default();
            if !bool::from(gamma.ct_eq(&committed)) {
                return Err(Error::blame(j, "R_j does not open its S0 commitment"));
            }
            let p = p2p.get(&j).map_or(&[][..], Vec::as_slice);
            let mut r = Reader::new(p);
            let bad = |_| Error::blame(j, "malformed S2 p2p message");
            let sg2 =
                Sg2::decode(r.take(Sg2::LEN).map_err(bad)?).map_err(|e| Error::from_ot(j, 2, e))?;
            let gamma_u = r.point().map_err(|e| Error::blame(j, format!("S2 Γu: {e}")))?;
            let gamma_v = r.point().map_err(|e| Error::blame(j, format!("S2 Γv: {e}")))?;
            let psi = r.scalar().map_err(|e| Error::blame(j, format!("S2 ψ: {e}")))?;
            let bob_j =
                bob.remove(&j).ok_or_else(|| Error::InvalidInput("missing RVOLE state".into()))?;
            let d = bob_j.finish(&sg2).map_err(|e| Error::from_ot(j, 2, e))?;
            // Γ checks: j fed its committed k_j and its session key share sk_j into the RVOLEs.
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
            let c =
                alice.get(&j).ok_or_else(|| Error::InvalidInput("missing RVOLE output".into()))?;
            sum_pk += pk_j;
            r_sum += r_j;
            phi_total += psi;
            u += c.cu + d.d[0];
            v += c.cv + d.d[1];
        }
        // With all μ and Γ checks passed, fold ψ into Φ_i (= φ_i + Σ ψ_{j,i}).
        let k = r1.secrets.k;
        u += k * (phi_total - r1.secrets.phi);
        v += *sk * (phi_total - r1.secrets.phi);
        if sum_pk != r1.derived.public_key {
            return Err(Error::Unattributable("key consistency check failed: Σ pk_j ≠ X'".into()));
        }
        if bool::from(r_sum.is_identity()) {
            return Err(Error::Unattributable("R is the identity".into()));
        }
        let r_affine = r_sum.to_affine();
        let x_bytes: FieldBytes = r_affine.x();
        let r_scalar = <Scalar as Reduce<FieldBytes>>::reduce(&x_bytes);
        if bool::from(r_scalar.is_zero()) {
            return Err(Error::Unattributable("r = 0".into()));
        }
        let x_big = bool::from(Scalar::from_repr(x_bytes).is_none());
        let y_odd = bool::from(r_affine.y_is_odd());
        let _ = me;
        Ok(Presignature {
            setup_hash: r1.cfg.setup_hash,
            key_id: *r1.share.key_id(),
            keygen_sid: *r1.share.keygen_sid(),
            sigid,
            signers: r1.signers.clone(),
            public_key: r1.derived.public_key,
            r: r_scalar,
            y_odd,
            x_big,
            phi: r1.secrets.phi,
            u,
            v,
            me,
        })
    }
}

/// A single-use presignature: everything except the message. Not `Clone`; consumed by
/// [`Presignature::sign`]. Persist it as consumed before releasing the partial signature.
///
/// Signing twice with one presignature does not compile:
/// ```compile_fail
/// fn twice(p: dkls23_core::sign::Presignature) {
///     let _ = p.sign(&[1; 32]);
///     let _ = p.sign(&[2; 32]); // use of moved value
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
    setup_hash: [u8; 32],
    #[zeroize(skip)]
    key_id: [u8; 32],
    #[zeroize(skip)]
    keygen_sid: [u8; 32],
    #[zeroize(skip)]
    sigid: [u8; 32],
    #[zeroize(skip)]
    signers: Vec<PartyIndex>,
    #[zeroize(skip)]
    public_key: ProjectivePoint,
    r: Scalar,
    #[zeroize(skip)]
    y_odd: bool,
    #[zeroize(skip)]
    x_big: bool,
    phi: Scalar,
    u: Scalar,
    v: Scalar,
    #[zeroize(skip)]
    me: PartyIndex,
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

    /// S3: signs the 32-byte prehash `m32`, consuming the presignature.
    pub fn sign(self, m32: &[u8; 32]) -> (PartialSignature, Vec<u8>) {
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
        };
        (partial, own.to_vec())
    }
}

impl PartialSignature {
    /// Combines every signer's S3 message (the others', keyed by sender) into a verified
    /// signature.
    ///
    /// # Errors
    /// [`Error::ViewMismatch`] for a different sigid or message digest;
    /// [`Error::Unattributable`] if the result does not verify (the presignature is gone; no ban).
    pub fn combine(
        &self,
        s3: &BTreeMap<PartyIndex, Vec<u8>>,
        m32: &[u8; 32],
    ) -> Result<Signature, Error> {
        let others: Vec<PartyIndex> =
            self.signers.iter().copied().filter(|&j| j != self.me).collect();
        expect_from(3, s3, &others)?;
        let mut u_sum = Scalar::ZERO;
        let mut w_sum = Scalar::ZERO;
        for &j in &self.signers {
            let b: &[u8] =
                if j == self.me { &self.own } else { s3.get(&j).map_or(&[][..], Vec::as_slice) };
            if b.len() != S3_LEN {
                return Err(Error::blame(j, "S3 has the wrong length"));
            }
            if b.get(..32) != Some(&self.sigid[..]) || b.get(32..64) != Some(&self.m_digest[..]) {
                return Err(Error::ViewMismatch { round: 3, party: j });
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

redacted!(SignRound1<'_>, SignRound2<'_>, SignRound3<'_>);

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
