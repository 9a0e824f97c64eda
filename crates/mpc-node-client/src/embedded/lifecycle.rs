//! Refresh and reshare at the embedded party.
//!
//! The new share is *staged* in the [`KeyStore`] (under `<key id>:staged`, with the session's
//! setup) before this party's acknowledgement leaves, and becomes the key's share when the run
//! ends well. A party whose run fails after that point (its connection lost for good, the app
//! killed) does not know whether its peers moved to the new epoch; the next time the key is used
//! it looks for every other new member's acknowledgement at the relay and activates the staged
//! share when they are all there (they prove every member holds its new share). A share is
//! never left behind at an older epoch than the peers' without the party knowing it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dkls23_core::KeyShare;
use dkls23_core::reshare::{NewMember, ReshareOutcome, ReshareSpec};
use dkls23_core::setup::Setup;
use dkls23_runner::{Confirmation, RunContext, StageShare, confirm_staged, run_reshare};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{EmbeddedParty, GeneratedKey, KeyStore, PartyError};
use crate::api::SessionConfig;
use crate::session::{self, SESSION_TTL_SECS, SessionError};

/// Longest wait for the other members' acknowledgements when confirming a staged share (they
/// are at the relay already, or not at all).
const CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// How long after a failed confirmation the key is used with its current share without
/// trying again.
const RETRY_EVERY: Duration = Duration::from_secs(30);

/// What a reshare left this party with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReshareResult {
    /// This party is in the new committee: its new share is stored under the key id.
    Share(GeneratedKey),
    /// This party dealt but is not in the new committee: its share was deleted.
    Removed,
}

/// The key store entry of `key_id`'s staged share (not a valid key id, so it never collides).
fn staged_key(key_id: &str) -> String {
    format!("{key_id}:staged")
}

/// `setup length u32 BE ‖ setup ‖ share`.
fn encode_staged(setup: &[u8], share: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(4 + setup.len() + share.len()));
    out.extend_from_slice(&(setup.len() as u32).to_be_bytes());
    out.extend_from_slice(setup);
    out.extend_from_slice(share);
    out
}

fn decode_staged(bytes: &[u8]) -> Result<(Setup, KeyShare), String> {
    let (len, rest) = bytes.split_at_checked(4).ok_or("truncated")?;
    let len = u32::from_be_bytes(len.try_into().map_err(|_| "truncated")?) as usize;
    let (setup, share) = rest.split_at_checked(len).ok_or("truncated")?;
    let setup = Setup::from_bytes(setup).map_err(|e| format!("setup: {e}"))?;
    let share = KeyShare::from_bytes(share).map_err(|e| format!("share: {e}"))?;
    Ok((setup, share))
}

/// The staging hook of one refresh/reshare run.
struct Stage {
    store: Arc<dyn KeyStore>,
    key: String,
    setup: Vec<u8>,
}

impl StageShare for Stage {
    fn stage<'a>(
        &'a self,
        share: &'a KeyShare,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        let bytes = encode_staged(&self.setup, &share.to_bytes());
        Box::pin(async move { self.store.put(&self.key, &bytes) })
    }
}

