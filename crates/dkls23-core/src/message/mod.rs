//! The message layer (`protocols.md` §1.5, §7): message ids, the 36-byte header, signed
//! broadcasts, encrypted point-to-point messages, aborts and the receive rules.
//!
//! Wire layouts (`hdr = mid ‖ version u8 (=1) ‖ kind u8 ‖ reserved u16 (=0)`, 36 bytes):
//!
//! ```text
//! broadcast (kind 0):  hdr ‖ payload ‖ σ64      σ = Sign("DKLS23-v1/bcast" ‖ hdr ‖ payload)
//! abort     (kind 2):  hdr ‖ reason u16 ‖ accused u16 ‖ σ64   (same signing input as broadcast)
//! p2p       (kind 1):  hdr ‖ ct ‖ tag16 ‖ nonce12
//!                      ct ‖ tag = ChaCha20-Poly1305(k_{i→j}, nonce, aad = hdr, pt)
//!                      pt = payload                 (plain mode)
//!                      pt = payload ‖ σ'64          (complaint mode;
//!                                                    σ' = Sign("DKLS23-v1/p2p" ‖ hdr ‖ payload))
//! ```
//!
//! The signing contexts are written literally (not length-framed), exactly as in the spec.
//! Nonces are `0x00000000 ‖ u64_be(counter)`, counter starting at 1 per direction.
//!
//! [`Session`] applies the receive rules:
//! * unexpected `mid`, wrong kind, bad signature, bad AEAD tag, oversize or garbled input →
//!   `Ok(None)`: drop and keep waiting (an unauthenticated injection cannot end a session);
//! * the same content again under an already accepted `mid` → `Ok(None)` (duplicate delivery);
//! * authenticated but malformed, different authenticated content under an accepted `mid`, or a
//!   reused nonce → `Err` blaming the sender ([`MessageError::culprit`]).

mod channel;
mod envelope;
mod session;

#[cfg(test)]
mod tests;

pub use channel::{AEAD_FOOTER_LEN, AEAD_TAG_LEN, EphemeralKey, NONCE_LEN, X25519_LEN};
pub use envelope::{
    ABORT_PAYLOAD_LEN, ABORT_ROUND, AbortNotice, EquivocationEvidence, Evidence, HEADER_LEN,
    Header, Kind, WIRE_VERSION, mid, signing_input,
};
pub use session::{Expect, P2pMode, Received, Session};

use crate::identity::IdentityError;
use crate::setup::{PartyIndex, ReplayError};

/// Hard cap on any message this layer sends or accepts (1 MiB); per-round bounds come from
/// [`Expect`].
pub const MAX_MESSAGE_LEN: usize = 1 << 20;

/// A message-layer failure.
///
/// The first group blames a peer for authenticated misbehaviour: abort the execution and report
/// [`Self::culprit`]. No variant asks for a persisted ban ([`Self::requires_ban`] is false): the
/// ban list of `protocols.md` §3.7 is reserved for OT/RVOLE failures. The second group are local
/// errors (caller misuse, signer failure) that blame nobody.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// An authenticated message failed decoding or length checks.
    #[error("party {party} sent a malformed authenticated message: {reason}")]
    Malformed {
        /// The sender.
        party: PartyIndex,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two different authenticated messages under one `mid`.
    #[error("party {party} equivocated")]
    Equivocation {
        /// The sender.
        party: PartyIndex,
        /// Transferable proof when both messages carry signatures (broadcasts, aborts,
        /// complaint-mode p2p).
        evidence: Option<Box<EquivocationEvidence>>,
    },
    /// An authenticated p2p message reused a nonce of an earlier message.
    #[error("party {party} reused a p2p nonce")]
    NonceReuse {
        /// The sender.
        party: PartyIndex,
    },
    /// A complaint-mode p2p message decrypted but its inner signature is invalid.
    #[error("party {party} sent a p2p message with an invalid inner signature")]
    BadInnerSignature {
        /// The sender.
        party: PartyIndex,
    },
    /// A peer's (signed) ephemeral X25519 key gives a non-contributory DH result.
    #[error("party {party} sent a non-contributory ephemeral key")]
    NonContributoryKey {
        /// The peer.
        party: PartyIndex,
    },
    /// Our identity is not in the setup.
    #[error("own identity is not a participant")]
    NotAParticipant,
    /// The replay guard refused the instance id (or failed).
    #[error("instance id refused: {0}")]
    Replay(ReplayError),
    /// The index is not a peer in this session.
    #[error("party {0} is not a peer in this session")]
    UnknownParty(PartyIndex),
    /// No p2p keys with this peer yet ([`Session::establish`] not called).
    #[error("no channel with party {0} yet")]
    ChannelNotEstablished(PartyIndex),
    /// [`Session::establish`] was called twice for one peer.
    #[error("channel with party {0} already established")]
    ChannelAlreadyEstablished(PartyIndex),
    /// An outgoing payload exceeds [`MAX_MESSAGE_LEN`] (or an abort payload is malformed).
    #[error("payload of {len} bytes exceeds the limit {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The round number is reserved ([`ABORT_ROUND`]).
    #[error("round {0} is reserved")]
    ReservedRound(u16),
    /// The send counter towards this peer is exhausted (2^64 − 1 messages).
    #[error("nonce space towards party {0} exhausted")]
    NonceExhausted(PartyIndex),
    /// The identity signer failed.
    #[error("identity signer: {0}")]
    Signer(IdentityError),
}

impl MessageError {
    /// The party to blame, if this error is a peer's fault.
    pub fn culprit(&self) -> Option<PartyIndex> {
        match self {
            Self::Malformed { party, .. }
            | Self::Equivocation { party, .. }
            | Self::NonceReuse { party }
            | Self::BadInnerSignature { party }
            | Self::NonContributoryKey { party } => Some(*party),
            _ => None,
        }
    }

    /// Whether the culprit must be banned persistently. Always false at this layer (blame and
    /// abort instead); bans are for OT/RVOLE failures (`protocols.md` §3.7).
    pub fn requires_ban(&self) -> bool {
        false
    }
}
