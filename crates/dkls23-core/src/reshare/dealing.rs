//! Round 2 of the reshare (`protocols.md` §4.1): the dealers' Q2 broadcasts are checked
//! (commitment opening, proofs, the pin `G_p,0 = λ_p·X_p`), the dealt shares against them
//! (Feldman, chain code against the key id), and every new member answers the OT setups it was
//! offered and proves its new share (Q3).

use std::collections::BTreeMap;

use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{NewState, ReshareOutcome, ReshareRound2, ReshareRound3, commit_poly, invalid};
use crate::encoding::{POINT_LEN, Reader, point_to_bytes};
use crate::error::Error;
use crate::keyshare::{key_id, public_shares_from};
use crate::math::{PartyIndex, feldman_check, lagrange_at_zero};
use crate::ot::{self, Kg1, Kg2};
use crate::pairwise::{osid, zero_seed};
use crate::pok::{POK_LEN, Pok};
use crate::round::{Expected, Inbox, Outgoing, Received, Round, Step, expect_from, payload};
use crate::transcript::{Tag, Th};

/// Decoded and checked Q2 broadcast of one dealer.
struct DealerView {
    g: Vec<ProjectivePoint>,
    /// The broadcast without the sid echo (for D2).
    raw: Vec<u8>,
}

/// What one Q2 p2p message carried, checked.
struct PeerQ2 {
    /// From a dealer: the dealt share y_{p→me} and the chain code.
    dealt: Option<(Zeroizing<Scalar>, [u8; 32])>,
    /// From a new member: its zero-seed contribution and OT setup message.
    pair: Option<(Zeroizing<[u8; 32]>, Kg1)>,
}

/// The public result of the dealing: X'_1..X'_n' and the round-2 digest.
struct Dealt {
    public_shares: Vec<ProjectivePoint>,
    d2: [u8; 32],
}

impl ReshareRound2 {
    /// The session id.
    pub fn sid(&self) -> &[u8; 32] {
        &self.sid
    }

    fn check_dealer(&self, j: PartyIndex, b: &[u8]) -> Result<DealerView, Error> {
        let t = usize::from(self.cfg.spec.new_threshold);
        let len = 32 + t * POINT_LEN + 32 + (t - 1) * POK_LEN;
        if b.len() != len {
            return Err(Error::blame(
                j,
                format!("Q2 broadcast has {} bytes, expected {len} (t' = {t})", b.len()),
            ));
        }
        let mut r = Reader::new(b);
        let bad = |_| Error::blame(j, "malformed Q2 broadcast");
        let echo: [u8; 32] = r.array().map_err(bad)?;
        if echo != self.sid {
            return Err(Error::ViewMismatch { round: 2, party: j });
        }
        // 1. Points valid and ≠ O (the decoder rejects O).
        let mut g = Vec::with_capacity(t);
        for _ in 0..t {
            g.push(r.point().map_err(|e| Error::blame(j, format!("Q2 commitment: {e}")))?);
        }
        let salt: [u8; 32] = r.array().map_err(bad)?;
        // 2. Commitment opening.
        let c = self.commitments.get(&j).ok_or_else(|| invalid("unknown dealer"))?;
        if !bool::from(commit_poly(&self.cfg.setup_hash, j, &g, &salt).ct_eq(c)) {
            return Err(Error::blame(j, "Q2 coefficients do not open the Q1 commitment"));
        }
        // 3. Proofs for k ≥ 1.
        for (k, a) in g.iter().enumerate().skip(1) {
            let pi = Pok::read(&mut r).map_err(|e| Error::blame(j, format!("Q2 proof: {e}")))?;
            if !pi.verify(
                Tag::RsPokCoef,
                &[&self.sid, &j.to_be_bytes(), &(k as u16).to_be_bytes()],
                a,
            ) {
                return Err(Error::blame(
                    j,
                    format!("proof of knowledge of coefficient {k} is invalid"),
                ));
            }
        }
        r.finish().map_err(bad)?;
        // 4. Pin check G_{p,0} == λ_p·X_p.
        let m = self.cfg.spec.old_member_at(j).ok_or_else(|| invalid("unknown dealer"))?;
        let lambda = lagrange_at_zero(&self.cfg.spec.old_indices(), m.index)
            .ok_or_else(|| invalid("bad old index set"))?;
        if g.first() != Some(&(m.public_share * lambda)) {
            return Err(Error::blame(
                j,
                "dealt constant G_p,0 is not λ_p·X_p (wrong old share dealt)",
            ));
        }
        Ok(DealerView { g, raw: b.get(32..).unwrap_or_default().to_vec() })
    }

