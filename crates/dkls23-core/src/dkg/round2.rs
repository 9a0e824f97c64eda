//! Round 2 of the DKG (`protocols.md` §2.3): every party's K2 is checked (commitment opening,
//! proofs of knowledge, Feldman share, chain-code opening), the OT setups offered in K2 are
//! answered, and the aggregate public key, public shares, chain code and view digest are
//! formed for K3.

use std::collections::BTreeMap;

use k256::elliptic_curve::group::Group;
use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{DkgRound2, DkgRound3, others};
use crate::encoding::{POINT_LEN, Reader, point_to_bytes};
use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::keyshare::public_shares_from;
use crate::math::{PartyIndex, feldman_check};
use crate::ot::{self, Kg1, Kg2};
use crate::pairwise::{osid, zero_seed};
use crate::pok::{POK_LEN, Pok};
use crate::round::{Expected, Outgoing, Received, Round, Step, expect_from, payload};
use crate::transcript::{Tag, Th, th};

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

    /// §2.3 steps 1–3 on party j's K2 broadcast `b`: length and sid echo, the opening of the
    /// K1 commitment and the proofs of knowledge; returns j's coefficient commitments.
    fn check_k2_broadcast(&self, j: PartyIndex, b: &[u8]) -> Result<Vec<ProjectivePoint>, Error> {
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
            let ctx: [&[u8]; 3] = [&self.sid, &j.to_be_bytes(), &(k as u16).to_be_bytes()];
            if !pi.verify(Tag::DkgPokCoef, &ctx, a) {
                return Err(Error::blame(
                    j,
                    format!("proof of knowledge of coefficient {k} is invalid"),
                ));
            }
        }
        Ok(a_j)
    }

    /// §2.3 steps 1–5 on party j's K2 broadcast `b` and p2p message `m`: the broadcast checks,
    /// then the p2p sid echo, the Feldman check of the share and the opening of the chain-code
    /// commitment.
    fn check_k2(&self, j: PartyIndex, b: &[u8], m: &[u8]) -> Result<PeerK2, Error> {
        let cfg = &self.cfg;
        let peer = self.peers.get(&j).ok_or_else(|| Error::InvalidInput("unknown party".into()))?;
        let a_j = self.check_k2_broadcast(j, b)?;
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
