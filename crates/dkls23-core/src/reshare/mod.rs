//! Reshare: proactive refresh, lost-share recovery, adding/removing parties and changing the
//! threshold, as one protocol (`protocols.md` §4).
//!
//! A [`ReshareSpec`] describes the execution (old committee with its public shares, new committee,
//! new threshold, new epoch). Its canonical encoding goes into `Setup.extra`, so it is bound into
//! `setup_hash` and therefore into the session id: new parties inherit the old parties' check that
//! the spec matches their stored share.
//!
//! Every participant has one **transport index** (its `Setup` participant index): a new member
//! keeps its new index `k ∈ 1..=n'`; an old-only member gets `n' + 1, n' + 2, …` in ascending
//! old-index order. Inboxes, outgoing bundles and every [`Error`] that names a party use transport
//! indices ([`ReshareSpec::transport_of_old`] maps an old index).
//!
//! ```text
//! start              -> (ReshareRound1, Q1 broadcast)          all: ρ, E; old: C_p
//! ReshareRound1 next -> (ReshareRound2, Q2 bcast + p2p)        old: G_p, PoKs; y_{p→k}, cc; new: σ, M1
//! ReshareRound2 next -> (ReshareRound3, Q3 bcast + p2p)        checks §4.1 (pin, Feldman, key id)
//! ReshareRound3 next -> (ReshareRound4, Q4 ack)                checks §2.5 for the new committee
//! ReshareRound4 next -> ReshareOutcome                         every new party acknowledged
//! ```
//!
//! Files: [`ReshareSpec`] and its encodings in `spec.rs`, the checks of the dealt shares
//! (round 2) in `dealing.rs`, the final-share checks and acknowledgements (rounds 3–4) in
//! `commit.rs`; the round states and round 1 here.
//!
//! Old-only parties take part in Q1 and Q2, check the public Q2/Q3 broadcasts and wait for the
//! acks; their outcome is [`ReshareOutcome::Removed`] (erase the old share). Nobody may replace or
//! erase its stored share unless the last round returned `Ok`: a failed reshare leaves everyone on the
//! old epoch.

use std::collections::BTreeMap;

use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::encoding::{POINT_LEN, Reader, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::math::{PartyIndex, Polynomial, lagrange_at_zero};
use crate::ot::{self, AliceSetup, BobState, Kg1};
use crate::pairwise::osid;
use crate::pok::{POK_LEN, Pok};
use crate::round::{Expected, Outgoing, Received, Round, Step, expect_from, payload, random_bytes};
use crate::transcript::{Tag, Th};

mod commit;
mod dealing;
mod spec;

pub use commit::acknowledgement;
pub use spec::{NewMember, OldMember, ReshareSpec};

/// The round whose messages are the acknowledgements a reshare commits on (Q4).
pub const COMMIT_ROUND: u16 = 4;

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}

/// A dealer's secret input: its old index, Shamir share s_p and the chain code. Zeroized on drop.
pub struct OldSecret {
    index: PartyIndex,
    share: Scalar,
    chain_code: [u8; 32],
}

impl OldSecret {
    /// The dealer input of a stored share.
    pub fn from_share(share: &KeyShare) -> Self {
        Self { index: share.index(), share: share.secret_share, chain_code: *share.chain_code() }
    }

    /// **Hazmat**: a dealer input from raw parts (key import and migration, §6.1). The share must
    /// satisfy `s_p·G == X_p` of the spec, otherwise every participant blames this dealer.
    pub fn from_parts(index: PartyIndex, share: Scalar, chain_code: [u8; 32]) -> Self {
        Self { index, share, chain_code }
    }
}

impl Zeroize for OldSecret {
    fn zeroize(&mut self) {
        self.share.zeroize();
        self.chain_code.zeroize();
    }
}
impl Drop for OldSecret {
    fn drop(&mut self) {
        self.zeroize();
    }
}
impl ZeroizeOnDrop for OldSecret {}

