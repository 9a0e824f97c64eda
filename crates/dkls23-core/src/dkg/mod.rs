//! Distributed key generation for any 2 ≤ t ≤ n ≤ 255 (`protocols.md` §2).
//!
//! Sans-IO: each round is a struct holding this party's secret state and implements
//! [`Round`]: it is consumed with the payloads received from the other parties (raw bytes keyed
//! by sender) and returns the next round plus the payloads to send ([`Outgoing`]).
//!
//! ```text
//! start          -> (DkgRound1, K1 broadcast)
//! DkgRound1 next -> (DkgRound2, K2 broadcast + p2p)   checks: none (K1 is commitments)
//! DkgRound2 next -> (DkgRound3, K3 broadcast + p2p)   checks: §2.3
//! DkgRound3 next -> (DkgRound4, K4 broadcast)         checks: §2.5
//! DkgRound4 next -> KeyShare                          checks: matching acks (§2.6)
//! ```
//! Payloads after K1 start with the session id; a different one is a [`Error::ViewMismatch`]
//! (no blame). Malformed payloads blame their sender.

use std::collections::BTreeMap;

use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::encoding::{POINT_LEN, Reader, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::keyshare::{KeyShare, key_id};
use crate::math::{PartyIndex, Polynomial};
use crate::ot::{self, AliceSetup, BobState, Kg1};
use crate::pairwise::{FinalView, finish_pair_setup, osid, public_ack};
use crate::pok::{POK_LEN, Pok};
use crate::round::{Expected, Outgoing, Received, Round, Step, expect_from, payload, random_bytes};
use crate::transcript::{Tag, Th, th};

/// Public parameters of one DKG execution (all parties must agree; they come from the setup).
#[derive(Debug, Clone)]
pub struct DkgConfig {
    /// Number of parties n; indices are 1..=n.
    pub n: u16,
    /// Threshold t.
    pub t: u16,
    /// This party's index.
    pub me: PartyIndex,
    /// `setup_hash` of the session setup.
    pub setup_hash: [u8; 32],
    /// This party's ephemeral X25519 public key for the session (sent in K1 and bound into sid).
    pub ephemeral_public: [u8; 32],
    /// Identity public keys (canonical encodings) of parties 1..=n, stored in the key share.
    pub identities: Vec<Vec<u8>>,
}

mod round2;

const K1_LEN: usize = 128;

/// Secret state after K1.
pub struct DkgRound1 {
    cfg: DkgConfig,
    poly: Polynomial,
    kappa: [u8; 32],
    salt: [u8; 32],
    salt_cc: [u8; 32],
    own_k1: [u8; K1_LEN],
}

fn others(n: u16, me: PartyIndex) -> Vec<PartyIndex> {
    (1..=n).filter(|&j| j != me).collect()
}

/// Round K1: commit to the polynomial and the chain-code contribution.
///
/// # Errors
/// [`Error::InvalidInput`] if the configuration is inconsistent.
pub fn start(
    rng: &mut (impl CryptoRng + ?Sized),
    cfg: DkgConfig,
) -> Result<(DkgRound1, Outgoing), Error> {
    if cfg.t < 2 || cfg.t > cfg.n || cfg.n > 255 {
        return Err(Error::InvalidInput(format!(
            "need 2 <= t <= n <= 255, got t = {}, n = {}",
            cfg.t, cfg.n
        )));
    }
    if cfg.me == 0 || cfg.me > cfg.n {
        return Err(Error::InvalidInput(format!("own index {} is not in 1..={}", cfg.me, cfg.n)));
    }
    if cfg.identities.len() != usize::from(cfg.n) {
        return Err(Error::InvalidInput("one identity key per party is required".into()));
    }
    let poly = Polynomial::random(rng, usize::from(cfg.t), None);
    let rho = random_bytes(rng);
    let kappa = random_bytes(rng);
    let salt = random_bytes(rng);
    let salt_cc = random_bytes(rng);
    let mut h = Th::new(Tag::DkgComPoly);
    h.put(&cfg.setup_hash).put_u16(cfg.me);
    for a in poly.commitments() {
        h.put(&point_to_bytes(&a));
    }
    h.put(&salt);
    let c_poly = h.finish();
    let c_cc = th(Tag::DkgComCc, &[&cfg.setup_hash, &cfg.me.to_be_bytes(), &kappa, &salt_cc]);
    let mut own_k1 = [0u8; K1_LEN];
    for (dst, src) in own_k1.chunks_exact_mut(32).zip([&rho, &cfg.ephemeral_public, &c_poly, &c_cc])
    {
        dst.copy_from_slice(src);
    }
    Ok((
        DkgRound1 { cfg, poly, kappa, salt, salt_cc, own_k1 },
        Outgoing::broadcast(own_k1.to_vec()),
    ))
}

struct PeerK1 {
    ephemeral: [u8; 32],
    c_poly: [u8; 32],
    c_cc: [u8; 32],
}

fn decode_k1(j: PartyIndex, bytes: &[u8]) -> Result<([u8; 32], PeerK1), Error> {
    let mut r = Reader::new(bytes);
    let bad = |_| Error::blame(j, "malformed K1");
    if bytes.len() != K1_LEN {
        return Err(Error::blame(j, format!("K1 has {} bytes, expected {K1_LEN}", bytes.len())));
    }
    let rho = r.array().map_err(bad)?;
    let k1 = PeerK1 {
        ephemeral: r.array().map_err(bad)?,
        c_poly: r.array().map_err(bad)?,
        c_cc: r.array().map_err(bad)?,
    };
    Ok((rho, k1))
}

/// Secret state after K2.
pub struct DkgRound2 {
    cfg: DkgConfig,
    sid: [u8; 32],
    poly: Polynomial,
    kappa: Zeroizing<[u8; 32]>,
    salt: [u8; 32],
    commitments: Vec<ProjectivePoint>,
    proofs: Vec<Pok>,
    peers: BTreeMap<PartyIndex, PeerK1>,
    sigma_sent: BTreeMap<PartyIndex, Zeroizing<[u8; 32]>>,
    alice: BTreeMap<PartyIndex, AliceSetup>,
}

impl DkgRound1 {
    /// The session id over the setup and every party's K1 (own one included), and the other
    /// parties' decoded K1.
    fn session_id(
        &self,
        k1: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<([u8; 32], BTreeMap<PartyIndex, PeerK1>), Error> {
        let cfg = &self.cfg;
        let mut peers = BTreeMap::new();
        let mut h = Th::new(Tag::DkgSid);
        h.put(&cfg.setup_hash);
        for j in 1..=cfg.n {
            let bytes: &[u8] = if j == cfg.me { &self.own_k1 } else { payload(k1, j) };
            h.put_u16(j).put(bytes);
            if j != cfg.me {
                let (_rho, peer) = decode_k1(j, bytes)?;
                peers.insert(j, peer);
            }
        }
        Ok((h.finish(), peers))
    }

    /// K2 broadcast: sid ‖ commitments to the coefficients ‖ salt ‖ a proof of knowledge of
    /// each coefficient; returns the commitments and proofs too.
    fn k2_broadcast(
        &self,
        rng: &mut (impl CryptoRng + ?Sized),
        sid: &[u8; 32],
    ) -> (Vec<ProjectivePoint>, Vec<Pok>, Vec<u8>) {
        let me = self.cfg.me;
        let commitments = self.poly.commitments();
        let proofs: Vec<Pok> = self
            .poly
            .coeffs()
            .iter()
            .enumerate()
            .map(|(k, a)| {
                Pok::prove(
                    rng,
                    Tag::DkgPokCoef,
                    &[sid, &me.to_be_bytes(), &(k as u16).to_be_bytes()],
                    a,
                )
            })
            .collect();
        let mut bcast = Vec::with_capacity(32 + commitments.len() * (POINT_LEN + POK_LEN) + 32);
        bcast.extend_from_slice(sid);
        for a in &commitments {
            bcast.extend_from_slice(&point_to_bytes(a));
        }
        bcast.extend_from_slice(&self.salt);
        for p in &proofs {
            p.encode_into(&mut bcast);
        }
        (commitments, proofs, bcast)
    }

    /// Consumes the K1 broadcasts of the other parties and produces K2.
    fn advance(
        mut self,
        rng: &mut (impl CryptoRng + ?Sized),
        k1: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(DkgRound2, Outgoing), Error> {
        let me = self.cfg.me;
        let parties = others(self.cfg.n, me);
        expect_from(1, k1, &parties)?;
        let (sid, peers) = self.session_id(k1)?;
        let (commitments, proofs, bcast) = self.k2_broadcast(rng, &sid);
        let mut out = Outgoing { broadcast: Some(bcast), p2p: BTreeMap::new() };
        let mut sigma_sent = BTreeMap::new();
        let mut alice = BTreeMap::new();
        for &j in &parties {
            let sigma = Zeroizing::new(random_bytes(rng));
            let (setup, kg1) = ot::alice_start(rng, osid(&sid, me, j));
            let mut m = Vec::with_capacity(32 * 5 + Kg1::LEN);
            m.extend_from_slice(&sid);
            m.extend_from_slice(&scalar_to_bytes(&self.poly.eval(j)));
            m.extend_from_slice(&self.kappa);
            m.extend_from_slice(&self.salt_cc);
            m.extend_from_slice(&*sigma);
            m.extend_from_slice(&kg1.encode());
            out.p2p.insert(j, m);
            sigma_sent.insert(j, sigma);
            alice.insert(j, setup);
        }
        let (cfg, poly, kappa, salt) = (
            self.cfg.clone(),
            std::mem::take(&mut self.poly),
            Zeroizing::new(self.kappa),
            self.salt,
        );
        Ok((
            DkgRound2 {
                cfg,
                sid,
                poly,
                kappa,
                salt,
                commitments,
                proofs,
                peers,
                sigma_sent,
                alice,
            },
            out,
        ))
    }
}

/// Secret state after K3.
pub struct DkgRound3 {
    cfg: DkgConfig,
    sid: [u8; 32],
    share: Scalar,
    x: ProjectivePoint,
    chain_code: [u8; 32],
    public_shares: Vec<ProjectivePoint>,
    d2: [u8; 32],
    seeds: BTreeMap<PartyIndex, [u8; 32]>,
    bob_states: BTreeMap<PartyIndex, BobState>,
    alice: BTreeMap<PartyIndex, AliceSetup>,
}

fn ack(sid: &[u8; 32], x: &ProjectivePoint, cc: &[u8; 32], shares: &[ProjectivePoint]) -> [u8; 32] {
    public_ack(Tag::DkgAck, sid, x, cc, shares)
}

impl DkgRound3 {
    /// Consumes K3 and produces the acknowledgement K4 (§2.5 checks).
    fn advance(
        mut self,
        bcast: &BTreeMap<PartyIndex, Vec<u8>>,
        p2p: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(DkgRound4, Outgoing), Error> {
        let (me, n) = (self.cfg.me, self.cfg.n);
        let parties = others(n, me);
        expect_from(3, bcast, &parties)?;
        expect_from(3, p2p, &parties)?;
        let mut alice_states = BTreeMap::new();
        let view = FinalView {
            label: "K3",
            tag: Tag::DkgPokShare,
            sid: &self.sid,
            d2: &self.d2,
            x: &self.x,
            chain_code: &self.chain_code,
            public_shares: &self.public_shares,
        };
        for &j in &parties {
            view.check(j, bcast.get(&j).map_or(&[][..], Vec::as_slice))?;
            let m = p2p.get(&j).map_or(&[][..], Vec::as_slice);
            alice_states.insert(j, finish_pair_setup(j, &self.sid, m, self.alice.remove(&j))?);
        }
        let own_ack = ack(&self.sid, &self.x, &self.chain_code, &self.public_shares);
        let mut k4 = Vec::with_capacity(64);
        k4.extend_from_slice(&self.sid);
        k4.extend_from_slice(&own_ack);
        let (cfg, sid, share, x, chain_code) =
            (self.cfg.clone(), self.sid, self.share, self.x, self.chain_code);
        let public_shares = std::mem::take(&mut self.public_shares);
        let seeds = std::mem::take(&mut self.seeds);
        let bob_states = std::mem::take(&mut self.bob_states);
        let pending = KeyShare {
            n,
            t: cfg.t,
            i: me,
            epoch: 0,
            keygen_sid: sid,
            key_id: key_id(&x, &chain_code),
            public_key: x,
            chain_code,
            public_shares,
            identities: cfg.identities.clone(),
            secret_share: share,
            zero_seeds: seeds,
            ot_alice: alice_states,
            ot_bob: bob_states,
        };
        Ok((
            DkgRound4 { sid, own_ack, pending },
            Outgoing { broadcast: Some(k4), p2p: BTreeMap::new() },
        ))
    }
}

/// State after K4: the share is complete but pending until every party has acknowledged.
pub struct DkgRound4 {
    sid: [u8; 32],
    own_ack: [u8; 32],
    pending: KeyShare,
}

impl DkgRound4 {
    /// Consumes the other parties' acknowledgements; returns the share only if all match.
    fn finish(self, acks: &BTreeMap<PartyIndex, Vec<u8>>) -> Result<KeyShare, Error> {
        let parties = others(self.pending.n, self.pending.i);
        expect_from(4, acks, &parties)?;
        for &j in &parties {
            let a = acks.get(&j).map_or(&[][..], Vec::as_slice);
            if a.len() != 64 {
                return Err(Error::blame(j, "malformed acknowledgement"));
            }
            if a.get(..32) != Some(&self.sid[..]) || a.get(32..) != Some(&self.own_ack[..]) {
                return Err(Error::ViewMismatch { round: 4, party: j });
            }
        }
        self.pending
            .validate()
            .map_err(|e| Error::Unattributable(format!("key share failed validation: {e}")))?;
        Ok(self.pending)
    }
}

impl<'a> Round<'a> for DkgRound1 {
    type Output = KeyShare;

    fn number(&self) -> u16 {
        1
    }

    fn expects(&self) -> Expected {
        Expected::broadcasts(others(self.cfg.n, self.cfg.me))
    }

    /// # Errors
    /// [`Error::Timeout`] if a party's K1 is missing; [`Error::Blame`] for a malformed one.
    fn next(
        self: Box<Self>,
        rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, KeyShare>, Error> {
        let (next, out) = (*self).advance(rng, &got.bcast)?;
        Ok(Step::next(next, out))
    }
}

impl<'a> Round<'a> for DkgRound3 {
    type Output = KeyShare;

    fn number(&self) -> u16 {
        3
    }

    fn expects(&self) -> Expected {
        Expected::both(others(self.cfg.n, self.cfg.me))
    }

    /// # Errors
    /// [`Error::ViewMismatch`] for a different sid or round-2 digest; [`Error::Blame`] for a wrong
    /// public key or public share, an invalid final proof, or a failed OT setup.
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, KeyShare>, Error> {
        let (next, out) = (*self).advance(&got.bcast, &got.p2p)?;
        Ok(Step::next(next, out))
    }
}

impl<'a> Round<'a> for DkgRound4 {
    type Output = KeyShare;

    fn number(&self) -> u16 {
        4
    }

    fn expects(&self) -> Expected {
        Expected::broadcasts(others(self.pending.n, self.pending.i))
    }

    /// # Errors
    /// [`Error::ViewMismatch`] naming a party whose acknowledgement differs (it holds different
    /// public data); [`Error::Timeout`] if one is missing.
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, KeyShare>, Error> {
        (*self).finish(&got.bcast).map(Step::Done)
    }
}

redacted!(DkgRound1, DkgRound2, DkgRound3, DkgRound4);

impl Zeroize for DkgRound1 {
    fn zeroize(&mut self) {
        self.kappa.zeroize();
        self.salt.zeroize();
        self.salt_cc.zeroize();
    }
}
impl Drop for DkgRound1 {
    fn drop(&mut self) {
        self.zeroize();
    }
}
impl ZeroizeOnDrop for DkgRound1 {}
impl Drop for DkgRound3 {
    fn drop(&mut self) {
        self.share.zeroize();
        for s in self.seeds.values_mut() {
            s.zeroize();
        }
    }
}

#[cfg(test)]
mod hygiene {
    use super::*;

    fn zeroized_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    /// Type-level: the per-session secrets of round 2 are wiped when the round is dropped
    /// (this does not compile if a field loses its zeroizing type).
    #[allow(dead_code)]
    fn round2_secrets(r: &DkgRound2) {
        zeroized_on_drop(&r.kappa);
        for sigma in r.sigma_sent.values() {
            zeroized_on_drop(sigma);
        }
    }

    #[test]
    fn round2_secrets_are_zeroizing() {
        let f: fn(&DkgRound2) = round2_secrets;
        let _ = f;
    }
}
