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
use std::time::Instant;

use dkls23_core::KeyShare;
use dkls23_core::identity::SharedSigner;
use dkls23_core::setup::ReplayGuard;
use dkls23_core::sign::Signature;
use dkls23_runner::{RunContext, RunOptions, run_dkg, run_finish, run_presign, run_sign};
use msg_relay_api::Relay;
use rand_core::CryptoRng;

use crate::api::SessionConfig;
use crate::session::{self, SessionError};

mod lifecycle;

pub use crate::stores::{BanStore, GenerationCounter, KeyStore, MemoryKeyStore, PresignatureStore};
#[cfg(any(test, feature = "testing"))]
pub use crate::stores::{MemoryBanStore, MemoryGenerationCounter, MemoryPresignatureStore};
pub use lifecycle::ReshareResult;

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
    /// The presignature store is not at its generation (it was restored from a backup or
    /// copied): every presignature in it was deleted so that none can be used twice.
    #[error(
        "the presignature store was restored or copied: all {deleted} presignature(s) were \
         deleted so that none can be used twice; make new ones"
    )]
    PresignaturesRestored {
        /// How many were deleted.
        deleted: u64,
    },
    /// No such presignature (unknown, already used, or made for another key).
    #[error("no presignature {0} for this key (unknown or already used)")]
    UnknownPresignature(String),
    /// A refresh or reshare failed after this party's new share was staged (its
    /// acknowledgement may have reached the others, who may be at the new epoch now). The
    /// staged share is activated on the next use of the key once every other member's
    /// acknowledgement is found at the relay; until then the current share is used.
    #[error(
        "the refresh/reshare of key {key_id} failed after this party's new share (epoch {epoch}) \
         was staged: {cause}; the staged share is activated on the next use of the key once the \
         other members' acknowledgements are found at the relay"
    )]
    Undecided {
        /// The key.
        key_id: String,
        /// The epoch of the staged share.
        epoch: u32,
        /// Why the run failed.
        cause: dkls23_core::Error,
    },
    /// This party was created without presignature storage.
    #[error("presignatures need a PresignatureStore and a GenerationCounter (with_presignatures)")]
    NoPresignatureStore,
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
    signer: SharedSigner,
    relay: Arc<dyn Relay>,
    store: Arc<dyn KeyStore>,
    bans: Arc<dyn BanStore>,
    guard: Arc<dyn ReplayGuard + Send + Sync>,
    presigs: Option<PresignatureStores>,
    opts: RunOptions,
    application: String,
    /// When a staged share last could not be confirmed, per key.
    settle_tries: Mutex<HashMap<String, Instant>>,
}