    /// Every dealer's checked Q2 broadcast (this party's own one included).
    fn dealer_views(&self, bcast: &Inbox) -> Result<BTreeMap<PartyIndex, DealerView>, Error> {
        let me = self.cfg.me;
        let mut views = BTreeMap::new();
        for j in self.cfg.spec.dealer_transport_indices() {
            if j == me {
                let d = self.dealer.as_ref().ok_or_else(|| invalid("missing dealer state"))?;
                let raw = self.own_q2.as_ref().and_then(|b| b.get(32..)).unwrap_or_default();
                views.insert(j, DealerView { g: d.commitments.clone(), raw: raw.to_vec() });
            } else {
                views.insert(j, self.check_dealer(j, payload(bcast, j))?);
            }
        }
        Ok(views)
    }

    /// The new public shares from the sum of the dealt commitments (which must open to the
    /// public key) and the digest D2 of every dealer's broadcast.
    fn dealt(&self, views: &BTreeMap<PartyIndex, DealerView>) -> Result<Dealt, Error> {
        let t_new = usize::from(self.cfg.spec.new_threshold);
        let mut g_agg = vec![ProjectivePoint::IDENTITY; t_new];
        for v in views.values() {
            for (acc, a) in g_agg.iter_mut().zip(&v.g) {
                *acc += a;
            }
        }
        if g_agg.first() != Some(&self.cfg.spec.public_key) {
            return Err(Error::Unattributable(
                "the dealt constants do not sum to the public key".into(),
            ));
        }
        let public_shares = public_shares_from(&g_agg, self.cfg.spec.new_parties());
        let mut h = Th::new(Tag::RsR2);
        h.put(&self.sid);
        for (j, v) in views {
            h.put_u16(*j).put(&v.raw);
        }
        Ok(Dealt { public_shares, d2: h.finish() })
    }

    /// Reads and checks party j's Q2 p2p message to this (new) member: the share a dealer
    /// dealt (Feldman against its commitments, chain code against the key id) and a new
    /// member's zero-seed contribution and OT setup.
    fn read_q2_p2p(
        &self,
        j: PartyIndex,
        m: &[u8],
        views: &BTreeMap<PartyIndex, DealerView>,
    ) -> Result<PeerQ2, Error> {
        let is_dealer = views.contains_key(&j);
        let is_new = self.cfg.spec.is_new(j);
        let len = 32 + if is_dealer { 64 } else { 0 } + if is_new { 32 + Kg1::LEN } else { 0 };
        if m.len() != len {
            return Err(Error::blame(
                j,
                format!("Q2 p2p message has {} bytes, expected {len}", m.len()),
            ));
        }
        let mut r = Reader::new(m);
        let bad = |_| Error::blame(j, "malformed Q2 p2p message");
        let echo: [u8; 32] = r.array().map_err(bad)?;
        if echo != self.sid {
            return Err(Error::ViewMismatch { round: 2, party: j });
        }
        let mut got = PeerQ2 { dealt: None, pair: None };
        if let Some(view) = views.get(&j) {
            let y =
                Zeroizing::new(r.scalar().map_err(|e| Error::blame(j, format!("Q2 share: {e}")))?);
            let cc: [u8; 32] = r.array().map_err(bad)?;
            if !feldman_check(&y, self.cfg.me, &view.g) {
                return Err(Error::blame(
                    j,
                    "share fails the Feldman check against its commitments",
                ));
            }
            if !bool::from(key_id(&self.cfg.spec.public_key, &cc).ct_eq(&self.cfg.spec.key_id)) {
                return Err(Error::blame(j, "sent a chain code that does not match the key id"));
            }
            got.dealt = Some((y, cc));
        }
        if is_new {
            let sigma = Zeroizing::new(r.array::<32>().map_err(bad)?);
            let kg1 =
                Kg1::decode(r.take(Kg1::LEN).map_err(bad)?).map_err(|e| Error::from_ot(j, 2, e))?;
            got.pair = Some((sigma, kg1));
        }
        r.finish().map_err(bad)?;
        Ok(got)
    }

