//! The protocol error type: who is to blame and whether to ban (`protocols.md` §1.7).

use crate::math::PartyIndex;
use crate::ot::OtError;

/// Errors of the DKG, signing and reshare protocols.
///
/// Use [`Error::culprits`] to learn whom to blame and [`Error::must_ban`] to learn whether the
/// culprit must be banned (persisted, all concurrent sessions with it aborted, no signing with it
/// until a reshare replaces all OT material — `protocols.md` §3.7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's input is invalid (bad setup, too few signers, unknown key, …); raised before
    /// any message is sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Party `party` provably misbehaved (identifiable abort). No ban is needed because no
    /// reusable secret was at stake, but the party should not be trusted in this session.
    #[error("party {party} misbehaved: {reason}")]
    Blame {
        /// The culprit.
        party: PartyIndex,
        /// What it did.
        reason: String,
    },
    /// Party `party` failed an OT / RVOLE / Γ check: it MUST be banned for this key's OT material.
    #[error("party {party} must be banned: {reason}")]
    BanAndAbort {
        /// The culprit.
        party: PartyIndex,
        /// What it did.
        reason: String,
    },
    /// Parties disagree on the transcript (replay, relay fault, or equivocation). Nobody is
    /// blamed and nobody may be banned.
    #[error(
        "view mismatch in round {round}: party {party} computed a different session id or digest"
    )]
    ViewMismatch {
        /// Protocol round where the mismatch surfaced.
        round: u8,
        /// The party whose echo differed from ours.
        party: PartyIndex,
    },
    /// The protocol failed but no single party can be blamed.
    #[error("protocol failed without an identifiable culprit: {0}")]
    Unattributable(String),
    /// The transport (relay) failed in a way retries did not fix; no blame.
    #[error("transport: {0}")]
    Transport(String),
    /// The relay is up but holds as many bytes as it may: load, not an outage. Nothing was
    /// decided; retry the session later (with a fresh instance id). No blame.
    #[error("the relay is full: it holds {held} of {limit} bytes; retry later")]
    RelayFull {
        /// Bytes the relay holds.
        held: u64,
        /// Its limit.
        limit: u64,
    },
    /// A round timed out; no cryptographic blame.
    #[error("timed out in round {round} waiting for parties {missing:?}")]
    Timeout {
        /// Protocol round.
        round: u8,
        /// Parties whose messages never arrived.
        missing: Vec<PartyIndex>,
    },
}

impl Error {
    /// The parties to blame, if any.
    pub fn culprits(&self) -> Vec<PartyIndex> {
        match self {
            Error::Blame { party, .. } | Error::BanAndAbort { party, .. } => vec![*party],
            _ => Vec::new(),
        }
    }

    /// Whether the culprit must be banned (`protocols.md` §3.7).
    pub fn must_ban(&self) -> bool {
        matches!(self, Error::BanAndAbort { .. })
    }

    /// Maps an OT-layer error from a channel with `counterparty`.
    pub(crate) fn from_ot(counterparty: PartyIndex, round: u8, e: OtError) -> Self {
        match e {
            OtError::SessionMismatch { .. } => Error::ViewMismatch { round, party: counterparty },
            e if e.requires_ban() => {
                Error::BanAndAbort { party: counterparty, reason: e.to_string() }
            }
            e => Error::Blame { party: counterparty, reason: e.to_string() },
        }
    }

    pub(crate) fn blame(party: PartyIndex, reason: impl Into<String>) -> Self {
        Error::Blame { party, reason: reason.into() }
    }
}
