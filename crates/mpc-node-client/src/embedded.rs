//! The embedded party: a party with no node (a user's phone), talking to the relay directly and
//! keeping its share in a caller-supplied [`KeyStore`]. It builds the same setups as the nodes
//! from the same [`SessionConfig`], so a phone and a server node can generate and sign together.
//!
//! The phone has no static configuration: every player's identity key (including the server
//! nodes' static keys) must be in the session's `public_keys`.
//!
//! # Bans
//! A co-signer that fails an OT / RVOLE / Γ check may be probing the phone's long-term OT secret
//! one bit per session (`protocols.md` §3.7): the phone records it in its [`BanStore`] and from
//! then on refuses, before sending anything, every signing session of that key with it, also
//! after a restart (the ban store is the app's secure storage, like the [`KeyStore`]). Tampering
//! in transit only fails authentication and never bans anybody. The only way out is a refresh or
//! reshare that re-keys all OT material or excludes the culprit (run by the other parties; the
//! phone then stores the new share and clears the key's bans), or deleting the share.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use dkls23_core::KeyShare;
use dkls23_core::identity::IdentitySigner;
use dkls23_core::runner::{RunOptions, run_dkg, run_sign};
use dkls23_core::setup::ReplayGuard;
use dkls23_core::sign::Signature;
use msg_relay_api::Relay;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::api::SessionConfig;
use crate::session::{self, SessionError};

/// Where the embedded party keeps its shares (e.g. the phone's keychain).
pub trait KeyStore: Send + Sync {
    /// Stores the serialised share of `key_id` (replacing any previous one).
    ///
    /// # Errors
    /// A description of the storage failure.
    fn put(&self, key_id: &str, share: &[u8]) -> Result<(), String>;
    /// The serialised share of `key_id`, if any.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn get(&self, key_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String>;
    /// Deletes the share of `key_id`.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn delete(&self, key_id: &str) -> Result<(), String>;
}

/// Where the embedded party keeps its bans (the phone's keychain / keystore, next to the
/// shares). `record` must be durable when it returns: a lost ban re-opens the attack.
pub trait BanStore: Send + Sync {
    /// Records that `party` must never sign with `key_id`'s current OT material.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn record(&self, key_id: &str, party: u16, reason: &str) -> Result<(), String>;
    /// The banned parties of `key_id`, ascending.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn banned(&self, key_id: &str) -> Result<Vec<u16>, String>;
    /// Forgets the bans of `key_id` (after a refresh or reshare replaced all OT material, or when
    /// the share is deleted).
    ///
    /// # Errors
    /// A description of the storage failure.
    fn clear(&self, key_id: &str) -> Result<(), String>;
}

/// A [`BanStore`] in memory: for tests only (bans must survive restarts on a device).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Default)]
pub struct MemoryBanStore {
    bans: Mutex<HashMap<String, BTreeMap<u16, String>>>,
}

#[cfg(any(test, feature = "testing"))]
impl BanStore for MemoryBanStore {
    fn record(&self, key_id: &str, party: u16, reason: &str) -> Result<(), String> {
        let mut m = self.bans.lock().map_err(|_| "lock poisoned".to_owned())?;
        m.entry(key_id.to_owned()).or_default().entry(party).or_insert_with(|| reason.to_owned());
        Ok(())
    }
    fn banned(&self, key_id: &str) -> Result<Vec<u16>, String> {
        let m = self.bans.lock().map_err(|_| "lock poisoned".to_owned())?;
        Ok(m.get(key_id).map(|b| b.keys().copied().collect()).unwrap_or_default())
    }
    fn clear(&self, key_id: &str) -> Result<(), String> {
        let mut m = self.bans.lock().map_err(|_| "lock poisoned".to_owned())?;
        m.remove(key_id);
        Ok(())
    }
}

/// A [`KeyStore`] in memory (tests, demos).
#[derive(Default)]
pub struct MemoryKeyStore {
    shares: Mutex<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryKeyStore(<redacted>)")
    }
}

impl KeyStore for MemoryKeyStore {
    fn put(&self, key_id: &str, share: &[u8]) -> Result<(), String> {
        let mut m = self.shares.lock().map_err(|_| "lock poisoned".to_owned())?;
        m.insert(key_id.to_owned(), Zeroizing::new(share.to_vec()));
        Ok(())
    }
    fn get(&self, key_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        let m = self.shares.lock().map_err(|_| "lock poisoned".to_owned())?;
        Ok(m.get(key_id).cloned())
    }
    fn delete(&self, key_id: &str) -> Result<(), String> {
        let mut m = self.shares.lock().map_err(|_| "lock poisoned".to_owned())?;
        m.remove(key_id);
        Ok(())
    }
}

/// Why an embedded-party operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartyError {
    /// The session configuration or request is unusable.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The protocol failed (see [`dkls23_core::Error::culprits`] / `must_ban`).
    #[error(transparent)]
    Protocol(#[from] dkls23_core::Error),
    /// The key store failed.
    #[error("key store: {0}")]
    Store(String),
    /// No share for this key id.
    #[error("no share for key {0}")]
    UnknownKey(String),
    /// A signer of the session is banned for this key: nothing was sent.
    #[error(
        "party {party} is banned for key {key_id}: it failed a check that protects this device's \
         share in an earlier session; nothing was sent. Sign with other parties, or have the key \
         reshared without it"
    )]
    Banned {
        /// The key.
        key_id: String,
        /// The banned party (its index in the key).
        party: u16,
    },
}

/// What key generation produced (public values only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    /// Compressed public key.
    pub public_key: [u8; 33],
    /// Chain code.
    pub chain_code: [u8; 32],
    /// This party's index.
    pub player: u16,
}