/// Public parameters of this party's reshare execution.
#[derive(Debug, Clone)]
pub struct ReshareConfig {
    /// The reshare description (from the setup).
    pub spec: ReshareSpec,
    /// `setup_hash` of the session setup.
    pub setup_hash: [u8; 32],
    /// This party's transport index.
    pub me: PartyIndex,
    /// This party's ephemeral X25519 public key (sent in Q1, bound into the sid).
    pub ephemeral_public: [u8; 32],
}

/// The result of a successful reshare for one party.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned once per reshare; callers match and store it
pub enum ReshareOutcome {
    /// This party is in the new committee: store this share (new epoch) in place of the old one.
    NewShare(KeyShare),
    /// This party dealt but is not in the new committee: erase its old share, OT and zero seeds.
    Removed,
}

const Q1_BASE: usize = 64;

/// Secret state after Q1.
pub struct ReshareRound1 {
    cfg: ReshareConfig,
    dealer: Option<Dealer>,
    own_q1: Vec<u8>,
}

struct Dealer {
    secret: OldSecret,
    poly: Polynomial,
    /// G_{p,k} = g_{p,k}·G (public; computed once).
    commitments: Vec<ProjectivePoint>,
    salt: [u8; 32],
}

fn commit_poly(
    setup_hash: &[u8; 32],
    p: PartyIndex,
    g: &[ProjectivePoint],
    salt: &[u8; 32],
) -> [u8; 32] {
    let mut h = Th::new(Tag::RsComPoly);
    h.put(setup_hash).put_u16(p);
    for a in g {
        h.put(&point_to_bytes(a));
    }
    h.put(salt);
    h.finish()
}

impl ReshareConfig {
    fn others(&self) -> Vec<PartyIndex> {
        let mut v: Vec<PartyIndex> = self
            .spec
            .transport_participants()
            .into_iter()
            .map(|(t, _)| t)
            .filter(|&t| t != self.me)
            .collect();
        v.sort_unstable();
        v
    }
    fn new_others(&self) -> Vec<PartyIndex> {
        (1..=self.spec.new_parties()).filter(|&k| k != self.me).collect()
    }
    fn dealers_others(&self) -> Vec<PartyIndex> {
        self.spec.dealer_transport_indices().into_iter().filter(|&t| t != self.me).collect()
    }
    fn am_new(&self) -> bool {
        self.spec.is_new(self.me)
    }
}

/// Q1: every participant sends (ρ, E); a dealer also commits to its polynomial g_p with
/// g_p(0) = λ_p·s_p.
///
/// # Errors
/// [`Error::InvalidInput`] if the spec is invalid, `me` is not a participant, or the dealer input
/// is missing, unexpected or for another index.
pub fn start(
    rng: &mut (impl CryptoRng + ?Sized),
    cfg: ReshareConfig,
    old: Option<OldSecret>,
) -> Result<(ReshareRound1, Outgoing), Error> {
    cfg.spec.validate()?;
    if !cfg.spec.transport_participants().iter().any(|(t, _)| *t == cfg.me) {
        return Err(invalid(format!("transport index {} is not a participant", cfg.me)));
    }
    let my_old = cfg.spec.old_member_at(cfg.me).map(|m| m.index);
    let dealer = match (my_old, old) {
        (None, None) => None,
        (Some(p), Some(secret)) if secret.index == p => {
            let set = cfg.spec.old_indices();
            let lambda = lagrange_at_zero(&set, p).ok_or_else(|| invalid("bad old index set"))?;
            let w = lambda * secret.share;
            let poly = Polynomial::random(rng, usize::from(cfg.spec.new_threshold), Some(w));
            let commitments = poly.commitments();
            Some(Dealer { secret, poly, commitments, salt: random_bytes(rng) })
        }
        (Some(p), _) => {
            return Err(invalid(format!("old member {p} must supply its own old share")));
        }
        (None, Some(_)) => return Err(invalid("this party is not in the old committee")),
    };
    let mut q1 = Vec::with_capacity(Q1_BASE + 32);
    q1.extend_from_slice(&random_bytes(rng));
    q1.extend_from_slice(&cfg.ephemeral_public);
    if let Some(d) = &dealer {
        q1.extend_from_slice(&commit_poly(&cfg.setup_hash, cfg.me, &d.commitments, &d.salt));
    }
    Ok((ReshareRound1 { cfg, dealer, own_q1: q1.clone() }, Outgoing::broadcast(q1)))
}

