//! Keygen-time pair setup: base OT + all-but-one OT, two messages (`ot.md` §2, §3.1).

use rand_core::CryptoRng;
use subtle::Choice;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::base::{self, PointPair};
use super::messages::{Kg1, Kg2};
use super::pprf::{self, Hashers};
use super::state::{AliceState, BobState, Leaves};
use super::util::boxed;
use super::{CheatKind, OtError, Role};
use crate::params::{K, LEAVES, SID_LEN, TREES};
use crate::transcript::{Tag, xof};

/// The session ids of one ordered pair's OT setup (`protocols.md` §1.8, `ot.md` §1.5).
#[derive(Clone, PartialEq, Eq)]
pub struct SetupIds {
    osid: [u8; SID_LEN],
    bot: [u8; SID_LEN],
    pub(crate) pprf: [u8; SID_LEN],
}

impl SetupIds {
    /// Derives the base-OT and PPRF ids from the pair's setup id
    /// `osid(A, B) = TH("ot/setup", sid, u16(A), u16(B))`.
    pub fn new(osid: [u8; SID_LEN]) -> Self {
        Self { osid, bot: xof(Tag::SidBot, &[&osid]), pprf: xof(Tag::SidPprf, &[&osid]) }
    }

    /// The pair setup id echoed in KG1 and KG2.
    pub fn osid(&self) -> &[u8; SID_LEN] {
        &self.osid
    }
}

impl std::fmt::Debug for SetupIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SetupIds").field(&super::util::Hex(&self.osid)).finish()
    }
}

/// Alice's secret state between sending KG1 and receiving KG2. Consumed by [`AliceSetup::finish`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AliceSetup {
    #[zeroize(skip)]
    ids: SetupIds,
    receiver: base::Receiver,
    #[zeroize(skip)]
    points: Box<[PointPair; base::N]>,
}

impl std::fmt::Debug for AliceSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliceSetup").field("ids", &self.ids).finish_non_exhaustive()
    }
}

/// KG1: Alice starts the pair setup.
pub fn alice_start(rng: &mut (impl CryptoRng + ?Sized), ids: SetupIds) -> (AliceSetup, Kg1) {
    let (receiver, points) = base::receiver_start(rng, &ids.bot);
    let kg1 = Kg1 { sid: ids.osid, points: points.clone() };
    (AliceSetup { ids, receiver, points }, kg1)
}

/// KG2: Bob answers KG1 and obtains his long-term [`BobState`].
///
/// # Errors
/// [`OtError::SessionMismatch`] if KG1 carries another setup id; [`OtError::Malformed`] or
/// [`OtError::Misbehaviour`] (culprit Alice) if its points are invalid.
pub fn bob_respond(
    rng: &mut (impl CryptoRng + ?Sized),
    ids: &SetupIds,
    kg1: &Kg1,
) -> Result<(BobState, Kg2), OtError> {
    if kg1.sid != ids.osid {
        return Err(OtError::SessionMismatch { message: "KG1" });
    }
    let (ys, mut keys) = base::sender_respond(rng, &ids.bot, &kg1.points)?;
    let hashers = Hashers::new(&ids.pprf);
    let mut leaves: Box<Leaves> = boxed([[0u8; 32]; LEAVES]);
    let empty = pprf::TreeMsg { corrections: [[[0u8; 32]; 2]; K - 1], t: [0u8; 64], s: [0u8; 32] };
    let mut trees: Box<[pprf::TreeMsg; TREES]> = boxed(empty);
    let (key_groups, _) = keys.as_chunks::<K>();
    for (j, ((group, tree_leaves), tree_msg)) in
        key_groups.iter().zip(leaves.iter_mut()).zip(trees.iter_mut()).enumerate()
    {
        let (l, m) = pprf::build(&hashers, j, group);
        *tree_leaves = l;
        *tree_msg = m;
    }
    keys.zeroize();
    Ok((BobState { leaves }, Kg2 { sid: ids.osid, ys, trees }))
}

impl AliceSetup {
    /// Alice finishes the pair setup with KG2 and obtains her long-term [`AliceState`].
    ///
    /// Any failure discards the whole pair setup (`ot.md` P13: never retry on the same base
    /// OTs); this consumes `self` so that cannot happen by accident.
    ///
    /// # Errors
    /// [`OtError::SessionMismatch`] for another setup id; [`OtError::Malformed`] for invalid
    /// points; [`OtError::Misbehaviour`] with [`CheatKind::PprfProof`] (culprit Bob) when a tree
    /// proof fails.
    pub fn finish(self, kg2: &Kg2) -> Result<AliceState, OtError> {
        if kg2.sid != self.ids.osid {
            return Err(OtError::SessionMismatch { message: "KG2" });
        }
        let mut keys = base::receiver_finish(&self.receiver, &self.ids.bot, &self.points, &kg2.ys)?;
        let hashers = Hashers::new(&self.ids.pprf);
        let mut state = AliceState { d: [0u8; TREES / 2], leaves: boxed([[0u8; 32]; LEAVES]) };
        let mut ok = Choice::from(1);
        let (choice_groups, _) = self.receiver.choices.as_chunks::<K>();
        let (key_groups, _) = keys.as_chunks::<K>();
        let mut deltas = [0u8; TREES];
        for (j, ((((choices, group), msg), tree_leaves), delta)) in choice_groups
            .iter()
            .zip(key_groups.iter())
            .zip(kg2.trees.iter())
            .zip(state.leaves.iter_mut())
            .zip(deltas.iter_mut())
            .enumerate()
        {
            let ev = pprf::eval(&hashers, j, choices, group, msg);
            ok &= ev.ok;
            *tree_leaves = ev.leaves;
            *delta = ev.delta;
        }
        keys.zeroize();
        for (byte, pair) in state.d.iter_mut().zip(deltas.as_chunks::<2>().0) {
            *byte = pair[0] | (pair[1] << 4);
        }
        deltas.zeroize();
        if bool::from(ok) {
            Ok(state)
        } else {
            Err(OtError::Misbehaviour { culprit: Role::Bob, kind: CheatKind::PprfProof })
        }
    }

    /// The base-OT choice bits (test hook for the invariants of `ot.md` §7.1).
    #[cfg(test)]
    pub(crate) fn choices(&self) -> &[u8; base::N] {
        &self.receiver.choices
    }
}
