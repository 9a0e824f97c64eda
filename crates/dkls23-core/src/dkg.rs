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

use k256::elliptic_curve::group::Group;
use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::encoding::{POINT_LEN, Reader, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::keyshare::{KeyShare, key_id, public_shares_from};
use crate::math::{PartyIndex, Polynomial, feldman_check};
use crate::ot::{self, AliceSetup, BobState, Kg1, Kg2};
use crate::pairwise::{FinalView, finish_pair_setup, osid, public_ack, zero_seed};
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
    /// Consumes the K1 broadcasts of the other parties and produces K2.
    fn advance(
        mut self,
        rng: &mut (impl CryptoRng + ?Sized),
        k1: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(DkgRound2, Outgoing), Error> {
        let cfg = &self.cfg;
        let me = cfg.me;
        let parties = others(cfg.n, me);
        expect_from(1, k1, &parties)?;
        let mut peers = BTreeMap::new();
        let mut h = Th::new(Tag::DkgSid);
        h.put(&cfg.setup_hash);
        for j in 1..=cfg.n {
            let bytes: &[u8] =
                if j == me { &self.own_k1 } else { k1.get(&j).map_or(&[][..], Vec::as_slice) };
            h.put_u16(j).put(bytes);
            if j != me {
                let (_rho, peer) = decode_k1(j, bytes)?;
                peers.insert(j, peer);
            }
        }
        let sid = h.finish();

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
                    &[&sid, &me.to_be_bytes(), &(k as u16).to_be_bytes()],
                    a,
                )
            })
            .collect();
        let mut bcast = Vec::with_capacity(32 + commitments.len() * (POINT_LEN + POK_LEN) + 32);
        bcast.extend_from_slice(&sid);
        for a in &commitments {
            bcast.extend_from_slice(&point_to_bytes(a));
        }
        bcast.extend_from_slice(&self.salt);
        for p in &proofs {
            p.encode_into(&mut bcast);
        }

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

/// Party j's K2, decoded and checked (§2.3 steps 1–5).
struct PeerK2 {
    commitments: Vec<ProjectivePoint>,
    share: Zeroizing<Scalar>,
    kappa: [u8; 32],
    sigma: Zeroizing<[u8; 32]>,
    kg1: Kg1,
    /// The broadcast after the sid echo (j's part of the round-2 view).
    view: Vec<u8>,
}

/// What the K2 messages of every party add up to.
struct Aggregate {
    x: ProjectivePoint,
    public_shares: Vec<ProjectivePoint>,
    chain_code: [u8; 32],
    d2: [u8; 32],
}

impl DkgRound2 {
    /// The session id (known to every party after K1).
    pub fn sid(&self) -> &[u8; 32] {
        &self.sid
    }