/// Secret state after Q2.
pub struct ReshareRound2 {
    cfg: ReshareConfig,
    sid: [u8; 32],
    dealer: Option<Dealer>,
    own_q2: Option<Vec<u8>>,
    ephemeral: BTreeMap<PartyIndex, [u8; 32]>,
    commitments: BTreeMap<PartyIndex, [u8; 32]>,
    sigma_sent: BTreeMap<PartyIndex, zeroize::Zeroizing<[u8; 32]>>,
    alice: BTreeMap<PartyIndex, AliceSetup>,
}

/// What a new member holds after round 2: its new share, zero seeds and OT states.
struct NewState {
    share: Scalar,
    seeds: BTreeMap<PartyIndex, [u8; 32]>,
    bob_states: BTreeMap<PartyIndex, BobState>,
    alice: BTreeMap<PartyIndex, AliceSetup>,
}

impl Drop for NewState {
    fn drop(&mut self) {
        self.share.zeroize();
        for s in self.seeds.values_mut() {
            s.zeroize();
        }
    }
}

/// State after Q3.
pub struct ReshareRound3 {
    cfg: ReshareConfig,
    sid: [u8; 32],
    chain_code: [u8; 32],
    public_shares: Vec<ProjectivePoint>,
    d2: [u8; 32],
    new_state: Option<NewState>,
}

/// State after Q4: the new share (if any) is pending until every new member has acknowledged.
pub struct ReshareRound4 {
    others: Vec<PartyIndex>,
    sid: [u8; 32],
    own_ack: [u8; 32],
    pending: Option<KeyShare>,
}

/// What the Q1 broadcasts established: the session id, every other participant's ephemeral
/// key and every other dealer's polynomial commitment.
struct Q1View {
    sid: [u8; 32],
    ephemeral: BTreeMap<PartyIndex, [u8; 32]>,
    commitments: BTreeMap<PartyIndex, [u8; 32]>,
}

impl ReshareRound1 {
    /// Checks and decodes the Q1 broadcasts (own one included in the session id).
    fn read_q1(&self, q1: &BTreeMap<PartyIndex, Vec<u8>>) -> Result<Q1View, Error> {
        let (cfg, me) = (&self.cfg, self.cfg.me);
        let dealers = cfg.spec.dealer_transport_indices();
        let mut view =
            Q1View { sid: [0; 32], ephemeral: BTreeMap::new(), commitments: BTreeMap::new() };
        let mut all: Vec<PartyIndex> = cfg.others();
        all.push(me);
        all.sort_unstable();
        let mut h = Th::new(Tag::RsSid);
        h.put(&cfg.setup_hash);
        for &j in &all {
            let bytes: &[u8] = if j == me { &self.own_q1 } else { payload(q1, j) };
            let is_dealer = dealers.contains(&j);
            let len = Q1_BASE + if is_dealer { 32 } else { 0 };
            if bytes.len() != len {
                return Err(Error::blame(
                    j,
                    format!("Q1 has {} bytes, expected {len}", bytes.len()),
                ));
            }
            h.put_u16(j).put(bytes);
            if j != me {
                let mut r = Reader::new(bytes);
                let bad = |_| Error::blame(j, "malformed Q1");
                let _rho: [u8; 32] = r.array().map_err(bad)?;
                view.ephemeral.insert(j, r.array().map_err(bad)?);
                if is_dealer {
                    view.commitments.insert(j, r.array().map_err(bad)?);
                }
            }
        }
        view.sid = h.finish();
        Ok(view)
    }

