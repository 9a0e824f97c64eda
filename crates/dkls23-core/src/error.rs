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
    /// Party `party` announced (in a signed abort message) that it left the session, so the
    /// session cannot complete; seen while collecting `round`. No blame: the notice is
    /// authenticated, but a party that stops is not provably cheating.
    #[error("party {party} aborted the session in round {round}: {reason}")]
    PeerAborted {
        /// Who aborted.
        party: PartyIndex,
        /// The round this party was collecting when the notice arrived.
        round: u8,
        /// Why, as the aborting party announced it.
        reason: AbortReason,
    },
}

/// Why a party aborted a session (the reason code of its signed abort message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortReason {
    /// At its session limit: it refused the session before creating any state (1).
    Busy,
    /// It refused the request (a bad or conflicting request there, a banned signer, …) (2).
    Refused,
    /// Its run failed (a peer misbehaved, views differ, …) (3).
    Failed,
    /// A round timed out there (4).
    Timeout,
    /// It is shutting down (5).
    Stopping,
    /// A code this version does not know.
    Other(u16),
}

impl AbortReason {
    /// The wire code.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Busy => 1,
            Self::Refused => 2,
            Self::Failed => 3,
            Self::Timeout => 4,
            Self::Stopping => 5,
            Self::Other(n) => n,
        }
    }

    /// The reason of a wire code.
    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => Self::Busy,
            2 => Self::Refused,
            3 => Self::Failed,
            4 => Self::Timeout,
            5 => Self::Stopping,
            n => Self::Other(n),
        }
    }

    /// What this party announces when its run ends with `e`; `None` when the relay itself
    /// failed (the notice could not get through) or a peer aborted first.
    pub fn for_error(e: &Error) -> Option<Self> {
        match e {
            Error::InvalidInput(_) => Some(Self::Refused),
            Error::Timeout { .. } => Some(Self::Timeout),
            Error::Transport(_) | Error::RelayFull { .. } | Error::PeerAborted { .. } => None,
            _ => Some(Self::Failed),
        }
    }
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy => f.write_str("it is busy (at its session limit) and never started"),
            Self::Refused => f.write_str("it refused the request"),
            Self::Failed => f.write_str("its run failed"),
            Self::Timeout => f.write_str("a round timed out there"),
            Self::Stopping => f.write_str("it is shutting down"),
            Self::Other(n) => write!(f, "reason code {n}"),
        }
    }
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
