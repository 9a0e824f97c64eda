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
//! ReshareRound1::next-> (ReshareRound2, Q2 bcast + p2p)        old: G_p, PoKs; y_{p→k}, cc; new: σ, M1
//! ReshareRound2::next-> (ReshareRound3, Q3 bcast + p2p)        checks §4.1 (pin, Feldman, key id)
//! ReshareRound3::next-> (ReshareRound4, Q4 ack)                checks §2.5 for the new committee
//! ReshareRound4::finish -> ReshareOutcome                       every new party acknowledged
//! ```
//!
//! Old-only parties take part in Q1 and Q2, check the public Q2/Q3 broadcasts and wait for the
//! acks; their outcome is [`ReshareOutcome::Removed`] (erase the old share). Nobody may replace or
//! erase its stored share unless `finish` returned `Ok`: a failed reshare leaves everyone on the
//! old epoch.

use std::collections::BTreeMap;

use k256::elliptic_curve::group::Group;
use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::dkg::{
    FinalView, Outgoing, expect_from, finish_pair_setup, osid, public_ack, random_bytes, zero_seed,
};
use crate::encoding::{POINT_LEN, Reader, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::identity::IdentityPublicKey;
use crate::keyshare::{KeyShare, key_id, public_shares_from};
use crate::math::{PartyIndex, Polynomial, feldman_check, lagrange_at_zero};
use crate::ot::{self, AliceSetup, AliceState, BobState, Kg1, Kg2};
use crate::pok::{POK_LEN, Pok};
use crate::setup::{MAX_PARTIES, ProtocolId, Setup};
use crate::transcript::{Tag, Th};

/// A member of the old committee: its old index, identity and public share `X_p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldMember {
    /// Old index p.
    pub index: PartyIndex,
    /// Identity key.
    pub identity: IdentityPublicKey,
    /// Public share X_p of the current epoch.
    pub public_share: ProjectivePoint,
}

/// A member of the new committee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// New index k ∈ 1..=n'.
    pub index: PartyIndex,
    /// Identity key.
    pub identity: IdentityPublicKey,
}

/// The public description of one reshare (`protocols.md` §4 setup fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReshareSpec {
    /// The key id (unchanged by a reshare).
    pub key_id: [u8; 32],
    /// `keygen_sid` of the current epoch.
    pub old_keygen_sid: [u8; 32],
    /// The public key X (unchanged).
    pub public_key: ProjectivePoint,
    /// Threshold of the current epoch.
    pub old_threshold: u16,
    /// Dealers: current holders, ascending old index, at least `old_threshold` of them.
    pub old_committee: Vec<OldMember>,
    /// The new committee: indices exactly `1..=n'`, ascending.
    pub new_committee: Vec<NewMember>,
    /// New threshold t'.
    pub new_threshold: u16,
    /// Epoch of the new shares (current epoch + 1).
    pub new_epoch: u32,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}

fn share_identity(share: &KeyShare, l: PartyIndex) -> Result<IdentityPublicKey, Error> {
    let bytes = share.identity(l).ok_or_else(|| invalid(format!("no identity for party {l}")))?;
    IdentityPublicKey::from_bytes(bytes)
        .map_err(|e| invalid(format!("stored identity of party {l}: {e}")))
}

impl ReshareSpec {
    /// Proactive refresh: same committee, same indices, same threshold, next epoch.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the share's stored identities do not decode.
    pub fn refresh(share: &KeyShare) -> Result<Self, Error> {
        let all: Vec<PartyIndex> = (1..=share.parties()).collect();
        let new = all
            .iter()
            .map(|&l| Ok(NewMember { index: l, identity: share_identity(share, l)? }))
            .collect::<Result<Vec<_>, Error>>()?;
        Self::from_share(share, &all, new, share.threshold())
    }