/// A party without a node.
pub struct EmbeddedParty {
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    relay: Arc<dyn Relay>,
    store: Arc<dyn KeyStore>,
    bans: Arc<dyn BanStore>,
    guard: Arc<dyn ReplayGuard + Send + Sync>,
    opts: RunOptions,
}

impl std::fmt::Debug for EmbeddedParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedParty")
            .field("identity", &self.signer.public_key())
            .finish_non_exhaustive()
    }
}

impl EmbeddedParty {
    /// A party with identity `signer`, reaching the others through `relay`, keeping shares in
    /// `store`, bans in `bans` and used instance ids in `guard` (all three persistent on a real
    /// device).
    pub fn new(
        signer: Arc<dyn IdentitySigner + Send + Sync>,
        relay: Arc<dyn Relay>,
        store: Arc<dyn KeyStore>,
        bans: Arc<dyn BanStore>,
        guard: Arc<dyn ReplayGuard + Send + Sync>,
    ) -> Self {
        Self { signer, relay, store, bans, guard, opts: RunOptions::default() }
    }

    /// Sets round timeout and message TTL.
    pub fn with_options(mut self, opts: RunOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Runs key generation as the player whose key in `session.public_keys` is ours and stores
    /// the share under `key_id`.
    ///
    /// # Errors
    /// [`PartyError`].
    pub async fn generate(
        &self,
        key_id: &str,
        threshold: u16,
        session_cfg: &SessionConfig,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<GeneratedKey, PartyError> {
        let iid = session::session_id(session_cfg)?;
        let players = session::resolve_players(session_cfg, &BTreeMap::new())?;
        let setup = session::dkg_setup(iid, threshold, players, key_id)?;
        let me = setup.my_index(&self.signer.public_key()).ok_or_else(|| {
            SessionError("our identity key is not among the session's players".into())
        })?;
        let share = run_dkg(
            self.relay.as_ref(),
            &setup,
            self.signer.clone(),
            &*self.guard,
            rng,
            &self.opts,
        )
        .await?;
        self.store.put(key_id, &share.to_bytes()).map_err(PartyError::Store)?;
        Ok(GeneratedKey {
            public_key: session::compressed(share.public_key()),
            chain_code: *share.chain_code(),
            player: me,
        })
    }

    /// Signs the 32-byte prehash `message` under `path` with the signers `session.players`.
    ///
    /// # Errors
    /// [`PartyError`].
    pub async fn sign(
        &self,
        key_id: &str,
        session_cfg: &SessionConfig,
        message: [u8; 32],
        path: &[u32],
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Signature, PartyError> {
        let iid = session::session_id(session_cfg)?;
        let bytes = self
            .store
            .get(key_id)
            .map_err(PartyError::Store)?
            .ok_or_else(|| PartyError::UnknownKey(key_id.to_owned()))?;
        let share = KeyShare::from_bytes(&bytes)
            .map_err(|e| PartyError::Store(format!("stored share does not decode: {e}")))?;
        let mut signers = session_cfg.players.clone();
        signers.sort_unstable();
        let banned = self.bans.banned(key_id).map_err(PartyError::Store)?;
        if let Some(&party) = signers.iter().find(|s| banned.contains(s)) {
            return Err(PartyError::Banned { key_id: key_id.to_owned(), party });
        }
        let setup = session::sign_setup(iid, &share, &signers, path, message)?;
        let result = run_sign(
            self.relay.as_ref(),
            &setup,
            &share,
            self.signer.clone(),
            &*self.guard,
            &banned,
            rng,
            &self.opts,
        )
        .await;
        match result {
            Ok(sig) => Ok(sig),
            Err(e) => {
                if let dkls23_core::Error::BanAndAbort { party, reason } = &e {
                    self.bans.record(key_id, *party, reason).map_err(|why| {
                        PartyError::Store(format!(
                            "party {party} must be banned ({reason}) but the ban store failed: \
                             {why}; do not sign with this key until it is recorded"
                        ))
                    })?;
                }
                Err(e.into())
            }
        }
    }

    /// Receives an exported key as the export's recipient: `setup` is the hex-decoded
    /// [`crate::api::ExportResponse::setup`] (check the returned key against the public key you
    /// expect), `recipient_secret` the X25519 secret whose public key the exporters were given.
    ///
    /// # Errors
    /// [`PartyError`]: a malformed setup, a missing confirmation, a timeout, a blamed exporter.
    pub async fn receive_export(
        &self,
        setup: &[u8],
        recipient_secret: &[u8; 32],
        confirmation: &str,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<dkls23_core::import_export::ExportedKey, PartyError> {
        let setup = dkls23_core::setup::Setup::from_bytes(setup)
            .map_err(|e| SessionError(format!("export setup: {e}")))?;
        Ok(dkls23_core::runner::run_export_receive(
            self.relay.as_ref(),
            &setup,
            self.signer.clone(),
            &*self.guard,
            rng,
            &self.opts,
            recipient_secret,
            confirmation,
        )
        .await?)
    }

    /// The parties banned for `key_id` on this device.
    ///
    /// # Errors
    /// [`PartyError::Store`].
    pub fn banned(&self, key_id: &str) -> Result<Vec<u16>, PartyError> {
        self.bans.banned(key_id).map_err(PartyError::Store)
    }

    /// Deletes the share of `key_id` (and its bans, which belonged to that share's OT material).
    ///
    /// # Errors
    /// [`PartyError::Store`].
    pub fn delete(&self, key_id: &str) -> Result<(), PartyError> {
        self.store.delete(key_id).map_err(PartyError::Store)?;
        self.bans.clear(key_id).map_err(PartyError::Store)
    }
}
