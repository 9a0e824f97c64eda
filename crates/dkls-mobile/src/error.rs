//! The errors every language sees, as one typed enum.

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum MobileError {
    /// An argument is unusable (the message says which and why).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong.
        message: String,
    },
    /// An out-of-band payload could not be parsed.
    #[error("out-of-band payload: {message}")]
    Payload {
        /// What is wrong with it.
        message: String,
    },
    /// The relay could not be reached or refused the connection (TLS causes included: an
    /// untrusted or expired certificate, a wrong host name, a pin mismatch).
    #[error("relay: {message}")]
    Relay {
        /// The cause.
        message: String,
    },
    /// The protocol failed. `culprit` names the party to blame when one can be blamed;
    /// `banned` says that it was recorded as banned for this key (it cheated in a way that
    /// could leak this phone's share, so no later signing session with it is accepted).
    #[error("protocol failed: {message}")]
    Protocol {
        /// What happened.
        message: String,
        /// The party at fault, when one is known.
        culprit: Option<u16>,
        /// Whether the culprit was banned.
        banned: bool,
    },
    /// A signer of the session is banned for this key; nothing was sent.
    #[error("party {party} is banned for key {key_id}; nothing was sent")]
    Banned {
        /// The key.
        key_id: String,
        /// The banned party.
        party: u16,
    },
    /// No share is stored under this key id.
    #[error("no share for key {key_id}")]
    UnknownKey {
        /// The key id.
        key_id: String,
    },
    /// No such presignature for this key (unknown, or already used).
    #[error("no presignature {presignature_id} for this key (unknown or already used)")]
    UnknownPresignature {
        /// The presignature id.
        presignature_id: String,
    },
    /// The presignature storage was restored from a backup or copied: every presignature in it
    /// was deleted (one used twice would reveal the share) and nothing was sent; make new ones.
    #[error("the presignature storage was restored: all {deleted} presignature(s) were deleted")]
    PresignaturesRestored {
        /// How many were deleted.
        deleted: u64,
    },
    /// A refresh or reshare failed after this phone's new share was kept aside: the other
    /// members may have moved to it. It is activated at the next use of the key once every
    /// other member's acknowledgement is found at the relay (the current share is used until
    /// then); retrying the same session is not needed.
    #[error("refresh/reshare of key {key_id} undecided (new epoch {epoch}): {message}")]
    Undecided {
        /// The key.
        key_id: String,
        /// The epoch of the share kept aside.
        epoch: u32,
        /// Why the run failed.
        message: String,
    },
    /// The app's secure storage failed.
    #[error("storage: {message}")]
    Storage {
        /// Its error.
        message: String,
    },
    /// The app's message signer failed or returned something unusable.
    #[error("message signer: {message}")]
    Signer {
        /// Its error.
        message: String,
    },
    /// The operation was cancelled (the awaiting task was cancelled).
    #[error("cancelled")]
    Cancelled,
}

impl MobileError {
    pub(crate) fn input(message: impl Into<String>) -> Self {
        Self::InvalidInput { message: message.into() }
    }
}

impl From<mpc_node_client::embedded::PartyError> for MobileError {
    fn from(e: mpc_node_client::embedded::PartyError) -> Self {
        use mpc_node_client::embedded::PartyError as P;
        match e {
            P::Session(s) => Self::input(s.0),
            P::Protocol(p) => protocol(&p),
            P::Store(message) => Self::Storage { message },
            P::UnknownKey(key_id) => Self::UnknownKey { key_id },
            P::Banned { key_id, party } => Self::Banned { key_id, party },
            P::UnknownPresignature(presignature_id) => {
                Self::UnknownPresignature { presignature_id }
            }
            P::PresignaturesRestored { deleted } => Self::PresignaturesRestored { deleted },
            P::Undecided { key_id, epoch, cause } => {
                Self::Undecided { key_id, epoch, message: cause.to_string() }
            }
            other => Self::InvalidInput { message: other.to_string() },
        }
    }
}

/// A protocol error, with its culprit and whether it was banned.
fn protocol(e: &dkls23_core::Error) -> MobileError {
    let culprit = e.culprits().first().copied();
    let banned = matches!(e, dkls23_core::Error::BanAndAbort { .. });
    let message = e.to_string();
    // A relay that cannot be reached shows up as a transport failure of the run.
    if let dkls23_core::Error::Transport(m) = e {
        return MobileError::Relay { message: m.clone() };
    }
    MobileError::Protocol { message, culprit, banned }
}

/// The error the app's interfaces ([`crate::SecureStorage`], [`crate::MessageSigner`],
/// [`crate::ProgressListener`]) return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ForeignError {
    /// The operation failed.
    #[error("{message}")]
    Failed {
        /// Why (shown in the error the caller sees).
        message: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ForeignError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { message: format!("the app's callback failed unexpectedly: {}", e.reason) }
    }
}