/// The presignature store and the generation counter outside it.
type PresignatureStores = (Arc<dyn PresignatureStore>, Arc<dyn GenerationCounter>);

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
        signer: SharedSigner,
        relay: Arc<dyn Relay>,
        store: Arc<dyn KeyStore>,
        bans: Arc<dyn BanStore>,
        guard: Arc<dyn ReplayGuard + Send + Sync>,
    ) -> Self {
        Self {
            signer,
            relay,
            store,
            bans,
            guard,
            presigs: None,
            opts: RunOptions::default(),
            application: String::new(),
            settle_tries: Mutex::new(HashMap::new()),
        }
    }

    /// The application (tenant) this party's keys belong to: bound into every key generation,
    /// so it must be the application name the server nodes know this app by (their
    /// `[[api_keys]].app`). A mismatch makes the key generation fail (the parties compute
    /// different setups and time out in round 1); nothing is stored. Empty by default.
    pub fn for_application(mut self, application: &str) -> Self {
        application.clone_into(&mut self.application);
        self
    }

    /// Enables presigning: presignatures are kept in `store`, and `counter` (outside it) keeps
    /// the presignature generation.
    pub fn with_presignatures(
        mut self,
        store: Arc<dyn PresignatureStore>,
        counter: Arc<dyn GenerationCounter>,
    ) -> Self {
        self.presigs = Some((store, counter));
        self
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
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<GeneratedKey, PartyError> {
        let iid = session::session_id(session_cfg)?;
        let players = session::resolve_players(session_cfg, &BTreeMap::new())?;
        let setup = session::dkg_setup(iid, threshold, players, key_id, &self.application)?;
        let me = setup.my_index(&self.signer.public_key()).ok_or_else(|| {
            SessionError("our identity key is not among the session's players".into())
        })?;
        let share = run_dkg(&self.run_context(), &setup, rng).await?;
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
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<Signature, PartyError> {
        let iid = session::session_id(session_cfg)?;
        let share = self.load_settled(key_id, rng).await?;
        let mut signers = session_cfg.players.clone();
        signers.sort_unstable();
        let banned = self.refuse_banned(key_id, &signers)?;
        let setup = session::sign_setup(iid, &share, &signers, path, message)?;
        let result =
            run_sign(&self.run_context().refusing(banned.clone()), &setup, &share, rng).await;
        match result {
            Ok(sig) => Ok(sig),
            Err(e) => {
                self.record_ban(key_id, &e)?;
                Err(e.into())
            }
        }
    }

    /// The context of this party's runs: its relay, identity, replay guard and options.
    fn run_context(&self) -> RunContext<'_, dyn Relay> {
        RunContext::new(self.relay.as_ref(), self.signer.clone(), &*self.guard)
            .with_options(self.opts.clone())
    }

    fn load(&self, key_id: &str) -> Result<KeyShare, PartyError> {
        let bytes = self
            .store
            .get(key_id)
            .map_err(PartyError::Store)?
            .ok_or_else(|| PartyError::UnknownKey(key_id.to_owned()))?;
        KeyShare::from_bytes(&bytes)
            .map_err(|e| PartyError::Store(format!("stored share does not decode: {e}")))
    }

    fn refuse_banned(&self, key_id: &str, signers: &[u16]) -> Result<Vec<u16>, PartyError> {
        let banned = self.bans.banned(key_id).map_err(PartyError::Store)?;
        if let Some(&party) = signers.iter().find(|s| banned.contains(s)) {
            return Err(PartyError::Banned { key_id: key_id.to_owned(), party });
        }
        Ok(banned)
    }

    fn record_ban(&self, key_id: &str, e: &dkls23_core::Error) -> Result<(), PartyError> {
        if let dkls23_core::Error::BanAndAbort { party, reason } = e {
            self.bans.record(key_id, *party, reason).map_err(|why| {
                PartyError::Store(format!(
                    "party {party} must be banned ({reason}) but the ban store failed: {why}; \
                     do not sign with this key until it is recorded"
                ))
            })?;
        }
        Ok(())
    }

    fn presig_stores(&self) -> Result<&PresignatureStores, PartyError> {
        self.presigs.as_ref().ok_or(PartyError::NoPresignatureStore)
    }

    /// Brings the presignature store to its generation: when the store's copy differs from the
    /// outside counter, every presignature is deleted and both move past either value.
    fn reconcile_generation(&self) -> Result<u64, PartyError> {
        let (store, counter) = self.presig_stores()?;
        let inside = store.generation().map_err(PartyError::Store)?;
        let outside = counter.get().map_err(PartyError::Store)?;
        match (inside, outside) {
            (Some(a), Some(b)) if a == b => Ok(0),
            (None, None) => {
                counter.set(0).map_err(PartyError::Store)?;
                store.set_generation(0).map_err(PartyError::Store)?;
                Ok(0)
            }
            _ => {
                let deleted = store.delete_all().map_err(PartyError::Store)?;
                let next = inside.unwrap_or(0).max(outside.unwrap_or(0)).saturating_add(1);
                counter.set(next).map_err(PartyError::Store)?;
                store.set_generation(next).map_err(PartyError::Store)?;
                Ok(deleted)
            }
        }
    }

    /// Runs `count` presigning sessions with the signers `session.players`, bound to `path`,
    /// the `k`-th with instance id [`session::presign_iid`]`(session id, k)` (as a node does),
    /// and stores the presignatures. Returns their ids.
    ///
    /// # Errors
    /// [`PartyError`]; a ban is recorded as for [`Self::sign`].
    pub async fn presign(
        &self,
        key_id: &str,
        session_cfg: &SessionConfig,
        count: u16,
        path: &[u32],
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<Vec<String>, PartyError> {
        let sid = session::session_id(session_cfg)?;
        let share = self.load_settled(key_id, rng).await?;
        let mut signers = session_cfg.players.clone();
        signers.sort_unstable();
        let mut ids = Vec::with_capacity(usize::from(count));
        for k in 0..count {
            let banned = self.refuse_banned(key_id, &signers)?;
            let setup =
                session::presign_setup(session::presign_iid(&sid, k), &share, &signers, path)?;
            let result =
                run_presign(&self.run_context().refusing(banned.clone()), &setup, &share, rng)
                    .await;
            let pre = match result {
                Ok(p) => p,
                Err(e) => {
                    self.record_ban(key_id, &e)?;
                    return Err(e.into());
                }
            };
            // A restored store is emptied before anything new goes into it.
            self.reconcile_generation()?;
            let (store, _) = self.presig_stores()?;
            let id = hex::encode(setup.iid());
            store.put(key_id, &id, &pre.to_bytes()).map_err(PartyError::Store)?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Signs the prehash `message` with the stored presignature `presignature_id` (made with the
    /// signers `session.players` under `path`): one round online. The request is checked
    /// against the presignature before it is consumed; the generation moves on and the
    /// presignature is deleted before anything is sent.
    ///
    /// # Errors
    /// [`PartyError::PresignaturesRestored`] for a restored store (nothing is sent);
    /// [`PartyError::UnknownPresignature`]; otherwise as [`Self::sign`].
    pub async fn sign_with_presignature(
        &self,
        key_id: &str,
        presignature_id: &str,
        session_cfg: &SessionConfig,
        message: [u8; 32],
        path: &[u32],
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<Signature, PartyError> {
        let deleted = self.reconcile_generation()?;
        if deleted > 0 {
            return Err(PartyError::PresignaturesRestored { deleted });
        }
        let (store, counter) = self.presig_stores()?;
        let id = presignature_id.to_ascii_lowercase();
        let unknown = || PartyError::UnknownPresignature(presignature_id.to_owned());
        let iid = hex::decode(&id).ok().and_then(|v| <[u8; 32]>::try_from(v).ok());
        let iid = iid.ok_or_else(unknown)?;
        let share = self.load_settled(key_id, rng).await?;
        let mut signers = session_cfg.players.clone();
        signers.sort_unstable();
        self.refuse_banned(key_id, &signers)?;
        let setup = session::presign_setup(iid, &share, &signers, path)?;
        let stored = store.peek(key_id, &id).map_err(PartyError::Store)?.ok_or_else(unknown)?;
        let pre = dkls23_core::sign::Presignature::from_bytes(&stored, &share)?;
        if pre.setup_hash() != setup.hash() {
            return Err(PartyError::Session(SessionError(format!(
                "presignature {presignature_id} was made for other signers or another path \
                 (signers {:?}); it is kept",
                pre.signers()
            ))));
        }
        let now = store.generation().map_err(PartyError::Store)?.unwrap_or(0);
        counter.set(now.saturating_add(1)).map_err(PartyError::Store)?;
        store.set_generation(now.saturating_add(1)).map_err(PartyError::Store)?;
        store.take(key_id, &id).map_err(PartyError::Store)?.ok_or_else(unknown)?;
        let result = run_finish(&self.run_context(), &setup, pre, &message, rng).await;
        Ok(result?)
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
        rng: &mut (dyn CryptoRng + Send),
    ) -> Result<dkls23_core::import_export::ExportedKey, PartyError> {
        let setup = dkls23_core::setup::Setup::from_bytes(setup)
            .map_err(|e| SessionError(format!("export setup: {e}")))?;
        Ok(dkls23_runner::run_export_receive(
            &self.run_context(),
            &setup,
            recipient_secret,
            confirmation,
            rng,
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

    /// Deletes the share of `key_id` with everything that belonged to it: its bans (they were
    /// about that share's OT material), its presignatures and a staged share.
    ///
    /// # Errors
    /// [`PartyError::Store`].
    pub fn delete(&self, key_id: &str) -> Result<(), PartyError> {
        self.store.delete(key_id).map_err(PartyError::Store)?;
        self.delete_staged(key_id)?;
        self.drop_presignatures(key_id)?;
        self.bans.clear(key_id).map_err(PartyError::Store)
    }
}