    /// §2.3 steps 1–5 on party j's K2 broadcast `b` and p2p message `m`: lengths and sid
    /// echoes, the opening of the K1 commitment, the proofs of knowledge, the Feldman check of
    /// the share and the opening of the chain-code commitment.
    fn check_k2(&self, j: PartyIndex, b: &[u8], m: &[u8]) -> Result<PeerK2, Error> {
        let cfg = &self.cfg;
        let t = usize::from(cfg.t);
        let peer = self.peers.get(&j).ok_or_else(|| Error::InvalidInput("unknown party".into()))?;
        // 1. Broadcast: length, sid echo, points.
        let bcast_len = 32 + t * POINT_LEN + 32 + t * POK_LEN;
        if b.len() != bcast_len {
            return Err(Error::blame(
                j,
                format!("K2 broadcast has {} bytes, expected {bcast_len} (t = {t})", b.len()),
            ));
        }
        let mut r = Reader::new(b);
        let echo: [u8; 32] = r.array().map_err(|_| Error::blame(j, "malformed K2"))?;
        if echo != self.sid {
            return Err(Error::ViewMismatch { round: 2, party: j });
        }
        let mut a_j = Vec::with_capacity(t);
        for _ in 0..t {
            a_j.push(r.point().map_err(|e| Error::blame(j, format!("K2 commitment: {e}")))?);
        }
        let salt_j: [u8; 32] = r.array().map_err(|_| Error::blame(j, "malformed K2"))?;
        let mut proofs = Vec::with_capacity(t);
        for _ in 0..t {
            proofs.push(Pok::read(&mut r).map_err(|e| Error::blame(j, format!("K2 proof: {e}")))?);
        }
        // 2. Commitment opening.
        let mut h = Th::new(Tag::DkgComPoly);
        h.put(&cfg.setup_hash).put_u16(j);
        for a in &a_j {
            h.put(&point_to_bytes(a));
        }
        h.put(&salt_j);
        if !bool::from(h.finish().ct_eq(&peer.c_poly)) {
            return Err(Error::blame(j, "K2 coefficients do not open the K1 commitment"));
        }
        // 3. Proofs of knowledge.
        for (k, (a, pi)) in a_j.iter().zip(&proofs).enumerate() {
            if !pi.verify(
                Tag::DkgPokCoef,
                &[&self.sid, &j.to_be_bytes(), &(k as u16).to_be_bytes()],
                a,
            ) {
                return Err(Error::blame(
                    j,
                    format!("proof of knowledge of coefficient {k} is invalid"),
                ));
            }
        }
        // 4./5. P2P: sid echo, Feldman share, chain-code opening.
        let p2p_len = 32 * 5 + Kg1::LEN;
        if m.len() != p2p_len {
            return Err(Error::blame(
                j,
                format!("K2 p2p message has {} bytes, expected {p2p_len}", m.len()),
            ));
        }
        let mut r = Reader::new(m);
        let bad = |_| Error::blame(j, "malformed K2 p2p message");
        let echo: [u8; 32] = r.array().map_err(bad)?;
        if echo != self.sid {
            return Err(Error::ViewMismatch { round: 2, party: j });
        }
        let d = Zeroizing::new(r.scalar().map_err(|e| Error::blame(j, format!("K2 share: {e}")))?);
        let kappa_j: [u8; 32] = r.array().map_err(bad)?;
        let salt_cc_j: [u8; 32] = r.array().map_err(bad)?;
        let sigma_j = Zeroizing::new(r.array::<32>().map_err(bad)?);
        let kg1 =
            Kg1::decode(r.take(Kg1::LEN).map_err(bad)?).map_err(|e| Error::from_ot(j, 2, e))?;
        if !feldman_check(&d, cfg.me, &a_j) {
            return Err(Error::blame(j, "share fails the Feldman check against its commitments"));
        }
        let c_cc = th(Tag::DkgComCc, &[&cfg.setup_hash, &j.to_be_bytes(), &kappa_j, &salt_cc_j]);
        if !bool::from(c_cc.ct_eq(&peer.c_cc)) {
            return Err(Error::blame(j, "chain-code contribution does not open its commitment"));
        }
        Ok(PeerK2 {
            commitments: a_j,
            share: d,
            kappa: kappa_j,
            sigma: sigma_j,
            kg1,
            view: b.get(32..).unwrap_or_default().to_vec(),
        })
    }

    /// This party's own part of the round-2 view: its broadcast after the sid.
    fn own_view(&self) -> Vec<u8> {
        let mut own_view = Vec::new();
        for a in &self.commitments {
            own_view.extend_from_slice(&point_to_bytes(a));
        }
        own_view.extend_from_slice(&self.salt);
        for p in &self.proofs {
            p.encode_into(&mut own_view);
        }
        own_view
    }