    /// A new member's part of round 2: sums its dealt shares, answers every new member's OT
    /// setup as Bob (Q3 p2p) and proves its new share (Q3 broadcast).
    fn receive_new_share(
        &mut self,
        rng: &mut (impl CryptoRng + ?Sized),
        p2p: &Inbox,
        views: &BTreeMap<PartyIndex, DealerView>,
        dealt: &Dealt,
        chain_code: &mut Option<[u8; 32]>,
    ) -> Result<(NewState, Outgoing), Error> {
        let me = self.cfg.me;
        let mut share = match &self.dealer {
            Some(d) => d.poly.eval(me),
            None => Scalar::ZERO,
        };
        let mut seeds = BTreeMap::new();
        let mut bob_states = BTreeMap::new();
        let mut out = Outgoing::default();
        for j in self.expects().p2p {
            let got = self.read_q2_p2p(j, payload(p2p, j), views)?;
            if let Some((y, cc)) = got.dealt {
                *chain_code = Some(cc);
                share += *y;
            }
            if let Some((sigma, kg1)) = got.pair {
                let (bob, kg2) = ot::bob_respond(rng, &osid(&self.sid, j, me), &kg1)
                    .map_err(|e| Error::from_ot(j, 2, e))?;
                bob_states.insert(j, bob);
                let none = Zeroizing::new([0u8; 32]);
                let sent = self.sigma_sent.get(&j).unwrap_or(&none);
                seeds.insert(j, zero_seed(&self.sid, me, j, sent, &sigma));
                let mut k3p = Vec::with_capacity(32 + Kg2::LEN);
                k3p.extend_from_slice(&self.sid);
                k3p.extend_from_slice(&kg2.encode());
                out.p2p.insert(j, k3p);
            }
        }
        let cc = chain_code.ok_or_else(|| invalid("no chain code received"))?;
        let own_public = dealt.public_shares.get(usize::from(me) - 1).copied().unwrap_or_default();
        if ProjectivePoint::mul_by_generator(&share) != own_public {
            return Err(Error::Unattributable(
                "new share does not match the aggregate commitments".into(),
            ));
        }
        let x_bytes = point_to_bytes(&self.cfg.spec.public_key);
        let pok = Pok::prove(
            rng,
            Tag::RsPokShare,
            &[&self.sid, &me.to_be_bytes(), &x_bytes, &cc, &dealt.d2],
            &share,
        );
        let mut q3 = Vec::with_capacity(64 + 2 * POINT_LEN + POK_LEN);
        q3.extend_from_slice(&self.sid);
        q3.extend_from_slice(&dealt.d2);
        q3.extend_from_slice(&x_bytes);
        q3.extend_from_slice(&point_to_bytes(&own_public));
        pok.encode_into(&mut q3);
        out.broadcast = Some(q3);
        let alice = std::mem::take(&mut self.alice);
        Ok((NewState { share, seeds, bob_states, alice }, out))
    }

    /// Consumes Q2 and produces Q3 (§4.1 checks). An old-only party sends nothing in Q3.
    fn advance(
        mut self,
        rng: &mut (impl CryptoRng + ?Sized),
        bcast: &Inbox,
        p2p: &Inbox,
    ) -> Result<(ReshareRound3, Outgoing), Error> {
        let exp = self.expects();
        expect_from(2, bcast, &exp.bcast)?;
        expect_from(2, p2p, &exp.p2p)?;
        let views = self.dealer_views(bcast)?;
        let dealt = self.dealt(&views)?;
        let mut chain_code = self.dealer.as_ref().map(|d| d.secret.chain_code);
        let (new_state, out) = if self.cfg.am_new() {
            let (st, out) = self.receive_new_share(rng, p2p, &views, &dealt, &mut chain_code)?;
            (Some(st), out)
        } else {
            (None, Outgoing::default())
        };
        let chain_code = chain_code.ok_or_else(|| invalid("no chain code known"))?;
        let Dealt { public_shares, d2 } = dealt;
        let cfg = self.cfg.clone();
        Ok((ReshareRound3 { cfg, sid: self.sid, chain_code, public_shares, d2, new_state }, out))
    }
}

impl<'a> Round<'a> for ReshareRound2 {
    type Output = ReshareOutcome;

    fn number(&self) -> u16 {
        2
    }

    /// A Q2 broadcast from every other dealer; a new member also expects a p2p message from
    /// every other participant.
    fn expects(&self) -> Expected {
        Expected {
            bcast: self.cfg.dealers_others(),
            p2p: if self.cfg.am_new() { self.cfg.others() } else { Vec::new() },
        }
    }

    /// The other participants' ephemeral X25519 keys from Q1 (for the p2p channel keys).
    fn peer_ephemeral_keys(&self) -> BTreeMap<PartyIndex, [u8; 32]> {
        self.ephemeral.clone()
    }

    /// # Errors
    /// [`Error::ViewMismatch`] for a different sid; [`Error::Blame`] naming the dealer whose
    /// commitment, proof, pin check, Feldman share or chain code is wrong, or the new member
    /// whose OT message is malformed.
    fn next(
        self: Box<Self>,
        rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, ReshareOutcome>, Error> {
        let (next, out) = (*self).advance(rng, &got.bcast, &got.p2p)?;
        Ok(Step::next(next, out))
    }
}
