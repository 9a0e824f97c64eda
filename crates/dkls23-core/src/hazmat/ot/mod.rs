//! The oblivious-transfer layer (`ot.md`): everything between "two parties share an
//! authenticated channel and a session id" and "each ordered pair of signers holds additive
//! shares of two products".
//!
//! For every ordered pair (A, B) there is one independent channel in which A plays **Alice**
//! (RVOLE sender; base-OT receiver; OT-extension sender holding Δ) and B plays **Bob** (RVOLE
//! receiver; base-OT sender; OT-extension receiver).
//!
//! Keygen (once per ordered pair, [`setup`]):
//! ```text
//! Alice: alice_start(ids)            -> (AliceSetup, Kg1)    Kg1 ─► Bob
//! Bob:   bob_respond(ids, &Kg1)      -> (BobState,   Kg2)    Kg2 ─► Alice
//! Alice: AliceSetup::finish(&Kg2)    -> AliceState
//! ```
//! Signing (once per ordered pair per session, [`rvole`]):
//! ```text
//! Bob:   BobVole::start(&BobState, vsid)                 -> (BobVole, Sg1)     Sg1 ─► Alice
//! Alice: alice_respond(&AliceState, vsid, (a0, a1), &Sg1) -> (AliceVoleOutput, Sg2) ─► Bob
//! Bob:   BobVole::finish(&Sg2)                           -> BobVoleOutput
//! ```
//! with `c_i + d_i = a_i · b` for Alice's output `c` and Bob's `(b, d)`.
//!
//! Errors ([`OtError`]) separate a session mismatch (no blame) from malformed input (blame the
//! sender) from detected cheating; [`OtError::requires_ban`] says when the counterparty must be
//! banned (`ot.md` P1).

mod base;
mod extension;
mod messages;
mod pprf;
pub mod rvole;
pub mod setup;
mod state;
mod util;

#[cfg(test)]
mod tests;

pub use messages::{Kg1, Kg2, Sg1, Sg2};
pub use rvole::{AliceVoleOutput, BobVole, BobVoleOutput, alice_respond};
pub use setup::{AliceSetup, SetupIds, alice_start, bob_respond};
pub use state::{AliceState, BobState};

use crate::encoding::DecodeError;

/// A party's role in one ordered-pair OT channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The RVOLE sender (base-OT receiver, extension sender, holds Δ).
    Alice,
    /// The RVOLE receiver (base-OT sender, extension receiver).
    Bob,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Alice => "Alice (RVOLE sender)",
            Role::Bob => "Bob (RVOLE receiver)",
        })
    }
}

/// What kind of cheating a check detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheatKind {
    /// A base-OT message produced an identity point (keygen; no reusable state yet).
    BaseOt,
    /// The all-but-one OT proof failed (keygen; no reusable state yet).
    PprfProof,
    /// The SoftSpokenOT consistency check failed at Alice (signing; **ban**).
    OteCheck,
    /// The RVOLE μ check failed at Bob (signing; **ban**).
    VoleCheck,
}

impl std::fmt::Display for CheatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheatKind::BaseOt => "invalid base-OT message",
            CheatKind::PprfProof => "all-but-one OT proof failed",
            CheatKind::OteCheck => "OT-extension consistency check failed",
            CheatKind::VoleCheck => "RVOLE consistency check failed",
        })
    }
}

/// Errors of the OT layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtError {
    /// The message was computed under a different session id (relay replay or a view
    /// disagreement). Nobody is blamed and nobody may be banned for this.
    #[error("session mismatch: {message} was computed under another session id")]
    SessionMismatch {
        /// Which message.
        message: &'static str,
    },
    /// An authenticated message failed to decode; the sender is to blame (no ban needed: the
    /// verdict did not depend on secret state).
    #[error("malformed {message} from {culprit}: {reason}")]
    Malformed {
        /// The sender's role.
        culprit: Role,
        /// Which message.
        message: &'static str,
        /// What was wrong.
        reason: DecodeError,
    },
    /// A check detected cheating by the counterparty.
    #[error("{culprit} misbehaved: {kind}")]
    Misbehaviour {
        /// The cheater's role.
        culprit: Role,
        /// Which check failed.
        kind: CheatKind,
    },
}

impl OtError {
    /// The role to blame, if any.
    pub fn culprit(&self) -> Option<Role> {
        match self {
            OtError::SessionMismatch { .. } => None,
            OtError::Malformed { culprit, .. } | OtError::Misbehaviour { culprit, .. } => {
                Some(*culprit)
            }
        }
    }

    /// Whether the counterparty must be banned: this session and every concurrent session with
    /// it must abort and the channel must never be used again (the verdict depended on the
    /// reused secret Δ or β, so a retry would leak it bit by bit — `ot.md` P1).
    pub fn requires_ban(&self) -> bool {
        matches!(
            self,
            OtError::Misbehaviour { kind: CheatKind::OteCheck | CheatKind::VoleCheck, .. }
        )
    }
}
