//! The embedded party: a party with no node (a user's phone), talking to the relay directly and
//! keeping its share in a caller-supplied [`KeyStore`]. It builds the same setups as the nodes
//! from the same [`SessionConfig`], so a phone and a server node can generate and sign together.
//!
//! The phone has no static configuration: every player's identity key (including the server
//! nodes' static keys) must be in the session's `public_keys`.

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
    /// `store` and used instance ids in `guard` (persist it on a real device).
    pub fn new(
        signer: Arc<dyn IdentitySigner + Send + Sync>,
        relay: Arc<dyn Relay>,
        store: Arc<dyn KeyStore>,
        guard: Arc<dyn ReplayGuard + Send + Sync>,
    ) -> Self {
        Self { signer, relay, store, guard, opts: RunOptions::default() }
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
        let setup = session::sign_setup(iid, &share, &signers, path, message)?;
        Ok(run_sign(
            self.relay.as_ref(),
            &setup,
            &share,
            self.signer.clone(),
            &*self.guard,
            &[],
            rng,
            &self.opts,
        )
        .await?)
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

    /// Deletes the share of `key_id`.
    ///
    /// # Errors
    /// [`PartyError::Store`].
    pub fn delete(&self, key_id: &str) -> Result<(), PartyError> {
        self.store.delete(key_id).map_err(PartyError::Store)
    }
}