impl EmbeddedParty {
    /// Refresh: new shares of the same key for all of its players (every player takes part,
    /// `session.players` = `1..=n`); the public key and addresses stay. Clears the key's bans
    /// and presignatures (they belong to the old shares).
    ///
    /// # Errors
    /// [`PartyError`]; [`PartyError::Undecided`] when the run failed after the new share was
    /// staged.
    pub async fn refresh(
        &self,
        key_id: &str,
        session_cfg: &SessionConfig,
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<GeneratedKey, PartyError> {
        let iid = session::session_id(session_cfg)?;
        let share = self.load_settled(key_id, rng).await?;
        let all: Vec<u16> = (1..=share.parties()).collect();
        let mut players = session_cfg.players.clone();
        players.sort_unstable();
        if players != all {
            return Err(SessionError(format!(
                "refresh needs every player of the key: session.players must be {all:?}"
            ))
            .into());
        }
        let spec = ReshareSpec::refresh(&share)?;
        match self.run_reshare_spec(key_id, spec, iid, Some(&share), true, rng).await? {
            ReshareResult::Share(key) => Ok(key),
            ReshareResult::Removed => {
                Err(PartyError::Store("a refresh removed this party's share".into()))
            }
        }
    }

    /// The public reshare spec (canonical encoding) of a reshare of `key_id` with dealers
    /// `old_players`, the new committee `session.players` (exactly `1..=n'`, every identity in
    /// `session.public_keys`) and `new_threshold`: what a party joining without a share needs.
    ///
    /// # Errors
    /// [`PartyError`].
    pub fn reshare_spec(
        &self,
        key_id: &str,
        session_cfg: &SessionConfig,
        old_players: &[u16],
        new_threshold: u16,
    ) -> Result<Vec<u8>, PartyError> {
        let share = self.load(key_id)?;
        let spec = spec_from_share(&share, session_cfg, old_players, new_threshold)?;
        Ok(spec.to_bytes())
    }

    /// Reshare `key_id` to the new committee `session.players` (exactly `1..=n'`, identities
    /// in `session.public_keys`) with `new_threshold`, dealt by the current holders
    /// `old_players`. A party holding a share deals if it is in `old_players` and continues if
    /// its identity is in the new committee (else its share is deleted); a party without a
    /// share joins with `spec` (from [`Self::reshare_spec`] or a node's `reshare-spec`).
    ///
    /// # Errors
    /// [`PartyError`]; [`PartyError::Undecided`] when the run failed after the new share was
    /// staged.
    pub async fn reshare(
        &self,
        key_id: &str,
        session_cfg: &SessionConfig,
        old_players: &[u16],
        new_threshold: u16,
        spec: Option<&[u8]>,
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<ReshareResult, PartyError> {
        let iid = session::session_id(session_cfg)?;
        let given = spec
            .map(ReshareSpec::from_bytes)
            .transpose()
            .map_err(|e| SessionError(format!("reshare spec: {e}")))?;
        let committee = new_committee(session_cfg)?;
        let me = self.signer.public_key();
        let continuing = committee.iter().any(|m| m.identity == me);
        let held = self.store.get(key_id).map_err(PartyError::Store)?.is_some()
            || self.store.get(&staged_key(key_id)).map_err(PartyError::Store)?.is_some();
        let share = if held { Some(self.load_settled(key_id, rng).await?) } else { None };
        let spec = match (&share, given) {
            (Some(share), given) => {
                let spec = spec_from_share(share, session_cfg, old_players, new_threshold)?;
                if given.is_some_and(|g| g != spec) {
                    return Err(SessionError(
                        "the given reshare spec differs from the one this party computes from \
                         its share"
                            .into(),
                    )
                    .into());
                }
                spec
            }
            (None, Some(given)) => {
                if given.new_committee != committee {
                    return Err(SessionError(
                        "the reshare spec's new committee differs from session.players and \
                         their keys"
                            .into(),
                    )
                    .into());
                }
                given
            }
            (None, None) => {
                return Err(PartyError::UnknownKey(format!(
                    "{key_id} (to join its new committee, pass the reshare spec from a current \
                     holder)"
                )));
            }
        };
        let dealing = share.as_ref().filter(|s| old_players.contains(&s.index()));
        if dealing.is_none() && !continuing {
            return Err(SessionError(
                "this party neither deals (old_players) nor is in the new committee".into(),
            )
            .into());
        }
        self.run_reshare_spec(key_id, spec, iid, dealing, continuing, rng).await
    }

    async fn run_reshare_spec(
        &self,
        key_id: &str,
        spec: ReshareSpec,
        iid: [u8; 32],
        old: Option<&KeyShare>,
        continuing: bool,
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<ReshareResult, PartyError> {
        let setup = spec.to_setup(iid, SESSION_TTL_SECS)?;
        let mut opts = self.opts.clone();
        if continuing {
            opts.stage = Some(Arc::new(Stage {
                store: self.store.clone(),
                key: staged_key(key_id),
                setup: setup.to_bytes(),
            }));
        }
        let ctx = RunContext::new(self.relay.as_ref(), self.signer.clone(), &*self.guard)
            .with_options(opts);
        match run_reshare(&ctx, &setup, old, rng).await {
            Ok(ReshareOutcome::NewShare(new)) => {
                let key = GeneratedKey {
                    public_key: session::compressed(new.public_key()),
                    chain_code: *new.chain_code(),
                    player: new.index(),
                };
                self.activate(key_id, &new)?;
                Ok(ReshareResult::Share(key))
            }
            Ok(ReshareOutcome::Removed) => {
                self.delete(key_id)?;
                Ok(ReshareResult::Removed)
            }
            Err(e) => {
                if let dkls23_core::Error::BanAndAbort { party, reason } = &e {
                    // Parties are named by their transport index; a ban names the dealer's
                    // player index in the current epoch (only a dealer can be banned).
                    if let Some(m) = spec.old_member_at(*party) {
                        self.bans.record(key_id, m.index, reason).map_err(PartyError::Store)?;
                    }
                }
                let staged = self.store.get(&staged_key(key_id)).map_err(PartyError::Store)?;
                if staged.is_some() {
                    return Err(PartyError::Undecided {
                        key_id: key_id.to_owned(),
                        epoch: spec.new_epoch,
                        cause: e,
                    });
                }
                Err(e.into())
            }
        }
    }

    /// Makes `share` the key's share: its old bans and presignatures go, and so does the
    /// staged copy.
    fn activate(&self, key_id: &str, share: &KeyShare) -> Result<(), PartyError> {
        self.store.put(key_id, &share.to_bytes()).map_err(PartyError::Store)?;
        self.store.delete(&staged_key(key_id)).map_err(PartyError::Store)?;
        self.bans.clear(key_id).map_err(PartyError::Store)?;
        self.drop_presignatures(key_id)
    }

    pub(super) fn drop_presignatures(&self, key_id: &str) -> Result<(), PartyError> {
        if let Some((store, _)) = &self.presigs {
            store.delete_key(key_id).map_err(PartyError::Store)?;
        }
        Ok(())
    }

    pub(super) fn delete_staged(&self, key_id: &str) -> Result<(), PartyError> {
        self.store.delete(&staged_key(key_id)).map_err(PartyError::Store)
    }

    /// The key's share, after settling a staged share left by an earlier refresh/reshare: it
    /// is activated when every other new member acknowledged it, dropped when one acknowledged
    /// something else, and kept (the current share is used) while that is undecided.
    pub(super) async fn load_settled(
        &self,
        key_id: &str,
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<KeyShare, PartyError> {
        self.settle_staged(key_id, rng).await?;
        self.load(key_id)
    }

    async fn settle_staged(
        &self,
        key_id: &str,
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<(), PartyError> {
        let Some(bytes) = self.store.get(&staged_key(key_id)).map_err(PartyError::Store)? else {
            return Ok(());
        };
        if self.recently_unsettled(key_id) {
            return Ok(());
        }
        let Ok((setup, share)) = decode_staged(&bytes) else {
            return self.delete_staged(key_id);
        };
        let mut opts = self.opts.clone();
        opts.round_timeout = opts.round_timeout.min(CONFIRM_WAIT);
        let ctx = RunContext::new(self.relay.as_ref(), self.signer.clone(), &*self.guard)
            .with_options(opts);
        match confirm_staged(&ctx, &setup, &share, rng).await {
            Ok(Confirmation::Confirmed) => {
                self.activate(key_id, &share)?;
                self.forget_unsettled(key_id);
                Ok(())
            }
            Err(dkls23_core::Error::ViewMismatch { .. } | dkls23_core::Error::InvalidInput(_)) => {
                // A member acknowledged other data (nobody can have committed on ours), or the
                // record is not ours: it can never be activated.
                self.delete_staged(key_id)?;
                self.forget_unsettled(key_id);
                Ok(())
            }
            Ok(Confirmation::Missing(_)) | Err(_) => {
                self.mark_unsettled(key_id);
                Ok(())
            }
        }
    }

    fn recently_unsettled(&self, key_id: &str) -> bool {
        let tries = self.settle_tries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tries.get(key_id).is_some_and(|at| at.elapsed() < RETRY_EVERY)
    }

    fn mark_unsettled(&self, key_id: &str) {
        let mut tries = self.settle_tries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tries.insert(key_id.to_owned(), Instant::now());
    }

    fn forget_unsettled(&self, key_id: &str) {
        let mut tries = self.settle_tries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tries.remove(key_id);
    }
}

/// The new committee of a reshare session: `session.players` with their identity keys.
fn new_committee(session_cfg: &SessionConfig) -> Result<Vec<NewMember>, PartyError> {
    Ok(session::resolve_players(session_cfg, &std::collections::BTreeMap::new())?
        .into_iter()
        .map(|(index, identity)| NewMember { index, identity })
        .collect())
}

fn spec_from_share(
    share: &KeyShare,
    session_cfg: &SessionConfig,
    old_players: &[u16],
    new_threshold: u16,
) -> Result<ReshareSpec, PartyError> {
    let mut dealers = old_players.to_vec();
    dealers.sort_unstable();
    if dealers.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(SessionError("old_players lists a player twice".into()).into());
    }
    let committee = new_committee(session_cfg)?;
    Ok(ReshareSpec::from_share(share, &dealers, committee, new_threshold)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{decode_staged, encode_staged};

    #[test]
    fn a_truncated_staged_record_is_refused() {
        for bad in [&[][..], &[0, 0, 0][..], &[0, 0, 0, 9, 1, 2][..]] {
            assert!(decode_staged(bad).is_err());
        }
        let record = encode_staged(b"not a setup", b"");
        assert!(decode_staged(&record).unwrap_err().starts_with("setup"));
    }
}
