//! Everything a run needs besides its setup and its inputs: the relay, this party's identity,
//! the replay guard, the ban list and the options.

use dkls23_core::ban::{BanList, record_if_banned};
use dkls23_core::error::Error;
use dkls23_core::identity::SharedSigner;
use dkls23_core::math::PartyIndex;
use dkls23_core::setup::ReplayGuard;
use msg_relay_api::Relay;

use crate::options::RunOptions;

/// Who runs, over which relay, with which records: built once per party and run, e.g.
/// `RunContext::new(&relay, signer, &guard).with_options(opts).with_bans(&bans)` (the README
/// has a complete example).
pub struct RunContext<'a, R: Relay + ?Sized> {
    /// The relay every message of the run goes through.
    pub relay: &'a R,
    /// This party's identity key.
    pub signer: SharedSigner,
    /// Records every instance id this party runs (a setup is never run twice).
    pub guard: &'a (dyn ReplayGuard + Sync),
    /// The bans of the keys this party holds: a signing run refuses banned signers before it
    /// sends anything and records a `BanAndAbort` culprit; a successful reshare clears the
    /// key's bans (all OT material was replaced). `None`: only [`RunContext::refused`] is
    /// refused and the caller records bans from the error itself.
    pub bans: Option<&'a dyn BanList>,
    /// Parties a signing run refuses besides the ban list's: for callers that keep and record
    /// bans in their own store (they record a `BanAndAbort` culprit from the error).
    pub refused: Vec<PartyIndex>,
    /// Timeouts, TTLs, observer and staging.
    pub options: RunOptions,
}

impl<'a, R: Relay + ?Sized> RunContext<'a, R> {
    /// A context with default options and no ban list.
    pub fn new(relay: &'a R, signer: SharedSigner, guard: &'a (dyn ReplayGuard + Sync)) -> Self {
        Self {
            relay,
            signer,
            guard,
            bans: None,
            refused: Vec::new(),
            options: RunOptions::default(),
        }
    }

    /// The same context with `options`.
    #[must_use]
    pub fn with_options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// The same context with the ban list `bans`.
    #[must_use]
    pub fn with_bans(mut self, bans: &'a dyn BanList) -> Self {
        self.bans = Some(bans);
        self
    }

    /// The same context refusing to sign with `parties` (see [`RunContext::refused`]).
    #[must_use]
    pub fn refusing(mut self, parties: Vec<PartyIndex>) -> Self {
        self.refused = parties;
        self
    }

    /// The parties this party refuses to sign with for the key `key_id`, ascending.
    pub(crate) fn banned(&self, key_id: &[u8; 32]) -> Vec<PartyIndex> {
        let mut all = self.bans.map(|b| b.banned(key_id)).unwrap_or_default();
        all.extend_from_slice(&self.refused);
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Records the culprit of `result` if it must be banned (`to_key_index` maps the run's
    /// party index to the key's).
    pub(crate) fn record_ban<T>(
        &self,
        key_id: &[u8; 32],
        result: &Result<T, Error>,
        to_key_index: impl Fn(PartyIndex) -> Option<PartyIndex>,
    ) {
        if let (Some(bans), Err(e)) = (self.bans, result) {
            record_if_banned(bans, key_id, e, to_key_index);
        }
    }
}

impl<R: Relay + ?Sized> std::fmt::Debug for RunContext<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("bans", &self.bans.map(|_| "<ban list>"))
            .field("refused", &self.refused)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
