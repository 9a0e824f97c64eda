//! The description of a reshare execution ([`ReshareSpec`]): old and new committee, new
//! threshold and epoch, its canonical encoding (carried in `Setup.extra`) and the transport
//! indices of its participants.

use k256::ProjectivePoint;
use k256::elliptic_curve::group::Group;

use super::invalid;
use crate::encoding::{Reader, point_to_bytes};
use crate::error::Error;
use crate::identity::IdentityPublicKey;
use crate::keyshare::KeyShare;
use crate::math::{PartyIndex, lagrange_at_zero};
use crate::setup::{MAX_PARTIES, ProtocolId, Setup};

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

    pub(crate) fn old_indices(&self) -> Vec<PartyIndex> {
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