    /// A general reshare of `share`'s key: dealers `old` (old indices), any new committee and
    /// threshold (recovery, adding/removing parties, threshold change).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the result is not a valid spec.
    pub fn from_share(
        share: &KeyShare,
        old: &[PartyIndex],
        new_committee: Vec<NewMember>,
        new_threshold: u16,
    ) -> Result<Self, Error> {
        let mut old_sorted = old.to_vec();
        old_sorted.sort_unstable();
        let old_committee = old_sorted
            .iter()
            .map(|&p| {
                Ok(OldMember {
                    index: p,
                    identity: share_identity(share, p)?,
                    public_share: *share
                        .public_share(p)
                        .ok_or_else(|| invalid(format!("party {p} is not a holder")))?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let spec = Self {
            key_id: *share.key_id(),
            old_keygen_sid: *share.keygen_sid(),
            public_key: *share.public_key(),
            old_threshold: share.threshold(),
            old_committee,
            new_committee,
            new_threshold,
            new_epoch: share
                .epoch()
                .checked_add(1)
                .ok_or_else(|| invalid("epoch counter exhausted"))?,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Number of parties n' of the new committee.
    pub fn new_parties(&self) -> u16 {
        self.new_committee.len() as u16
    }

    /// Checks every structural rule and that the old public shares interpolate to X.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the broken rule.
    pub fn validate(&self) -> Result<(), Error> {
        let n_new = self.new_committee.len();
        let t_new = usize::from(self.new_threshold);
        if !(2..=usize::from(MAX_PARTIES)).contains(&n_new) || t_new < 2 || t_new > n_new {
            return Err(invalid(format!(
                "need 2 <= t' <= n' <= 255, got t' = {t_new}, n' = {n_new}"
            )));
        }
        for (pos, m) in self.new_committee.iter().enumerate() {
            if usize::from(m.index) != pos + 1 {
                return Err(invalid("new committee indices must be exactly 1..=n' in order"));
            }
        }
        let t_old = usize::from(self.old_threshold);
        if t_old < 2 || self.old_committee.len() < t_old {
            return Err(invalid(format!(
                "need at least t = {t_old} >= 2 dealers, got {}",
                self.old_committee.len()
            )));
        }
        let mut prev = 0;
        for m in &self.old_committee {
            if m.index <= prev {
                return Err(invalid("old committee indices must be distinct and ascending"));
            }
            prev = m.index;
        }
        let mut ids: Vec<IdentityPublicKey> =
            self.new_committee.iter().map(|m| m.identity).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != n_new {
            return Err(invalid("an identity appears twice in the new committee"));
        }
        let mut old_ids: Vec<IdentityPublicKey> =
            self.old_committee.iter().map(|m| m.identity).collect();
        old_ids.sort_unstable();
        old_ids.dedup();
        if old_ids.len() != self.old_committee.len() {
            return Err(invalid("an identity appears twice in the old committee"));
        }
        if self.transport_participants().len() > usize::from(MAX_PARTIES) {
            return Err(invalid("more than 255 participants"));
        }
        let set = self.old_indices();
        let mut acc = ProjectivePoint::IDENTITY;
        for m in &self.old_committee {
            let lambda =
                lagrange_at_zero(&set, m.index).ok_or_else(|| invalid("bad old index set"))?;
            acc += m.public_share * lambda;
        }
        if acc != self.public_key || bool::from(self.public_key.is_identity()) {
            return Err(invalid("the old public shares do not interpolate to the public key"));
        }
        Ok(())
    }

    fn old_indices(&self) -> Vec<PartyIndex> {
        self.old_committee.iter().map(|m| m.index).collect()
    }

    /// `(transport index, identity)` of every participant: new members under their new index,
    /// then old-only members under `n' + 1, …` in ascending old-index order.
    pub fn transport_participants(&self) -> Vec<(PartyIndex, IdentityPublicKey)> {
        let mut out: Vec<(PartyIndex, IdentityPublicKey)> =
            self.new_committee.iter().map(|m| (m.index, m.identity)).collect();
        let mut next = self.new_parties();
        for m in &self.old_committee {
            if !self.new_committee.iter().any(|n| n.identity == m.identity) {
                next = next.saturating_add(1);
                out.push((next, m.identity));
            }
        }
        out
    }

    /// The transport index of old member `p`.
    pub fn transport_of_old(&self, p: PartyIndex) -> Option<PartyIndex> {
        let m = self.old_committee.iter().find(|m| m.index == p)?;
        self.transport_participants().iter().find(|(_, id)| *id == m.identity).map(|(t, _)| *t)
    }

    /// The old member (dealer) behind transport index `t`, if any.
    pub fn old_member_at(&self, t: PartyIndex) -> Option<&OldMember> {
        let id = self.transport_participants().into_iter().find(|(i, _)| *i == t)?.1;
        self.old_committee.iter().find(|m| m.identity == id)
    }

    /// Whether transport index `t` is in the new committee.
    pub fn is_new(&self, t: PartyIndex) -> bool {
        t >= 1 && t <= self.new_parties()
    }

    /// Transport indices of the dealers, ascending.
    pub fn dealer_transport_indices(&self) -> Vec<PartyIndex> {
        let mut v: Vec<PartyIndex> = self
            .transport_participants()
            .into_iter()
            .filter(|(_, id)| self.old_committee.iter().any(|m| m.identity == *id))
            .map(|(t, _)| t)
            .collect();
        v.sort_unstable();
        v
    }

    /// Checks the spec against an old member's stored share (§4: X, key id, keygen_sid, X_p,
    /// identities, threshold and epoch must all match).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the mismatch.
    pub fn check_old_share(&self, share: &KeyShare) -> Result<(), Error> {
        if self.key_id != *share.key_id()
            || self.public_key != *share.public_key()
            || self.old_keygen_sid != *share.keygen_sid()
        {
            return Err(invalid("the reshare names another key or another epoch of this key"));
        }
        if self.old_threshold != share.threshold()
            || Some(self.new_epoch) != share.epoch().checked_add(1)
        {
            return Err(invalid("the reshare's old threshold or new epoch does not match"));
        }
        for m in &self.old_committee {
            if share.public_share(m.index) != Some(&m.public_share)
                || share.identity(m.index) != Some(m.identity.to_bytes().as_slice())
            {
                return Err(invalid(format!(
                    "old member {}'s public share or identity does not match the key share",
                    m.index
                )));
            }
        }
        Ok(())
    }

    /// Canonical encoding (goes into `Setup.extra`):
    /// `key_id ‖ old_keygen_sid ‖ X ‖ t_old u16 ‖ |O| u16 ‖ (p u16 ‖ identity ‖ X_p)* ‖ t' u16 ‖
    /// n' u16 ‖ (k u16 ‖ identity)* ‖ new_epoch u32`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(100 + self.old_committee.len() * 70 + self.new_committee.len() * 36);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.old_keygen_sid);
        out.extend_from_slice(&point_to_bytes(&self.public_key));
        out.extend_from_slice(&self.old_threshold.to_be_bytes());
        out.extend_from_slice(&(self.old_committee.len() as u16).to_be_bytes());
        for m in &self.old_committee {
            out.extend_from_slice(&m.index.to_be_bytes());
            out.extend_from_slice(&m.identity.to_bytes());
            out.extend_from_slice(&point_to_bytes(&m.public_share));
        }
        out.extend_from_slice(&self.new_threshold.to_be_bytes());
        out.extend_from_slice(&(self.new_committee.len() as u16).to_be_bytes());
        for m in &self.new_committee {
            out.extend_from_slice(&m.index.to_be_bytes());
            out.extend_from_slice(&m.identity.to_bytes());
        }
        out.extend_from_slice(&self.new_epoch.to_be_bytes());
        out
    }

    /// Strict decoding and validation.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for malformed or invalid input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |e: crate::encoding::DecodeError| invalid(format!("reshare spec: {e}"));
        let bad_id = |e: crate::identity::IdentityError| invalid(format!("reshare spec: {e}"));
        let mut r = Reader::new(bytes);
        let key_id = r.array().map_err(bad)?;
        let old_keygen_sid = r.array().map_err(bad)?;
        let public_key = r.point().map_err(bad)?;
        let old_threshold = r.u16().map_err(bad)?;
        let n_old = r.u16().map_err(bad)?;
        if n_old > MAX_PARTIES {
            return Err(invalid("reshare spec: too many old members"));
        }
        let mut old_committee = Vec::with_capacity(usize::from(n_old));
        for _ in 0..n_old {
            let index = r.u16().map_err(bad)?;
            let identity = IdentityPublicKey::read(&mut r).map_err(bad_id)?;
            let public_share = r.point().map_err(bad)?;
            old_committee.push(OldMember { index, identity, public_share });
        }
        let new_threshold = r.u16().map_err(bad)?;
        let n_new = r.u16().map_err(bad)?;
        if n_new > MAX_PARTIES {
            return Err(invalid("reshare spec: too many new members"));
        }
        let mut new_committee = Vec::with_capacity(usize::from(n_new));
        for _ in 0..n_new {
            let index = r.u16().map_err(bad)?;
            let identity = IdentityPublicKey::read(&mut r).map_err(bad_id)?;
            new_committee.push(NewMember { index, identity });
        }
        let new_epoch = r.u32().map_err(bad)?;
        r.finish().map_err(bad)?;
        let spec = Self {
            key_id,
            old_keygen_sid,
            public_key,
            old_threshold,
            old_committee,
            new_committee,
            new_threshold,
            new_epoch,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The `Setup` of this reshare (protocol `Reshare`, n' and t', transport participants, this
    /// spec in `extra`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the setup is rejected.
    pub fn to_setup(&self, iid: [u8; 32], ttl_secs: u32) -> Result<Setup, Error> {
        self.validate()?;
        Setup::new(
            ProtocolId::Reshare,
            iid,
            self.new_parties(),
            self.new_threshold,
            self.transport_participants(),
            self.to_bytes(),
            ttl_secs,
        )
        .map_err(|e| invalid(format!("reshare setup: {e}")))
    }

    /// Parses the spec from a reshare `Setup` and checks that the setup's n, t and participant
    /// list are exactly the ones the spec implies.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on any mismatch.
    pub fn from_setup(setup: &Setup) -> Result<Self, Error> {
        if setup.protocol() != ProtocolId::Reshare {
            return Err(invalid("the setup is not a reshare setup"));
        }
        let spec = Self::from_bytes(setup.extra())?;
        let mut expected = spec.transport_participants();
        expected.sort_by_key(|(i, _)| *i);
        if setup.n() != spec.new_parties()
            || setup.t() != spec.new_threshold
            || setup.participants() != expected.as_slice()
        {
            return Err(invalid("the setup's parties or threshold do not match its reshare spec"));
        }
        Ok(spec)
    }
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

/// Which parties a round expects messages from (transport indices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Senders of broadcasts.
    pub bcast: Vec<PartyIndex>,
    /// Senders of point-to-point messages to this party.
    pub p2p: Vec<PartyIndex>,
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
) -> Result<(ReshareRound1, Vec<u8>), Error> {
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
    Ok((ReshareRound1 { cfg, dealer, own_q1: q1.clone() }, q1))
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

impl ReshareRound1 {
    /// Who Q1 broadcasts are expected from.
    pub fn expects(&self) -> Expected {
        Expected { bcast: self.cfg.others(), p2p: Vec::new() }
    }

    /// Consumes the other participants' Q1 broadcasts and produces Q2.
    ///
    /// # Errors
    /// [`Error::Timeout`] for a missing Q1; [`Error::Blame`] for a malformed one.
    pub fn next(
        self,
        rng: &mut (impl CryptoRng + ?Sized),
        q1: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(ReshareRound2, Outgoing), Error> {
        let ReshareRound1 { cfg, dealer, own_q1 } = self;
        let me = cfg.me;
        let others = cfg.others();
        expect_from(1, q1, &others)?;
        let dealers = cfg.spec.dealer_transport_indices();
        let mut ephemeral = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        let mut all: Vec<PartyIndex> = others.clone();
        all.push(me);
        all.sort_unstable();
        let mut h = Th::new(Tag::RsSid);
        h.put(&cfg.setup_hash);
        for &j in &all {
            let bytes: &[u8] =
                if j == me { &own_q1 } else { q1.get(&j).map_or(&[][..], Vec::as_slice) };
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
                ephemeral.insert(j, r.array().map_err(bad)?);
                if is_dealer {
                    commitments.insert(j, r.array().map_err(bad)?);
                }
            }
        }
        let sid = h.finish();
        let t_new = usize::from(cfg.spec.new_threshold);
        let mut out = Outgoing::default();
        let mut own_q2 = None;
        if let Some(d) = &dealer {
            let g = &d.commitments;
            let mut b = Vec::with_capacity(64 + t_new * (POINT_LEN + POK_LEN));
            b.extend_from_slice(&sid);
            for a in g {
                b.extend_from_slice(&point_to_bytes(a));
            }
            b.extend_from_slice(&d.salt);
            for (k, a) in d.poly.coeffs().iter().enumerate().skip(1) {
                Pok::prove(
                    rng,
                    Tag::RsPokCoef,
                    &[&sid, &me.to_be_bytes(), &(k as u16).to_be_bytes()],
                    a,
                )
                .encode_into(&mut b);
            }
            own_q2 = Some(b.clone());
            out.broadcast = Some(b);
        }
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
                let (setup, kg1) = ot::alice_start(rng, osid(Tag::OtSetup, &sid, me, k));
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

/// Decoded and checked Q2 broadcast of one dealer.
struct DealerView {
    g: Vec<ProjectivePoint>,
    /// The broadcast without the sid echo (for D2).
    raw: Vec<u8>,
}

impl ReshareRound2 {
    /// The session id.
    pub fn sid(&self) -> &[u8; 32] {
        &self.sid
    }

    /// The other participants' ephemeral X25519 keys from Q1 (for the p2p channel keys).
    pub fn peer_ephemeral_keys(&self) -> BTreeMap<PartyIndex, [u8; 32]> {
        self.ephemeral.clone()
    }

    /// Who Q2 messages are expected from.
    pub fn expects(&self) -> Expected {
        Expected {
            bcast: self.cfg.dealers_others(),
            p2p: if self.cfg.am_new() { self.cfg.others() } else { Vec::new() },
        }
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

    /// Consumes Q2 and produces Q3 (§4.1 checks). An old-only party sends nothing in Q3.
    ///
    /// # Errors
    /// [`Error::ViewMismatch`] for a different sid; [`Error::Blame`] naming the dealer whose
    /// commitment, proof, pin check, Feldman share or chain code is wrong, or the new member
    /// whose OT message is malformed.
    pub fn next(
        mut self,
        rng: &mut (impl CryptoRng + ?Sized),
        bcast: &BTreeMap<PartyIndex, Vec<u8>>,
        p2p: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(ReshareRound3, Outgoing), Error> {
        let exp = self.expects();
        expect_from(2, bcast, &exp.bcast)?;
        expect_from(2, p2p, &exp.p2p)?;
        let me = self.cfg.me;
        let t_new = usize::from(self.cfg.spec.new_threshold);
        let n_new = self.cfg.spec.new_parties();
        let dealers = self.cfg.spec.dealer_transport_indices();
        let mut views: BTreeMap<PartyIndex, DealerView> = BTreeMap::new();
        for &j in &dealers {
            if j == me {
                let d = self.dealer.as_ref().ok_or_else(|| invalid("missing dealer state"))?;
                let raw = self.own_q2.as_ref().and_then(|b| b.get(32..)).unwrap_or_default();
                views.insert(j, DealerView { g: d.commitments.clone(), raw: raw.to_vec() });
            } else {
                let b = bcast.get(&j).map_or(&[][..], Vec::as_slice);
                views.insert(j, self.check_dealer(j, b)?);
            }
        }
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
        let public_shares = public_shares_from(&g_agg, n_new);
        let mut h = Th::new(Tag::RsR2);
        h.put(&self.sid);
        for (j, v) in &views {
            h.put_u16(*j).put(&v.raw);
        }
        let d2 = h.finish();

        let mut chain_code = self.dealer.as_ref().map(|d| d.secret.chain_code);
        let mut out = Outgoing::default();
        let mut new_state = None;
        if self.cfg.am_new() {
            let mut share = match &self.dealer {
                Some(d) => d.poly.eval(me),
                None => Scalar::ZERO,
            };
            let mut seeds = BTreeMap::new();
            let mut bob_states = BTreeMap::new();
            for &j in &exp.p2p {
                let m = p2p.get(&j).map_or(&[][..], Vec::as_slice);
                let is_dealer = dealers.contains(&j);
                let is_new = self.cfg.spec.is_new(j);
                let len =
                    32 + if is_dealer { 64 } else { 0 } + if is_new { 32 + Kg1::LEN } else { 0 };
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
                if is_dealer {
                    let y = r.scalar().map_err(|e| Error::blame(j, format!("Q2 share: {e}")))?;
                    let cc: [u8; 32] = r.array().map_err(bad)?;
                    let g = &views.get(&j).ok_or_else(|| invalid("unknown dealer"))?.g;
                    if !feldman_check(&y, me, g) {
                        return Err(Error::blame(
                            j,
                            "share fails the Feldman check against its commitments",
                        ));
                    }
                    if !bool::from(
                        key_id(&self.cfg.spec.public_key, &cc).ct_eq(&self.cfg.spec.key_id),
                    ) {
                        return Err(Error::blame(
                            j,
                            "sent a chain code that does not match the key id",
                        ));
                    }
                    chain_code = Some(cc);
                    share += y;
                }
                if is_new {
                    let sigma: [u8; 32] = r.array().map_err(bad)?;
                    let kg1 = Kg1::decode(r.take(Kg1::LEN).map_err(bad)?)
                        .map_err(|e| Error::from_ot(j, 2, e))?;
                    let (bob, kg2) =
                        ot::bob_respond(rng, &osid(Tag::OtSetup, &self.sid, j, me), &kg1)
                            .map_err(|e| Error::from_ot(j, 2, e))?;
                    bob_states.insert(j, bob);
                    let none = zeroize::Zeroizing::new([0u8; 32]);
                    let sent = self.sigma_sent.get(&j).unwrap_or(&none);
                    seeds.insert(j, zero_seed(&self.sid, me, j, sent, &sigma));
                    let mut k3p = Vec::with_capacity(32 + Kg2::LEN);
                    k3p.extend_from_slice(&self.sid);
                    k3p.extend_from_slice(&kg2.encode());
                    out.p2p.insert(j, k3p);
                }
                r.finish().map_err(bad)?;
            }
            let cc = chain_code.ok_or_else(|| invalid("no chain code received"))?;
            let own_public = public_shares.get(usize::from(me) - 1).copied().unwrap_or_default();
            if ProjectivePoint::mul_by_generator(&share) != own_public {
                return Err(Error::Unattributable(
                    "new share does not match the aggregate commitments".into(),
                ));
            }
            let x_bytes = point_to_bytes(&self.cfg.spec.public_key);
            let pok = Pok::prove(
                rng,
                Tag::RsPokShare,
                &[&self.sid, &me.to_be_bytes(), &x_bytes, &cc, &d2],
                &share,
            );
            let mut q3 = Vec::with_capacity(64 + 2 * POINT_LEN + POK_LEN);
            q3.extend_from_slice(&self.sid);
            q3.extend_from_slice(&d2);
            q3.extend_from_slice(&x_bytes);
            q3.extend_from_slice(&point_to_bytes(&own_public));
            pok.encode_into(&mut q3);
            out.broadcast = Some(q3);
            new_state =
                Some(NewState { share, seeds, bob_states, alice: std::mem::take(&mut self.alice) });
        }
        let chain_code = chain_code.ok_or_else(|| invalid("no chain code known"))?;
        let cfg = self.cfg.clone();
        Ok((ReshareRound3 { cfg, sid: self.sid, chain_code, public_shares, d2, new_state }, out))
    }
}

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

impl ReshareRound3 {
    /// Who Q3 messages are expected from.
    pub fn expects(&self) -> Expected {
        Expected {
            bcast: self.cfg.new_others(),
            p2p: if self.cfg.am_new() { self.cfg.new_others() } else { Vec::new() },
        }
    }

    /// Consumes Q3 (§2.5 checks on the new committee) and produces the acknowledgement Q4
    /// (only new members send one).
    ///
    /// # Errors
    /// [`Error::ViewMismatch`] for a different sid or D2; [`Error::Blame`] for a wrong public key
    /// or public share, an invalid final proof, or a failed OT setup.
    pub fn next(
        mut self,
        bcast: &BTreeMap<PartyIndex, Vec<u8>>,
        p2p: &BTreeMap<PartyIndex, Vec<u8>>,
    ) -> Result<(ReshareRound4, Outgoing), Error> {
        let exp = self.expects();
        expect_from(3, bcast, &exp.bcast)?;
        expect_from(3, p2p, &exp.p2p)?;
        let x = self.cfg.spec.public_key;
        let view = FinalView {
            label: "Q3",
            tag: Tag::RsPokShare,
            sid: &self.sid,
            d2: &self.d2,
            x: &x,
            chain_code: &self.chain_code,
            public_shares: &self.public_shares,
        };
        for &j in &exp.bcast {
            view.check(j, bcast.get(&j).map_or(&[][..], Vec::as_slice))?;
        }
        let own_ack = public_ack(Tag::RsAck, &self.sid, &x, &self.chain_code, &self.public_shares);
        let mut pending = None;
        let mut out = Outgoing::default();
        if let Some(mut st) = self.new_state.take() {
            let me = self.cfg.me;
            let mut alice_states: BTreeMap<PartyIndex, AliceState> = BTreeMap::new();
            for &j in &exp.p2p {
                let m = p2p.get(&j).map_or(&[][..], Vec::as_slice);
                alice_states.insert(j, finish_pair_setup(j, &self.sid, m, st.alice.remove(&j))?);
            }
            let spec = &self.cfg.spec;
            pending = Some(KeyShare {
                n: spec.new_parties(),
                t: spec.new_threshold,
                i: me,
                epoch: spec.new_epoch,
                keygen_sid: self.sid,
                key_id: spec.key_id,
                public_key: x,
                chain_code: self.chain_code,
                public_shares: self.public_shares.clone(),
                identities: spec.new_committee.iter().map(|m| m.identity.to_bytes()).collect(),
                secret_share: st.share,
                zero_seeds: std::mem::take(&mut st.seeds),
                ot_alice: alice_states,
                ot_bob: std::mem::take(&mut st.bob_states),
            });
            let mut q4 = Vec::with_capacity(64);
            q4.extend_from_slice(&self.sid);
            q4.extend_from_slice(&own_ack);
            out.broadcast = Some(q4);
        }
        Ok((ReshareRound4 { others: self.cfg.new_others(), sid: self.sid, own_ack, pending }, out))
    }
}

/// State after Q4: the new share (if any) is pending until every new member has acknowledged.
pub struct ReshareRound4 {
    others: Vec<PartyIndex>,
    sid: [u8; 32],
    own_ack: [u8; 32],
    pending: Option<KeyShare>,
}

/// The acknowledgement (the round-4 payload) every new member of the reshare that produced
/// `share` broadcasts: the session id and a digest of the new public data. A staged share is
/// confirmed by finding this from every other new member.
pub fn acknowledgement(share: &KeyShare) -> [u8; 64] {
    let sid = share.keygen_sid;
    let ack =
        public_ack(Tag::RsAck, &sid, &share.public_key, &share.chain_code, &share.public_shares);
    let mut out = [0u8; 64];
    let (head, tail) = out.split_at_mut(32);
    head.copy_from_slice(&sid);
    tail.copy_from_slice(&ack);
    out
}

impl ReshareRound4 {
    /// The share this party holds once every acknowledgement is in (`None` for a member that
    /// leaves): what it must keep (staged) before its own acknowledgement goes out.
    pub fn pending_share(&self) -> Option<&KeyShare> {
        self.pending.as_ref()
    }

    /// Who acknowledgements are expected from (every new member but this party).
    pub fn expects(&self) -> Expected {
        Expected { bcast: self.others.clone(), p2p: Vec::new() }
    }

    /// Consumes the acknowledgements; returns the outcome only if all match.
    ///
    /// # Errors
    /// [`Error::ViewMismatch`] naming a member whose acknowledgement differs; [`Error::Timeout`]
    /// if one is missing. In both cases every party keeps its old share.
    pub fn finish(self, acks: &BTreeMap<PartyIndex, Vec<u8>>) -> Result<ReshareOutcome, Error> {
        expect_from(4, acks, &self.others)?;
        for &j in &self.others {
            let a = acks.get(&j).map_or(&[][..], Vec::as_slice);
            if a.len() != 64 {
                return Err(Error::blame(j, "malformed acknowledgement"));
            }
            if a.get(..32) != Some(&self.sid[..]) || a.get(32..) != Some(&self.own_ack[..]) {
                return Err(Error::ViewMismatch { round: 4, party: j });
            }
        }
        match self.pending {
            Some(share) => {
                share.validate().map_err(|e| {
                    Error::Unattributable(format!("new key share failed validation: {e}"))
                })?;
                Ok(ReshareOutcome::NewShare(share))
            }
            None => Ok(ReshareOutcome::Removed),
        }
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
