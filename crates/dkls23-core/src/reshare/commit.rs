//! Rounds 3 and 4 of the reshare: the new committee's final-share broadcasts are checked
//! (§2.5, as in DKG), each pair's OT setup is finished, and the new share is only given out
//! once every new member acknowledged the same public data.

use std::collections::BTreeMap;

use rand_core::CryptoRng;

use super::{ReshareOutcome, ReshareRound3, ReshareRound4};
use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::math::PartyIndex;
use crate::ot::AliceState;
use crate::pairwise::{FinalView, finish_pair_setup, public_ack};
use crate::round::{Expected, Inbox, Outgoing, Received, Round, Step, expect_from, payload};
use crate::transcript::Tag;

impl ReshareRound3 {
    /// Consumes Q3 (§2.5 checks on the new committee) and produces the acknowledgement Q4
    /// (only new members send one).
    fn advance(mut self, bcast: &Inbox, p2p: &Inbox) -> Result<(ReshareRound4, Outgoing), Error> {
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
            view.check(j, payload(bcast, j))?;
        }
        let own_ack = public_ack(Tag::RsAck, &self.sid, &x, &self.chain_code, &self.public_shares);
        let mut pending = None;
        let mut out = Outgoing::default();
        if let Some(mut st) = self.new_state.take() {
            let me = self.cfg.me;
            let mut alice_states: BTreeMap<PartyIndex, AliceState> = BTreeMap::new();
            for &j in &exp.p2p {
                let m = payload(p2p, j);
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
    /// Consumes the acknowledgements; returns the outcome only if all match.
    fn finish(self, acks: &Inbox) -> Result<ReshareOutcome, Error> {
        expect_from(4, acks, &self.others)?;
        for &j in &self.others {
            let a = payload(acks, j);
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

impl<'a> Round<'a> for ReshareRound3 {
    type Output = ReshareOutcome;

    fn number(&self) -> u16 {
        3
    }

    /// A Q3 broadcast from every other new member; a new member also expects their p2p.
    fn expects(&self) -> Expected {
        Expected {
            bcast: self.cfg.new_others(),
            p2p: if self.cfg.am_new() { self.cfg.new_others() } else { Vec::new() },
        }
    }

    /// # Errors
    /// [`Error::ViewMismatch`] for a different sid or D2; [`Error::Blame`] for a wrong public key
    /// or public share, an invalid final proof, or a failed OT setup.
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, ReshareOutcome>, Error> {
        let (next, out) = (*self).advance(&got.bcast, &got.p2p)?;
        Ok(Step::next(next, out))
    }
}

impl<'a> Round<'a> for ReshareRound4 {
    type Output = ReshareOutcome;

    fn number(&self) -> u16 {
        super::COMMIT_ROUND
    }

    /// An acknowledgement from every new member but this party.
    fn expects(&self) -> Expected {
        Expected::broadcasts(self.others.clone())
    }

    fn is_commit_round(&self) -> bool {
        true
    }

    /// The share this party holds once every acknowledgement is in (`None` for a member that
    /// leaves): what it must keep (staged) before its own acknowledgement goes out.
    fn pending_share(&self) -> Option<&KeyShare> {
        self.pending.as_ref()
    }

    /// # Errors
    /// [`Error::ViewMismatch`] naming a member whose acknowledgement differs; [`Error::Timeout`]
    /// if one is missing. In both cases every party keeps its old share.
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, ReshareOutcome>, Error> {
        (*self).finish(&got.bcast).map(Step::Done)
    }
}
