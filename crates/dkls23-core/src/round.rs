//! The round vocabulary every protocol shares: what a round sends ([`Outgoing`]), what it
//! waits for ([`Expected`]), what it was given ([`Received`]), and the [`Round`] trait each
//! round of each protocol implements.
//!
//! A protocol is a chain of rounds. Its `start` function returns the first round together
//! with the first messages to send; each round is then consumed by value with the messages it
//! expected and returns a [`Step`]: the next round and its messages, or the protocol's output.
//! Numbering is one scheme everywhere: [`Round::number`] is the message-id round under which
//! the round's outgoing messages are published and its expected messages collected (from 1),
//! and errors and round events name rounds by the same number.
//!
//! ```text
//! start(..)            -> (round 1, messages of round 1)
//! round k .next(inbox) -> Step::Next(round k+1, messages of round k+1) | Step::Done(output)
//! ```
//! The driver (the async runner, or the in-process simulator) is one loop over this shape:
//! publish the messages, collect what [`Round::expects`], call [`Round::next`].

use std::collections::BTreeMap;

use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::math::PartyIndex;

/// Payloads received in one round from one kind of message, by sender.
pub type Inbox = BTreeMap<PartyIndex, Vec<u8>>;

/// Payloads a round sends: one broadcast and/or one message per recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// The broadcast payload, if the round has one.
    pub broadcast: Option<Vec<u8>>,
    /// Point-to-point payloads by recipient.
    pub p2p: BTreeMap<PartyIndex, Vec<u8>>,
}

impl Outgoing {
    /// Only a broadcast.
    pub fn broadcast(payload: Vec<u8>) -> Self {
        Self { broadcast: Some(payload), p2p: BTreeMap::new() }
    }

    /// Nothing to send in this round.
    pub fn none() -> Self {
        Self::default()
    }
}

impl Zeroize for Outgoing {
    fn zeroize(&mut self) {
        self.broadcast.zeroize();
        for m in self.p2p.values_mut() {
            m.zeroize();
        }
    }
}

/// Which parties a round expects messages from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Senders of broadcasts.
    pub bcast: Vec<PartyIndex>,
    /// Senders of point-to-point messages to this party.
    pub p2p: Vec<PartyIndex>,
}

impl Expected {
    /// A broadcast from each of `from`.
    pub fn broadcasts(from: Vec<PartyIndex>) -> Self {
        Self { bcast: from, p2p: Vec::new() }
    }

    /// A point-to-point message from each of `from`.
    pub fn p2p(from: Vec<PartyIndex>) -> Self {
        Self { bcast: Vec::new(), p2p: from }
    }

    /// A broadcast and a point-to-point message from each of `from`.
    pub fn both(from: Vec<PartyIndex>) -> Self {
        Self { bcast: from.clone(), p2p: from }
    }

    /// Nothing: the round only sends.
    pub fn nothing() -> Self {
        Self::default()
    }
}

/// What a round was given: the expected broadcasts and point-to-point payloads, by sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// Broadcast payloads.
    pub bcast: Inbox,
    /// Point-to-point payloads addressed to this party.
    pub p2p: Inbox,
}

/// A round of any protocol, boxed (the successor of a round is a different type).
pub type BoxedRound<'a, O> = Box<dyn Round<'a, Output = O> + Send + Sync + 'a>;

/// What consuming a round gave.
pub enum Step<'a, O> {
    /// The next round and the messages to publish for it.
    Next(BoxedRound<'a, O>, Outgoing),
    /// The protocol is finished.
    Done(O),
}

impl<O> std::fmt::Debug for Step<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Next(r, _) => write!(f, "Step::Next(round {})", r.number()),
            Step::Done(_) => f.write_str("Step::Done"),
        }
    }
}

impl<'a, O> Step<'a, O> {
    /// The next round `round` with its messages `out`.
    pub fn next(round: impl Round<'a, Output = O> + Send + Sync + 'a, out: Outgoing) -> Self {
        Step::Next(Box::new(round), out)
    }
}

/// One round of a protocol: this party's state while it waits for the messages of round
/// [`number`](Round::number).
///
/// `'a` is what the round may borrow (a signing round borrows the key share).
pub trait Round<'a> {
    /// What the protocol returns when its last round is consumed.
    type Output;

    /// The message-id round: the messages sent with this round and the ones it collects are
    /// published under this number.
    fn number(&self) -> u16;

    /// Who this round expects messages from.
    fn expects(&self) -> Expected;

    /// Consumes the round with the messages it expected.
    ///
    /// # Errors
    /// The protocol's [`Error`]s: a party to blame or ban, a view mismatch, a missing message.
    fn next(
        self: Box<Self>,
        rng: &mut dyn CryptoRng,
        received: Received,
    ) -> Result<Step<'a, Self::Output>, Error>;

    /// The other parties' ephemeral X25519 keys learnt in the previous round, for the
    /// encrypted point-to-point channels this round's messages need (empty: nothing new).
    fn peer_ephemeral_keys(&self) -> BTreeMap<PartyIndex, [u8; 32]> {
        BTreeMap::new()
    }

    /// `true` for the round whose messages are the acknowledgements a refresh or reshare
    /// commits on: a driver that stages new shares keeps [`Round::pending_share`] before this
    /// round's messages leave, and leaves the acknowledgements at the relay for confirmation.
    fn is_commit_round(&self) -> bool {
        false
    }

    /// The new share this party will hold if every acknowledgement matches (commit round
    /// only; `None` for a party that leaves the committee).
    fn pending_share(&self) -> Option<&KeyShare> {
        None
    }
}

/// Fresh 32 random bytes.
pub(crate) fn random_bytes(rng: &mut (impl CryptoRng + ?Sized)) -> [u8; 32] {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    b
}

/// Checks that `msgs` has exactly one entry per party in `expected`: a missing one is a
/// [`Error::Timeout`], an extra one [`Error::InvalidInput`].
pub(crate) fn expect_from<T>(
    round: u16,
    msgs: &BTreeMap<PartyIndex, T>,
    expected: &[PartyIndex],
) -> Result<(), Error> {
    let missing: Vec<PartyIndex> =
        expected.iter().copied().filter(|j| !msgs.contains_key(j)).collect();
    if !missing.is_empty() {
        return Err(Error::Timeout { round: wire_round(round), missing });
    }
    if let Some(extra) = msgs.keys().find(|j| !expected.contains(j)) {
        return Err(Error::InvalidInput(format!(
            "round {round}: unexpected message from party {extra}"
        )));
    }
    Ok(())
}

/// A round number as errors carry it (every protocol has fewer than 256 rounds).
pub(crate) fn wire_round(round: u16) -> u8 {
    u8::try_from(round).unwrap_or(u8::MAX)
}

/// The payload of `from` in `inbox`, or an empty slice (the rounds check lengths).
pub(crate) fn payload(inbox: &Inbox, from: PartyIndex) -> &[u8] {
    inbox.get(&from).map_or(&[][..], Vec::as_slice)
}