    /// A dealer's Q2 broadcast: sid ‖ G_p,0..G_p,t'-1 ‖ salt ‖ proofs for the coefficients k ≥ 1.
    fn q2_broadcast(
        &self,
        rng: &mut (impl CryptoRng + ?Sized),
        d: &Dealer,
        sid: &[u8; 32],
    ) -> Vec<u8> {
        let me = self.cfg.me;
        let t_new = usize::from(self.cfg.spec.new_threshold);
        let mut b = Vec::with_capacity(64 + t_new * (POINT_LEN + POK_LEN));
        b.extend_from_slice(sid);
        for a in &d.commitments {
            b.extend_from_slice(&point_to_bytes(a));
        }
        b.extend_from_slice(&d.salt);
        for (k, a) in d.poly.coeffs().iter().enumerate().skip(1) {
            Pok::prove(
                rng,
                Tag::RsPokCoef,
                &[sid, &me.to_be_bytes(), &(k as u16).to_be_bytes()],
                a,
            )
            .encode_into(&mut b);
        }
        b
    }

    /// Consumes the other participants' Q1 broadcasts and produces Q2.
    fn advance(
        self,
        rng: &mut (impl CryptoRng + ?Sized),
        q1: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(ReshareRound2, Outgoing), Error> {
        expect_from(1, q1, &self.cfg.others())?;
        let Q1View { sid, ephemeral, commitments } = self.read_q1(q1)?;
        let mut out = Outgoing::default();
        let own_q2 = self.dealer.as_ref().map(|d| self.q2_broadcast(rng, d, &sid));
        out.broadcast.clone_from(&own_q2);
        let ReshareRound1 { cfg, dealer, .. } = self;
        let me = cfg.me;
        let mut sigma_sent = BTreeMap::new();
        let mut alice = BTreeMap::new();
        for k in cfg.new_others() {
            let mut m = Vec::with_capacity(32 + 64 + 32 + Kg1::LEN);
            m.extend_from_slice(&sid);
            if let Some(d) = &dealer {
                m.extend_from_slice(&scalar_to_bytes(&d.poly.eval(k)));
                m.extend_from_slice(&d.secret.chain_code);
            }
            if cfg.am_new() {
                let sigma = zeroize::Zeroizing::new(random_bytes(rng));
                let (setup, kg1) = ot::alice_start(rng, osid(&sid, me, k));
                m.extend_from_slice(&*sigma);
                m.extend_from_slice(&kg1.encode());
                sigma_sent.insert(k, sigma);
                alice.insert(k, setup);
            }
            if m.len() > 32 {
                out.p2p.insert(k, m);
            }
        }
        Ok((
            ReshareRound2 { cfg, sid, dealer, own_q2, ephemeral, commitments, sigma_sent, alice },
            out,
        ))
    }
}

impl<'a> Round<'a> for ReshareRound1 {
    type Output = ReshareOutcome;

    fn number(&self) -> u16 {
        1
    }

    /// A Q1 broadcast from every other participant.
    fn expects(&self) -> Expected {
        Expected::broadcasts(self.cfg.others())
    }

    /// # Errors
    /// [`Error::Timeout`] for a missing Q1; [`Error::Blame`] for a malformed one.
    fn next(
        self: Box<Self>,
        rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, ReshareOutcome>, Error> {
        let (next, out) = (*self).advance(rng, &got.bcast)?;
        Ok(Step::next(next, out))
    }
}

redacted!(ReshareRound1, ReshareRound2, ReshareRound3, ReshareRound4, OldSecret);

impl Drop for Dealer {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

#[cfg(test)]
mod hygiene {
    use super::*;

    fn zeroized_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    /// Type-level: the zero-seed contributions sent in round 2 are wiped with the round.
    #[allow(dead_code)]
    fn round2_secrets(r: &ReshareRound2) {
        for sigma in r.sigma_sent.values() {
            zeroized_on_drop(sigma);
        }
    }

    #[test]
    fn round2_secrets_are_zeroizing() {
        let f: fn(&ReshareRound2) = round2_secrets;
        let _ = f;
    }
}