    /// The public key, public shares, chain code and round-2 digest from every party's
    /// commitments, chain-code contributions and broadcast view (own ones included).
    fn aggregate(
        &self,
        commitments: &BTreeMap<PartyIndex, Vec<ProjectivePoint>>,
        kappas: &BTreeMap<PartyIndex, [u8; 32]>,
        views: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<Aggregate, Error> {
        let mut f = vec![ProjectivePoint::IDENTITY; usize::from(self.cfg.t)];
        for a_j in commitments.values() {
            for (fk, a) in f.iter_mut().zip(a_j) {
                *fk += a;
            }
        }
        let x = f.first().copied().unwrap_or(ProjectivePoint::IDENTITY);
        if bool::from(x.is_identity()) {
            return Err(Error::Unattributable("the aggregate public key is the identity".into()));
        }
        let public_shares = public_shares_from(&f, self.cfg.n);
        let mut h = Th::new(Tag::DkgChainCode);
        h.put(&self.sid);
        for k in kappas.values() {
            h.put(k);
        }
        let chain_code = h.finish();
        let mut h = Th::new(Tag::DkgR2);
        h.put(&self.sid);
        for (j, v) in views {
            h.put_u16(*j).put(v);
        }
        Ok(Aggregate { x, public_shares, chain_code, d2: h.finish() })
    }

    /// K3 broadcast: sid ‖ D2 ‖ X ‖ X_me ‖ π*_me, the proof binding this party's final share to
    /// the public key, chain code and view.
    fn k3(
        &self,
        rng: &mut (impl CryptoRng + ?Sized),
        agg: &Aggregate,
        share: &Scalar,
        own_public: &ProjectivePoint,
    ) -> Vec<u8> {
        let me = self.cfg.me;
        let x_bytes = point_to_bytes(&agg.x);
        let pok = Pok::prove(
            rng,
            Tag::DkgPokShare,
            &[&self.sid, &me.to_be_bytes(), &x_bytes, &agg.chain_code, &agg.d2],
            share,
        );
        let mut k3 = Vec::with_capacity(32 * 2 + 2 * POINT_LEN + POK_LEN);
        k3.extend_from_slice(&self.sid);
        k3.extend_from_slice(&agg.d2);
        k3.extend_from_slice(&x_bytes);
        k3.extend_from_slice(&point_to_bytes(own_public));
        pok.encode_into(&mut k3);
        k3
    }

    /// Consumes K2 (broadcasts and p2p messages) and produces K3 (§2.3 checks).
    fn advance(
        self,
        rng: &mut (impl CryptoRng + ?Sized),
        bcast: &BTreeMap<PartyIndex, Vec<u8>>,
        p2p: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(DkgRound3, Outgoing), Error> {
        let me = self.cfg.me;
        let parties = others(self.cfg.n, me);
        expect_from(2, bcast, &parties)?;
        expect_from(2, p2p, &parties)?;

        let mut all_commitments: BTreeMap<PartyIndex, Vec<ProjectivePoint>> = BTreeMap::new();
        let mut r2_view: BTreeMap<PartyIndex, Vec<u8>> = BTreeMap::new();
        let mut share = self.poly.eval(me);
        let mut kappas: BTreeMap<PartyIndex, [u8; 32]> = BTreeMap::new();
        let mut seeds = BTreeMap::new();
        let mut bob_states = BTreeMap::new();
        let mut out = Outgoing::default();
        for &j in &parties {
            let k2 = self.check_k2(j, payload(bcast, j), payload(p2p, j))?;
            // 6. OT setup as Bob of (A = j, B = me).
            let (bob, kg2) = ot::bob_respond(rng, &osid(&self.sid, j, me), &k2.kg1)
                .map_err(|e| Error::from_ot(j, 2, e))?;
            bob_states.insert(j, bob);
            let mut k3p = Vec::with_capacity(32 + Kg2::LEN);
            k3p.extend_from_slice(&self.sid);
            k3p.extend_from_slice(&kg2.encode());
            out.p2p.insert(j, k3p);

            share += *k2.share;
            kappas.insert(j, k2.kappa);
            let none = Zeroizing::new([0u8; 32]);
            let sent = self.sigma_sent.get(&j).unwrap_or(&none);
            seeds.insert(j, zero_seed(&self.sid, me, j, sent, &k2.sigma));
            all_commitments.insert(j, k2.commitments);
            r2_view.insert(j, k2.view);
        }
        // Own contribution to the aggregates and views.
        all_commitments.insert(me, self.commitments.clone());
        r2_view.insert(me, self.own_view());
        kappas.insert(me, *self.kappa);
        let agg = self.aggregate(&all_commitments, &kappas, &r2_view)?;
        let own_public = agg.public_shares.get(usize::from(me) - 1).copied().unwrap_or_default();
        if ProjectivePoint::mul_by_generator(&share) != own_public {
            return Err(Error::Unattributable(
                "own share does not match the aggregate commitments".into(),
            ));
        }
        out.broadcast = Some(self.k3(rng, &agg, &share, &own_public));

        let DkgRound2 { cfg, sid, alice, .. } = self;
        let Aggregate { x, public_shares, chain_code, d2 } = agg;
        let next = DkgRound3 {
            cfg,
            sid,
            share,
            x,
            chain_code,
            public_shares,
            d2,
            seeds,
            bob_states,
            alice,
        };
        Ok((next, out))
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

impl<'a> Round<'a> for DkgRound2 {
    type Output = KeyShare;

    fn number(&self) -> u16 {
        2
    }

    fn expects(&self) -> Expected {
        Expected::both(others(self.cfg.n, self.cfg.me))
    }

    /// The other parties' ephemeral X25519 public keys from K1 (for the p2p channel keys).
    fn peer_ephemeral_keys(&self) -> BTreeMap<PartyIndex, [u8; 32]> {
        self.peers.iter().map(|(j, p)| (*j, p.ephemeral)).collect()
    }

    /// # Errors
    /// [`Error::ViewMismatch`] for a different sid echo; [`Error::Blame`] naming the party whose
    /// commitment, proof, Feldman share, chain-code opening or OT message is wrong.
    fn next(
        self: Box<Self>,
        rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, KeyShare>, Error> {
        let (next, out) = (*self).advance(rng, &got.bcast, &got.p2p)?;
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
